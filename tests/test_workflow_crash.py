"""Workers killed with SIGKILL while they run jobs: nothing is lost, nothing is done twice.

Records are created in bulk, each firing a workflow whose actions increment the record's
`counter`, create a log record linked to it and add a note (database actions: committed with
the job's done mark; the note only where workflows/templates.py is there), and, where
the e-mail action can be tested (aiosmtpd and workflows/mail.py importable), a second one
sending an e-mail to an SMTP server of the test's own on 127.0.0.1. Worker processes
(tests/workflow_process.py, lease of 3 s) run the jobs; whenever the share of done jobs
passes a mark, a random worker is killed (SIGKILL: no clean-up of any kind) and a
replacement started. Once no job is pending or running:

- every job is done, none dead, each with exactly one `done` run;
- every record's counter is 1, it has exactly one `update` history row (and one `note` where
  the note action is there), and exactly one log record made by the `create` action (a job
  taken over from a killed worker did not commit twice);
- every e-mail job's idempotency key arrived at least once, and every message received
  carries the key of an e-mail job (redeliveries are of the same key).

The figures (jobs, kills, takeovers, seconds) are printed and, with SLATECRM_CRASH_REPORT,
written as JSON to that file (merged, one entry per test). Slow: .ci/run runs it, `make test`
leaves it out.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.services import records_service
from slatecrm.platform.storage import system
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.workflows import outbox
from slatecrm.plugins.manager import make_plugin_manager

from .conftest import _postgres_database
from .packs import install, write_files_pack

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]

ROOT = Path(__file__).resolve().parent.parent

ENTITY = """\
    kind: entity
    name: crash_item
    label: Crash item
    title_field: name
    fields:
      name:
        type: text
        required: true
      counter:
        type: integer
    """

LOG_ENTITY = """\
    kind: entity
    name: crash_log
    label: Crash log
    title_field: text
    fields:
      text:
        type: text
      item:
        type: reference
        target: crash_item
        on_delete: cascade
    """

COUNT_ONCE = """\
    kind: workflow
    name: count_once
    entity: crash_item
    trigger: {kind: created}
    actions:
      - kind: update
        set:
          counter: "counter + 1"
      - kind: create
        entity: crash_log
        link: item
        set:
          text: "concat('counted ', name)"
    """

#: The note action (it renders a template: workflows/templates.py, where it is there yet).
NOTE = """\
      - kind: note
        text: "Counted {{ record.name }}"
    """

MAIL_ONCE = """\
    kind: workflow
    name: mail_once
    entity: crash_item
    trigger: {kind: created}
    actions:
      - kind: email
        to: "'crash@example.com'"
        subject: "Item {{ record.name }}"
        body: "Item {{ record.name }} was created."
    """

#: How long the jobs may make no progress at all before the run counts as stuck (a killed
#: worker's leases expire after LEASE_SECONDS; this is far above that).
STALL_SECONDS = 180.0
LEASE_SECONDS = 3


@dataclass
class Plan:
    records: int
    workers: int
    #: shares of done jobs after which a worker is killed
    marks: tuple[float, ...]
    mail: bool = False


@dataclass
class Mailbox:
    """What an SMTP server of the test's received: each message's idempotency key."""

    keys: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes

        message = message_from_bytes(envelope.original_content or envelope.content)
        key = message.get("X-SlateCRM-Idempotency-Key") or message.get("Message-ID") or ""
        with self.lock:
            self.keys.append(_normalised_key(str(key)))
        return "250 OK"


def _normalised_key(text: str) -> str:
    """`<job>:<index>` out of an idempotency key or a Message-ID (`<job.index@host>`)."""
    text = text.strip().strip("<>").split("@", 1)[0]
    return text.replace(".", ":")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Workers:
    """The worker processes, started and killed by the test."""

    url: str
    env: dict[str, str]
    logs: Path
    alive: list[subprocess.Popen[bytes]] = field(default_factory=list)
    every: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        log = (self.logs / f"worker-{len(self.every)}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "tests.workflow_process", self.url], cwd=ROOT,
                                   env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.alive.append(process)
        self.every.append(process)

    def kill_one(self, pick: random.Random) -> None:
        victim = pick.choice(self.alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        self.alive.remove(victim)

    def stop(self) -> None:
        for process in self.alive:
            process.send_signal(signal.SIGTERM)
        for process in self.alive:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.alive.clear()

    def log_tail(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.logs.glob("worker-*.log")))


def wait_for(condition: Callable[[], bool], what: str, workers: Workers,
             engine: sa.Engine | None = None, progress: Callable[[], object] | None = None) -> None:
    """Wait until `condition` holds. Fails only when nothing moves (the jobs' counts, or what
    `progress` gives) for STALL_SECONDS: a busy machine makes the workers slow, never stuck,
    so no total time is assumed (a whole suite on two cores once took 55 minutes)."""
    watched = progress or (lambda: tuple(sorted(counts(engine).items())) if engine is not None else None)
    last, moved = watched(), time.monotonic()
    while not condition():
        if engine is not None and (dead := counts(engine)["dead"]):
            pytest.fail(f"{dead} jobs are dead\n{workers.log_tail()}")
        now = watched()
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > STALL_SECONDS:
            pytest.fail(f"waiting for {what}: nothing moved for {STALL_SECONDS:.0f} s\n{workers.log_tail()}")
        time.sleep(0.05)


def done_at_least(engine: sa.Engine, wanted: float) -> bool:
    return counts(engine)["done"] >= wanted


def counts(engine: sa.Engine) -> Counter[str]:
    """Jobs by status; "queued": those still in the outbox (the workers move them to the queue)."""
    jobs = system.workflow_jobs
    with engine.connect() as conn:
        found = Counter({str(s): int(n) for s, n in conn.execute(
            sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()})
        found["queued"] = outbox.waiting(conn)
        return +found


def crash_run(url: str, registry: FieldTypeRegistry, tmp_path: Path, plan: Plan, name: str) -> dict[str, Any]:
    note = importlib.util.find_spec("slatecrm.platform.workflows.templates") is not None
    files = {"entities/crash_item.yaml": ENTITY, "entities/crash_log.yaml": LOG_ENTITY,
             "workflows/count_once.yaml": COUNT_ONCE.rstrip() + "\n" + (NOTE if note else "")}
    if plan.mail:
        files["workflows/mail_once.yaml"] = MAIL_ONCE
    engine = create_engine(url)
    mailbox = Mailbox()
    controller: Any = None
    env = {**os.environ, "SLATECRM_WORKFLOW_LEASE": str(LEASE_SECONDS), "SLATECRM_WORKFLOW_BACKOFF": "0.5",
           "SLATECRM_TEST_WORKFLOW_BATCH": "20", "SLATECRM_TEST_WORKFLOW_POLL": "0.05"}
    if plan.mail:
        from aiosmtpd.controller import Controller

        port = _free_port()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        env.update(SLATECRM_SMTP_HOST="127.0.0.1", SLATECRM_SMTP_PORT=str(port))
    (tmp_path / "logs").mkdir()
    workers = Workers(url, env, tmp_path / "logs")
    try:
        install(engine, registry, write_files_pack(tmp_path / "pack", files, name="crashtest", requires={}))
        records = records_service(engine, make_plugin_manager())
        for start in range(0, plan.records, 500):
            records.create_many("crash_item", [{"name": f"item {i}", "counter": 0}
                                               for i in range(start, min(plan.records, start + 500))])
        expected = plan.records * (2 if plan.mail else 1)
        assert counts(engine) == Counter({"queued": expected})

        started = time.monotonic()
        for _ in range(plan.workers):
            workers.start()
        pick = random.Random(7)
        kills = 0
        for mark in plan.marks:
            wait_for(functools.partial(done_at_least, engine, mark * expected),
                     f"{mark:.0%} of the jobs done", workers, engine)
            workers.kill_one(pick)
            kills += 1
            workers.start()
        wait_for(lambda: not ({"queued", "pending", "running"} & set(counts(engine))),
                 "no job queued, pending or running", workers, engine)
        seconds = time.monotonic() - started
        workers.stop()
        if controller is not None:
            wait_for(lambda: len(set(mailbox.keys)) >= plan.records, "every e-mail received", workers,
                     progress=lambda: len(mailbox.keys))

        tables = records.holder.current().tables
        figures = check(engine, tables["crash_item"], tables["crash_log"], plan, expected, mailbox, note)
        figures.update(test=name, database=engine.dialect.name, workers=plan.workers,
                       processes_started=len(workers.every), kills=kills, seconds=round(seconds, 2),
                       e_mail=plan.mail)
        assert kills == len(plan.marks)
        report(figures)
        return figures
    finally:
        workers.stop()
        for process in workers.every:
            if process.poll() is None:
                process.kill()
                process.wait()
        if controller is not None:
            controller.stop()
        engine.dispose()


def check(engine: sa.Engine, items: sa.Table, logs: sa.Table, plan: Plan, expected: int, mailbox: Mailbox,
          note: bool) -> dict[str, Any]:
    jobs, runs, history = system.workflow_jobs, system.workflow_runs, system.history
    with engine.connect() as conn:
        job_rows = conn.execute(sa.select(jobs.c.id, jobs.c.workflow, jobs.c.record_id, jobs.c.status,
                                          jobs.c.attempts)).all()
        run_rows = conn.execute(sa.select(runs.c.job_id, runs.c.status, runs.c.attempt)).all()
        table = conn.execute(sa.select(items.c.id, items.c.counter)).all()
        made = Counter(int(i) for i in conn.execute(sa.select(logs.c.item)).scalars())
        per_record = Counter((str(a), int(r)) for a, r in conn.execute(
            sa.select(history.c.action, history.c.record_id).where(history.c.entity == "crash_item")).all())
    assert len(job_rows) == expected, "a job was lost or made twice"
    statuses = Counter(j.status for j in job_rows)
    assert statuses == Counter({"done": expected}), f"not every job is done: {statuses}"
    done_runs = Counter(r.job_id for r in run_rows if r.status == "done")
    assert set(done_runs) == {j.id for j in job_rows}, "a job has no done run"
    twice = {j: n for j, n in done_runs.items() if n != 1}
    assert not twice, f"jobs with more than one done run: {twice}"
    assert all(r.status in ("done", "failed") for r in run_rows), Counter(r.status for r in run_rows)

    assert len(table) == plan.records
    wrong = {i: c for i, c in table if c != 1}
    assert not wrong, f"records whose counter is not 1 (0: lost, 2: done twice): {list(wrong.items())[:20]}"
    off = {i: made[i] for i, _ in table if made[i] != 1}
    assert not off, f"records without exactly one log record made by the create action: {off}"
    for action in ("create", "update", *(("note",) if note else ())):
        off = {i: per_record[(action, i)] for i, _ in table if per_record[(action, i)] != 1}
        assert not off, f"records without exactly one {action!r} history row: {dict(list(off.items())[:20])}"

    figures: dict[str, Any] = {
        "records": plan.records, "jobs": expected,
        "takeovers": sum(1 for r in run_rows if r.status == "done" and r.attempt > 1),
        "jobs_claimed_more_than_once": sum(1 for j in job_rows if j.attempts > 1),
        "failed_runs": sum(1 for r in run_rows if r.status == "failed"),
        "actions": "update, create" + (", note" if note else " (no note: workflows/templates.py is missing)"),
    }
    if plan.mail:
        wanted = {f"{j.id}:0" for j in job_rows if j.workflow == "mail_once"}
        received = Counter(mailbox.keys)
        assert wanted <= set(received), f"e-mails never received: {sorted(wanted - set(received))[:20]}"
        assert set(received) <= wanted, f"e-mails of no job: {sorted(set(received) - wanted)[:20]}"
        # Each worker sends one e-mail at a time and records it at once: a kill can leave at
        # most one sent and not recorded, which its successor sends again with the same key.
        assert len(mailbox.keys) - len(received) <= len(plan.marks), f"e-mails sent twice: {received}"
        assert all(n <= 2 for n in received.values()), "an e-mail sent three times"
        figures.update(emails_received=len(mailbox.keys), emails_distinct=len(received),
                       emails_redelivered=len(mailbox.keys) - len(received))
    return figures


def report(figures: dict[str, Any]) -> None:
    print("\nworkflow crash test: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    path = os.environ.get("SLATECRM_CRASH_REPORT")
    if path:
        target = Path(path)
        known = json.loads(target.read_text()) if target.exists() and target.read_text().strip() else {}
        known[figures["test"]] = figures
        target.write_text(json.dumps(known, indent=2))


PLANS = {"sqlite": Plan(records=500, workers=2, marks=(0.3, 0.65)),
         "postgresql": Plan(records=2_000, workers=4, marks=(0.2, 0.45, 0.7))}


def test_killed_workers_lose_no_job_and_do_none_twice(db_url: str, registry: FieldTypeRegistry,
                                                      tmp_path: Path) -> None:
    kind = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    crash_run(db_url, registry, tmp_path, PLANS[kind], f"{kind}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_database()


@pytest.mark.postgres
def test_killed_workers_with_email_send_each_at_least_once(postgres_url: str, registry: FieldTypeRegistry,
                                                           tmp_path: Path) -> None:
    pytest.importorskip("aiosmtpd", reason="the e-mail part needs aiosmtpd (an SMTP server for the test)")
    pytest.importorskip("slatecrm.platform.workflows.mail", reason="the e-mail action is not there yet")
    plan = Plan(records=2_000, workers=4, marks=(0.2, 0.45, 0.7), mail=True)
    crash_run(postgres_url, registry, tmp_path, plan, "postgresql+email")
