"""The benchmark suite still runs: every scenario at tiny sizes on both databases.

No timing is asserted here (the figures belong to `make bench`); this only keeps the
suite from breaking while the platform changes under it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from tests.conftest import POSTGRES_URL

TINY = ["--quick", "--rows", "400", "--small-rows", "40", "--bulk-rows", "50", "--ops", "10",
        "--http-seconds", "0.2", "--http-rounds", "1", "--loadgen", "python",
        "--entities", "3", "--fields", "12", "--workflow-writes", "10", "--workflow-jobs", "40",
        "--workflow-pings", "2"]


def test_every_scenario_runs_and_reports(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    database = "sqlite" if db_url.startswith("sqlite") else "postgresql"  # the bench makes its own
    monkeypatch.setenv("SLATECRM_BENCH_POSTGRES_URL", POSTGRES_URL)
    assert main([*TINY, "--databases", database, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    scenarios = {f["scenario"].split(" (")[0].split(":")[0] for f in report["figures"]}
    assert {"get by id", "list page of 50, filter + sort", "create", "update", "filter + sort",
            "group-by status", "bulk create with full validation", "add a nullable field",
            "add a field with a constant default", "runtime build, 3 entities × 12 fields",
            "create with 5 matching workflows", "update with 5 matching workflows",
            "workflow trigger-to-start latency p95, one idle worker"} <= scenarios
    assert any(s.startswith("workflow jobs run by") for s in scenarios)
    assert any(s.startswith("HTTP list") for s in scenarios)
    assert {f["database"] for f in report["figures"]} <= {database, "python"}
    assert report["machine"]["cpu"] and report["machine"]["sqlite"]
    markdown = (tmp_path / "report.md").read_text()
    assert "## Machine" in markdown and "| scenario | database |" in markdown
    assert "PASS" in markdown or "FAIL" in markdown
    assert "SlateCRM benchmarks" in capsys.readouterr().out
