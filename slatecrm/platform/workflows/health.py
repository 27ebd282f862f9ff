"""The workflows' health, as `slatecrm worker --check` and `slatecrm workflow list` show it:
the registrations of the time and schedule workflows (schedules.py), the stray ones, the
workers alive, the queue (pending, due, dead jobs; those still in the outbox count as pending
and due) and the back-off's total.

Unhealthy: a time or schedule workflow whose registration is missing or names another
version, a registration of a workflow that is not active, or jobs due with no worker alive
to run them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..records.snapshot import Snapshot
from ..storage import system
from . import outbox, schedules
from .settings import Backoff

jobs, workers = system.workflow_jobs, system.workflow_workers
#: A worker notes itself alive every 5 seconds while it runs (worker.py `run_forever`); one
#: not seen for this long is taken for gone.
ALIVE_SECONDS = 60.0


@dataclass(frozen=True)
class WorkerSeen:
    name: str
    started_at: dt.datetime
    seen_at: dt.datetime
    jobs_done: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "started_at": self.started_at.isoformat(),
                "seen_at": self.seen_at.isoformat(), "jobs_done": self.jobs_done}


@dataclass
class Health:
    registrations: list[schedules.Registration]
    stray: list[str]
    workers: list[WorkerSeen]
    #: workers noted once but not seen for ALIVE_SECONDS (stopped without signing off)
    gone: list[WorkerSeen]
    pending: int
    due: int
    dead: int
    backoff: Backoff
    #: of `pending` and `due`, the jobs still in the outbox (a worker moves them to the queue)
    in_outbox: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy, "problems": self.problems,
            "registrations": [{"workflow": r.workflow, "trigger": r.trigger, "version": r.version,
                               "registered": r.registered, "healthy": r.healthy,
                               "next_at": r.next_at.isoformat() if r.next_at else None}
                              for r in self.registrations],
            "stray": self.stray,
            "workers": [w.as_dict() for w in self.workers],
            "gone_workers": [w.as_dict() for w in self.gone],
            "jobs": {"pending": self.pending, "due": self.due, "dead": self.dead,
                     "in_outbox": self.in_outbox},
            "backoff": {"attempts": self.backoff.attempts, "base_seconds": self.backoff.base_seconds,
                        "factor": self.backoff.factor, "max_seconds": self.backoff.max_seconds,
                        "total_seconds": self.backoff.total_seconds()},
        }


def health(conn: sa.Connection, snapshot: Snapshot, now: dt.datetime, backoff: Backoff) -> Health:
    registrations = schedules.registrations(conn, snapshot)
    stray = list(schedules.stray(conn, snapshot))
    seen = [WorkerSeen(r.name, r.started_at, r.seen_at, int(r.jobs_done))
            for r in conn.execute(sa.select(workers).order_by(workers.c.name)).all()]
    cutoff = now - dt.timedelta(seconds=ALIVE_SECONDS)
    alive = [w for w in seen if w.seen_at >= cutoff]
    gone = [w for w in seen if w.seen_at < cutoff]
    counts: dict[str, int] = dict(conn.execute(
        sa.select(jobs.c.status, sa.func.count()).where(jobs.c.status.in_(("pending", "dead")))
        .group_by(jobs.c.status)).all())
    due = int(conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
        jobs.c.status == "pending", jobs.c.due_at <= now)).scalar_one())
    queued = outbox.waiting(conn)  # in the outbox: pending and due, not yet in the queue
    found = Health(registrations, stray, alive, gone, int(counts.get("pending", 0)) + queued, due + queued,
                   int(counts.get("dead", 0)), backoff, queued)
    found.problems = _problems(found)
    return found


def _problems(found: Health) -> list[str]:
    problems = []
    for r in found.registrations:
        if r.registered is None:
            problems.append(f"{r.trigger} workflow {r.workflow} (version {r.version}) is not registered")
        elif not r.healthy:
            problems.append(f"{r.trigger} workflow {r.workflow}: version {r.registered} is registered, "
                            f"version {r.version} is active")
    problems += [f"workflow {name} is registered but not active" for name in found.stray]
    if found.due and not found.workers:
        problems.append(f"{found.due} job(s) due and no worker alive (none seen in the last "
                        f"{ALIVE_SECONDS:g} s)")
    return problems


def counts_by_workflow(conn: sa.Connection, names: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
    """workflow → {status: jobs} (pending, running, dead)."""
    query = (sa.select(jobs.c.workflow, jobs.c.status, sa.func.count())
             .where(jobs.c.status.in_(("pending", "running", "dead")))
             .group_by(jobs.c.workflow, jobs.c.status))
    if names is not None:
        query = query.where(jobs.c.workflow.in_(list(names)))
    out: dict[str, dict[str, int]] = {}
    for workflow, status, count in conn.execute(query).all():
        out.setdefault(workflow, {})[status] = int(count)
    return out
