"""Installing workflow packs and running a worker with a clock the test moves."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.installer import default_config_dir
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.services import records_service
from slatecrm.platform.storage import system
from slatecrm.platform.workflows.outbox import fan_out
from slatecrm.platform.workflows.settings import Backoff, ExecutionSettings
from slatecrm.platform.workflows.worker import Worker
from slatecrm.plugins.manager import make_plugin_manager

from .packs import install, write_files_pack

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)  # a Monday


@dataclass
class Clock:
    now: dt.datetime = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@dataclass
class Automation:
    engine: sa.Engine
    registry: FieldTypeRegistry
    records: RecordsService
    clock: Clock
    root: Path
    settings: ExecutionSettings
    versions: list[int] = field(default_factory=lambda: [0])

    def install(self, files: dict[str, str], name: str = "automation") -> None:
        """The default packs (the sales pack without its own workflows, so that only the test's
        run) and a pack of these workflow files (a new version each call)."""
        self.versions[0] += 1
        version = f"1.{self.versions[0]}.0"
        folder = write_files_pack(self.root / version, files, name=name, version=version)
        install(self.engine, self.registry, "crm-core", sales_without_workflows(self.root), folder)
        self.records.holder.refresh()  # the new revision at once, not at the next poll

    def outbox(self) -> Any:
        return next(h.__self__ for h in self.records.pipeline.hooks.before_commit)  # type: ignore[attr-defined]

    def worker(self, name: str = "w1") -> Worker:
        return Worker(self.engine, self.records, self.settings, name=name)

    def run(self) -> int:
        return self.worker().run_until_idle()

    def jobs(self, **where: Any) -> list[Any]:
        return job_rows(self.engine, **where)

    def runs(self, **where: Any) -> list[Any]:
        t = system.workflow_runs
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(t).where(*[t.c[k] == v for k, v in where.items()])
                                     .order_by(t.c.id)).all())


def job_rows(engine: sa.Engine, *columns: Any, **where: Any) -> list[Any]:
    """The queue's jobs (whole, or these columns) where the columns have these values, in
    order, once the outbox's events are moved into the queue (as a worker's next round does
    first: a write's jobs wait in the outbox until then)."""
    t = system.workflow_jobs
    # IMMEDIATE: SQLite's write lock taken at BEGIN (a read upgraded to a write fails at once
    # when a worker committed in between).
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        while fan_out(conn):
            pass
        return list(conn.execute(sa.select(*(columns or (t,))).where(*[t.c[k] == v for k, v in where.items()])
                                 .order_by(t.c.id)).all())


def sales_without_workflows(root: Path) -> Path:
    """A copy of the default sales pack without its workflows/ (under `root`, made once)."""
    copy = root / "default-sales" / "sales"
    if not copy.exists():
        shutil.copytree(default_config_dir() / "sales", copy, ignore=shutil.ignore_patterns("workflows"))
    return copy


def automation(engine: sa.Engine, registry: FieldTypeRegistry, root: Path, **settings: Any) -> Automation:
    clock = Clock()
    records = records_service(engine, settings.pop("plugins", None) or make_plugin_manager())
    made = ExecutionSettings(backoff=settings.pop("backoff", Backoff(attempts=3, base_seconds=60)),
                             clock=clock, environ=settings.pop("environ", {}), **settings)
    for outbox_hook in records.pipeline.hooks.before_commit:
        outbox_hook.__self__.clock = clock
    return Automation(engine, registry, records, clock, root, made)
