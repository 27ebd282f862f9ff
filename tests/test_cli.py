"""The `slatecrm` command as an operator or consultant uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from slatecrm.platform.cli import main
from slatecrm.platform.storage.engine import create_engine

from .dbstate import platform_rows, schema_snapshot
from .packs import write_pack


def run(*args: str, database: str | None = None) -> Result:
    extra = ["--database", database] if database else []
    return CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)


def fleet(tmp_path: Path, version: str, mileage: str = "text", **extra: dict[str, object]) -> Path:
    return write_pack(tmp_path, "fleet", version, {"vehicle": {"fields": {
        "plate": {"type": "text"}, "mileage": {"type": mileage}, **extra}}}, requires={"crm-core": "^0.1.0"})


def test_init_installs_the_default_packs(db_url: str) -> None:
    result = run("init", database=db_url)
    assert result.exit_code == 0, result.output
    assert "Installed crm-core, sales as revision 1" in result.output
    listed = run("pack", "list", "--json", database=db_url)
    assert [(p["name"], p["version"], p["revision"]) for p in json.loads(listed.output)] == [
        ("crm-core", "0.1.2", 1), ("sales", "0.2.6", 1)]
    again = run("init", database=db_url)
    assert again.exit_code == 0 and "Already initialised" in again.output
    history = json.loads(run("revisions", "--json", database=db_url).output)
    assert [r["id"] for r in history] == [1]
    assert history[0]["summary"] == ("6 × create table, 5 × add search index, 2 × add role, "
                                     "1 × add user attribute, 8 × add workflow, 4 × add view, 4 × add layout")


def test_plan_changes_nothing(db_url: str, tmp_path: Path) -> None:
    assert run("init", database=db_url).exit_code == 0
    engine = create_engine(db_url)
    before = schema_snapshot(engine), platform_rows(engine)
    result = run("pack", "plan", str(fleet(tmp_path, "1.0.0")), database=db_url)
    assert result.exit_code == 0, result.output
    assert "create table x_vehicle for entity vehicle" in result.output
    assert "CREATE TABLE x_vehicle" in result.output
    assert (schema_snapshot(engine), platform_rows(engine)) == before
    engine.dispose()


def test_install_upgrade_and_refused_retype(db_url: str, tmp_path: Path) -> None:
    assert run("init", database=db_url).exit_code == 0
    installed = run("pack", "install", str(fleet(tmp_path, "1.0.0")), "--yes", database=db_url)
    assert installed.exit_code == 0, installed.output
    assert "Applied as revision 2" in installed.output
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO x_vehicle (created_at, updated_at, plate, mileage) "
                             "VALUES (:t, :t, 'A', '12'), (:t, :t, 'B', 'far')"),
                     {"t": "2026-01-01 00:00:00"})
    before = schema_snapshot(engine), platform_rows(engine)
    refused = run("pack", "install", str(fleet(tmp_path, "2.0.0", mileage="integer")), "--yes",
                  database=db_url)
    assert refused.exit_code == 3
    assert "retype mileage text → integer: 1 of 2 rows do not convert" in refused.output
    assert "ids 2" in refused.output
    assert (schema_snapshot(engine), platform_rows(engine)) == before
    planned = run("pack", "plan", str(fleet(tmp_path, "2.0.0", mileage="integer")), "--json",
                  database=db_url)
    assert planned.exit_code == 3
    risk = next(c for c in json.loads(planned.output)["plan"]["changes"]
                if c["action"] == "retype column")["risks"][0]
    assert (risk["blocking"], risk["rows"], risk["total"], risk["sample_ids"]) == (True, 1, 2, [2])
    engine.dispose()


def test_install_brings_the_shipped_packs_it_requires(db_url: str, tmp_path: Path) -> None:
    assert run("init", "--no-default-packs", database=db_url).exit_code == 0
    result = run("pack", "install", str(fleet(tmp_path, "1.0.0")), "--yes", database=db_url)
    assert result.exit_code == 0, result.output
    assert "install fleet 1.0.0, install crm-core 0.1.2" in result.output
    listed = json.loads(run("pack", "list", "--json", database=db_url).output)
    assert [p["name"] for p in listed] == ["crm-core", "fleet"]


def test_install_needs_yes_without_a_terminal(db_url: str, tmp_path: Path) -> None:
    assert run("init", database=db_url).exit_code == 0
    result = run("pack", "install", str(fleet(tmp_path, "1.0.0")), database=db_url)
    assert result.exit_code == 2
    assert "confirm with --yes" in result.output


def test_purge_through_the_cli(db_url: str, tmp_path: Path) -> None:
    assert run("init", database=db_url).exit_code == 0
    assert run("pack", "install", str(fleet(tmp_path, "1.0.0")), "--yes", database=db_url).exit_code == 0
    trimmed = write_pack(tmp_path, "fleet", "1.1.0", {"vehicle": {"fields": {"plate": {"type": "text"}}}},
                         requires={"crm-core": "^0.1.0"})
    result = run("pack", "install", str(trimmed), "--yes", database=db_url)
    assert "retire field vehicle.mileage" in result.output
    not_retired = run("purge", "vehicle.plate", "--yes", database=db_url)
    assert not_retired.exit_code == 1 and "not a retired field" in not_retired.output
    purged = run("purge", "vehicle.mileage", "--yes", database=db_url)
    assert purged.exit_code == 0, purged.output
    shown = run("revisions", "--show", "4", database=db_url)
    assert "purge vehicle.mileage" in shown.output and "DROP COLUMN mileage" in shown.output


def test_database_errors_are_messages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = run("pack", "list", database=url)
    assert result.exit_code == 4
    assert "there is no database at" in result.output and "run `slatecrm init`" in result.output
    assert not (tmp_path / "empty.db").exists()  # reading never creates a database
    CliRunner().invoke(main, ["init", "--no-default-packs", "--database", url])
    uninitialised = run("pack", "list", database=url)
    assert uninitialised.exit_code == 0  # tables, no packs yet
    unreachable = run("revisions", database="postgresql://nobody@127.0.0.1:1/none")
    assert unreachable.exit_code == 4
    assert "database:" in unreachable.output


def test_the_console_script_runs_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "SLATECRM_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    script = Path(sys.executable).parent / "slatecrm"
    done = subprocess.run([str(script), "init", "--json"], capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True, "database_created": False, "initialised": True,
                                       "revision": 1}
    bad = subprocess.run([str(script), "pack", "install", str(tmp_path / "missing"), "--yes"],
                         capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 1
    assert "missing does not exist" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout


def test_a_zipped_pack_installs(db_url: str, tmp_path: Path) -> None:
    import shutil

    from slatecrm.platform import installer

    archive = shutil.make_archive(str(tmp_path / "fleet"), "zip", root_dir=tmp_path,
                                  base_dir=fleet(tmp_path, "1.0.0").name)
    assert run("init", database=db_url).exit_code == 0
    validated = run("pack", "validate", archive)
    assert validated.exit_code == 0, validated.output
    assert "fleet 1.0.0: valid (1 entities" in validated.output
    installed = run("pack", "install", archive, "--yes", database=db_url)
    assert installed.exit_code == 0, installed.output
    shipped = shutil.make_archive(str(tmp_path / "core"), "zip",
                                  root_dir=installer.default_config_dir() / "crm-core")
    assert run("pack", "validate", shipped).exit_code == 0  # files at the top of the archive


def test_init_creates_a_missing_postgresql_database() -> None:
    import secrets

    import pytest

    from .conftest import DROPS, POSTGRES_URL, postgres_problem, postgres_required

    problem = postgres_problem()
    if problem:
        if postgres_required():
            pytest.fail(problem)
        pytest.skip(problem)
    name = f"slatecrm_test_{secrets.token_hex(6)}"
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        result = run("init", "--json", database=url)
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == {"ok": True, "database_created": True, "initialised": True,
                                             "revision": 1}
    finally:
        DROPS.recycle(name)  # emptied for a later test or dropped, off this test's path


def test_an_entity_defined_again_is_blamed_on_the_pack_being_installed(db_url: str,
                                                                       tmp_path: Path) -> None:
    # "zeta" is installed first; "alpha" (sorted before it, and not requiring it) defines
    # the same entity: the message must send the reader to alpha's file, not to zeta's.
    zeta = write_pack(tmp_path, "zeta", "1.0.0", {"gadget": {"fields": {"code": {"type": "text"}}}})
    alpha = write_pack(tmp_path, "alpha", "1.0.0", {"gadget": {"fields": {"name": {"type": "text"}}}})
    assert run("init", database=db_url).exit_code == 0
    assert run("pack", "install", str(zeta), "--yes", database=db_url).exit_code == 0
    result = run("pack", "install", str(alpha), "--yes", "--json", database=db_url)
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    assert [(p["pack"], p["file"]) for p in problems] == [(str(alpha), "entities/gadget.yaml")]
    assert problems[0]["message"] == (
        "entity 'gadget' is already defined by pack 'zeta' (entities/gadget.yaml:3:11); pack 'alpha' "
        "may extend it with kind: extension but not define it again")


def test_serve_hands_the_access_log_choice_to_uvicorn(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`--no-access-log` drops uvicorn's line per request (a reverse proxy usually logs them)."""
    import uvicorn

    url = f"sqlite:///{tmp_path / 'served.db'}"
    assert run("init", "--no-default-packs", database=url).exit_code == 0
    started: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **options: started.append(options))
    monkeypatch.setenv("SLATECRM_DATABASE_URL", url)  # serve sets it for its workers; restored after
    assert run("serve", database=url).exit_code == 0
    assert run("serve", "--no-access-log", database=url).exit_code == 0
    assert [options["access_log"] for options in started] == [True, False]
