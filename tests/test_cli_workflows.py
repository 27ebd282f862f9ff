"""`slatecrm worker` and `slatecrm workflow …`, and the registrations an install reconciles
(SQLite and PostgreSQL); the long-running worker stopped by SIGTERM, and the worker of
`serve --worker` (SQLite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from slatecrm.platform.cli import main
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.services import records_service
from slatecrm.platform.storage import system
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.storage.secrets import DatabaseSecrets

from .defaults import make_app, plugin_manager
from .packs import write_files_pack
from .workflow_support import job_rows

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

FILES = {
    "workflows/rate.yaml": """\
        kind: workflow
        name: rate_web_leads
        entity: lead
        trigger: {kind: created}
        condition: "source = 'web'"
        actions:
          - kind: update
            set:
              rating: "'hot'"
        """,
    "workflows/weekly.yaml": """\
        kind: workflow
        name: weekly_review
        entity: lead
        trigger: {kind: schedule, cron: "0 8 * * 1"}
        actions:
          - kind: update
            set:
              job_title: "'Reviewed'"
        """,
    "workflows/assign.yaml": """\
        kind: workflow
        name: assign_event_leads
        entity: lead
        trigger: {kind: created}
        condition: "source = 'event'"
        actions:
          - kind: assign
            user: nobody@example.com
        """,
    "workflows/form.yaml": """\
        kind: workflow
        name: web_form
        entity: lead
        trigger:
          kind: webhook
          mapping:
            last_name: $.name
            company: $.company
        actions:
          - kind: update
            set:
              rating: "'warm'"
        """,
}


def run(*args: str, database: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database", database], catch_exceptions=False)


def as_json(result: Result) -> Any:
    return json.loads(result.output)


@pytest.fixture
def installed(db_url: str, tmp_path: Path) -> str:
    """A database with the default packs and the workflows of FILES, installed by the CLI."""
    assert run("init", database=db_url).exit_code == 0
    pack = write_files_pack(tmp_path, FILES, name="automation")
    done = run("pack", "install", str(pack), "--yes", database=db_url)
    assert done.exit_code == 0, done.output
    # The schedule is registered by the install itself, not at a worker's first round.
    assert "Workflows: registered weekly_review version" in done.output
    return db_url


def service(url: str) -> tuple[sa.Engine, RecordsService]:
    engine = create_engine(url)
    return engine, records_service(engine, plugin_manager())


def lead(records: RecordsService, **values: Any) -> int:
    return records.create("lead", {"last_name": "Doe", "company": "Acme", **values}).id


def jobs(engine: sa.Engine, **where: Any) -> list[Any]:
    return job_rows(engine, **where)


def test_worker_once_runs_the_pending_jobs_and_check_tells_the_health(installed: str) -> None:
    engine, records = service(installed)
    try:
        healthy = run("worker", "--check", "--json", database=installed)
        assert healthy.exit_code == 0, healthy.output
        report = as_json(healthy)
        assert report["healthy"] is True and report["problems"] == []
        # The test pack's schedule, and the default sales pack's time and schedule workflows.
        assert sorted((r["workflow"], r["trigger"], r["healthy"]) for r in report["registrations"]) == [
            ("close_date_reminder", "time", True), ("stalled_digest", "schedule", True),
            ("weekly_review", "schedule", True)]
        assert report["backoff"]["total_seconds"] > 0 and report["workers"] == []

        web = lead(records, source="web")
        waiting = run("worker", "--check", database=installed)
        assert waiting.exit_code == 1
        # This pack's two workflows on created leads, and the sales pack's round robin.
        assert "unhealthy" in waiting.output and "3 job(s) due and no worker alive" in waiting.output

        ran = run("worker", "--once", database=installed)
        assert ran.exit_code == 0, ran.output
        # A condition skips one; the round robin has no team; the rating this pack's workflow
        # sets fires the sales pack's rating note, run in the same --once.
        assert "Ran 4 job(s)" in ran.output
        assert records.get("lead", web).values["rating"] == "hot"
        assert run("worker", "--once", "--json", database=installed).output.count('"jobs": 0') == 1
        assert run("worker", "--check", database=installed).exit_code == 0  # and it signed off

        # A registration lost, and one of a workflow that is not active: unhealthy, both named.
        with engine.begin() as conn:
            conn.execute(system.workflow_schedules.delete())
            conn.execute(system.workflow_schedules.insert().values(
                workflow="retired", version="x", next_at=sa.func.current_timestamp()))
        broken = run("worker", "--check", "--json", database=installed)
        assert broken.exit_code == 1
        versions = {r["workflow"]: r["version"] for r in as_json(broken)["registrations"]}
        lost = (("schedule", "weekly_review"), ("time", "close_date_reminder"), ("schedule",
                                                                                 "stalled_digest"))
        assert sorted(as_json(broken)["problems"]) == sorted(
            [f"{kind} workflow {name} (version {versions[name]}) is not registered" for kind, name in lost]
            + ["workflow retired is registered but not active"])
        listed = as_json(run("workflow", "list", "--json", database=installed))
        by_name = {w["name"]: w for w in listed["workflows"]}
        assert by_name["weekly_review"]["health"] == "not registered"
        assert by_name["rate_web_leads"]["health"] == "ok"
        assert by_name["web_form"]["path"] == "/hooks/workflows/web_form"
        assert listed["stray"] == ["retired"]
        # A worker's start puts them right.
        assert run("worker", "--once", database=installed).exit_code == 0
        assert run("worker", "--check", database=installed).exit_code == 0
        runs = as_json(run("workflow", "runs", "--json", "--workflow", "rate_web_leads", database=installed))
        assert [(r["record_id"], r["status"], r["trigger"]) for r in runs] == [(web, "done", "created")]
        # The sales pack's round robin: its team (North) is not in this database.
        dead = as_json(run("workflow", "runs", "--json", "--status", "dead", database=installed))
        assert [(r["workflow"], r["error"]) for r in dead] == [("lead_round_robin",
                                                                "there is no team 'North'")]
        on_record = as_json(run("workflow", "runs", "--json", "--record", str(web), database=installed))
        assert {r["workflow"] for r in on_record} == {"rate_web_leads", "assign_event_leads",
                                                      "lead_round_robin",
                                                      "rating_note"}
        assert run("workflow", "runs", "--record", str(web), database=installed).exit_code == 0
        assert run("workflow", "list", database=installed).exit_code == 0
    finally:
        engine.dispose()


def test_workflow_retry_replays_dead_jobs(installed: str) -> None:
    engine, records = service(installed)
    try:
        first = lead(records, source="event")
        second = lead(records, source="event")
        assert run("worker", "--once", database=installed).exit_code == 0
        # (The sales pack's round robin dies too: its team is not in this database.)
        dead = [d for d in as_json(run("workflow", "dead", "--json", database=installed))
                if d["workflow"] != "lead_round_robin"]
        assert [(d["record_id"], d["workflow"]) for d in dead] == [(first, "assign_event_leads"),
                                                                   (second, "assign_event_leads")]
        assert "no active user" in dead[0]["error"]
        assert run("workflow", "dead", database=installed).exit_code == 0

        refused = run("workflow", "retry", str(dead[0]["id"]), "999999", database=installed)
        assert refused.exit_code == 1 and "999999 (no such job)" in refused.output
        assert [j.status for j in jobs(engine, workflow="assign_event_leads")] == ["dead", "dead"]
        assert run("workflow", "retry", database=installed).exit_code == 2

        one = run("workflow", "retry", str(dead[0]["id"]), "--json", database=installed)
        assert as_json(one) == {"ok": True, "replayed": 1, "ids": [dead[0]["id"]]}
        assert [(j.status, j.attempts) for j in jobs(engine, workflow="assign_event_leads")] == [
            ("pending", 0), ("dead", 1)]
        every = run("workflow", "retry", "--workflow", "assign_event_leads", database=installed)
        assert every.exit_code == 0 and "Replayed 1 job(s)" in every.output
        assert [j.status for j in jobs(engine, workflow="assign_event_leads")] == ["pending", "pending"]
        # They run again (and die again: the user still does not exist).
        assert "Ran 2 job(s)" in run("worker", "--once", database=installed).output
        runs = as_json(run("workflow", "runs", "--json", "--workflow", "assign_event_leads",
                           database=installed))
        assert [r["status"] for r in runs] == ["dead"] * 4
    finally:
        engine.dispose()


def test_workflow_secret_prints_and_keeps_the_secrets(installed: str) -> None:
    engine = create_engine(installed)
    try:
        inbound = as_json(run("workflow", "secret", "web_form", "--json", database=installed))
        assert inbound["path"] == "/hooks/workflows/web_form" and inbound["active"] is True
        assert bytes.fromhex(inbound["secret"]) == DatabaseSecrets(engine).get("workflow-inbound:web_form")
        again = run("workflow", "secret", "web_form", database=installed)
        assert again.exit_code == 0
        assert "POST /hooks/workflows/web_form" in again.output and inbound["secret"] in again.output
        outgoing = as_json(run("workflow", "secret", "webhook:erp", "--json", database=installed))
        assert bytes.fromhex(outgoing["secret"]) == DatabaseSecrets(engine).get("webhook:erp")
        assert outgoing["secret"] != inbound["secret"]
        assert run("workflow", "secret", "rate_web_leads", database=installed).exit_code == 1
        assert run("workflow", "secret", "webhook:", database=installed).exit_code == 2
    finally:
        engine.dispose()


def wait_for(what: str, condition: Any, process: subprocess.Popen[str] | None = None,
             timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, f"the worker exited before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(0.05)


def test_the_worker_runs_until_sigterm_and_finishes_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    assert run("init", database=url).exit_code == 0
    pack = write_files_pack(tmp_path, FILES, name="automation")
    assert run("pack", "install", str(pack), "--yes", database=url).exit_code == 0
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        script = str(Path(sys.executable).parent / "slatecrm")
        process = subprocess.Popen([script, "worker", "--database", url, "--poll", "0.05"], stdout=log,
                                   stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
        engine, records = service(url)
        try:
            wait_for("a start", lambda: "started" in log_path.read_text(), process)
            output = log_path.read_text()
            assert "schedule workflow weekly_review version" in output and "registered ✓" in output
            web = lead(records, source="web")
            wait_for("the run", lambda: records.get("lead", web).values["rating"] == "hot", process)
            # Every job, the sales pack's too (its rating note follows the rating), has run.
            wait_for("every run", lambda: all(j.status not in ("pending", "running") for j in jobs(engine)),
                     process)
            health = as_json(run("worker", "--check", "--json", database=url))
            assert len(health["workers"]) == 1
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
            engine.dispose()
    output = log_path.read_text()
    assert "SIGTERM: stopping after the current batch" in output
    assert "stopped after 4 job(s)" in output and "Traceback" not in output
    assert as_json(run("worker", "--check", "--json", database=url))["workers"] == []  # signed off


def test_the_app_runs_a_worker_in_a_thread_with_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    assert run("init", database=url).exit_code == 0
    pack = write_files_pack(tmp_path, FILES, name="automation")
    assert run("pack", "install", str(pack), "--yes", database=url).exit_code == 0
    app = make_app(url, worker=True)
    records = app.state.records
    with TestClient(app):
        web = lead(records, source="web")
        wait_for("the embedded worker's run", lambda: records.get("lead", web).values["rating"] == "hot")
        threads = [t for t in threading.enumerate() if t.name == "slatecrm-worker"]
        assert len(threads) == 1
    assert not threads[0].is_alive()  # stopped at shutdown
    with app.state.engine.connect() as conn:
        assert conn.execute(sa.select(system.workflow_workers)).all() == []  # and signed off
    app.state.engine.dispose()
