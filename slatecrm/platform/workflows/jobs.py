"""Claiming jobs and running them: the guarantees of docs/workflows.md, "Execution".

- **Claim**: a batch of due jobs is taken in one statement (`FOR UPDATE SKIP LOCKED` on
  PostgreSQL, so workers on several machines never take the same job; SQLite's single writer
  does the same), each with a lease. A job whose lease expired (its worker died) is due again.
- **Fence**: every commit of a run checks that the job is still this claim's (`attempts`, the
  claim's number, and `running`): a worker whose lease ran out and was taken over cannot
  mark the job done, nor commit its record changes.
- **Database actions commit with the done mark**: a run whose actions only write to the
  database is one transaction (several such runs of a batch share it, each in a savepoint),
  so they take effect exactly once. Before an external action (e-mail, webhook, plugin) the
  work so far is committed with the job's progress; after it, its success is; a retry skips
  the actions its progress lists, so an action that succeeded is never run again because a
  later one failed.
- **Retries** wait longer each time (`Backoff`), then the job is dead: kept, with its error,
  for an administrator to replay.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.workflows import CHANGE_TRIGGERS

from ..records import rules as rule_hooks
from ..records.service import RecordsService
from ..storage import system
from .actions import ACTIONS, ActionFailed, RunContext
from .outbox import CHAIN, PENDING, Outbox, fan_out
from .registry import DATABASE_ACTIONS, CompiledWorkflow, active_workflows
from .settings import ExecutionSettings

log = logging.getLogger(__name__)

jobs = system.workflow_jobs
runs = system.workflow_runs
events = system.workflow_events

#: The columns a claim returns.
CLAIMED = (jobs.c.id, jobs.c.workflow, jobs.c.version, jobs.c.entity, jobs.c.record_id, jobs.c.trigger,
           jobs.c.event, jobs.c.attempts, jobs.c.progress, jobs.c.chain, jobs.c.created_at)


class LeaseLost(Exception):
    """The job is no longer this claim's: another worker took it over after the lease ran out."""


@dataclass
class Claim:
    id: int
    workflow: str
    version: str
    entity: str
    record_id: int | None
    trigger: str
    event: Mapping[str, Any]
    attempt: int
    progress: dict[str, Any]
    chain: list[str]
    created_at: dt.datetime
    #: the worker holding the claim
    worker: str = ""
    #: this attempt's outcome of each action, for the run log
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    condition: bool | None = None
    started: dt.datetime | None = None
    #: the progress as committed (what a failure keeps: actions done in a transaction that
    #: was then rolled back are not done)
    committed: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.committed = dict(self.progress)


def claim(conn: sa.Connection, worker: str, now: dt.datetime, limit: int,
          lease_seconds: float) -> list[Claim]:
    """Up to `limit` due jobs, oldest due first, leased to `worker` (committed by the caller)."""
    chosen = sa.select(jobs.c.id).where(due(now)).order_by(jobs.c.due_at, jobs.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    statement = (jobs.update().where(jobs.c.id.in_(chosen.scalar_subquery()))
                 .values(status="running", lease_owner=worker, attempts=jobs.c.attempts + 1,
                         lease_until=now + dt.timedelta(seconds=lease_seconds))
                 .returning(*CLAIMED))
    rows = conn.execute(statement).all()
    return sorted((Claim(r.id, r.workflow, r.version, r.entity, r.record_id, r.trigger, r.event or {},
                         r.attempts, dict(r.progress or {}), list(r.chain or []), r.created_at, worker)
                   for r in rows),
                  key=lambda c: c.id)


def due(now: dt.datetime) -> sa.ColumnElement[bool]:
    """A job to run: pending and due, or running with a lease that ran out (its worker died)."""
    return sa.or_(sa.and_(jobs.c.status == "pending", jobs.c.due_at <= now),
                  sa.and_(jobs.c.status == "running", jobs.c.lease_until < now))


def fence(conn: sa.Connection, job: Claim, **values: Any) -> None:
    """Write `values` to the job if it is still this claim's; LeaseLost otherwise."""
    done = conn.execute(jobs.update().where(jobs.c.id == job.id, jobs.c.attempts == job.attempt,
                                            jobs.c.lease_owner == job.worker, jobs.c.status == "running")
                        .values(**values))
    if done.rowcount != 1:
        raise LeaseLost(f"job {job.id} was taken over (its lease ran out)")


#: The fence of `fence`, for many jobs in one executemany: each row's done mark is written
#: only if the job is still that claim's (rowcount tells how many were).
FENCED_DONE = (jobs.update()
               .where(jobs.c.id == sa.bindparam("b_id"), jobs.c.attempts == sa.bindparam("b_attempt"),
                      jobs.c.lease_owner == sa.bindparam("b_owner"), jobs.c.status == "running")
               .values(status=sa.bindparam("b_status"),
                       finished_at=sa.bindparam("b_finished", type_=jobs.c.finished_at.type),
                       progress=sa.bindparam("b_progress", type_=jobs.c.progress.type),
                       lease_until=None, last_error=None))


class Runner:
    """Runs claimed jobs on one connection at a time."""

    def __init__(self, engine: sa.Engine, records: RecordsService, outbox: Outbox,
                 settings: ExecutionSettings,
                 worker: str):
        self.engine = engine
        self.records = records
        self.outbox = outbox
        self.settings = settings
        self.worker = worker

    def now(self) -> dt.datetime:
        return self.settings.clock()

    def connect(self) -> sa.Connection:
        return self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")

    # --- the batch ---------------------------------------------------------------------------
    def claim(self, limit: int) -> list[Claim]:
        """The outbox's events moved into the queue, and due jobs claimed, in one transaction.
        An idle worker only reads (one query of two indexed look-ups), so its polls do not take
        SQLite's write lock from the requests."""
        now = self.now()
        with self.engine.connect() as conn:
            waiting, ready = conn.execute(sa.select(
                sa.select(events.c.id).limit(1).scalar_subquery(),
                sa.select(jobs.c.id).where(due(now)).limit(1).scalar_subquery())).one()
        if waiting is None and ready is None:
            return []
        with self.connect() as conn, conn.begin():
            if waiting is not None:
                fan_out(conn)
            return claim(conn, self.worker, now, limit, self.settings.lease_seconds)

    def release(self, claims: Sequence[Claim]) -> None:
        """Claims handed back untouched (their batch could not be committed): due again now,
        not when their lease runs out."""
        with self.connect() as conn, conn.begin():
            for job in claims:
                conn.execute(jobs.update().where(jobs.c.id == job.id, jobs.c.attempts == job.attempt,
                                                 jobs.c.lease_owner == job.worker, jobs.c.status == "running")
                             .values(status="pending", lease_until=None))

    def run_all(self, claims: Sequence[Claim]) -> None:
        """Database-only runs together, in one transaction; the others one by one."""
        snapshot = self.records.full_snapshot()
        active = active_workflows(snapshot)
        together: list[tuple[Claim, CompiledWorkflow | None]] = []
        alone: list[tuple[Claim, CompiledWorkflow | None]] = []
        for job in claims:
            compiled = active.by_name.get(job.workflow)
            remaining = [] if compiled is None else [
                a for a in compiled.actions if str(a.index) not in job.progress]
            (together if all(a.kind in DATABASE_ACTIONS for a in remaining) else alone).append((job,
                                                                                                compiled))
        if together:
            self._run_together(together)
        for job, compiled in alone:
            self._run_alone(job, compiled)

    def _run_together(self, batch: Sequence[tuple[Claim, CompiledWorkflow | None]]) -> None:
        if len(batch) > 1 and self._run_at_once(batch):
            return
        self._run_each_in_a_savepoint(batch)

    def _run_at_once(self, batch: Sequence[tuple[Claim, CompiledWorkflow | None]]) -> bool:
        """The batch's runs in one transaction, without a savepoint each, their done marks
        written by one fenced executemany (FENCED_DONE) and their run log by one INSERT:
        whether it committed. Any failure — an action's, a lost lease (a fenced row not
        written), a database error — rolls all of it back and leaves the jobs as claimed, for
        `_run_each_in_a_savepoint` to run again, which records each run's own outcome. (Failures
        are rare; a savepoint per run costs two round trips each time.)"""
        deferred: list[Any] = []
        try:
            with self.connect() as conn:
                try:
                    with conn.begin():
                        marks: list[dict[str, Any]] = []
                        entries: list[dict[str, Any]] = []
                        rows = self._read_records(conn, batch)
                        for job, compiled in batch:
                            job.started = self.now()
                            status = self._perform(conn, job, compiled, deferred, rows)
                            self.outbox.flush(conn)
                            marks.append({"b_id": job.id, "b_attempt": job.attempt, "b_owner": job.worker,
                                          "b_status": status, "b_finished": self.now(),
                                          "b_progress": job.progress})
                            entries.append(self._entry(job, status, job.started, None))
                        written = conn.execute(FENCED_DONE, marks).rowcount
                        if written != len(marks):
                            raise LeaseLost(f"{len(marks) - written} jobs of the batch were taken over")
                        conn.execute(runs.insert(), entries)
                except Exception:
                    conn.info.pop(PENDING, None)
                    raise
        except Exception as error:  # run again one savepoint each, which records each outcome
            log.debug("a batch of %d workflow runs is run again one by one: %s", len(batch), error)
            for job, _compiled in batch:
                job.progress, job.outcomes, job.condition, job.started = dict(job.committed), [], None, None
            return False
        for call in deferred:
            _quietly(call)
        return True

    def _run_each_in_a_savepoint(self, batch: Sequence[tuple[Claim, CompiledWorkflow | None]]) -> None:
        failed: list[tuple[Claim, Exception]] = []
        entries: list[dict[str, Any]] = []
        deferred: list[Any] = []
        try:
            with self.connect() as conn, conn.begin():
                for job, compiled in batch:
                    job.started = self.now()
                    try:
                        with conn.begin_nested():
                            status = self._perform(conn, job, compiled, deferred)
                            self.outbox.flush(conn)
                            fence(conn, job, status=status, finished_at=self.now(), lease_until=None,
                                  progress=job.progress, last_error=None)
                        entries.append(self._entry(job, status, job.started, None))
                    except LeaseLost:
                        log.warning("job %s: lease lost, not committed by this worker", job.id)
                    except Exception as error:
                        conn.info.pop(PENDING, None)
                        failed.append((job, error))
                if entries:
                    conn.execute(runs.insert(), entries)
        except Exception:
            log.exception("a batch of workflow runs could not be committed; its jobs are retried")
            try:
                self.release([job for job, _ in batch])
            except Exception:
                log.exception("the claims could not be released either: they are due when their lease ends")
            return
        for call in deferred:
            _quietly(call)
        for job, problem in failed:
            self._fail(job, problem)

    def _run_alone(self, job: Claim, compiled: CompiledWorkflow | None) -> None:
        started = job.started = self.now()
        deferred: list[Any] = []
        try:
            with self.connect() as conn:
                conn.begin()
                try:
                    status = self._perform(conn, job, compiled, deferred)
                    self.outbox.flush(conn)
                    fence(conn, job, status=status, finished_at=self.now(), lease_until=None,
                          progress=job.progress, last_error=None)
                    conn.execute(runs.insert().values(self._entry(job, status, started, None)))
                    conn.commit()
                finally:
                    if conn.in_transaction():
                        conn.rollback()
        except LeaseLost:
            log.warning("job %s: lease lost, not committed by this worker", job.id)
            return
        except Exception as error:
            self._fail(job, error)
            return
        for call in deferred:
            _quietly(call)

    # --- one run -------------------------------------------------------------------------------
    def _perform(self, conn: sa.Connection, job: Claim, compiled: CompiledWorkflow | None,
                 deferred: list[Any], rows: dict[tuple[str, int], Any] | None = None) -> str:
        """The run's condition and actions on `conn` (in a transaction); its status. `rows`:
        the records read (and locked) for the runs of the transaction so far, by entity and
        id, shared with the writes of its runs (records service `preloaded`: an update takes
        its record's row from there, which it then leaves; a create or delete empties it)."""
        if compiled is None:
            job.outcomes.append({"status": "cancelled", "detail": f"workflow {job.workflow!r} is not active"})
            return "cancelled"
        if job.trigger in ("time", "schedule") and job.version != compiled.version:
            job.outcomes.append({"status": "cancelled",
                                 "detail": f"scheduled by version {job.version}; "
                                           f"version {compiled.version} is active"})
            return "cancelled"
        snapshot = self.records.full_snapshot()
        ce = snapshot.entities.get(job.entity)
        if ce is None:
            job.outcomes.append({"status": "cancelled", "detail": f"entity {job.entity!r} is gone"})
            return "cancelled"
        rows = {} if rows is None else rows
        record = self._record(conn, ce, job, rows)
        if record is None:
            job.outcomes.append({"status": "skipped",
                                 "detail": f"{job.entity} {job.record_id} no longer exists"})
            return "skipped"
        previous = None
        if job.trigger in CHANGE_TRIGGERS:
            previous = {**record}
            for name, (before, _after) in (job.event.get("changes") or {}).items():
                previous[name] = _from_json(ce, name, before)
        context = rule_hooks.context_for(conn, snapshot.entities, job.event.get("user"), previous)
        if compiled.condition is not None:
            job.condition = compiled.condition.holds(record, context)
            if not job.condition:
                return "skipped"
        conn.info[CHAIN] = (*job.chain, compiled.name)
        # No savepoint per write: a failing action ends the run, and what the run wrote since
        # its last commit is rolled back whole (its savepoint, or the batch's transaction).
        bound = self.records.bound(conn, savepoints=False, read_back=False)
        bound.preloaded = rows  # locked on PostgreSQL; SQLite's transaction holds the write lock
        run = RunContext(conn, bound, compiled, ce, job.record_id, record, previous, context, job.id,
                         job.trigger, job.event, self.now(), self.settings)
        try:
            for action in compiled.actions:
                key = str(action.index)
                if key in job.progress:
                    job.outcomes.append({"index": action.index, "kind": action.kind, "status": "done-before"})
                    continue
                definition = compiled.workflow.actions[action.index]
                external = action.kind not in DATABASE_ACTIONS
                if external:
                    # What is done so far is committed first (with the lease renewed), so a
                    # failure of this action cannot undo it, nor make it run again.
                    self.outbox.flush(conn)
                    fence(conn, job, progress=job.progress,
                          lease_until=self.now() + dt.timedelta(seconds=self.settings.lease_seconds))
                    conn.commit()
                    job.committed = dict(job.progress)
                began = time.perf_counter()
                try:
                    # A database action needs no savepoint of its own: its writes through the
                    # records service are each in one (service.py `transaction`), and a failure
                    # ends the run, whose transaction (or savepoint) is then rolled back whole.
                    detail = ACTIONS[action.kind](run, action, definition)
                except Exception as error:
                    job.outcomes.append({"index": action.index, "kind": action.kind, "status": "failed",
                                         "ms": _ms(began), "error": _message(error)})
                    raise
                outcome = {"index": action.index, "kind": action.kind, "status": "done", "ms": _ms(began),
                           "detail": detail}
                job.outcomes.append(outcome)
                job.progress[key] = {"at": self.now().isoformat(), "attempt": job.attempt}
                if external:
                    fence(conn, job, progress=job.progress)
                    conn.commit()
                    job.committed = dict(job.progress)
        finally:
            conn.info.pop(CHAIN, None)
        deferred.extend(bound.deferred or ())
        return "done"

    def _record(self, conn: sa.Connection, ce: Any, job: Claim,
                rows: dict[tuple[str, int], Any]) -> dict[str, Any] | None:
        if job.trigger == "deleted":
            values = job.event.get("values") or {}
            record = {name: _from_json(ce, name, values.get(name)) for name in ce.fields}
            record.update(id=job.record_id, owner=values.get("owner"), version=None)
            return record
        if job.record_id is None:
            return None
        # Locked (PostgreSQL) for the update its actions are likely to make, which then uses
        # this row instead of reading it again (`rows` is the bound service's `preloaded`).
        row = rows.get((ce.name, job.record_id))
        if row is None:
            query = _record_by_id(ce, locked=conn.dialect.name == "postgresql")
            row = conn.execute(query, {"b_record_id": job.record_id}).mappings().first()
            if row is None:
                return None
            rows[(ce.name, job.record_id)] = row
        record = {name: compiled.from_row(row) for name, compiled in ce.fields.items()}
        for name in ("id", "owner", "version", "created_at", "updated_at", "created_by", "updated_by"):
            if name in row:
                record[name] = row[name]
        return record

    def _read_records(self, conn: sa.Connection, batch: Sequence[tuple[Claim, CompiledWorkflow | None]]
                      ) -> dict[tuple[str, int], Any]:
        """The records of a batch's runs, read (and locked on PostgreSQL, in id order) with one
        statement per entity instead of one per run."""
        snapshot = self.records.full_snapshot()
        wanted: dict[str, set[int]] = {}
        for job, compiled in batch:
            if compiled is not None and job.record_id is not None and job.trigger != "deleted":
                wanted.setdefault(job.entity, set()).add(job.record_id)
        rows: dict[tuple[str, int], Any] = {}
        for entity, ids in wanted.items():
            ce = snapshot.entities.get(entity)
            if ce is None:
                continue
            query = _records_by_ids(ce, locked=conn.dialect.name == "postgresql")
            for row in conn.execute(query, {"b_record_ids": sorted(ids)}).mappings():
                rows[(entity, row["id"])] = row
        return rows

    # --- failures ----------------------------------------------------------------------------
    def _fail(self, job: Claim, error: Exception) -> None:
        """Back to pending, later; or dead when its attempts are spent or it cannot succeed."""
        if isinstance(error, LeaseLost):
            return
        retryable = getattr(error, "retryable", True)
        now = self.now()
        dead = not retryable or job.attempt >= self.settings.backoff.attempts
        message = _message(error)
        if not isinstance(error, ActionFailed | LeaseLost) and not hasattr(error, "retryable"):
            log.warning("workflow %s, job %s, attempt %s failed: %s", job.workflow, job.id, job.attempt,
                        message)
        values: dict[str, Any] = {"progress": job.committed, "last_error": message, "lease_until": None}
        if dead:
            values.update(status="dead", finished_at=now)
        else:
            values.update(status="pending",
                          due_at=now + dt.timedelta(seconds=self.settings.backoff.delay(job.attempt)))
        started = job.started or now
        try:
            with self.connect() as conn, conn.begin():
                fence(conn, job, **values)
                conn.execute(runs.insert().values(self._entry(job, "dead" if dead else "failed", started,
                                                              message)))
        except LeaseLost:
            log.warning("job %s: lease lost before its failure was recorded", job.id)

    def _entry(self, job: Claim, status: str, started: dt.datetime, error: str | None) -> dict[str, Any]:
        return {"job_id": job.id, "workflow": job.workflow, "version": job.version, "entity": job.entity,
                "record_id": job.record_id, "trigger": job.trigger, "attempt": job.attempt, "status": status,
                "condition": job.condition, "actions": job.outcomes, "error": error, "worker": self.worker,
                "triggered_at": job.created_at, "started_at": started, "finished_at": self.now()}


#: A compiled entity's "the record with this id" and "the records with these ids" statements
#: (by the entity's identity; a new revision compiles new entities): built once, not at each
#: run, whose cost it was a tenth of.
_BY_ID: dict[int, tuple[Any, sa.Select[Any], sa.Select[Any], sa.Select[Any], sa.Select[Any]]] = {}


def _statements(ce: Any) -> tuple[Any, sa.Select[Any], sa.Select[Any], sa.Select[Any], sa.Select[Any]]:
    found = _BY_ID.get(id(ce))
    if found is None or found[0] is not ce:
        if len(_BY_ID) >= 512:
            _BY_ID.clear()
        one = ce.select.where(ce.table.c.id == sa.bindparam("b_record_id"))
        many = ce.select.where(ce.table.c.id.in_(sa.bindparam("b_record_ids", expanding=True))
                               ).order_by(ce.table.c.id)
        found = _BY_ID[id(ce)] = (ce, one, one.with_for_update(), many, many.with_for_update())
    return found


def _record_by_id(ce: Any, *, locked: bool) -> sa.Select[Any]:
    return _statements(ce)[2 if locked else 1]


def _records_by_ids(ce: Any, *, locked: bool) -> sa.Select[Any]:
    return _statements(ce)[4 if locked else 3]


def _from_json(ce: Any, name: str, value: Any) -> Any:
    compiled = ce.fields.get(name)
    if compiled is None or value is None:
        return value
    try:
        return compiled.type.coerce(value, compiled.field)
    except Exception:
        return None


def _ms(began: float) -> float:
    return round((time.perf_counter() - began) * 1000, 2)


def _message(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 2000 else text[:2000] + "…"


def _quietly(call: Any) -> None:
    try:
        call()
    except Exception:
        log.exception("after-commit work of a workflow run failed")


def replay(conn: sa.Connection, job_ids: Sequence[int], now: dt.datetime) -> int:
    """Dead (or cancelled) jobs made due again, with fresh attempts; the actions their
    progress lists as done stay done. How many were replayed."""
    if not job_ids:
        return 0
    done = conn.execute(jobs.update().where(jobs.c.id.in_(list(job_ids)), jobs.c.status.in_(("dead",
                                                                                             "cancelled")))
                        .values(status="pending", due_at=now, attempts=0, finished_at=None, lease_owner=None,
                                lease_until=None, dedupe_key=None))
    return int(done.rowcount or 0)


def purge(conn: sa.Connection, now: dt.datetime, keep_days: float) -> tuple[int, int]:
    """Finished jobs (done, skipped, cancelled) and runs older than `keep_days` deleted: the
    queue and the log do not grow without end. Dead jobs (and their runs' jobs) stay until an
    administrator replays them. How many jobs and runs went."""
    before = now - dt.timedelta(days=keep_days)
    gone_jobs = conn.execute(jobs.delete().where(jobs.c.status.in_(("done", "skipped", "cancelled")),
                                                 jobs.c.finished_at < before))
    gone_runs = conn.execute(runs.delete().where(runs.c.finished_at < before))
    return int(gone_jobs.rowcount or 0), int(gone_runs.rowcount or 0)
