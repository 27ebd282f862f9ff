"""The JSON API, `/api/v1`: generic routes for every entity of the live metamodel.

The handlers only translate HTTP to the records service and back; every rule lives in
the service. The service is synchronous (SQLAlchemy), so it runs in the thread pool, and
so does the JSON of its answer: `answer` reads, builds the JSON and encodes it in one
worker thread, then releases the request's read connection there, so the event loop's
thread only parses requests and writes bytes (a page's JSON built on it held up every
other request: bench/findings.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.digits import COUNT_MAX, VERSION_MAX, parse_digits

from .. import jsontext
from ..records.errors import BadQuery
from ..records.listing import Filter, ListQuery
from ..records.pipeline import check_version
from ..records.results import Record
from ..records.service import Page, RecordsService
from . import (
    convertors,  # noqa: F401  (registers the `recordid` and `collection` path convertors)
    jsonbody,
    openapi,
    uploads,
    view_choice,
)
from .authentication import READ_METHODS
from .jsonresponse import EncodedJSON
from .pinning import records_of

T = TypeVar("T")
#: What a handler's work gives: the JSON content and the answer's headers.
Answer = tuple[Any, dict[str, str]]
PAGING_PARAMETERS = ("sort", "limit", "after", "q", "filter", "count", "view")
#: What `count=` takes: a list counts its records only when asked (docs/api.md, "Counting").
COUNT_ANSWERS = {"true": True, "false": False}


def service(request: Request) -> RecordsService:
    """The request's records service: one pinned revision, one read connection."""
    return records_of(request)


async def call(request: Request, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(function, *args, **kwargs)


async def answer(request: Request, work: Callable[[], Answer], status_code: int = 200) -> Response:
    """`work` and the encoding of its JSON in one worker thread; the request's read
    connection is released there too when the work succeeded (PinnedRecords then has
    nothing left to close, and no second trip to the thread pool)."""
    records = service(request)

    def run() -> tuple[bytes, dict[str, str]]:
        content, headers = work()
        body = jsontext.encode(content)
        records.close()
        return body, headers

    body, headers = await run_in_threadpool(run)
    return EncodedJSON(body, status_code, headers)


async def body_object(request: Request, *, allow_list: bool = False) -> Any:
    """The JSON body, which must be an object (or a list of objects for bulk create), read
    strictly (jsonbody.py): a body without a JSON Content-Type is refused (415)."""
    jsonbody.require_json(request)
    data = jsonbody.parse(await request.body(), service(request).limits)
    if isinstance(data, dict) or (allow_list and isinstance(data, list) and data
                                  and all(isinstance(d, dict) for d in data)):
        return data
    wanted = "a JSON object or a list of objects" if allow_list else "a JSON object"
    raise BadQuery({"": [f"the body must be {wanted} of field values"]})


def list_query(request: Request) -> ListQuery:
    params = request.query_params
    errors: dict[str, list[str]] = {}
    limit_text = params.get("limit", "50")
    limit = parse_digits(limit_text, COUNT_MAX) or 0
    if not limit:
        errors["limit"] = [f"{limit_text!r} is not a number of records"]
    filters: dict[str, list[str]] = {}
    for key, value in params.multi_items():
        if key not in PAGING_PARAMETERS:
            filters.setdefault(key, []).append(value)
    sort = tuple(s.strip() for s in params.get("sort", "").split(",") if s.strip())
    counts = params.getlist("count")
    if wrong := [c for c in counts if c not in COUNT_ANSWERS]:
        errors["count"] = [f"{wrong[0][:40]!r} is not true or false"]
    if errors:
        raise BadQuery(errors)
    return ListQuery(sort=sort, filters=tuple(Filter.parse(k, v) for k, v in filters.items()),
                     search=params.get("q"), after=params.get("after"), limit=limit,
                     expression=params.get("filter") or None,
                     counted=bool(counts) and COUNT_ANSWERS[counts[-1]])


def page_json(records: RecordsService, page: Page, request: Request, *, counted: bool) -> dict[str, Any]:
    """A page's JSON; the `count` keys only when the list was `counted` (a list counts
    only when asked: without them a client cannot mistake "not asked" for "not known")."""
    out: dict[str, Any] = {"data": [records.as_json(r) for r in page.records]}
    if counted:
        out["count"] = page.count
        out["count_capped"] = page.count_capped
    out["next"] = None
    if counted and page.count is None:  # not counted within the budget: the planner's guess, or null
        out["count_estimate"] = page.count_estimate
    if page.next_cursor:
        out["next"] = str(request.url.include_query_params(after=page.next_cursor))
        out["next_cursor"] = page.next_cursor
    return out


def based_on(request: Request, body: dict[str, Any] | None) -> int | None:
    """The version an update is based on: If-Match, else `version` in the body. A version
    no record can have (outside 1 to VERSION_MAX, the `version` column's range) is refused
    here, not left to the database (docs/decisions.md, "Never a 5xx for bad input")."""
    header = request.headers.get("if-match", "").strip().strip('W/').strip('"')
    if header:
        if not (version := parse_digits(header, VERSION_MAX)):
            raise BadQuery({"version": [f"If-Match {header[:40]!r} is not a record version "
                                        f"(a whole number from 1 to {VERSION_MAX})"]})
        return version
    given = (body or {}).get("version")
    return None if given is None else check_version(given)


async def meta(request: Request) -> Response:
    records = service(request)

    def work() -> Answer:
        snapshot = records.snapshot()
        active = snapshot.metamodel.with_entities(snapshot.metamodel.active_entities)
        document = active.as_dict()
        for entity in document["entities"]:
            entity["fields"] = [f for f in entity["fields"] if not f["retired"]]
        return {"revision": snapshot.revision, "worker": os.getpid(), **document}, {}

    return await answer(request, work)


async def collection(request: Request) -> Response:
    records = service(request)
    entity = request.path_params["entity"]
    if request.method in READ_METHODS:  # HEAD is a GET without the body
        # `view=`: a list view's filter, sort and page size (web/view_choice.py; its columns
        # are the page's: an API record has every field the reader may see).
        view = await view_choice.chosen(request, records, entity)
        query = view_choice.applied(list_query(request), view, request)
        return await answer(request, lambda: (
            page_json(records, records.page(entity, query), request, counted=query.counted), {}))
    data = await body_object(request, allow_list=True)
    if isinstance(data, list):
        records.check_batch(len(data))
        items = data
        return await answer(request, lambda: (
            {"data": [records.as_json(r) for r in records.create_many(entity, items)]}, {}), 201)

    def create() -> Answer:
        record = records.create(entity, data)
        return records.as_json(record), {"Location": f"/api/v1/{entity}/{record.id}",
                                         "ETag": f'"{record.version}"'}

    return await answer(request, create, 201)


async def item(request: Request) -> Response:
    records = service(request)
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    if request.method == "DELETE":
        await call(request, records.delete, entity, record_id, version=based_on(request, None))
        return Response(status_code=204)
    if request.method == "PATCH":
        data = await body_object(request)
        version = based_on(request, data)

        def read() -> Record:
            return records.update(entity, record_id, data, version=version)
    else:
        def read() -> Record:
            return records.get(entity, record_id)

    def work() -> Answer:
        record = read()
        return records.as_json(record), {"ETag": f'"{record.version}"'}

    return await answer(request, work)


async def history(request: Request) -> Response:
    records = service(request)

    def work() -> Answer:
        entries = records.history(request.path_params["entity"], request.path_params["id"])
        return {"data": [{"version": e.version, "action": e.action, "changed_at": e.changed_at,
                          "changed_by": e.changed_by, "changes": e.changes,
                          "token": None if e.token is None else {"id": e.token.id, "name": e.token.name}}
                         for e in entries]}, {}

    return await answer(request, work)


async def stage_history(request: Request) -> Response:
    records = service(request)

    def work() -> Answer:
        visits = records.stage_history(request.path_params["entity"], request.path_params["id"])
        return {"data": [{"field": v.field, "stage": v.stage, "entered_at": v.entered_at,
                          "left_at": v.left_at, "seconds": v.seconds} for v in visits]}, {}

    return await answer(request, work)


async def related(request: Request) -> Response:
    records = service(request)
    query = list_query(request)

    def work() -> Answer:
        page = records.related(request.path_params["entity"], request.path_params["id"],
                               request.path_params["relation"], query)
        return page_json(records, page, request, counted=query.counted), {}

    return await answer(request, work)


async def openapi_document(request: Request) -> Response:
    """Built once per revision, with the revision's snapshot, and kept with it."""
    records = service(request)

    def work() -> Answer:
        snapshot = records.snapshot()
        views = {name: [v.name for v in snapshot.metamodel.views_of(name, "list")]
                 for name in snapshot.entities}
        return snapshot.derived("web.openapi", lambda: openapi.document(snapshot.revision, snapshot.entities,
                                                                        records.limits, views)), {}

    return await answer(request, work)

routes = [
    *uploads.api_routes,  # before the entity routes: `_files` is no entity's name
    Route("/api/v1/meta", meta, methods=["GET"]),
    Route("/api/v1/openapi.json", openapi_document, methods=["GET"]),
    Route("/api/v1/{entity:collection}", collection, methods=["GET", "POST"]),
    Route("/api/v1/{entity}/{id:recordid}", item, methods=["GET", "PATCH", "DELETE"]),
    Route("/api/v1/{entity}/{id:recordid}/history", history, methods=["GET"]),
    Route("/api/v1/{entity}/{id:recordid}/stages", stage_history, methods=["GET"]),
    Route("/api/v1/{entity}/{id:recordid}/related/{relation}", related, methods=["GET"]),
]
