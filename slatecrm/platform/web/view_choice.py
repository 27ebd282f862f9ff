"""The view a list, board or API list applies: `?view=<name>` (a metamodel view of the
entity) or `?view=saved-<id>` (a personal view the user sees), and what applying it means.

A view only fills in what the request leaves out: its columns when no `columns` are given,
its sort when no `sort`, its page size when no `limit`; its filter always holds, and the
request's own `filter` narrows it further (both must hold). Columns and card fields the
reader may not see are left out (the request's snapshot lacks them), and every record is
read through the read path: a view never shows more than the parameters it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ...metamodel.names import suggest
from .. import savedviews
from ..records.compiled import CompiledEntity
from ..records.errors import BadQuery
from ..records.listing import ListQuery
from ..records.service import RecordsService
from .rights import principal_of

PARAMETER = "view"


@dataclass(frozen=True)
class AppliedView:
    """A metamodel view or a personal one, as a list or board applies it."""

    key: str
    label: str
    type: str = "list"
    columns: tuple[str, ...] = ()
    filter: str | None = None
    sort: tuple[str, ...] = ()
    page_size: int | None = None
    pipeline: str | None = None
    card_fields: tuple[str, ...] = ()
    totals: str | None = None
    field: str | None = None
    end_field: str | None = None
    duration_field: str | None = None
    mode: str | None = None
    #: the personal view it is (None: the metamodel's)
    saved: savedviews.SavedView | None = None


@dataclass(frozen=True)
class Choices:
    """What a page's view switcher offers: the entity's views of one type and, for lists,
    the user's own and shared personal views."""

    views: tuple[AppliedView, ...]
    own: tuple[AppliedView, ...] = ()
    shared: tuple[AppliedView, ...] = ()


def _from_saved(found: savedviews.SavedView) -> AppliedView:
    return AppliedView(key=found.key, label=found.name, columns=found.columns, filter=found.filter,
                       sort=found.sort, saved=found)


def metamodel_views(records: RecordsService, entity: str, type: str) -> tuple[AppliedView, ...]:
    metamodel = records.snapshot().metamodel
    return tuple(AppliedView(key=v.name, label=v.label, type=v.type, columns=v.columns, filter=v.filter,
                             sort=v.sort, page_size=v.page_size, pipeline=v.pipeline,
                             card_fields=v.card_fields, totals=v.totals, field=v.field,
                             end_field=v.end_field, duration_field=v.duration_field, mode=v.mode)
                 for v in metamodel.views_of(entity, type))


def choose(request: Request, records: RecordsService, entity: str, type: str = "list") -> AppliedView | None:
    """The view the request names (off the event loop), or None; a name that is no view of
    this entity and type is a 400 naming the parameter."""
    key = request.query_params.get(PARAMETER, "").strip()
    if not key:
        return None
    records.entity(entity)  # an entity the reader cannot list is refused as without a view
    views = metamodel_views(records, entity, type)
    found = next((v for v in views if v.key == key), None)
    if found is not None:
        return found
    view_id = savedviews.saved_id(key)
    if view_id is not None and type == "list":  # a personal view the reader does not see: not found
        with records.read_connection() as conn:
            return _from_saved(savedviews.get(conn, entity, view_id, principal_of(request)))
    names = [v.key for v in views]
    listed = f"{type} views: {', '.join(names) or 'none'}"
    other = records.snapshot().metamodel.view(key)
    if other is not None and other.entity == entity:
        raise BadQuery({PARAMETER: [f"{key!r} is a {other.type} view, not a {type} view; {listed}"]})
    raise BadQuery({PARAMETER: [f"{entity} has no {type} view {key[:80]!r}{suggest(key, names)}; {listed}"]})


async def chosen(request: Request, records: RecordsService, entity: str,
                 type: str = "list") -> AppliedView | None:
    return await run_in_threadpool(choose, request, records, entity, type)


def choices(request: Request, records: RecordsService, entity: str, type: str = "list") -> Choices:
    """The switcher's views (off the event loop)."""
    views = metamodel_views(records, entity, type)
    if type != "list":
        return Choices(views)
    principal = principal_of(request)
    with records.read_connection() as conn:
        personal = savedviews.visible(conn, entity, principal)
    return Choices(views, tuple(_from_saved(v) for v in personal if v.mine(principal)),
                   tuple(_from_saved(v) for v in personal if not v.mine(principal)))


def applied(query: ListQuery, view: AppliedView | None, request: Request) -> ListQuery:
    """`query` with what the view fills in: its filter (and the request's), its sort when
    the request gives none, its page size when the request gives no `limit`."""
    if view is None:
        return query
    expression = narrowed(query.expression, view)
    limit = view.page_size if view.page_size and "limit" not in request.query_params else query.limit
    return replace(query, expression=expression, sort=query.sort or view.sort, limit=limit)


def narrowed(expression: str | None, view: AppliedView | None) -> str | None:
    """The view's filter and the request's `expression` together (both must hold)."""
    if view is None or not view.filter:
        return expression
    return f"({view.filter}) and ({expression})" if expression else view.filter


def columns(ce: CompiledEntity, view: AppliedView | None) -> list[str]:
    """The view's columns the reader may see, in its order (none: the list's default)."""
    return [c for c in (view.columns if view else ()) if c in ce.fields]
