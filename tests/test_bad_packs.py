"""Broken packs are reported as problems at their file:line:column, never as a traceback.

Each directory of tests/data/bad_packs is one case:

- the pack itself (pack.yaml and definition files), or, when the case has an `args.txt`,
  several packs in subfolders, named one a line in the order they are given;
- `expected.txt`: substrings the output of `slatecrm pack validate` must hold, one a line,
  each with the file and line:column of the problem;
- `zip.txt`: the case is packed into a .zip (at test time) and the .zip is validated.

The case files are not part of the pack (a pack may not hold them): the test validates a
copy without them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from slatecrm.platform.cli import main

CASES = Path(__file__).parent / "data" / "bad_packs"
CASE_FILES = ("expected.txt", "args.txt", "zip.txt")
#: `entities/lead.yaml:5:11: ...`: every expected line names the place of its problem.
LOCATED = re.compile(r"^[\w./-]+\.\w+:[0-9]+:[0-9]+: ")


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if p.is_dir())


def expected_lines(case: Path) -> list[str]:
    lines = (case / "expected.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()]


def zip_pack(folder: Path, target: Path) -> Path:
    """A .zip of `folder` under one top folder, as a pack is usually downloaded."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return target


def pack_arguments(case: Path, tmp_path: Path) -> list[str]:
    """The PATHS to validate for a case: a copy of its pack(s) without the case files."""
    copy = tmp_path / case.name
    shutil.copytree(case, copy, ignore=shutil.ignore_patterns(*CASE_FILES))
    if (case / "args.txt").exists():
        names = (case / "args.txt").read_text(encoding="utf-8").split()
        return [str(copy / name) for name in names]
    if (case / "zip.txt").exists():
        return [str(zip_pack(copy, tmp_path / f"{case.name}.zip"))]
    return [str(copy)]


def validate(*args: str) -> Result:
    # catch_exceptions=False: a crash fails the test with its traceback instead of
    # passing as exit code 1.
    return CliRunner().invoke(main, ["pack", "validate", *args], catch_exceptions=False)


def test_the_corpus_is_complete() -> None:
    names = case_names()
    assert len(names) >= 34
    for name in names:
        case = CASES / name
        assert (case / "expected.txt").is_file(), f"{name} has no expected.txt"
        lines = expected_lines(case)
        assert lines, f"{name}: expected.txt is empty"
        unlocated = [line for line in lines if not LOCATED.match(line)]
        assert not unlocated, f"{name}: expected lines without file:line:column: {unlocated}"


@pytest.mark.parametrize("name", case_names())
def test_bad_pack_is_reported_where_the_problem_is(name: str, tmp_path: Path) -> None:
    case = CASES / name
    result = validate(*pack_arguments(case, tmp_path))
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    missing = [line for line in expected_lines(case) if line not in result.output]
    assert not missing, f"not in the output:\n{chr(10).join(missing)}\n--- output:\n{result.output}"


@pytest.mark.parametrize(("name", "file", "line", "column"), [
    ("unknown-field-type", "entities/deal.yaml", 7, 11),
    ("dependency-cycle", "pack.yaml", 6, 12),
])
def test_json_output_gives_file_line_and_column(name: str, file: str, line: int, column: int,
                                                tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["pack", "validate", "--json",
                                       *pack_arguments(CASES / name, tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    problems = report["problems"]
    assert isinstance(problems, list) and problems
    assert all({"pack", "file", "line", "column", "path", "message"} <= set(p) for p in problems)
    assert (file, line, column) in [(p["file"], p["line"], p["column"]) for p in problems]


def test_a_damaged_zip_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    archive = zip_pack(shutil.copytree(CASES / "unknown-field-type", tmp_path / "pack",
                                       ignore=shutil.ignore_patterns(*CASE_FILES)),
                       tmp_path / "pack.zip")
    data = bytearray(archive.read_bytes())
    start = data.index(b"kind: entity")  # stored uncompressed: corrupt a member's bytes
    data[start:start + 4] = b"KIND"
    archive.write_bytes(bytes(data))
    result = validate(str(archive))
    assert result.exit_code == 1, result.output
    assert "is not a readable .zip file" in result.output


def test_the_console_script_reports_a_broken_pack_without_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "slatecrm"
    paths = pack_arguments(CASES / "many-problems-in-files", tmp_path)
    done = subprocess.run([str(script), "pack", "validate", *paths], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, check=False)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for line in expected_lines(CASES / "many-problems-in-files"):
        assert line in done.stderr
