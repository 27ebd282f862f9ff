"""Personal views from the list page: save the list's current columns, filter and sort under
a name, rename or delete one's own, and (with the manage_metamodel right) share one with
roles. Each form posts here (with the CSRF field, like every form) and is answered with a
redirect back to the list, showing the view.

What is saved is checked by reading with it once, through the read path: a filter or sort
the user could not list with is refused here (400, naming the parameter), not saved.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import savedviews
from ..records.listing import ListQuery
from .list_pages import chosen_columns
from .pinning import records_of
from .rights import ADMINISTRATOR, checked_right, principal_of
from .view_choice import PARAMETER
from .workflows_api import now

SHARE_RIGHT = "manage_metamodel"


def _back(entity: str, view: savedviews.SavedView | None) -> Response:
    query = f"?{urlencode({PARAMETER: view.key})}" if view is not None else ""
    return RedirectResponse(f"/e/{entity}{query}", status_code=303)


def _view_id(request: Request) -> int:
    return int(request.path_params["id"])


async def save(request: Request) -> Response:
    records = records_of(request)
    entity = request.path_params["entity"]
    ce = await run_in_threadpool(records.entity, entity)
    form = await request.form()
    text = {key: str(form.get(key) or "").strip() for key in ("name", "columns", "filter", "sort")}
    scope = {**request.scope, "query_string": urlencode({"columns": text["columns"]}).encode()}
    columns = chosen_columns(Request(scope), entity, list(ce.fields), records.limits.columns_max)
    sort = tuple(k.strip() for k in text["sort"].split(",") if k.strip())
    # Read once with it: an unknown field, a bad filter or an unsortable key is a 400 here.
    await run_in_threadpool(records.page, entity, ListQuery(expression=text["filter"] or None, sort=sort,
                                                            limit=1, counted=False))
    made = await run_in_threadpool(savedviews.save, records.engine, principal_of(request), entity,
                                   text["name"], columns, text["filter"] or None, sort, now(request))
    return _back(entity, made)


async def rename(request: Request) -> Response:
    records = records_of(request)
    entity = request.path_params["entity"]
    form = await request.form()
    renamed = await run_in_threadpool(savedviews.rename, records.engine, principal_of(request), entity,
                                      _view_id(request), str(form.get("name") or ""), now(request))
    return _back(entity, renamed)


async def delete(request: Request) -> Response:
    records = records_of(request)
    entity = request.path_params["entity"]
    await run_in_threadpool(savedviews.delete, records.engine, principal_of(request), entity,
                            _view_id(request))
    return _back(entity, None)


async def share(request: Request) -> Response:
    """Share one's view with the roles ticked (none: one's own again); an administrator's act."""
    principal = await checked_right(request, SHARE_RIGHT)
    records = records_of(request)
    entity = request.path_params["entity"]
    form = await request.form()
    roles = [str(r) for r in form.getlist("roles")]
    defined = {ADMINISTRATOR, *(r.name for r in records.snapshot().metamodel.roles)}
    shared = await run_in_threadpool(savedviews.share, records.engine, principal, entity, _view_id(request),
                                     roles, defined, now(request))
    return _back(entity, shared)


def _checked(handler: Any) -> Any:
    """The entity must exist (a 404 naming it) before a form about its views is read."""
    async def run(request: Request) -> Response:
        records = records_of(request)
        await run_in_threadpool(records.entity, request.path_params["entity"])
        response: Response = await handler(request)
        return response
    return run


routes = [
    Route("/e/{entity}/views", _checked(save), methods=["POST"]),
    Route("/e/{entity}/views/{id:recordid}/rename", _checked(rename), methods=["POST"]),
    Route("/e/{entity}/views/{id:recordid}/delete", _checked(delete), methods=["POST"]),
    Route("/e/{entity}/views/{id:recordid}/share", _checked(share), methods=["POST"]),
]
