"""The outbox: the write pipeline's changes turned into workflow jobs, in the transaction of
the change (no change without its jobs, no job without its change).

A write tells the outbox what it wrote (`written`, a hook of records/pipeline.py); the outbox
keeps it on the connection, merged per record (the union of the changed fields, each from its
first value to its last), and turns it into jobs once, right before COMMIT (`flush`, the
pipeline's `before_commit` hook, or the worker's own before its commit): a record created and
then changed by a before-save step, a formula or a workflow's two actions in one transaction
gives each workflow one event, evaluated on the final state. Which triggers fire is decided
there: created, updated (optionally only when given fields changed), deleted, stage entered
and left; time triggers are scheduled, moved or cancelled there too.

The condition of a job is evaluated by the worker that runs it, on the record as it is then
(with `previous`, from the event's changes), and the run log shows every condition's result.

What a write pays: one row into `slate_workflow_event` per transaction, its jobs encoded as one
JSON text, in a table with no index but its key. A worker moves them into the indexed job queue
(`fan_out`, in the transaction that claims jobs). Only the jobs that need the queue at once go
there directly: a time trigger's (one per moment, by `dedupe_key`, which a later save of the
same record must find to move or cancel it) and a chain stopped at its depth (dead at birth).

Loop protection: the worker puts the chain of workflows whose run is writing on the
connection (`CHAIN`); a workflow in that chain is not fired again unless it says
`retrigger: true`, and a chain longer than the configured depth makes a dead job naming it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.workflows import Workflow

from ..records import rules as rule_hooks
from ..records.inserts import TableWriter
from ..records.pipeline import Hooks, WriteRequest, WrittenValues
from ..records.snapshot import Snapshot
from ..storage import system
from .registry import CompiledWorkflow, active_workflows

log = logging.getLogger(__name__)

#: conn.info keys: the records written in the transaction, and the chain of workflows whose
#: run is writing (set by the worker).
PENDING = "slatecrm.workflows.pending"
CHAIN = "slatecrm.workflows.chain"
#: How many workflows may start one another in a chain before it is stopped.
DEPTH_VARIABLE = "SLATECRM_WORKFLOW_MAX_DEPTH"
DEFAULT_DEPTH = 5

jobs = system.workflow_jobs


def max_depth(environ: Mapping[str, str] | None = None) -> int:
    text = (os.environ if environ is None else environ).get(DEPTH_VARIABLE, "")
    if not text:
        return DEFAULT_DEPTH
    try:
        depth = int(text)
    except ValueError:
        raise ValueError(f"{DEPTH_VARIABLE}={text!r} is not a whole number") from None
    if depth < 1:
        raise ValueError(f"{DEPTH_VARIABLE}={text!r}: at least 1")
    return depth


@dataclass
class PendingRecord:
    """What a transaction did to one record so far."""

    entity: str
    record_id: int
    created: bool = False
    deleted: bool = False
    #: field → [first value, last value] (JSON forms, as in the history table)
    changes: dict[str, list[Any]] = field(default_factory=dict)
    #: the record's values as last written (None when the write did not have them at hand)
    values: Mapping[str, Any] | None = None
    user: int | None = None
    #: the chain of workflows whose runs wrote it (empty: a person's or a program's write)
    chain: tuple[str, ...] = ()

    def add(self, action: str, changes: Mapping[str, Sequence[Any]], values: Mapping[str, Any] | None,
            user: int | None) -> None:
        self.user = user
        if action == "create":
            self.created = True
        elif action == "delete":
            self.deleted = True
        for name, (before, after) in changes.items():
            if name in self.changes:
                self.changes[name][1] = after
            else:
                self.changes[name] = [before, after]
        if values is not None:
            self.values = values


class Outbox:
    """Registered on the write pipeline's hooks of the app's records service."""

    def __init__(self, snapshot_of: Any, *, clock: Any = None, depth: int | None = None):
        """`snapshot_of()`: the current revision's full snapshot (the records service's
        `full_snapshot`); `clock()`: now, in UTC (tests give their own)."""
        self.snapshot_of = snapshot_of
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.depth = max_depth() if depth is None else depth

    def register(self, hooks: Hooks) -> None:
        hooks.written.append(self.written)
        hooks.before_commit.append(self.flush)

    # --- in the write's transaction ----------------------------------------------------------
    def written(self, conn: sa.Connection, request: WriteRequest, history: Sequence[Mapping[str, Any]],
                values: WrittenValues) -> None:
        active = active_workflows(self.snapshot_of())
        entities = {row["entity"] for row in history}
        if not any(active.any_on(e) for e in entities):
            return
        if request.silent:
            self._silenced(conn, request, history, active)
            return
        pending = _pending(conn, create=True)
        assert pending is not None
        for row in history:
            key = (row["entity"], row["record_id"])
            if not active.any_on(key[0]):
                continue
            entry = pending.get(key)
            if entry is None:
                entry = pending[key] = PendingRecord(*key, chain=conn.info.get(CHAIN, ()))
            entry.add(row["action"], row["changes"], values.get(key), row["changed_by"])

    def flush(self, conn: sa.Connection) -> None:
        """The transaction's pending records as jobs (and time triggers moved)."""
        pending = _pending(conn)
        conn.info.pop(PENDING, None)
        if not pending:
            return
        snapshot = self.snapshot_of()
        active = active_workflows(snapshot)
        now = self.clock()
        rows: list[dict[str, Any]] = []  # straight into the queue
        queued: list[dict[str, Any]] = []  # the outbox event's records and the workflows they fired
        for entry in pending.values():
            if entry.created and entry.deleted:
                continue
            fired = [(w, trigger) for w, trigger in self._fired(snapshot, entry, active)
                     if w.name not in entry.chain or w.workflow.retrigger]  # loop protection
            if fired and len(entry.chain) >= self.depth:
                rows += [row for w, trigger in fired
                         if (row := self._job(w, entry, trigger, entry.chain, now)) is not None]
            elif fired:
                queued.append({"entity": entry.entity, "record_id": entry.record_id,
                               "event": self._event(entry), "chain": list(entry.chain),
                               "fired": [[w.name, w.version, trigger] for w, trigger in fired]})
            if not entry.deleted and active.on(entry.entity, "time"):
                rows.extend(self._schedule_times(conn, snapshot, entry, active.on(entry.entity, "time"), now))
            elif entry.deleted:
                conn.execute(jobs.update().where(
                    jobs.c.entity == entry.entity, jobs.c.record_id == entry.record_id,
                    jobs.c.status == "pending", jobs.c.trigger.in_(("time", "schedule"))
                ).values(status="cancelled", finished_at=now, last_error="the record was deleted"))
        if queued:
            write_event(conn, queued, now)
        if rows:
            insert_jobs(conn, rows)

    def _fired(self, snapshot: Snapshot, entry: PendingRecord,
               active: Any) -> list[tuple[CompiledWorkflow, str]]:
        entity = entry.entity
        fired: list[tuple[CompiledWorkflow, str]] = []
        if entry.deleted:
            return [(w, "deleted") for w in active.on(entity, "deleted")]
        if entry.created:
            fired += [(w, "created") for w in active.on(entity, "created")]
        elif entry.changes:
            changed = set(entry.changes)
            fired += [(w, "updated") for w in active.on(entity, "updated")
                      if not w.workflow.trigger.fields or changed.intersection(w.workflow.trigger.fields)]
        ce = snapshot.entities.get(entity)
        pipelines = {} if ce is None else ce.pipelines
        for field_name in pipelines:
            if field_name not in entry.changes:
                continue
            before, after = entry.changes[field_name]
            if entry.created:
                before = None
            if before == after:
                continue
            for w in active.on(entity, "stage_entered"):
                if _stage_matches(w.workflow, snapshot, entity, field_name, after):
                    fired.append((w, "stage_entered"))
            for w in active.on(entity, "stage_left"):
                if before is not None and _stage_matches(w.workflow, snapshot, entity, field_name, before):
                    fired.append((w, "stage_left"))
        return fired

    def _job(self, compiled: CompiledWorkflow, entry: PendingRecord, trigger: str, chain: tuple[str, ...],
             now: dt.datetime, due: dt.datetime | None = None,
             dedupe_key: str | None = None) -> dict[str, Any] | None:
        workflow = compiled.workflow
        if workflow.name in chain and not workflow.retrigger:
            return None  # its own writes do not fire it again (loop protection)
        row = job_row(compiled, entry.record_id, trigger, now, due=due, event=self._event(entry), chain=chain,
                      dedupe_key=dedupe_key)
        if len(chain) >= self.depth:
            row.update(status="dead", finished_at=now, last_error=(
                f"stopped: a chain of {len(chain) + 1} workflows ({' → '.join([*chain, workflow.name])}) "
                f"is deeper than {self.depth} ({DEPTH_VARIABLE})"))
        return row

    def _event(self, entry: PendingRecord) -> dict[str, Any]:
        """What a job of the record is told of its event: the changes (from → to), who made
        them, and a deleted record's values."""
        event: dict[str, Any] = {"changes": {} if entry.created else entry.changes, "user": entry.user}
        if entry.deleted and entry.values is not None:
            event["values"] = _json_values(self.snapshot_of(), entry.entity, entry.values)
        return event

    def _schedule_times(self, conn: sa.Connection, snapshot: Snapshot, entry: PendingRecord,
                        workflows: Sequence[CompiledWorkflow], now: dt.datetime) -> list[dict[str, Any]]:
        """Each time trigger of the record: scheduled at its moment, moved when the moment
        moved, cancelled when the record no longer meets the condition or has no moment."""
        values = entry.values
        ce = snapshot.entities[entry.entity]
        if values is None or any(w.workflow.trigger.field not in values for w in workflows):
            # Not at hand (a cascade's change) or a system field (created_at): as written.
            row = conn.execute(ce.select.where(ce.table.c.id == entry.record_id)).mappings().first()
            if row is None:
                return []
            values = {"owner": row["owner"], "created_at": row["created_at"], "updated_at": row["updated_at"],
                      **{n: f.from_row(row) for n, f in ce.fields.items()}}
        context = rule_hooks.context_for(conn, snapshot.entities, entry.user, None)
        record = {**values, "id": entry.record_id}
        rows: list[dict[str, Any]] = []
        for compiled in workflows:
            due = time_due(compiled.workflow, record)
            wanted = due is not None and (compiled.condition is None or compiled.condition.holds(record,
                                                                                                 context))
            key = time_key(compiled, entry.record_id, due)
            others = [jobs.c.workflow == compiled.name, jobs.c.record_id == entry.record_id,
                      jobs.c.entity == entry.entity, jobs.c.trigger == "time", jobs.c.status == "pending"]
            if wanted:
                others.append(jobs.c.dedupe_key != key)
            conn.execute(jobs.update().where(*others).values(
                status="cancelled", finished_at=now,
                last_error="rescheduled: the moment moved" if wanted else
                "cancelled: the record no longer meets the condition, or has no date"))
            if not wanted or due is None:
                continue
            seen = conn.execute(sa.select(jobs.c.id).where(jobs.c.dedupe_key == key,
                                                           jobs.c.status != "cancelled")
                                .limit(1)).first()
            if seen is not None:
                continue  # this moment is scheduled already (or has run)
            made = self._job(compiled, PendingRecord(entry.entity, entry.record_id, user=entry.user), "time",
                             entry.chain, now, due=due, dedupe_key=key)
            if made is not None:
                rows.append(made)
        return rows

    def _silenced(self, conn: sa.Connection, request: WriteRequest, history: Sequence[Mapping[str, Any]],
                  active: Any) -> None:
        """A silent write's run-log entries: one per workflow it kept from firing, per write."""
        now = self.clock()
        per_workflow: dict[str, tuple[CompiledWorkflow, list[int]]] = {}
        for row in history:
            for kind in ("created", "updated", "deleted", "stage_entered", "stage_left", "time"):
                for w in active.on(row["entity"], kind):
                    per_workflow.setdefault(w.name, (w, []))[1].append(row["record_id"])
        entries: list[dict[str, Any]] = [
                   {"job_id": None, "workflow": w.name, "version": w.version, "entity": w.workflow.entity,
                    "record_id": ids[0], "trigger": request.action, "attempt": 0, "status": "silenced",
                    "condition": None, "actions": [],
                    "error": f"a silent {request.action} by user {request.user} of {len(set(ids))} record(s) "
                             f"(ids {', '.join(str(i) for i in sorted(set(ids))[:10])}) did not fire it",
                    "worker": None, "triggered_at": now, "started_at": now, "finished_at": now}
                   for w, ids in per_workflow.values()]
        if entries:
            conn.execute(system.workflow_runs.insert(), entries)


events = system.workflow_events
#: The outbox's INSERT, in each driver's own parameter style, run by the driver's connection
#: itself (the write's, in its transaction): SQLAlchemy's INSERT asks PostgreSQL for the new id
#: back (RETURNING) and builds a result for it, and even `exec_driver_sql` builds an execution
#: context; together they were most of what the row cost a write (bench/findings.md, 14).
_WRITE_EVENT = {"sqlite": f'INSERT INTO "{events.name}" (jobs) VALUES (:jobs)',
                "postgresql": f'INSERT INTO "{events.name}" (jobs) VALUES (%(jobs)s)'}


def write_event(conn: sa.Connection, records: Sequence[Mapping[str, Any]], now: dt.datetime) -> None:
    """One outbox row in the caller's transaction: `records`, each {"entity", "record_id",
    "event", "chain", "fired": [[workflow, version, trigger], ...]}, whose jobs are due `now`.
    A record's event is written once, however many workflows it fired; the jobs are a flat
    list [workflow, version, trigger, the record's index]."""
    body = {"at": _json_moment(now),
            "records": [{k: v for k, v in r.items() if k != "fired"} for r in records],
            "jobs": [[*fired, index] for index, r in enumerate(records) for fired in r["fired"]]}
    driver: Any = conn.connection.driver_connection
    driver.execute(_WRITE_EVENT[conn.dialect.name], {"jobs": json.dumps(body, separators=(",", ":"))})


#: PostgreSQL's move of the outbox into the queue: one statement, run by the server. Events
#: are taken oldest first and locked with SKIP LOCKED, so workers moving at once take
#: different ones; each job is due when its change was made. The text is read as jsonb, parsed
#: once (each `->` of a json value parses it again: an event of 1,000 records took seconds).
#: One set-returning function, not one per record and another per job: the planner takes
#: 100 rows from each, and a product of them passed the cost at which PostgreSQL compiles
#: the statement with its JIT (0.3 s, for one job).
_PG_FAN_OUT = sa.text(f"""
    WITH taken AS (
        DELETE FROM "{events.name}" WHERE id IN (
            SELECT id FROM "{events.name}" ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
        RETURNING id, CAST(jobs AS jsonb) AS body),
    made AS (
        SELECT taken.id, job.n, job.item, taken.body->'records'->CAST(job.item->>3 AS int) AS record,
               CAST(taken.body->>'at' AS timestamptz) AS at
        FROM taken
        CROSS JOIN LATERAL jsonb_array_elements(taken.body->'jobs') WITH ORDINALITY AS job(item, n))
    INSERT INTO "{jobs.name}" (workflow, version, entity, record_id, "trigger", event, status, due_at,
                               created_at, attempts, progress, chain)
    SELECT item->>0, item->>1, record->>'entity', CAST(record->>'record_id' AS bigint), item->>2,
           CAST(record->'event' AS json), 'pending', at, at, 0, CAST('{{}}' AS json),
           CAST(record->'chain' AS json)
    FROM made ORDER BY id, n""")


def fan_out(conn: sa.Connection, limit: int = 100) -> int:
    """Up to `limit` outbox events moved into the job queue, in the caller's transaction (the
    event rows are deleted in it: moved once, whatever fails); how many jobs were made."""
    if conn.dialect.name == "postgresql":
        return int(conn.execute(_PG_FAN_OUT, {"limit": limit}).rowcount or 0)
    taken = conn.execute(sa.select(events.c.id, events.c.jobs).order_by(events.c.id).limit(limit)).all()
    if not taken:
        return 0
    rows = []
    for _event_id, text in taken:
        body = json.loads(text)
        moment = dt.datetime.fromisoformat(body["at"])
        records = body["records"]
        for workflow, version, trigger, index in body["jobs"]:
            record = records[index]
            rows.append({"workflow": workflow, "version": version, "entity": record["entity"],
                         "record_id": record["record_id"], "trigger": trigger, "event": record["event"],
                         "status": "pending", "due_at": moment, "created_at": moment, "finished_at": None,
                         "attempts": 0, "lease_owner": None, "lease_until": None, "progress": {},
                         "chain": record["chain"], "last_error": None, "dedupe_key": None})
    insert_jobs(conn, rows)
    conn.execute(events.delete().where(events.c.id.in_([event_id for event_id, _ in taken])))
    return len(rows)


def waiting(conn: sa.Connection) -> int:
    """Jobs in the outbox, not yet moved into the queue (each is due: a worker's next round
    moves and claims it)."""
    return int(conn.execute(_WAITING[conn.dialect.name == "postgresql"]).scalar_one())


#: How many jobs the outbox holds, counted by the database (SQLite's, PostgreSQL's JSON).
_WAITING = (
    sa.text(f"""SELECT coalesce(sum(json_array_length(jobs, '$.jobs')), 0) FROM "{events.name}" """),
    sa.text(f"""SELECT coalesce(sum(jsonb_array_length(CAST(jobs AS jsonb)->'jobs')), 0)
                FROM "{events.name}" """))


#: SQLite's writer of jobs, by the columns given (see `insert_jobs`).
_SQLITE_WRITERS: dict[tuple[str, ...], TableWriter] = {}
#: PostgreSQL's INSERT of jobs, by the columns given: the rows are one parameter, a JSON array
#: that json_populate_recordset expands to the table's row type (see `insert_jobs`).
_FROM_JSON: dict[tuple[str, ...], sa.TextClause] = {}


def insert_jobs(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Jobs (rows of the same columns) inserted in the caller's transaction.

    On PostgreSQL, with several rows, as one statement with one parameter: the rows as a JSON
    array (json_populate_recordset gives each value its column's type, the JSON columns keep
    theirs as JSON). An executemany of them (SQLAlchemy's batched VALUES) adapted each of the
    ~90 parameters of a write's 5 jobs one by one, which made it most of what the outbox
    cost a write (bench/findings.md, "Workflows"). Elsewhere, and for one row, the INSERT as
    SQLAlchemy writes it."""
    if any(r.keys() != rows[0].keys() for r in rows):
        conn.execute(jobs.insert(), list(rows))
        return
    if conn.dialect.name == "sqlite":
        # The records' bulk path (records/inserts.py): encoded once by the columns' own bind
        # processors, and one INSERT … VALUES (…), (…) run by the driver, without SQLAlchemy's
        # work per parameter (it was most of what 5 jobs cost a write).
        names = tuple(rows[0])
        writer = _SQLITE_WRITERS.get(names)
        if writer is None:
            writer = _SQLITE_WRITERS[names] = TableWriter(jobs, names, conn.dialect)
        writer.write(conn, [[r[n] for n in names] for r in rows])
        return
    if len(rows) < 2:
        conn.execute(jobs.insert(), list(rows))
        return
    names = tuple(rows[0])
    statement = _FROM_JSON.get(names)
    if statement is None:
        columns = ", ".join(f'"{jobs.c[n].name}"' for n in names)
        statement = _FROM_JSON[names] = sa.text(
            f'INSERT INTO "{jobs.name}" ({columns}) SELECT {columns} '
            f'FROM json_populate_recordset(NULL::"{jobs.name}", CAST(:rows AS json))')
    conn.execute(statement, {"rows": json.dumps([{k: _json_moment(v) for k, v in r.items()} for r in rows])})


def _json_moment(value: Any) -> Any:
    """A datetime as ISO 8601 in UTC (a naive one is UTC, as UTCDateTime takes it); others as they are."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()
    return value


def _stage_matches(workflow: Workflow, snapshot: Snapshot, entity: str, field_name: str, stage: Any) -> bool:
    trigger = workflow.trigger
    if trigger.pipeline is not None:
        found = snapshot.metamodel.entity(entity)
        pipeline = next((p for p in found.pipelines if p.name == trigger.pipeline), None) if found else None
        if pipeline is None or pipeline.field != field_name:
            return False
    return trigger.stage is None or trigger.stage == stage


def time_due(workflow: Workflow, record: Mapping[str, Any]) -> dt.datetime | None:
    """The moment a time trigger fires for `record`: its field's value moved by the offset
    (a date counts from its midnight, UTC); None without a value."""
    value = record.get(workflow.trigger.field or "")
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    else:
        return None
    return moment + dt.timedelta(minutes=workflow.trigger.offset_minutes)


def _json_values(snapshot: Snapshot, entity: str, values: Mapping[str, Any]) -> dict[str, Any]:
    ce = snapshot.entities.get(entity)
    if ce is None:
        return {}
    out = {name: compiled.to_json(values.get(name)) for name, compiled in ce.fields.items()}
    out["owner"] = values.get("owner")
    return out


def enqueue(conn: sa.Connection, compiled: CompiledWorkflow, record_ids: Sequence[int | None], trigger: str,
            now: dt.datetime, *, user: int | None = None, extra: Mapping[str, Any] | None = None,
            dedupe_key: str | None = None) -> list[int]:
    """Jobs of `compiled` for these records, outside a write (a manual run, an inbound
    webhook), in the caller's transaction; their ids."""
    rows = [job_row(compiled, record_id, trigger, now, event={"changes": {}, "user": user, **(extra or {})},
                    dedupe_key=dedupe_key) for record_id in record_ids]
    return [int(conn.execute(jobs.insert().values(row).returning(jobs.c.id)).scalar_one()) for row in rows]


def job_row(compiled: CompiledWorkflow, record_id: int | None, trigger: str, now: dt.datetime, *,
            due: dt.datetime | None = None, event: Mapping[str, Any] | None = None,
            chain: Sequence[str] = (), dedupe_key: str | None = None) -> dict[str, Any]:
    """A pending job of `compiled` on the record, due at `due` (now when not given): the one
    shape every producer (the outbox, registrations, schedules, manual runs, inbound
    webhooks) writes."""
    return {"workflow": compiled.name, "version": compiled.version, "entity": compiled.workflow.entity,
            "record_id": record_id, "trigger": trigger, "event": dict(event or {"changes": {}, "user": None}),
            "status": "pending", "due_at": due or now, "created_at": now, "finished_at": None, "attempts": 0,
            "lease_owner": None, "lease_until": None, "progress": {}, "chain": list(chain),
            "last_error": None, "dedupe_key": dedupe_key}


def time_key(compiled: CompiledWorkflow, record_id: int, due: dt.datetime | None) -> str:
    """A time trigger's moment of a record: one job at most (scheduled by a save or by the
    registration, whichever comes first)."""
    return f"time:{compiled.name}:{compiled.version}:{record_id}:{due.isoformat() if due else ''}"


def _pending(conn: sa.Connection, *, create: bool = False) -> dict[tuple[str, int], PendingRecord] | None:
    """The records the connection's current transaction wrote so far. Kept with that
    transaction: `conn.info` outlives it (it is the pooled DBAPI connection's), so what a
    transaction that was rolled back left there is never taken for another's."""
    transaction = conn.get_transaction()
    kept = conn.info.get(PENDING)
    if kept is not None and kept[0] is transaction and transaction is not None:
        return kept[1]  # type: ignore[no-any-return]
    if not create:
        return None
    fresh: dict[tuple[str, int], PendingRecord] = {}
    conn.info[PENDING] = (transaction, fresh)
    return fresh
