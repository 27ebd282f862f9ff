"""A worker: the loop `slatecrm worker` runs (and `slatecrm serve --worker`, in a thread).

Each round: when the revision changed, reconcile the registrations (schedules.py); fire the
schedules that are due; claim a batch of due jobs and run them (jobs.py); note itself alive.
An idle worker waits `poll_seconds` before looking again, so a job starts within about that
long after its change committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from typing import Any

import sqlalchemy as sa

from slatecrm.plugins.workflow_actions import workflow_actions

from ..records.service import RecordsService
from ..storage import system
from . import schedules
from .beforesave import BeforeSave
from .jobs import Runner, purge
from .outbox import Outbox
from .settings import ExecutionSettings

log = logging.getLogger(__name__)

#: How often a worker deletes finished jobs and runs past their keeping time.
PURGE_EVERY = dt.timedelta(minutes=10)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def install_outbox(records: RecordsService, settings: ExecutionSettings | None = None) -> Outbox:
    """The outbox on `records`' write pipeline (once: a second call returns the first)."""
    hooks = records.pipeline.hooks
    for hook in hooks.before_commit:
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, Outbox):
            return owner
    clock = settings.clock if settings is not None else None
    outbox = Outbox(records.full_snapshot, clock=clock)
    outbox.register(hooks)
    BeforeSave(records.full_snapshot).register(hooks)
    return outbox


def reconcile(engine: sa.Engine, records: RecordsService, now: dt.datetime) -> list[str]:
    """The registrations made to match the current revision, in one transaction."""
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        changes = schedules.reconcile(conn, records.full_snapshot(), now)
    for change in changes:
        log.info("workflows: %s", change)
    return changes


class Worker:
    def __init__(self, engine: sa.Engine, records: RecordsService, settings: ExecutionSettings | None = None,
                 *, name: str | None = None):
        self.engine = engine
        self.records = records
        self.settings = settings or ExecutionSettings.from_environment()
        manager = records.events.manager
        if not self.settings.actions and manager is not None:
            self.settings.actions = workflow_actions(manager)
        self.name = name or worker_name()
        self.outbox = install_outbox(records, self.settings)
        self.runner = Runner(engine, records, self.outbox, self.settings, self.name)
        self._revision: Any = None
        self._purged: dt.datetime | None = None
        self.done = 0
        self.started = self.settings.clock()

    def round(self) -> int:
        """One round; the number of jobs it ran (0: nothing was due)."""
        now = self.settings.clock()
        snapshot = self.records.full_snapshot()
        if snapshot.runtime is not self._revision:
            reconcile(self.engine, self.records, now)
            self._revision = snapshot.runtime
        fired = 0
        if schedules.any_due(self.engine, now):
            with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
                fired = schedules.fire_due(conn, snapshot, now)
        if fired:
            log.info("workflows: %d scheduled runs made", fired)
        if self._purged is None or now - self._purged > PURGE_EVERY:
            with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
                purged = purge(conn, now, self.settings.keep_days)
            if any(purged):
                log.info("workflows: %d finished jobs and %d runs older than %g days deleted",
                         *purged, self.settings.keep_days)
            self._purged = now
        claims = self.runner.claim(self.settings.batch)
        if claims:
            self.runner.run_all(claims)
            self.done += len(claims)
        return len(claims)

    def run_until_idle(self, rounds: int = 10_000) -> int:
        """Rounds until one finds nothing due (tests, `slatecrm worker --once`); jobs run."""
        total = 0
        for _ in range(rounds):
            ran = self.round()
            total += ran
            if not ran:
                break
        self.note_alive()
        return total

    def note_alive(self) -> None:
        now = self.settings.clock()
        table = system.workflow_workers
        with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            done = conn.execute(table.update().where(table.c.name == self.name)
                                .values(seen_at=now, jobs_done=self.done))
            if done.rowcount == 0:
                conn.execute(table.insert().values(name=self.name, started_at=self.started, seen_at=now,
                                                   jobs_done=self.done))

    def forget(self) -> None:
        table = system.workflow_workers
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(table.c.name == self.name))

    def run_forever(self, stop: threading.Event) -> None:
        """Until `stop` is set; a failing round is logged and the loop goes on."""
        last_note = 0.0
        import time

        while not stop.is_set():
            try:
                ran = self.round()
                if time.monotonic() - last_note > 5:
                    self.note_alive()
                    last_note = time.monotonic()
            except Exception:
                log.exception("workflow worker %s: a round failed; trying again", self.name)
                ran = 0
            if not ran:
                stop.wait(self.settings.poll_seconds)
        try:
            self.forget()
        except Exception:
            log.exception("workflow worker %s could not sign off", self.name)


def start_in_thread(engine: sa.Engine, records: RecordsService,
                    settings: ExecutionSettings | None = None) -> tuple[threading.Thread, threading.Event]:
    """A worker in a daemon thread of this process (the embedded mode of `serve --worker`)."""
    stop = threading.Event()
    worker = Worker(engine, records, settings)
    thread = threading.Thread(target=worker.run_forever, args=(stop,), name="slatecrm-worker", daemon=True)
    thread.start()
    return thread, stop
