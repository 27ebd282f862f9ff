"""Workflow pages: the administrator's `/admin/workflows` (each workflow's health and the
workers), `/admin/workflows/runs` (the run log with filters, keyset pages) and
`/admin/workflows/dead` (dead jobs, retried one by one, selected or all of a workflow), all
needing the right of web/workflows_api.py; and what a record page's Automation panel shows
(its manual run is posted to web/record_pages.py `run_workflow`). The JSON twins hold what
the pages show."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from slatecrm.digits import RECORD_ID_MAX, parse_digits

from ..records.errors import ValidationFailed
from ..records.service import RecordsService
from ..workflows import console
from .jsonresponse import JSONResponse
from .pinning import records_of
from .rights import checked_right
from .templating import render, wants_json
from .uicontext import base_context
from .workflows_api import RIGHT, do_retry, now

#: Runs shown in a record's Automation panel.
PANEL_RUNS = 10
PAGE_SIZE = 50
#: The parameters of a page that are not filters (a flash after a redirect).
FLASH = ("retried",)


def shown_run(run: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """A run as the pages show it: with its workflow's label, and its error only when no action
    says it already (a failed action's error is the run's, most of the time)."""
    said = {a.get("error") for a in run.get("actions") or [] if isinstance(a, dict)}
    return {**run, "label": labels.get(run["workflow"], run["workflow"]),
            "own_error": run.get("error") if run.get("error") not in said else None}


def automation(records: RecordsService, entity: str, record_id: int) -> dict[str, Any]:
    """What a record page's Automation panel shows: the record's latest runs (actions'
    details only for a user who sees every field) and the manual workflows the user may run.
    Read on the request's connection, after the record itself (which was readable)."""
    snapshot = records.full_snapshot()
    labels = console.labels(snapshot)
    with records.reading() as reader:
        page = console.runs(reader.conn, console.Query(entity=entity, record_id=record_id, limit=PANEL_RUNS))
    rows = page.rows
    if not console.sees_every_field(records, entity):
        rows = [console.without_details(r) for r in rows]
    buttons = [{"name": w.name, "label": w.workflow.label, "description": w.workflow.description}
               for w in console.runnable(records, entity)]
    return {"runs": [shown_run(r, labels) for r in rows],
            "more": page.next_cursor is not None, "buttons": buttons}


def _filters(request: Request) -> list[tuple[str, str]]:
    # An HTML form sends its empty inputs: they filter nothing.
    return [(k, v) for k, v in request.query_params.multi_items() if v.strip() and k not in FLASH]


async def overview_page(request: Request) -> Response:
    await checked_right(request, RIGHT)
    records = records_of(request)
    clock = now(request)

    def read() -> tuple[list[console.WorkflowInfo], list[console.WorkerInfo]]:
        with records.reading() as reader:
            return console.overview(reader.conn, records.full_snapshot()), console.workers(reader.conn, clock)

    infos, workers = await run_in_threadpool(read)
    context = await base_context(request, title="Workflows")
    twin = {"data": [i.as_json() for i in infos], "workers": [w.as_json() for w in workers]}
    return render(request, "workflows", {**context, "workflows": infos, "workers": workers,
                                         "alive_seconds": console.ALIVE_SECONDS}, twin=twin)


async def _listing(request: Request, statuses: tuple[str, ...], *, title: str, page_name: str,
                   fixed: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> Response:
    await checked_right(request, RIGHT)
    records = records_of(request)
    errors: dict[str, list[str]] = {}
    params = [(k, v) for k, v in _filters(request) if k not in (fixed or {})]
    try:
        query = console.parse([*params, *(fixed or {}).items()], statuses,
                              defaults=console.Query(limit=PAGE_SIZE))
    except console.InvalidFilter as error:
        errors, query = error.errors, None

    def read() -> tuple[console.Rows, dict[str, str]]:
        labels = console.labels(records.full_snapshot())
        if query is None:
            return console.Rows([], None), labels
        listed = console.jobs if page_name == "workflow_dead" else console.runs
        with records.reading() as reader:
            return listed(reader.conn, query), labels

    rows, labels = await run_in_threadpool(read)
    shown = [shown_run(r, labels) if page_name == "workflow_runs" else
             {**r, "label": labels.get(r["workflow"], r["workflow"])} for r in rows.rows]
    context = await base_context(request, title=title)
    twin = {"data": shown, "next_cursor": rows.next_cursor, "errors": errors}
    names = sorted(labels)
    return render(request, page_name, {**context, "rows": shown, "next_cursor": rows.next_cursor,
                                       "errors": errors, "params": request.query_params, "statuses": statuses,
                                       "workflow_names": names, **(extra or {})},
                  twin=twin, status=422 if errors else 200)


async def runs_page(request: Request) -> Response:
    return await _listing(request, console.RUN_STATUSES, title="Workflow runs", page_name="workflow_runs")


async def dead_page(request: Request) -> Response:
    retried = parse_digits(request.query_params.get("retried", ""), console.RETRY_MAX * 10)
    return await _listing(request, console.JOB_STATUSES, title="Dead workflow jobs",
                          page_name="workflow_dead", fixed={"status": "dead"}, extra={"retried": retried})


async def retry_dead(request: Request) -> Response:
    """The dead page's buttons: one job (`job`), the selected ones (`ids`) or every dead job
    of a workflow (`workflow` with `all`)."""
    await checked_right(request, RIGHT)
    form = await request.form(max_fields=console.RETRY_MAX + 10)
    ids: list[int] = []
    workflow: str | None = None
    single = str(form.get("job") or "").strip()
    if single:
        raw = [single]
    elif form.get("all"):
        raw = []
        workflow = str(form.get("workflow") or "").strip() or None
        if workflow is None or "\x00" in workflow:
            raise ValidationFailed({"workflow": ["choose the workflow whose dead jobs to retry"]})
    else:
        raw = [str(v).strip() for v in form.getlist("ids")]
        if not raw:
            raise ValidationFailed({"ids": ["select at least one job"]})
    if len(raw) > console.RETRY_MAX:
        raise ValidationFailed({"ids": [f"{len(raw)} jobs selected; at most {console.RETRY_MAX} at once"]})
    for text in raw:
        job_id = parse_digits(text, RECORD_ID_MAX)
        if job_id is None:
            raise ValidationFailed({"ids": [f"{text[:40]!r} is not a job id"]})
        ids.append(job_id)
    count = await run_in_threadpool(do_retry, request, ids, workflow, now(request))
    if wants_json(request):
        return JSONResponse({"retried": count})
    kept = {"workflow": workflow} if workflow else {}
    back = "/admin/workflows/dead?" + urlencode({**kept, "retried": count})
    return RedirectResponse(back, status_code=303)


routes = [
    Route("/admin/workflows", overview_page, methods=["GET"]),
    Route("/admin/workflows/runs", runs_page, methods=["GET"]),
    Route("/admin/workflows/dead", dead_page, methods=["GET"]),
    Route("/admin/workflows/dead/retry", retry_dead, methods=["POST"]),
]
