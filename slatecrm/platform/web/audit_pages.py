"""The audit log over HTTP: `GET /api/v1/admin/audit` (JSON, keyset pages with a `next` link,
like the records lists) and the page `/admin/audit` (a table with the same filters). Both
need the right to view the audit log (web/rights.py); the filters are those of
`slatecrm audit` (identity/auditlog.py), strict: an unknown or bad parameter is a 422
naming it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..identity import auditlog
from ..records.errors import ValidationFailed
from .jsonresponse import JSONResponse
from .rights import checked_right
from .templating import render
from .uicontext import base_context

RIGHT = "view_audit"
#: Events on one page of the admin page (the API's default is the log's).
PAGE_SIZE = 50


class InvalidAuditFilter(ValidationFailed):
    """422 with the errors by parameter ("" for none in particular)."""

    whole = ""


def _page(engine: sa.Engine, query: auditlog.AuditQuery) -> auditlog.EventPage:
    with engine.connect() as conn:
        return auditlog.events(conn, query)


async def _read(request: Request, params: list[tuple[str, str]], **defaults: Any) -> auditlog.EventPage:
    try:
        query = auditlog.parse(params)
        if defaults and not any(k == "limit" for k, _ in params):
            query = replace(query, **defaults)
        return await run_in_threadpool(_page, request.app.state.engine, query)
    except auditlog.InvalidFilter as error:
        raise InvalidAuditFilter(error.errors) from None


async def api_audit(request: Request) -> Response:
    await checked_right(request, RIGHT)
    page = await _read(request, list(request.query_params.multi_items()))
    body: dict[str, Any] = {"data": [e.as_json() for e in page.events], "next": None}
    if page.next_cursor:
        body["next"] = str(request.url.include_query_params(after=page.next_cursor))
        body["next_cursor"] = page.next_cursor
    return JSONResponse(body)


async def audit_page(request: Request) -> Response:
    await checked_right(request, RIGHT)
    # An HTML form sends its empty inputs: they filter nothing.
    params = [(k, v) for k, v in request.query_params.multi_items() if v.strip()]
    context = await base_context(request, title="Audit log")
    errors: dict[str, list[str]] = {}
    try:
        page = await _read(request, params, limit=PAGE_SIZE)
    except InvalidAuditFilter as error:
        errors, page = error.errors, auditlog.EventPage([], None)
    twin = {"data": [e.as_json() for e in page.events], "next_cursor": page.next_cursor, "errors": errors}
    return render(request, "audit", {**context, "page": page, "errors": errors,
                                     "params": request.query_params},
                  twin=twin, status=422 if errors else 200)


routes = [
    Route("/api/v1/admin/audit", api_audit, methods=["GET"]),
    Route("/admin/audit", audit_page, methods=["GET"]),
]
