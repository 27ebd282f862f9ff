"""`python -m bench.sqlite_settings` still runs (tiny sizes; no timing is asserted). Marked
slow: a few seconds for a tool run by hand, kept out of `make test` and run by CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sqlite_settings import main


@pytest.mark.slow
def test_the_sqlite_settings_measurement_runs_and_prints_a_row_per_variant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(tmp_path / "bench.db"), "--rows", "300", "--rounds", "1", "--ops", "5",
                 "--batches", "1", "--only", "sqlite defaults,cache 64 MB"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in table] == ["| variant", "| sqlite defaults", "| cache 64 MB"]
    assert all("rows/s" in line for line in table[1:])
