"""Benchmark results, written as markdown and JSON with the machine they ran on.

A `Figure` is one measured number next to its hand-written baseline from the same run.
`passed` is None for figures reported without a goal (context for the ones that have one).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy


@dataclass(frozen=True)
class Figure:
    scenario: str
    database: str
    size: int
    measured: float
    #: The hand-written (or other-layout) number from the same run; 0 when there is none.
    baseline: float
    unit: str
    goal: str
    passed: bool | None
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else float("inf")


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":" if ":" in line else "=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def machine(postgres_version: str = "") -> dict[str, str]:
    memory = _first("/proc/meminfo", "MemTotal")
    memory_gib = f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB" if memory else "unknown"
    return {
        "cpu": _first("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": str(os.cpu_count()),
        "memory": memory_gib,
        "os": f"{_first('/etc/os-release', 'PRETTY_NAME') or platform.system()}, "
              f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version or "not used",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _ratio(f: Figure) -> str:
    if not f.baseline:
        return "—"
    if f.ratio < 0.5:
        return f"{f.ratio:.3g}× ({1 / f.ratio:,.0f}× less)"
    return f"{f.ratio:.2f}×"


def _result(f: Figure) -> str:
    return "—" if f.passed is None else ("PASS" if f.passed else "**FAIL**")


def markdown(figures: list[Figure], info: dict[str, str], run: dict[str, Any],
             extra: str = "") -> str:
    quick = " (QUICK sizes: a smoke run, not the figures of record)" if run.get("quick") else ""
    lines = [
        "# SlateCRM benchmarks", "",
        f"`make bench` run of {info['date']}{quick}. Every figure is measured against a hand-written "
        "baseline (or another storage layout) in the same run, on the same tables.", "",
        "## Machine", "",
        f"- CPU: {info['cpu']}, {info['cores']} cores; memory {info['memory']}",
        f"- OS: {info['os']}",
        f"- Python {info['python']}, SQLAlchemy {info['sqlalchemy']}, SQLite {info['sqlite']}, "
        f"PostgreSQL {info['postgresql']}",
        f"- Run took {run.get('seconds', 0) / 60:.1f} minutes; sizes: "
        + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in run.get("sizes", {}).items()),
    ]
    if run.get("shared"):
        lines.append(f"- {run['shared']}")
    lines += ["", "## Figures", "",
              "| scenario | database | size | measured | baseline | ratio | goal | result |",
              "|---|---|---:|---:|---:|---:|---|---|"]
    for f in figures:
        baseline = f"{_number(f.baseline)} {f.unit}" if f.baseline else "—"
        lines.append(f"| {f.scenario} | {f.database} | {f.size:,} | {_number(f.measured)} {f.unit} | "
                     f"{baseline} | {_ratio(f)} | {f.goal} | {_result(f)} |")
    judged = [f for f in figures if f.passed is not None]
    failed = [f for f in judged if not f.passed]
    lines += ["", f"{len(judged) - len(failed)} of {len(judged)} figures with a goal pass"
              + (f"; failing: {', '.join(f'{f.scenario} ({f.database})' for f in failed)}." if failed
                 else ".")]
    notes = [f"- **{f.scenario}** ({f.database}): {f.note}" for f in figures if f.note]
    skipped = [f"- {s}" for s in run.get("skipped", [])]
    if notes or skipped:
        lines += ["", "## Notes", "", *skipped, *notes]
    if extra:
        lines += ["", extra.strip()]
    return "\n".join(lines) + "\n"


def write(figures: list[Figure], folder: Path, quick: bool, *, run: dict[str, Any] | None = None,
          info: dict[str, str] | None = None, extra: str = "", name: str = "report") -> Path:
    """`name`.md and `name`.json in `folder`; returns the markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    info = info or machine()
    run = {"quick": quick, **(run or {})}
    (folder / f"{name}.md").write_text(markdown(figures, info, run, extra))
    (folder / f"{name}.json").write_text(json.dumps(
        {"machine": info, "run": run,
         "figures": [{**asdict(f), "ratio": f.ratio if f.baseline else None} for f in figures]},
        indent=2, default=str))
    return folder / f"{name}.md"
