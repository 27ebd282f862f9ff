"""The designer's views pages: `/admin/entities/{entity}/views` lists the entity's views (a
pack's or the organisation's) and creates one; `/views/{name}` edits one or removes the
organisation's.

A view travels as one YAML document in a textarea (label, type list|kanban|calendar, and
each type's keys: columns, filter, sort, page_size; pipeline, card_fields, totals; field,
end_field, duration_field, mode). Saving plans the organisation's view
(customisation.put_view, no SQL; checked like a pack's view, its filter too) and applies it
through the one plan flow (web/designer_plans.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.metamodel.model import Entity, Metamodel
from slatecrm.metamodel.views import View

from .. import customisation
from ..layers import ORGANISATION
from .admin import MANAGE_METAMODEL
from .designer_forms import naming, valid_name
from .designer_layouts import as_yaml, parsed
from .designer_plans import Refusal, plan_or_apply
from .pinning import records_of
from .rights import checked_right
from .templating import render
from .uicontext import base_context

#: The keys of a view's document the editor shows (those with a value).
KEYS = ("label", "type", "description", "columns", "filter", "sort", "page_size", "pipeline", "card_fields",
        "totals", "field", "end_field", "duration_field", "mode")
NEW = "label: My view\ntype: list\ncolumns: []\n"


def body_of(view: View) -> dict[str, Any]:
    """The view as the editor edits it (a pack's `kind: view` document, less kind, name, entity)."""
    values = {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}
    return {key: list(values[key]) if isinstance(values[key], tuple) else values[key] for key in KEYS
            if values[key] not in (None, "", ())}


async def _entity(request: Request) -> tuple[Entity, Metamodel]:
    await checked_right(request, MANAGE_METAMODEL)
    metamodel = (await run_in_threadpool(records_of(request).full_snapshot)).metamodel
    entity = metamodel.entity(request.path_params["entity"])
    if entity is None:
        raise HTTPException(404, f"there is no entity {request.path_params['entity']!r}")
    return entity, metamodel


def _base(entity: Entity) -> str:
    return f"/admin/entities/{entity.name}/views"


def _listed(metamodel: Metamodel, entity: Entity) -> list[dict[str, Any]]:
    return [{"name": v.name, "label": v.label, "type": v.type, "pack": v.pack,
             "own": v.pack == ORGANISATION} for v in metamodel.views_of(entity.name)]


async def _list_page(request: Request, entity: Entity, metamodel: Metamodel, *, name: str = "",
                     document: str = NEW, errors: dict[str, list[str]] | None = None,
                     status: int = 200) -> Response:
    context = await base_context(request, title=f"{entity.label}: views")
    shown = {"entity": {"name": entity.name, "label": entity.label}, "views": _listed(metamodel, entity),
             "base": _base(entity)}
    return render(request, "designer_views", {**context, **shown, "name": name, "document": document,
                                              "errors": errors or {}},
                  twin={**shown, "errors": errors or {}}, status=status)


async def views_page(request: Request) -> Response:
    entity, metamodel = await _entity(request)
    return await _list_page(request, entity, metamodel)


async def _save(request: Request, entity: Entity, name: str, text: str, *, back: str,
                shown: Refusal) -> Response:
    form = await request.form()
    try:
        body = parsed(text, entity.name)
    except ValueError as error:
        return await shown({"view": [str(error).replace("layout", "view", 1)]})

    async def refused(errors: dict[str, list[str]]) -> Response:
        return await shown(errors)

    return await plan_or_apply(request, form, f"change view {name}", customisation.put_view(name, body),
                               back=back, done=_base(entity), refused=refused)


async def create_view(request: Request) -> Response:
    entity, metamodel = await _entity(request)
    form = await request.form()
    name, text = str(form.get("name") or "").strip(), str(form.get("view") or "")

    async def shown(errors: dict[str, list[str]]) -> Response:
        return await _list_page(request, entity, metamodel, name=name, document=text, errors=errors,
                                status=422)

    if not valid_name(name):
        return await shown({"name": [naming("name")]})
    if metamodel.view(name) is not None:
        return await shown({"name": [f"there is a view {name!r} already: edit it from the list"]})
    return await _save(request, entity, name, text, back=_base(entity), shown=shown)


def _found(metamodel: Metamodel, entity: Entity, name: str) -> View:
    view = metamodel.view(name)
    if view is None or view.entity != entity.name:
        raise HTTPException(404, f"{entity.name} has no view {name!r}")
    return view


async def _view_page(request: Request, entity: Entity, view: View, document: str, *,
                     errors: dict[str, list[str]] | None = None, status: int = 200) -> Response:
    context = await base_context(request, title=f"View {view.label}")
    shown = {"entity": {"name": entity.name, "label": entity.label}, "base": _base(entity),
             "view": {"name": view.name, "label": view.label, "type": view.type, "pack": view.pack,
                      "own": view.pack == ORGANISATION, "body": body_of(view)}}
    return render(request, "designer_view",
                  {**context, **shown, "document": document, "errors": errors or {}},
                  twin={**shown, "errors": errors or {}}, status=status)


async def view_page(request: Request) -> Response:
    entity, metamodel = await _entity(request)
    view = _found(metamodel, entity, request.path_params["view"])
    if request.method == "GET":
        return await _view_page(request, entity, view, as_yaml(body_of(view)))
    form = await request.form()
    text = str(form.get("view") or "")

    async def shown(errors: dict[str, list[str]]) -> Response:
        return await _view_page(request, entity, view, text, errors=errors, status=422)

    return await _save(request, entity, view.name, text, back=f"{_base(entity)}/{view.name}", shown=shown)


async def remove_view(request: Request) -> Response:
    entity, metamodel = await _entity(request)
    view = _found(metamodel, entity, request.path_params["view"])
    form = await request.form()

    async def refused(errors: dict[str, list[str]]) -> Response:
        return await _view_page(request, entity, view, as_yaml(body_of(view)), errors=errors, status=422)

    return await plan_or_apply(request, form, f"remove view {view.name}",
                               customisation.delete_view(view.name),
                               back=f"{_base(entity)}/{view.name}", done=_base(entity), refused=refused)


routes = [
    Route("/admin/entities/{entity}/views", views_page, methods=["GET"]),
    Route("/admin/entities/{entity}/views", create_view, methods=["POST"]),
    Route("/admin/entities/{entity}/views/{view}", view_page, methods=["GET", "POST"]),
    Route("/admin/entities/{entity}/views/{view}/remove", remove_view, methods=["POST"]),
]
