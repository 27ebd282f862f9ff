"""Workflows over HTTP (JSON): the revision's workflows and their health, the run log, the
jobs (dead letters among them) and their bulk retry, for holders of the right to manage the
metamodel (workflows are metamodel definitions); a record's own runs for anyone who may read
the record; and manual runs, for anyone who may update the records (workflows/console.py
checks them). Refusals are problem+json like the rest of the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.digits import RECORD_ID_MAX

from ..identity import audit
from ..records import bulk
from ..records.errors import BadQuery
from ..workflows import console
from .api import Answer, answer, body_object, service
from .rights import checked_right, principal_of

#: Who may see every workflow's runs and jobs and replay dead ones: workflows are metamodel.
RIGHT = "manage_metamodel"


def now(request: Request) -> dt.datetime:
    clock = getattr(request.app.state.auth, "clock", None)
    return clock() if clock is not None else dt.datetime.now(dt.UTC)


def _next(request: Request, rows: console.Rows) -> dict[str, Any]:
    out: dict[str, Any] = {"next": None}
    if rows.next_cursor:
        out["next"] = str(request.url.include_query_params(after=rows.next_cursor))
        out["next_cursor"] = rows.next_cursor
    return out


def _with_labels(rows: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [{**r, "label": labels.get(r["workflow"], r["workflow"])} for r in rows]


async def list_workflows(request: Request) -> Response:
    await checked_right(request, RIGHT)
    records = service(request)
    clock = now(request)

    def work() -> Answer:
        with records.reading() as reader:
            infos = console.overview(reader.conn, records.full_snapshot())
            alive = console.workers(reader.conn, clock)
        return {"data": [i.as_json() for i in infos], "workers": [w.as_json() for w in alive]}, {}

    return await answer(request, work)


async def list_runs(request: Request) -> Response:
    return await _listing(request, console.RUN_STATUSES, console.runs)


async def list_jobs(request: Request) -> Response:
    return await _listing(request, console.JOB_STATUSES, console.jobs)


async def _listing(request: Request, statuses: Sequence[str], read: Any) -> Response:
    """A page of runs or jobs (`read(conn, query)`), filtered by the query's parameters."""
    await checked_right(request, RIGHT)
    records = service(request)
    query = console.parse(request.query_params.multi_items(), statuses)

    def work() -> Answer:
        with records.reading() as reader:
            page = read(reader.conn, query)
        labels = console.labels(records.full_snapshot())
        return {"data": _with_labels(page.rows, labels), **_next(request, page)}, {}

    return await answer(request, work)


def record_ids(value: Any, key: str = "ids", cap: int = RECORD_ID_MAX) -> list[int]:
    """A JSON list of record ids (whole numbers from 1), refused by name otherwise."""
    if not isinstance(value, list) or not value:
        raise BadQuery({key: ["give a non-empty list of ids"]})
    wrong = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= cap]
    if wrong:
        raise BadQuery({key: [f"{str(wrong[0])[:40]} is not an id (a whole number from 1 to {cap})"]})
    return [int(v) for v in value]


def retry_request(body: dict[str, Any]) -> tuple[list[int], str | None]:
    """`{"ids": [...]}` or `{"workflow": name}`, not both, nothing else."""
    unknown = sorted(set(body) - {"ids", "workflow"})
    if unknown:
        raise BadQuery({unknown[0]: ["is not a key of a retry: give ids or workflow"]})
    if ("ids" in body) == ("workflow" in body):
        raise BadQuery({"": ["give either ids (the jobs to retry) or workflow (all its dead jobs)"]})
    if "workflow" in body:
        name = body["workflow"]
        if not isinstance(name, str) or not name.strip() or "\x00" in name:
            raise BadQuery({"workflow": ["give a workflow's name"]})
        return [], name
    ids = record_ids(body["ids"])
    if len(ids) > console.RETRY_MAX:
        raise BadQuery({"ids": [f"{len(ids)} ids; at most {console.RETRY_MAX} at once"]})
    return ids, None


def do_retry(request: Request, ids: Sequence[int], workflow: str | None, at: dt.datetime) -> int:
    """The replay and its audit event, in one transaction (off the event loop)."""
    engine = request.app.state.engine
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        count = console.retry(conn, at, ids=ids, workflow=workflow)
        audit.record(conn, "workflow.retry", principal=principal_of(request),
                     address=request.client.host if request.client else None, object_kind="workflow",
                     object_id=workflow,
                     detail={"ids": list(ids)[:100], "workflow": workflow, "retried": count})
    return count


async def retry(request: Request) -> Response:
    await checked_right(request, RIGHT)  # before the body is read
    ids, workflow = retry_request(await body_object(request))
    at = now(request)
    return await answer(request, lambda: ({"retried": do_retry(request, ids, workflow, at)}, {}))


async def record_runs(request: Request) -> Response:
    records = service(request)
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    params = list(request.query_params.multi_items())
    wrong = [k for k, _ in params if k in ("entity", "record_id")]
    if wrong:
        raise console.InvalidFilter({wrong[0]: ["is given by the path"]})
    query = console.parse(params, console.RUN_STATUSES)

    def work() -> Answer:
        page = console.record_runs(records, entity, record_id, query)
        labels = console.labels(records.full_snapshot())
        return {"data": _with_labels(page.rows, labels), **_next(request, page)}, {}

    return await answer(request, work)


def _started(entity: str, name: str, ids: list[int], job_ids: list[int]) -> dict[str, Any]:
    return {"workflow": name, "entity": entity, "record_ids": list(dict.fromkeys(ids)), "job_ids": job_ids}


async def run_one(request: Request) -> Response:
    records = service(request)
    entity, record_id, name = (request.path_params["entity"], request.path_params["id"],
                               request.path_params["name"])
    at = now(request)
    return await answer(request, lambda: (_started(entity, name, [record_id], console.start(
        records, entity, name, [record_id], at)), {}), 202)


async def run_many(request: Request) -> Response:
    records = service(request)
    entity, name = request.path_params["entity"], request.path_params["name"]
    body = await body_object(request)
    unknown = sorted(set(body) - {"ids"})
    if unknown:
        raise BadQuery({unknown[0]: ["is not a key of a manual run: give ids"]})
    ids = record_ids(body.get("ids"))
    bulk.check_size(records, len(ids))
    at = now(request)
    return await answer(request, lambda: (_started(entity, name, ids, console.start(
        records, entity, name, ids, at)), {}), 202)


routes = [
    Route("/api/v1/workflows", list_workflows, methods=["GET"]),
    Route("/api/v1/workflow-runs", list_runs, methods=["GET"]),
    Route("/api/v1/workflow-jobs", list_jobs, methods=["GET"]),
    Route("/api/v1/workflow-jobs/retry", retry, methods=["POST"]),
    Route("/api/v1/records/{entity}/{id:recordid}/workflow-runs", record_runs, methods=["GET"]),
    Route("/api/v1/records/{entity}/{id:recordid}/workflows/{name}/run", run_one, methods=["POST"]),
    Route("/api/v1/records/{entity}/workflows/{name}/run", run_many, methods=["POST"]),
]
