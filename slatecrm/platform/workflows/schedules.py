"""Registrations: exactly one live registration per active time or schedule workflow version.

Workflows fired by a write need none: the outbox reads the revision's active workflows at each
write, so they cannot silently stop firing nor fire twice. Time and schedule (cron)
workflows live in the job table between writes, so each active one has one row in
`slate_workflow_schedule` naming the version its pending jobs belong to. `reconcile` makes
the rows match the revision (at server and worker start, after every install, and whenever
a worker sees a new revision), in one transaction holding the rows:

- a workflow no longer active, or replaced by a new version: its pending time and schedule
  jobs are cancelled and its row removed or moved to the new version;
- a new version (or a workflow activated again) of a time workflow: the moments of the
  records it applies to that are still to come are scheduled (a moment already past is not:
  activating a reminder does not send every overdue one at once);
- a new schedule version: its next firing is computed from its cron expression.

`fire_due` fires the schedules whose moment came: one job per record the filter selects,
each with a key that makes a second firing of the same moment impossible.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from croniter import croniter

from slatecrm.metamodel.rules import RuleContext

from ..records import rules as rule_hooks
from ..records.snapshot import Snapshot
from ..storage import system
from .outbox import job_row, time_due, time_key
from .registry import CompiledWorkflow, active_workflows

jobs, schedules = system.workflow_jobs, system.workflow_schedules
#: Records read at once when a time workflow's moments are scheduled.
CHUNK = 1000


@dataclass(frozen=True)
class Registration:
    """A workflow's registration as the health page shows it."""

    workflow: str
    trigger: str
    version: str
    registered: str | None
    next_at: dt.datetime | None

    @property
    def healthy(self) -> bool:
        return self.registered == self.version


def next_firing(workflow: CompiledWorkflow, after: dt.datetime) -> dt.datetime:
    zone = zoneinfo.ZoneInfo(workflow.workflow.trigger.timezone or "UTC")
    local = after.astimezone(zone)
    following: dt.datetime = croniter(workflow.workflow.trigger.cron or "", local).get_next(dt.datetime)
    if following.tzinfo is None:
        following = following.replace(tzinfo=zone)
    return following.astimezone(dt.UTC)


def _lock_rows(conn: sa.Connection) -> list[Any]:
    query = sa.select(schedules)
    if conn.dialect.name == "postgresql":
        # Two processes reconciling at once: the second waits for the first and then finds
        # nothing left to do (the table lock keeps a new row from being inserted twice).
        conn.execute(sa.text(f"LOCK TABLE {schedules.name} IN SHARE ROW EXCLUSIVE MODE"))
    return list(conn.execute(query).all())


def reconcile(conn: sa.Connection, snapshot: Snapshot, now: dt.datetime) -> list[str]:
    """Make the registrations match `snapshot`'s active workflows; what changed, as text."""
    active = active_workflows(snapshot)
    wanted = {w.name: w for w in [*active.of_kind("time"), *active.of_kind("schedule")]}
    rows = {r.workflow: r for r in _lock_rows(conn)}
    changes: list[str] = []
    for name, row in rows.items():
        if name not in wanted:
            cancelled = _cancel(conn, name, None, now, f"workflow {name!r} is no longer active")
            conn.execute(schedules.delete().where(schedules.c.workflow == name))
            changes.append(f"unregistered {name} (version {row.version}; {cancelled} pending jobs cancelled)")
    for name, compiled in wanted.items():
        row = rows.get(name)
        if row is not None and row.version == compiled.version:
            continue
        cancelled = _cancel(conn, name, compiled.version, now,
                            f"replaced by version {compiled.version} of {name!r}")
        kind = compiled.workflow.trigger.kind
        next_at = next_firing(compiled, now) if kind == "schedule" else now
        if row is None:
            conn.execute(schedules.insert().values(workflow=name, version=compiled.version, next_at=next_at))
        else:
            conn.execute(schedules.update().where(schedules.c.workflow == name)
                         .values(version=compiled.version, next_at=next_at))
        scheduled = _schedule_all(conn, snapshot, compiled, now) if kind == "time" else 0
        what = f"{scheduled} moments scheduled" if kind == "time" else f"next {next_at.isoformat()}"
        former = f", {cancelled} pending jobs of the former version cancelled" if cancelled else ""
        changes.append(f"registered {name} version {compiled.version} ({what}{former})")
    return changes


def _cancel(conn: sa.Connection, workflow: str, keep_version: str | None, now: dt.datetime, why: str) -> int:
    where = [jobs.c.workflow == workflow, jobs.c.status == "pending", jobs.c.trigger.in_(("time",
                                                                                          "schedule"))]
    if keep_version is not None:
        where.append(jobs.c.version != keep_version)
    done = conn.execute(jobs.update().where(*where).values(status="cancelled", finished_at=now,
                                                           last_error=why))
    return int(done.rowcount or 0)


def _schedule_all(conn: sa.Connection, snapshot: Snapshot, compiled: CompiledWorkflow,
                  now: dt.datetime) -> int:
    """The moments to come of every record of the entity meeting the condition."""
    ce = snapshot.entities.get(compiled.workflow.entity)
    if ce is None:
        return 0
    context = rule_hooks.context_for(conn, snapshot.entities, None, None)
    after = 0
    count = 0
    while True:
        rows = conn.execute(ce.select.where(ce.table.c.id > after).order_by(ce.table.c.id).limit(CHUNK)
                            ).mappings().all()
        if not rows:
            return count
        batch = []
        for row in rows:
            record = {"id": row["id"], "owner": row["owner"], "created_at": row.get("created_at"),
                      "updated_at": row.get("updated_at"), **{n: f.from_row(row) for n,
                                                              f in ce.fields.items()}}
            due = time_due(compiled.workflow, record)
            if due is None or due < now:
                continue
            if compiled.condition is not None and not compiled.condition.holds(record, context):
                continue
            batch.append(job_row(compiled, row["id"], "time", now, due=due,
                                 dedupe_key=time_key(compiled, row["id"], due)))
        if batch:
            # A moment a save scheduled already (the outbox, before this registration) stays one job.
            keys = [row["dedupe_key"] for row in batch]
            known = set(conn.execute(sa.select(jobs.c.dedupe_key).where(
                jobs.c.dedupe_key.in_(keys), jobs.c.status != "cancelled")).scalars())
            batch = [row for row in batch if row["dedupe_key"] not in known]
        if batch:
            conn.execute(jobs.insert(), batch)
            count += len(batch)
        after = rows[-1]["id"]


def any_due(engine: sa.Engine, now: dt.datetime) -> bool:
    """Whether a schedule's moment came (a read: an idle worker takes no write lock)."""
    with engine.connect() as conn:
        found = conn.execute(sa.select(schedules.c.workflow).where(schedules.c.next_at <= now).limit(1))
        return found.first() is not None


def fire_due(conn: sa.Connection, snapshot: Snapshot, now: dt.datetime) -> int:
    """Fire every schedule whose moment came (each once, whatever the number of workers);
    how many jobs were made."""
    active = active_workflows(snapshot)
    due = sa.select(schedules).where(schedules.c.next_at <= now).order_by(schedules.c.next_at)
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    made = 0
    for row in conn.execute(due).all():
        compiled = active.by_name.get(row.workflow)
        if compiled is None or compiled.workflow.trigger.kind != "schedule" \
                or compiled.version != row.version:
            continue  # reconcile's business
        made += _fire(conn, snapshot, compiled, row.next_at, now)
        conn.execute(schedules.update().where(schedules.c.workflow == row.workflow)
                     .values(last_at=row.next_at, next_at=next_firing(compiled, now)))
    return made


def _fire(conn: sa.Connection, snapshot: Snapshot, compiled: CompiledWorkflow, moment: dt.datetime,
          now: dt.datetime) -> int:
    ce = snapshot.entities.get(compiled.workflow.entity)
    if ce is None:
        return 0
    where = []
    if compiled.filter is not None:
        where.append(compiled.filter.where(RuleContext(now=now)))
    ids = conn.execute(sa.select(ce.table.c.id).where(*where).order_by(ce.table.c.id)).scalars().all()
    stamp = moment.isoformat()
    rows = [job_row(compiled, i, "schedule", now, event={"changes": {}, "user": None, "moment": stamp},
                    dedupe_key=f"cron:{compiled.name}:{compiled.version}:{stamp}:{i}") for i in ids]
    for start in range(0, len(rows), CHUNK):
        conn.execute(jobs.insert(), rows[start:start + CHUNK])
    return len(rows)


def registrations(conn: sa.Connection, snapshot: Snapshot) -> list[Registration]:
    """Each active time or schedule workflow with the version registered for it."""
    active = active_workflows(snapshot)
    rows = {r.workflow: r for r in conn.execute(sa.select(schedules)).all()}
    out = []
    for compiled in [*active.of_kind("time"), *active.of_kind("schedule")]:
        row = rows.get(compiled.name)
        out.append(Registration(compiled.name, compiled.workflow.trigger.kind, compiled.version,
                                row.version if row else None, row.next_at if row else None))
    return out


def stray(conn: sa.Connection, snapshot: Snapshot) -> Sequence[str]:
    """Registrations of workflows that are not active (what reconcile removes)."""
    active = active_workflows(snapshot)
    return [r.workflow for r in conn.execute(sa.select(schedules.c.workflow)).all()
            if r.workflow not in active.by_name]
