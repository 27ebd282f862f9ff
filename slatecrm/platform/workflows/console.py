"""What people see of the workflows and do with them, for the JSON API and the pages alike
(web/workflows_api.py, web/workflows_pages.py): the revision's workflows with their health
(registrations, jobs by status), the run log and the job table read with strict filters in
keyset pages (newest first), dead jobs replayed in bulk, and manual runs started.

A manual run is checked here, not in the handlers: the workflow must be active, triggered
`manual`ly and of the entity asked for; the principal must be allowed to update each record
(the write pipeline's own reach check: a record it cannot read is missing, 404) and, when the
trigger names `roles`, hold one of them (administrators always may). Its jobs are written in
one transaction, or none is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from slatecrm.digits import RECORD_ID_MAX, parse_digits
from slatecrm.metamodel.workflows import Workflow

from ..identity.access import ADMINISTRATOR
from ..records.errors import RecordError, RecordNotFound, ValidationFailed, WriteRefused
from ..records.service import RecordsService
from ..records.snapshot import Snapshot
from ..storage import system
from . import health, outbox
from .jobs import replay
from .registry import CompiledWorkflow, active_workflows, fingerprint
from .schedules import registrations

jobs_table, runs_table, workers_table = system.workflow_jobs, system.workflow_runs, system.workflow_workers

RUN_STATUSES = ("done", "failed", "dead", "skipped", "cancelled", "silenced")
JOB_STATUSES = ("pending", "running", "done", "skipped", "cancelled", "dead")
#: A page of runs or jobs: the default and the most one may ask for.
DEFAULT_LIMIT = 50
LIMIT_MAX = 500
#: A worker seen within this long is shown alive (the health check's measure: a worker notes
#: itself every 5 s).
ALIVE_SECONDS = health.ALIVE_SECONDS
#: What `retry` replays at most in one call (a whole workflow's dead jobs included).
RETRY_MAX = 10_000


class InvalidFilter(ValidationFailed):
    """422 with the errors by parameter ("" for none in particular)."""

    whole = ""


class NotRunnable(RecordError):
    """A manual run of a workflow that is not run by hand (or not on this entity, or not
    active): 409, naming why."""

    status = 409


class UnknownWorkflow(RecordError):
    status = 404

    def __init__(self, name: str):
        super().__init__(f"there is no workflow {name!r}")
        self.name = name


# --- the revision's workflows ----------------------------------------------------------------
@dataclass(frozen=True)
class WorkflowInfo:
    workflow: Workflow
    version: str
    #: time and schedule: the version registered for it (None: none), and when it fires next.
    registered: str | None = None
    next_at: dt.datetime | None = None
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.workflow.name

    @property
    def needs_registration(self) -> bool:
        return self.workflow.active and self.workflow.trigger.kind in ("time", "schedule")

    @property
    def healthy(self) -> bool:
        """Registered at its active version when it needs a registration; true otherwise."""
        return not self.needs_registration or self.registered == self.version

    def as_json(self) -> dict[str, Any]:
        w = self.workflow
        registration = None
        if self.needs_registration:
            registration = {"active_version": self.version, "registered_version": self.registered,
                            "healthy": self.healthy, "next_at": self.next_at}
        return {"name": w.name, "label": w.label, "description": w.description, "entity": w.entity,
                "trigger": w.trigger.kind, "active": w.active, "version": self.version, "pack": w.pack,
                "healthy": self.healthy, "registration": registration,
                "jobs": {status: self.counts.get(status, 0) for status in JOB_STATUSES}}


def overview(conn: sa.Connection, snapshot: Snapshot) -> list[WorkflowInfo]:
    """Every workflow of the revision, active or not, by name, with its jobs counted by status
    (one GROUP BY) and, for time and schedule ones, its registration."""
    counts: dict[str, dict[str, int]] = {}
    for row in conn.execute(sa.select(jobs_table.c.workflow, jobs_table.c.status, sa.func.count())
                            .group_by(jobs_table.c.workflow, jobs_table.c.status)):
        counts.setdefault(row[0], {})[row[1]] = int(row[2])
    registered = {r.workflow: r for r in registrations(conn, snapshot)}
    active = active_workflows(snapshot)
    out = []
    for workflow in sorted(snapshot.metamodel.workflows, key=lambda w: w.name):
        compiled = active.by_name.get(workflow.name)
        version = compiled.version if compiled is not None else fingerprint(workflow)
        found = registered.get(workflow.name)
        out.append(WorkflowInfo(workflow, version, found.registered if found else None,
                                found.next_at if found else None, counts.get(workflow.name, {})))
    return out


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    started_at: dt.datetime
    seen_at: dt.datetime
    jobs_done: int
    alive: bool

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "started_at": self.started_at, "seen_at": self.seen_at,
                "jobs_done": self.jobs_done, "alive": self.alive}


def workers(conn: sa.Connection, now: dt.datetime) -> list[WorkerInfo]:
    """The workers that noted themselves alive, newest seen first; alive: seen within
    ALIVE_SECONDS."""
    rows = conn.execute(sa.select(workers_table).order_by(workers_table.c.seen_at.desc(),
                                                          workers_table.c.name)).all()
    return [WorkerInfo(r.name, r.started_at, r.seen_at, int(r.jobs_done),
                       (now - r.seen_at).total_seconds() <= ALIVE_SECONDS) for r in rows]


# --- reading the run log and the jobs ---------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """A filter of runs or jobs, newest first; `after`: the id of the last row of the page
    before (keyset paging)."""

    workflow: str | None = None
    status: str | None = None
    entity: str | None = None
    record_id: int | None = None
    limit: int = DEFAULT_LIMIT
    after: int | None = None


@dataclass(frozen=True)
class Rows:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def parse(params: Iterable[tuple[str, str]], statuses: Sequence[str], *,
          defaults: Query | None = None) -> Query:
    """The filter of a query string, strictly: an unknown, repeated or unreadable parameter
    is an InvalidFilter naming it (an empty value filters nothing)."""
    known = ("workflow", "status", "entity", "record_id", "limit", "after")
    errors: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for key, value in params:
        if key not in known:
            errors.setdefault(key, []).append(f"is not a filter; filters: {', '.join(known)}")
        elif key in seen:
            errors.setdefault(key, []).append("is given more than once")
        else:
            seen[key] = value.strip()
    base = defaults or Query()
    values: dict[str, Any] = {}
    for key in ("workflow", "entity"):
        text = seen.get(key)
        if text:
            if "\x00" in text or len(text) > 200:
                errors.setdefault(key, []).append("is not a name")
            values[key] = text
    status = seen.get("status")
    if status:
        if status not in statuses:
            errors.setdefault("status", []).append(f"{status[:40]!r} is not one of {', '.join(statuses)}")
        values["status"] = status
    for key, cap in (("record_id", RECORD_ID_MAX), ("after", RECORD_ID_MAX), ("limit", LIMIT_MAX)):
        text = seen.get(key)
        if text:
            number = parse_digits(text, cap)
            if not number:
                errors.setdefault(key, []).append(f"{text[:40]!r} is not a whole number from 1 to {cap}")
            values[key] = number
    if errors:
        raise InvalidFilter(errors)
    return replace(base, **values)


def _where(table: sa.Table, query: Query) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if query.workflow:
        where.append(table.c.workflow == query.workflow)
    if query.status:
        where.append(table.c.status == query.status)
    if query.entity:
        where.append(table.c.entity == query.entity)
    if query.record_id:
        where.append(table.c.record_id == query.record_id)
    if query.after:
        where.append(table.c.id < query.after)
    return where


def _page(conn: sa.Connection, table: sa.Table, query: Query, columns: Sequence[Any]) -> Rows:
    rows = conn.execute(sa.select(*columns).where(*_where(table, query)).order_by(table.c.id.desc())
                        .limit(query.limit + 1)).mappings().all()
    more = len(rows) > query.limit
    shown = [dict(r) for r in rows[: query.limit]]
    return Rows(shown, str(shown[-1]["id"]) if more and shown else None)


RUN_COLUMNS = ("id", "job_id", "workflow", "version", "entity", "record_id", "trigger", "attempt", "status",
               "condition", "actions", "error", "worker", "triggered_at", "started_at", "finished_at")
JOB_COLUMNS = ("id", "workflow", "version", "entity", "record_id", "trigger", "status", "due_at",
               "created_at", "finished_at", "attempts", "last_error")


def runs(conn: sa.Connection, query: Query) -> Rows:
    return _page(conn, runs_table, query, [runs_table.c[c] for c in RUN_COLUMNS])


def jobs(conn: sa.Connection, query: Query) -> Rows:
    return _page(conn, jobs_table, query, [jobs_table.c[c] for c in JOB_COLUMNS])


def without_details(run: Mapping[str, Any]) -> dict[str, Any]:
    """A run as a user who may not see every field is shown it: each action's outcome and
    timing, not its `detail` (a note's text or an update's values may come from fields the
    user does not see)."""
    actions = [{k: v for k, v in a.items() if k != "detail"} for a in run.get("actions") or []
               if isinstance(a, Mapping)]
    return {**run, "actions": actions}


def sees_every_field(records: RecordsService, entity: str) -> bool:
    """Whether the principal sees every field of `entity` (then it is shown the actions'
    details of its records' runs)."""
    shown, full = records.snapshot().entities.get(entity), records.full_snapshot().entities.get(entity)
    return shown is not None and full is not None and set(shown.fields) == set(full.fields)


def retry(conn: sa.Connection, now: dt.datetime, *, ids: Sequence[int] = (),
          workflow: str | None = None) -> int:
    """Dead jobs replayed (jobs.py `replay`): these ids, or every dead job of `workflow`; how
    many were."""
    chosen = list(ids)
    if workflow is not None:
        chosen += [int(r[0]) for r in conn.execute(
            sa.select(jobs_table.c.id).where(jobs_table.c.workflow == workflow, jobs_table.c.status == "dead")
            .order_by(jobs_table.c.id).limit(RETRY_MAX))]
    total = 0
    unique = list(dict.fromkeys(chosen))
    for start in range(0, len(unique), 500):  # bounded IN lists
        total += replay(conn, unique[start:start + 500], now)
    return total


# --- manual runs -------------------------------------------------------------------------------
def manual_workflows(snapshot: Snapshot, entity: str) -> list[CompiledWorkflow]:
    """The active manual workflows of `entity`, by label."""
    return sorted(active_workflows(snapshot).on(entity, "manual"), key=lambda w: (w.workflow.label, w.name))


def may_start(records: RecordsService, compiled: CompiledWorkflow) -> bool:
    """Whether the principal holds a role the trigger names (none named: anyone who may
    update the records; administrators and the system always)."""
    wanted = compiled.workflow.trigger.roles
    principal = records.principal
    if not wanted or principal.unrestricted or ADMINISTRATOR in principal.roles:
        return True
    return any(role in principal.roles for role in wanted)


def runnable(records: RecordsService, entity: str) -> list[CompiledWorkflow]:
    """The manual workflows of `entity` the principal may start (the buttons a page shows):
    its roles allow updating the entity's records and the trigger's roles admit it."""
    access = records.access()
    if access is not None and not access.may(entity, "update"):
        return []
    return [w for w in manual_workflows(records.full_snapshot(), entity) if may_start(records, w)]


def check_manual(records: RecordsService, entity: str, name: str) -> CompiledWorkflow:
    """The workflow `name`, if it may be run by hand on `entity` by the principal."""
    records.entity(entity)  # an entity the principal cannot read: 404
    snapshot = records.full_snapshot()
    defined = next((w for w in snapshot.metamodel.workflows if w.name == name), None)
    if defined is None:
        raise UnknownWorkflow(name)
    if not defined.active:
        raise NotRunnable(f"workflow {name!r} is not active")
    if defined.trigger.kind != "manual":
        raise NotRunnable(f"workflow {name!r} is triggered by {defined.trigger.kind!r}, not run by hand "
                          "(its trigger kind must be 'manual')")
    if defined.entity != entity:
        raise NotRunnable(f"workflow {name!r} runs on {defined.entity!r} records, not {entity!r}")
    compiled = active_workflows(snapshot).by_name.get(name)
    if compiled is None:
        raise NotRunnable(f"workflow {name!r} is not active")
    if not may_start(records, compiled):
        raise WriteRefused(f"workflow {name!r} may be run by the roles "
                           f"{', '.join(compiled.workflow.trigger.roles)} only")
    return compiled


def start(records: RecordsService, entity: str, name: str, ids: Sequence[int], now: dt.datetime) -> list[int]:
    """A manual run of `name` on these records of `entity` (each once): checked, then its jobs
    written in one transaction; their ids, in the order of `ids`."""
    if not ids:
        raise ValidationFailed({"ids": ["give the ids of the records to run the workflow on"]})
    compiled = check_manual(records, entity, name)
    ce = records.full_snapshot().entities[entity]
    wanted = list(dict.fromkeys(ids))
    user = records.principal.user_id
    with records.transaction() as conn:
        found = {int(r[0]) for r in conn.execute(sa.select(ce.table.c.id).where(ce.table.c.id.in_(wanted)))}
        for record_id in wanted:
            if record_id not in found:
                raise RecordNotFound(entity, record_id)
            records.pipeline.reach(conn, ce, record_id, "update")
        return outbox.enqueue(conn, compiled, wanted, "manual", now, user=user)


def record_runs(records: RecordsService, entity: str, record_id: int, query: Query) -> Rows:
    """The runs of one record, for anyone who may read it (404 otherwise, as the record)."""
    with records.reading() as reader:  # the request's own read connection
        reader.get(entity, record_id)
        page = runs(reader.conn, replace(query, entity=entity, record_id=record_id))
    if not sees_every_field(records, entity):
        return Rows([without_details(r) for r in page.rows], page.next_cursor)
    return page


def labels(snapshot: Snapshot) -> dict[str, str]:
    return {w.name: w.label for w in snapshot.metamodel.workflows}
