"""`slatecrm worker` and `slatecrm workflow …`: running workflows' jobs, their health, their
run log, their dead jobs and their secrets (docs/workflows.md).

`slatecrm worker` runs a worker (platform/workflows/worker.py) until SIGTERM or SIGINT: the
signal sets its stop event, the batch it is running is finished, and it signs off. Any
number of worker processes may run over one PostgreSQL database (claims are exclusive);
over SQLite, workers on one machine.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import click
import sqlalchemy as sa
from rich.markup import escape
from rich.table import Table

from .cli import (
    EXIT_INVALID,
    EXIT_USAGE,
    database_option,
    engine_for,
    fail,
    json_option,
    main,
    out,
    plugins,
    reported,
)
from .records.service import RecordsService
from .storage import revisions as revision_store
from .storage import system
from .storage.upgrades import check_current
from .workflows import health as workflow_health
from .workflows.registry import active_workflows
from .workflows.settings import ExecutionSettings

log = logging.getLogger("slatecrm.worker")

#: The secret an inbound webhook of workflow <name> is signed with (web/workflow_hooks.py).
INBOUND_SECRET = "workflow-inbound:{}"
#: The prefix of an outgoing webhook action's signing secret (workflows/actions.py).
OUTGOING_PREFIX = "webhook:"


def hook_path(name: str) -> str:
    return f"/hooks/workflows/{name}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _service(database: str | None) -> tuple[sa.Engine, RecordsService]:
    """The engine and a records service (with the outbox) over an initialised, current database."""
    from .cli import field_types
    from .services import records_service

    engine = engine_for(database)
    with engine.connect() as conn:
        revision_store.current(conn)
        check_current(conn, field_types())
    return engine, records_service(engine, plugins())


def _settings(as_json: bool, **overrides: Any) -> ExecutionSettings:
    try:
        return ExecutionSettings.from_environment(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as error:
        fail(EXIT_USAGE, str(error), as_json)


def _table(*columns: str) -> Table:
    """A table whose long names wrap rather than end in an ellipsis."""
    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


# --- worker -------------------------------------------------------------------------------
@main.command("worker")
@database_option
@click.option("--once", is_flag=True, help="run the jobs that are due until none is left, then stop")
@click.option("--batch", type=click.IntRange(1, 10_000), default=None, metavar="N",
              help="jobs claimed at once (default: 50)")
@click.option("--poll", type=click.FloatRange(0.01, 3600), default=None, metavar="SECONDS",
              help="how long an idle worker waits before looking again (default: 0.2)")
@click.option("--check", is_flag=True,
              help="print the workflows' health and exit (1: unhealthy); runs nothing")
@json_option
def worker(database: str | None, once: bool, batch: int | None, poll: float | None, check: bool,
           as_json: bool) -> None:
    """Run workflow jobs until SIGTERM or SIGINT (the current batch is finished first).

    At start the registrations of time and schedule workflows are reconciled with the current
    revision and logged. Several workers may run at once (PostgreSQL: on several machines)."""
    from .workflows import schedules
    from .workflows.worker import Worker, reconcile

    if once and check:
        fail(EXIT_USAGE, "--once and --check go alone", as_json)
    settings = _settings(as_json, batch=batch, poll_seconds=poll)
    with reported(as_json):
        engine, records = _service(database)
        if check:
            with engine.connect() as conn:
                found = workflow_health.health(conn, records.full_snapshot(), _now(), settings.backoff)
    if check:
        _print_health(found, as_json)
        sys.exit(0 if found.healthy else 1)
    if once:
        with reported(as_json):
            running = Worker(engine, records, settings)
            try:
                ran = running.run_until_idle()
            finally:
                running.forget()
        if as_json:
            out.print_json(json.dumps({"ok": True, "jobs": ran}))
        else:
            out.print(f"Ran {ran} job(s)")
        return
    _log_to_stderr()
    with reported(as_json):
        running = Worker(engine, records, settings)
        changes = reconcile(engine, records, _now())
        with engine.connect() as conn:
            registered = schedules.registrations(conn, records.full_snapshot())
    if not changes:
        log.info("workflows: the registrations match the current revision")
    for registration in registered:
        log.info("workflows: %s workflow %s version %s registered %s, next %s", registration.trigger,
                 registration.workflow, registration.version,
                 "✓" if registration.healthy else f"✗ ({registration.registered})",
                 registration.next_at.isoformat() if registration.next_at else "-")
    stop = threading.Event()
    stop_on_signals(stop)
    log.info("worker %s started (batch %d, poll %g s); SIGTERM or Ctrl-C stops it after its current batch",
             running.name, settings.batch, settings.poll_seconds)
    running.run_forever(stop)
    log.info("worker %s stopped after %d job(s)", running.name, running.done)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop`; a second one stops at once."""

    def handle(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise SystemExit(128 + signum)
        log.info("%s: stopping after the current batch", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)


def _log_to_stderr() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    else:
        root.setLevel(min(root.level or logging.INFO, logging.INFO))


def _print_health(found: workflow_health.Health, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps({"ok": found.healthy, **found.as_dict()}))
        return
    out.print("[green]healthy[/green]" if found.healthy else "[red]unhealthy[/red]")
    for problem in found.problems:
        out.print(f"  [red]✗[/red] {escape(problem)}")
    if found.registrations:
        table = _table("workflow", "trigger", "active version", "registered", "next")
        for r in found.registrations:
            table.add_row(escape(r.workflow), r.trigger, r.version,
                          ("✓ " if r.healthy else "✗ ") + (r.registered or "none"), _when(r.next_at))
        out.print(table)
    else:
        out.print("No time or schedule workflows.")
    if found.stray:
        out.print(f"Stray registrations: {escape(', '.join(found.stray))}")
    out.print(f"Workers alive: {len(found.workers)}" +
              "".join(f"\n  {escape(w.name)} since {_when(w.started_at)}, last seen {_when(w.seen_at)}, "
                      f"{w.jobs_done} job(s)" for w in found.workers))
    if found.gone:
        out.print(f"Workers not seen for {workflow_health.ALIVE_SECONDS:g} s: "
                  f"{escape(', '.join(w.name for w in found.gone))}")
    out.print(f"Jobs: {found.pending} pending ({found.due} due, {found.in_outbox} of them in the outbox), "
              f"{found.dead} dead")
    b = found.backoff
    out.print(f"Back-off: {b.attempts} attempts, {b.base_seconds:g} s doubling up to {b.max_seconds:g} s: "
              f"a failing job is retried for {b.total_seconds():g} s ({b.total_seconds() / 3600:.1f} h) "
              "before it is dead")


# --- workflow -------------------------------------------------------------------------------
@click.group("workflow")
def workflow() -> None:
    """List workflows, their runs and dead jobs; replay dead jobs; show webhook secrets."""


@workflow.command("list")
@database_option
@json_option
def workflow_list(database: str | None, as_json: bool) -> None:
    """Every workflow of the current revision, with its registration and its jobs."""
    backoff = _settings(as_json).backoff
    with reported(as_json):
        engine, records = _service(database)
        snapshot = records.full_snapshot()
        active = active_workflows(snapshot)
        with engine.connect() as conn:
            found = workflow_health.health(conn, snapshot, _now(), backoff)
            counts = workflow_health.counts_by_workflow(conn)
    registered = {r.workflow: r for r in found.registrations}
    items: list[dict[str, Any]] = []
    for definition in snapshot.metamodel.workflows:
        compiled = active.by_name.get(definition.name)
        registration = registered.get(definition.name)
        next_at = registration.next_at if registration is not None else None
        kind = definition.trigger.kind
        state = "inactive" if compiled is None else "ok"
        if registration is not None and not registration.healthy:
            state = "not registered" if registration.registered is None else \
                f"version {registration.registered} registered"
        items.append({"name": definition.name, "entity": definition.entity, "trigger": kind,
                      "active": compiled is not None, "version": compiled.version if compiled else None,
                      "health": state, "pack": definition.pack,
                      "next_at": next_at.isoformat() if next_at else None,
                      "jobs": counts.get(definition.name, {}),
                      **({"path": hook_path(definition.name)} if kind == "webhook" else {})})
    if as_json:
        out.print_json(json.dumps({"ok": found.healthy, "workflows": items, "stray": found.stray,
                                   "problems": found.problems}))
        return
    if not items:
        out.print("No workflows.")
    else:
        table = _table("workflow", "entity", "trigger", "health", "pending", "running", "dead", "pack")
        for item in items:
            jobs = item["jobs"]
            state = item["health"]
            colour = "green" if state == "ok" else "dim" if state == "inactive" else "red"
            table.add_row(escape(item["name"]), escape(item["entity"]), item["trigger"],
                          f"[{colour}]{escape(state)}[/{colour}]", str(jobs.get("pending", 0)),
                          str(jobs.get("running", 0)), str(jobs.get("dead", 0)), escape(item["pack"]))
        out.print(table)
    for problem in found.problems:
        out.print(f"[red]✗[/red] {escape(problem)}")


@workflow.command("runs")
@database_option
@click.option("--workflow", "name", default=None, metavar="NAME", help="only this workflow's")
@click.option("--status", default=None,
              type=click.Choice(["done", "failed", "dead", "skipped", "cancelled", "silenced"]),
              help="only runs that ended so")
@click.option("--record", "record_id", type=int, default=None, metavar="ID", help="only runs on this record")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
def workflow_runs(database: str | None, name: str | None, status: str | None, record_id: int | None,
                  limit: int, as_json: bool) -> None:
    """The most recent runs (attempts), newest first."""
    runs = system.workflow_runs
    query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
    if name is not None:
        query = query.where(runs.c.workflow == name)
    if status is not None:
        query = query.where(runs.c.status == status)
    if record_id is not None:
        query = query.where(runs.c.record_id == record_id)
    with reported(as_json), engine_for(database).connect() as conn:
        revision_store.current(conn)
        rows = conn.execute(query).all()
    if as_json:
        out.print_json(json.dumps([{
            "id": r.id, "job_id": r.job_id, "workflow": r.workflow, "version": r.version, "entity": r.entity,
            "record_id": r.record_id, "trigger": r.trigger, "attempt": r.attempt, "status": r.status,
            "condition": r.condition, "actions": r.actions, "error": r.error, "worker": r.worker,
            "triggered_at": r.triggered_at.isoformat(), "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat()} for r in rows], default=str))
        return
    if not rows:
        out.print("No runs.")
        return
    table = _table("run", "job", "workflow", "record", "trigger", "attempt", "status", "finished", "error")
    for r in rows:
        table.add_row(str(r.id), str(r.job_id or ""), escape(r.workflow), f"{r.entity} {r.record_id or ''}",
                      r.trigger, str(r.attempt), r.status, _when(r.finished_at),
                      escape((r.error or "")[:120]))
    out.print(table)


def _dead_query(name: str | None) -> sa.Select[Any]:
    jobs = system.workflow_jobs
    query = sa.select(jobs).where(jobs.c.status == "dead").order_by(jobs.c.id)
    return query if name is None else query.where(jobs.c.workflow == name)


@workflow.command("dead")
@database_option
@click.option("--workflow", "name", default=None, metavar="NAME", help="only this workflow's")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@json_option
def workflow_dead(database: str | None, name: str | None, limit: int, as_json: bool) -> None:
    """Dead jobs (their attempts spent, or failed for good), oldest first: replay them with
    `slatecrm workflow retry`."""
    with reported(as_json), engine_for(database).connect() as conn:
        revision_store.current(conn)
        rows = conn.execute(_dead_query(name).limit(limit)).all()
    if as_json:
        out.print_json(json.dumps([{
            "id": r.id, "workflow": r.workflow, "version": r.version, "entity": r.entity,
            "record_id": r.record_id, "trigger": r.trigger, "attempts": r.attempts,
            "created_at": r.created_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "error": r.last_error} for r in rows]))
        return
    if not rows:
        out.print("No dead jobs.")
        return
    table = _table("job", "workflow", "record", "trigger", "attempts", "died", "error")
    for r in rows:
        table.add_row(str(r.id), escape(r.workflow), f"{r.entity} {r.record_id or ''}", r.trigger,
                      str(r.attempts), _when(r.finished_at), escape((r.last_error or "")[:160]))
    out.print(table)


@workflow.command("retry")
@click.argument("job_ids", nargs=-1, type=int, metavar="[ID]...")
@click.option("--workflow", "name", default=None, metavar="NAME", help="every dead job of this workflow")
@database_option
@json_option
def workflow_retry(job_ids: Sequence[int], name: str | None, database: str | None, as_json: bool) -> None:
    """Replay dead (or cancelled) jobs: due now, with fresh attempts; the actions a job did
    before stay done. Give job ids, or --workflow NAME for all of its dead jobs. All or
    nothing: an id that is not a dead or cancelled job refuses the whole command."""
    from .workflows.jobs import replay

    if bool(job_ids) == (name is not None):
        fail(EXIT_USAGE, "give job ids or --workflow NAME (one of the two)", as_json)
    jobs = system.workflow_jobs
    with reported(as_json), \
            engine_for(database).connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        revision_store.current(conn)
        if name is not None:
            ids = [int(i) for i in conn.execute(sa.select(jobs.c.id).where(
                jobs.c.status == "dead", jobs.c.workflow == name).order_by(jobs.c.id)).scalars()]
        else:
            ids = sorted(set(job_ids))
            found = dict(conn.execute(sa.select(jobs.c.id, jobs.c.status)
                                      .where(jobs.c.id.in_(ids))).all())
            wrong = [f"{i} ({found[i]})" if i in found else f"{i} (no such job)" for i in ids
                     if found.get(i) not in ("dead", "cancelled")]
            if wrong:
                fail(EXIT_INVALID, f"not dead or cancelled: {', '.join(wrong)}; nothing was replayed",
                     as_json)
        replayed = replay(conn, ids, _now())
    if as_json:
        out.print_json(json.dumps({"ok": True, "replayed": replayed, "ids": ids}))
    elif replayed:
        out.print(f"Replayed {replayed} job(s): {', '.join(str(i) for i in ids)}; a worker runs them now")
    else:
        out.print(f"No dead jobs of workflow {escape(name or '')}")


@workflow.command("secret")
@click.argument("name")
@database_option
@json_option
def workflow_secret(name: str, database: str | None, as_json: bool) -> None:
    """The inbound webhook address and secret of workflow NAME (trigger kind webhook), or,
    for `webhook:<secret>`, the secret an outgoing webhook action signs with. Made (once,
    kept in the database) when missing; printed in hex."""
    with reported(as_json):
        _engine, records = _service(database)
        if name.startswith(OUTGOING_PREFIX):
            if not name[len(OUTGOING_PREFIX):]:
                fail(EXIT_USAGE, "write webhook:<name>, the `secret` of a webhook action", as_json)
            secret = records.secrets.get(name)
            result: dict[str, Any] = {"name": name, "secret": secret.hex()}
        else:
            workflows = records.full_snapshot().metamodel.workflows
            definition = next((w for w in workflows if w.name == name), None)
            if definition is None or definition.trigger.kind != "webhook":
                fail(EXIT_INVALID, f"there is no workflow {name!r} with a webhook trigger (for an outgoing "
                                   "webhook action's secret, write webhook:<its secret name>)", as_json)
            secret = records.secrets.get(INBOUND_SECRET.format(name))
            result = {"workflow": name, "path": hook_path(name), "secret": secret.hex(),
                      "active": definition.active}
    if as_json:
        out.print_json(json.dumps({"ok": True, **result}))
        return
    if "path" in result:
        inactive = "" if result["active"] else "  (the workflow is inactive: 404 until it is active)"
        out.print(f"POST {result['path']}{inactive}")
    out.print(f"secret {result['secret']}")


main.add_command(workflow)
