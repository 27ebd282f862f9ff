"""Benchmark results, written as markdown and JSON with the machine they ran on."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy


@dataclass(frozen=True)
class Figure:
    scenario: str
    database: str
    size: int
    measured: float
    baseline: float
    unit: str
    goal: str
    passed: bool
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else float("inf")


def machine() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "system": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write(figures: list[Figure], folder: Path, quick: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    info = machine()
    lines = ["# SlateCRM benchmarks", "", f"Run {info['date']}{' (QUICK sizes)' if quick else ''} on "
             f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, SQLAlchemy "
             f"{info['sqlalchemy']}, {info['system']}.", "",
             "| scenario | database | rows | measured | hand-written baseline | ratio | goal | result |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for f in figures:
        lines.append(f"| {f.scenario} | {f.database} | {f.size:,} | {f.measured:.4f} {f.unit} | "
                     f"{f.baseline:.4f} {f.unit} | {f.ratio:.2f}× | {f.goal} | "
                     f"{'PASS' if f.passed else 'FAIL'} |")
    notes = [f"- {f.scenario} ({f.database}): {f.note}" for f in figures if f.note]
    if notes:
        lines += ["", "Notes:", *notes]
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    (folder / "report.json").write_text(json.dumps(
        {"machine": info, "quick": quick, "figures": [{**asdict(f), "ratio": f.ratio} for f in figures]},
        indent=2))
    return folder / "report.md"
