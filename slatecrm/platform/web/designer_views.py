"""The designer's views pages: `/admin/entities/{entity}/views` lists the entity's views (a
pack's or the organisation's) and creates one; `/views/{name}` edits one or removes the
organisation's.

A view is edited in a structured form (templates/_view_editor.html, view_editor_form.py:
the type's own inputs, columns dragged into order, the filter checked as it is typed), or,
without JavaScript or for the advanced, as one YAML document in a textarea (label, type
list|kanban|calendar, and each type's keys: columns, filter, sort, page_size; pipeline,
card_fields, totals; field, end_field, duration_field, mode). Both give the same body:
saving plans the organisation's view (customisation.put_view, no SQL; checked like a pack's
view, its filter too) and applies it through the one plan flow (web/designer_plans.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.metamodel.model import Entity, Metamodel
from slatecrm.metamodel.views import VIEW_TYPES, View

from .. import customisation
from ..layers import ORGANISATION
from .admin import MANAGE_METAMODEL
from .designer_check import verdict
from .designer_forms import naming, valid_name
from .designer_layout_body import as_yaml, parsed
from .designer_plans import Refusal, plan_or_apply
from .pinning import records_of
from .rights import checked_right
from .templating import render
from .uicontext import base_context
from .view_editor_form import body_of_values, choices, values_of, values_posted

#: The keys of a view's document the editor shows (those with a value).
KEYS = ("label", "type", "description", "columns", "filter", "sort", "page_size", "pipeline", "card_fields",
        "totals", "field", "end_field", "duration_field", "mode")
NEW = "label: My view\ntype: list\ncolumns: []\n"
#: The form field saying the structured editor posted (else the YAML textarea did).
STRUCTURED = "structured"


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


def _editor(request: Request, entity: Entity, values: dict[str, Any], action: str) -> dict[str, Any]:
    """What the structured editor shows: `values` (view_editor_form.py), what each input
    offers, where the filter is checked and where a change of type fetches the inputs."""
    return {"form": values, "choices": choices(entity, records_of(request).registry), "action": action,
            "check_url": f"/admin/entities/{entity.name}/check",
            "editor_url": f"/admin/entities/{entity.name}/view-editor"}


def _listed(metamodel: Metamodel, entity: Entity) -> list[dict[str, Any]]:
    return [{"name": v.name, "label": v.label, "type": v.type, "pack": v.pack,
             "own": v.pack == ORGANISATION} for v in metamodel.views_of(entity.name)]


async def _list_page(request: Request, entity: Entity, metamodel: Metamodel, *, name: str = "",
                     document: str = NEW, values: dict[str, Any] | None = None,
                     errors: dict[str, list[str]] | None = None, status: int = 200) -> Response:
    context = await base_context(request, title=f"{entity.label}: views")
    shown = {"entity": {"name": entity.name, "label": entity.label}, "views": _listed(metamodel, entity),
             "base": _base(entity)}
    advanced = bool(errors) and values is None  # the YAML was posted: show it again, open
    if values is None:  # the structured editor shows what the YAML says, when it can be read
        try:
            values = values_of(parsed(document, entity.name))
        except ValueError:
            values = values_of({})
    editor = _editor(request, entity, values, _base(entity))
    return render(request, "designer_views", {**context, **shown, "name": name, "document": document,
                                              "editor": editor, "errors": errors or {},
                                              "advanced": advanced},
                  twin={**shown, "errors": errors or {}}, status=status)


async def views_page(request: Request) -> Response:
    entity, metamodel = await _entity(request)
    return await _list_page(request, entity, metamodel)


async def _save(request: Request, entity: Entity, name: str, text: str, *, back: str,
                shown: Refusal) -> Response:
    form = await request.form()
    if form.get("editor") == STRUCTURED:
        body, errors = await _structured(request, entity, form)
        if errors:
            return await shown(errors)
    else:
        try:
            body = parsed(text, entity.name)
        except ValueError as error:
            return await shown({"view": [str(error).replace("layout", "view", 1)]})

    async def refused(errors: dict[str, list[str]]) -> Response:
        return await shown(errors)

    return await plan_or_apply(request, form, f"change view {name}", customisation.put_view(name, body),
                               back=back, done=_base(entity), refused=refused)


async def _structured(request: Request, entity: Entity,
                      form: FormData) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The body the structured editor posted, and its problems by input: each name checked
    against what the editor offers, the filter as the live check does (with its caret)."""
    values = values_posted(form)
    body, errors = body_of_values(values, entity, choices(entity, records_of(request).registry))
    if "filter" in body:
        found = await run_in_threadpool(verdict, request, entity.name, "filter", body["filter"], "")
        if not found["ok"]:
            where = f" (line {found['line']}, column {found['column']})" if found["line"] else ""
            errors.setdefault("filter", []).append(f"{found['message']}{where}")
    return {**body, "entity": entity.name}, errors


def _posted_values(form: FormData) -> dict[str, Any] | None:
    """The structured editor's values when it posted the form (to show them again)."""
    return values_posted(form) if form.get("editor") == STRUCTURED else None


async def create_view(request: Request) -> Response:
    entity, metamodel = await _entity(request)
    form = await request.form()
    name = str(form.get("name") or "").strip()
    text = str(form.get("view") or "") if form.get("editor") != STRUCTURED else NEW

    async def shown(errors: dict[str, list[str]]) -> Response:
        return await _list_page(request, entity, metamodel, name=name, document=text,
                                values=_posted_values(form), errors=errors, status=422)

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
                     values: dict[str, Any] | None = None, errors: dict[str, list[str]] | None = None,
                     status: int = 200) -> Response:
    context = await base_context(request, title=f"View {view.label}")
    shown = {"entity": {"name": entity.name, "label": entity.label}, "base": _base(entity),
             "view": {"name": view.name, "label": view.label, "type": view.type, "pack": view.pack,
                      "own": view.pack == ORGANISATION, "body": body_of(view)}}
    editor = _editor(request, entity, values or values_of(body_of(view)), f"{_base(entity)}/{view.name}")
    return render(request, "designer_view",
                  {**context, **shown, "document": document, "editor": editor, "errors": errors or {},
                   "advanced": bool(errors) and values is None},
                  twin={**shown, "errors": errors or {}}, status=status)


async def view_page(request: Request) -> Response:
    entity, metamodel = await _entity(request)
    view = _found(metamodel, entity, request.path_params["view"])
    if request.method == "GET":
        return await _view_page(request, entity, view, as_yaml(body_of(view)))
    form = await request.form()
    text = str(form.get("view") or "") if form.get("editor") != STRUCTURED else as_yaml(body_of(view))

    async def shown(errors: dict[str, list[str]]) -> Response:
        return await _view_page(request, entity, view, text, values=_posted_values(form), errors=errors,
                                status=422)

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


async def editor_fields(request: Request) -> Response:
    """The structured editor's inputs for the kind of view posted (htmx, when the type select
    changes): what was typed is kept, the other kind's inputs start empty."""
    entity, _ = await _entity(request)
    form = await request.form()
    values = values_posted(form)
    if values["type"] not in VIEW_TYPES:  # not a kind of view: a list's inputs, as a new view's
        values["type"] = "list"
    editor = _editor(request, entity, values, "")
    return render(request, "_view_editor_fields", {"editor": editor, "errors": {}},
                  twin={"values": values, "choices": editor["choices"]})


routes = [
    Route("/admin/entities/{entity}/views", views_page, methods=["GET"]),
    Route("/admin/entities/{entity}/views", create_view, methods=["POST"]),
    Route("/admin/entities/{entity}/views/{view}", view_page, methods=["GET", "POST"]),
    Route("/admin/entities/{entity}/views/{view}/remove", remove_view, methods=["POST"]),
    Route("/admin/entities/{entity}/view-editor", editor_fields, methods=["POST"]),
]
