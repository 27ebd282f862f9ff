"""Home, global search, list views, CSV export and bulk edits: pages over many records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from slatecrm.digits import RECORD_ID_MAX, parse_digits

from ...metamodel.fieldtypes import TypedText
from ...metamodel.model import Entity
from ..identity import audit
from ..records import bulk, export
from ..records.compiled import CompiledEntity
from ..records.errors import BadQuery, ValidationFailed
from ..records.listing import ListQuery, chosen_sort
from ..records.service import Page
from ..workflows import console
from . import api, view_choice, widgets
from .calendar_pages import offered
from .pinning import records_of
from .record_pages import locked_fields
from .rights import ADMINISTRATOR, may, principal_of
from .templating import render
from .uicontext import base_context
from .workflows_api import now

SEARCH_LIMIT = 5
#: Fields of a bulk-edit form Starlette will parse (its default is 1,000, below the batch
#: bound): the body-size limit is what bounds the parsing.
FORM_FIELDS_MAX = 1_000_000


@dataclass(frozen=True)
class SearchResult:
    entity: Entity
    page: Page


#: Parameters of a list or board page itself, not filters: its columns, a board's sum field.
PAGE_PARAMETERS = ("columns", "sum")


def list_query(request: Request) -> ListQuery:
    """The list's query from its URL, through the API's own parsing (`api.list_query`),
    without the empty inputs a plain HTML form sends and the page's own parameters. It
    always counts: people read "1–50 of N" (an API list counts only when asked)."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if v.strip() and k not in PAGE_PARAMETERS]
    scope = {**request.scope, "query_string": urlencode(kept).encode()}
    return replace(api.list_query(Request(scope)), counted=True)


async def home(request: Request) -> Response:
    records = records_of(request)
    context = await base_context(request, title="Home")
    names = [item.name for group in context["nav"] for item in group.entities]
    pages = await run_in_threadpool(records.first_pages, [(name, ListQuery(limit=1)) for name in names])
    counts = {name: {"count": page.count, "capped": page.count_capped}
              for name, page in zip(names, pages, strict=True)}
    twin = {"groups": [{"pack": g.pack, "title": g.title,
                        "entities": [{"name": e.name, "label": e.label_plural, **counts[e.name],
                                      "boards": [b for b, _ in e.boards]} for e in g.entities]}
                       for g in context["nav"]]}
    return render(request, "home", {**context, "counts": counts}, twin=twin)


async def search(request: Request) -> Response:
    records = records_of(request)
    text = request.query_params.get("q", "").strip()
    context = await base_context(request, title=f"Search: {text}" if text else "Search")
    context["search_text"] = text
    results = []
    if text:
        compiled = await run_in_threadpool(records.compiled)
        searched = [ce for ce in compiled.values() if ce.searchable]
        pages = await run_in_threadpool(records.first_pages, [
            (ce.name, ListQuery(search=text, limit=SEARCH_LIMIT, rank=True)) for ce in searched])
        results = [SearchResult(ce.entity, page) for ce, page in zip(searched, pages, strict=True)
                   if page.records]
    twin = {"q": text, "results": [{"entity": r.entity.name, "count": r.page.count,
                                    "records": [{"id": x.id, "title": x.title} for x in r.page.records]}
                                   for r in results]}
    return render(request, "search", {**context, "results": results}, twin=twin)


async def list_view(request: Request) -> Response:
    records = records_of(request)
    entity = request.path_params["entity"]
    ce = await run_in_threadpool(records.entity, entity)
    # Refused with the small error page, not the list: the list repeats its parameters in
    # every link, so a page with 6,000 names kept would still be large.
    wanted = chosen_columns(request, ce.name, list(ce.fields), records.limits.columns_max)
    context = await base_context(request, entity=entity, title=ce.entity.label_plural)
    errors: dict[str, list[str]] = {}
    status = 200
    view: view_choice.AppliedView | None = None
    query = ListQuery()
    try:
        view = await view_choice.chosen(request, records, entity)
        query = view_choice.applied(list_query(request), view, request)
        page = await run_in_threadpool(records.page, entity, query)
    except BadQuery as error:
        errors, status = error.errors, 400
        page = Page([], None, 0, False)
    columns = [ce.fields[c] for c in (wanted or view_choice.columns(ce, view) or widgets.default_columns(ce))]
    sort = sorted_by(ce, ",".join(query.sort))
    quick = [f for f in ce.fields.values() if f.type.groupable]
    choices = await run_in_threadpool(view_choice.choices, request, records, entity)
    boards = view_choice.metamodel_views(records, entity, "kanban")
    calendars = await run_in_threadpool(offered, records, ce)
    roles = sorted({ADMINISTRATOR, *(r.name for r in records.snapshot().metamodel.roles)})
    twin = {**api.page_json(records, page, request, counted=True), "errors": errors,
            "columns": [c.name for c in columns], "view": view.key if view else None,
            "views": [{"view": v.key, "label": v.label} for v in choices.views],
            "own_views": [{"view": v.key, "label": v.label, "shared_roles": list(v.saved.shared_roles)}
                          for v in choices.own if v.saved],
            "shared_views": [{"view": v.key, "label": v.label} for v in choices.shared],
            "boards": [{"view": v.key, "label": v.label, "pipeline": v.pipeline} for v in boards],
            "calendars": [{"view": v.key, "label": v.label, "field": v.field} for v in calendars]}
    return render(request, "list", {
        **context, "ce": ce, "page": page, "columns": columns, "errors": errors, "sort": sort,
        "quick": quick, "params": request.query_params, "view": view, "choices": choices,
        "board_views": boards, "calendar_views": calendars,
        "saving": {"columns": [c.name for c in columns], "filter": query.expression or "",
                   "sort": ",".join(query.sort)},
        "may_share": may(request, "manage_metamodel"), "roles": roles,
        "bulk_fields": widgets.editable(ce, await locked_fields(records, entity, new_record=False)),
        "bulk_workflows": await run_in_threadpool(console.runnable, records, entity),
    }, twin=twin, entity=entity, status=status)


def sorted_by(ce: CompiledEntity, given: str) -> str:
    """The key whose column header shows the order (▲ or ▼): the first of the list's
    `sort` (the request's, else its view's), else of the entity's default_sort, which the
    list then follows."""
    keys = [k.strip() for k in given.split(",") if k.strip()] or list(chosen_sort(ce, ListQuery()))
    return keys[0] if keys else ""


def chosen_columns(request: Request, entity: str, known: Sequence[str], cap: int) -> list[str]:
    """The `columns` parameter of a list page or export: known fields, each once, at most
    `cap` (limits.py); anything else is a 400 naming the parameter, because each name is a
    column of every row written (6,000 repeated names made 263 MB of HTML from one GET).
    Empty: the default columns."""
    names = [c.strip() for c in request.query_params.get("columns", "").split(",") if c.strip()]
    if len(names) > cap:
        raise BadQuery({"columns": [f"names {len(names)} columns; at most {cap} are allowed"]})
    problems = [f"{entity} has no field {n!r}" for n in dict.fromkeys(names) if n not in known]
    repeated = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    problems += [f"{n!r} is named more than once" for n in repeated]
    if problems:
        raise BadQuery({"columns": problems})
    return names


async def export_csv(request: Request) -> Response:
    """A streamed CSV of the list's records (records/export.py): the `columns` given, or
    every field; each page it reads is a statement of its own, bounded by the statement
    timeout like any other."""
    records = records_of(request)
    entity = request.path_params["entity"]
    ce = await run_in_threadpool(records.entity, entity)
    columns = chosen_columns(request, entity, list(ce.fields), records.limits.columns_max)
    view = await view_choice.chosen(request, records, entity)
    columns = columns or view_choice.columns(ce, view)
    query = view_choice.applied(list_query(request), view, request)
    chunks = await run_in_threadpool(export.csv_rows, records, entity, query, columns or None,
                                     exported(request, entity))
    return StreamingResponse(iterate_in_threadpool(chunks), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{entity}.csv"'})


def exported(request: Request, entity: str) -> export.Done:
    """What an export tells the audit log when it ends ("records.export": who, which entity,
    the list's filter, how many rows); written by the thread that wrote the last rows."""
    principal, engine = principal_of(request), records_of(request).engine
    address = request.client.host if request.client else None
    shown: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if value.strip():
            shown.setdefault(key, []).append(value)

    def done(rows: int, complete: bool) -> None:
        with engine.begin() as conn:
            audit.record(conn, "records.export", principal=principal, address=address, object_kind="entity",
                         object_id=entity, detail={"entity": entity, "filter": shown, "rows": rows,
                                                   "complete": complete})
    return done


async def bulk_edit(request: Request) -> Response:
    records = records_of(request)
    entity = request.path_params["entity"]
    ce = await run_in_threadpool(records.entity, entity)
    # Starlette refuses a form of over 1,000 fields with its own message; the body limit
    # bounds the form's size, and the batch bound below gives the answer naming the cap.
    form = await request.form(max_fields=FORM_FIELDS_MAX)
    ids = []
    bulk.check_size(records, len(form.getlist("ids")))
    for raw in form.getlist("ids"):
        text = raw.strip() if isinstance(raw, str) else ""
        record_id = parse_digits(text, RECORD_ID_MAX)
        if record_id is None:
            raise ValidationFailed({"ids": [f"{text!r} is not a record id"]})
        ids.append(record_id)
    action = form.get("action")
    result: bulk.BulkResult
    if action == "delete":
        result = await run_in_threadpool(bulk.delete_many, records, entity, ids)
    elif action == "set":
        name = str(form.get("field") or "")
        if name not in ce.fields or not ce.fields[name].type.writable:
            raise ValidationFailed({"field": [f"{ce.entity.label} has no field {name!r} to set"]})
        typed = str(form.get("value") or "").strip()
        value: Any = TypedText(typed) if typed else None
        # Text as typed: the service coerces it with the field's type (a multi-choice
        # reads "a, b", a json field parses it), and refuses a bad value per record.
        result = await run_in_threadpool(bulk.update_many, records, entity, ids, {name: value})
    elif action == "workflow":
        # A manual workflow queued for every selected record, or for none (one transaction).
        name = str(form.get("workflow") or "")
        await run_in_threadpool(console.start, records, entity, name, ids, now(request))
        workflow = next(w for w in console.manual_workflows(records.full_snapshot(), entity)
                        if w.name == name)
        result = bulk.BulkResult(done=list(dict.fromkeys(ids)))
        title = f"{ce.entity.label_plural}: {workflow.workflow.label} queued"
        context = await base_context(request, entity=entity, title=title)
        twin = {"action": action, "workflow": name, "done": result.done, "refused": {}}
        return render(request, "bulk", {**context, "ce": ce, "result": result, "action": action,
                                        "back": _back(form, entity), "workflow": workflow.workflow},
                      twin=twin, entity=entity)
    else:
        raise ValidationFailed({"action": ["choose 'set' (one field), 'delete' or 'workflow'"]})
    back = _back(form, entity)
    context = await base_context(request, entity=entity, title=f"{ce.entity.label_plural}: bulk {action}")
    twin = {"action": action, "done": result.done, "refused": {str(k): v for k, v in result.refused.items()}}
    return render(request, "bulk", {**context, "ce": ce, "result": result, "action": action, "back": back,
                                    "workflow": None}, twin=twin, entity=entity)


def _back(form: Any, entity: str) -> str:
    back = str(form.get("back") or f"/e/{entity}")
    return back if back.startswith("/e/") else f"/e/{entity}"
