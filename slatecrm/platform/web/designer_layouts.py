"""The designer's layout editor: `/admin/entities/{entity}/layout` arranges the entity's
record page and form (metamodel/layouts.py) and shows a form preview of the layout being
edited.

The layout travels as one YAML document in a textarea: that is the editor without
JavaScript, and what the drag-and-drop editor (static/designer_layouts.js: fields as chips
dragged between sections and an "unplaced" tray) writes back after each drop. Saving plans
the organisation's layout (customisation.put_layout, no SQL) and applies it through the one
plan flow (web/designer_plans.py); the layout checks (a required field left out, an unknown
field) refuse it with the reason. The preview (htmx, on change) renders the form's tabs and
sections through layout_view.tabs and the form's own field rows.
"""

from __future__ import annotations

import io
import json
from typing import Any

from ruamel.yaml import YAML
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.metamodel.errors import Problem
from slatecrm.metamodel.layouts import Layout, LayoutSection, LayoutTab
from slatecrm.metamodel.model import Entity
from slatecrm.metamodel.yamlsource import parse_yaml

from .. import customisation
from .admin import MANAGE_METAMODEL
from .designer_plans import plan_or_apply
from .layout_view import tab_context, tabs
from .pinning import records_of
from .rights import checked_right
from .templating import render
from .uicontext import base_context
from .widgets import form_fields


def body_of(layout: Layout | None, entity: Entity) -> dict[str, Any]:
    """The layout as the editor edits it (a pack's `kind: layout` document, less its kind);
    without a layout, the default one: every field in one section."""
    if layout is None:
        return {"entity": entity.name, "sections": [
            {"label": entity.label, "columns": 1, "fields": [f.name for f in entity.active_fields]}]}
    shaped = [{"label": t.label, "sections": [
        {"label": s.label, "columns": s.columns, "fields": list(s.fields)} for s in t.sections]}
        for t in layout.tabs]
    body: dict[str, Any] = {"entity": layout.entity}
    if layout.tabbed:
        body["tabs"] = shaped
    else:
        body["sections"] = [section for tab in shaped for section in tab["sections"]]
    if layout.related_lists is not None:
        body["related_lists"] = [
            {k: v for k, v in {"entity": r.entity, "field": r.field, "label": r.label,
                               "columns": list(r.columns), "sort": list(r.sort),
                               "limit": r.limit}.items() if v not in (None, [])}
            for r in layout.related_lists]
    if layout.compact:
        body["compact"] = {"fields": list(layout.compact)}
    return body


def as_yaml(body: dict[str, Any]) -> str:
    out = io.StringIO()
    dumper = YAML(typ="safe", pure=True)
    dumper.default_flow_style = False
    dumper.sort_base_mapping_type_on_output = False  # type: ignore[assignment]  # keep the order
    dumper.dump(body, out)
    return out.getvalue()


def parsed(text: str, entity: str) -> dict[str, Any]:
    """The posted YAML as a layout body for `entity`; ValueError naming the line when it is
    not a mapping of YAML."""
    found = parse_yaml(text, "layout")
    if isinstance(found, Problem):
        raise ValueError(str(found))
    if not isinstance(found.data, dict):
        raise ValueError("layout: give a mapping with tabs (or sections), related_lists and compact")
    return {**{k: v for k, v in found.data.items() if k not in {"kind", "name"}}, "entity": entity}


def draft(body: dict[str, Any], name: str) -> Layout:
    """The layout a body describes, for the preview only (the checks run when it is planned);
    ValueError when its shape is not a layout's."""
    try:
        tab_docs = body.get("tabs") or [{"label": "", "sections": body.get("sections") or []}]
        return Layout(name=name, entity=body["entity"], tabs=tuple(
            LayoutTab(str(t.get("label") or ""), tuple(
                LayoutSection(str(s.get("label") or ""), int(s.get("columns") or 1),
                              tuple(str(f) for f in s.get("fields") or ())) for s in t.get("sections") or ()))
            for t in tab_docs))
    except (AttributeError, TypeError, ValueError) as error:
        raise ValueError(f"layout: tabs and sections are lists of mappings ({error})") from error


async def _editor(request: Request) -> dict[str, Any]:
    """The entity, its layout's name and its current layout as the editor shows it."""
    await checked_right(request, MANAGE_METAMODEL)
    metamodel = (await run_in_threadpool(records_of(request).full_snapshot)).metamodel
    entity = metamodel.entity(request.path_params["entity"])
    if entity is None:
        raise HTTPException(404, f"there is no entity {request.path_params['entity']!r}")
    layout = metamodel.layout_of(entity.name)
    return {"entity": entity, "layout": layout, "name": layout.name if layout else entity.name,
            "origin": layout.pack if layout else "", "body": body_of(layout, entity),
            "base": f"/admin/entities/{entity.name}/layout"}


def _chips(entity: Entity, body: dict[str, Any]) -> dict[str, Any]:
    """The drag-and-drop editor's tabs and sections, and the fields no section places."""
    tab_docs = body.get("tabs") or [{"label": "", "sections": body.get("sections") or []}]
    labels = {f.name: f.label for f in entity.active_fields}
    placed = {str(n) for t in tab_docs for s in t.get("sections") or () for n in s.get("fields") or ()}
    return {"tabs": tab_docs, "labels": labels,
            "unplaced": [f.name for f in entity.active_fields if f.name not in placed]}


async def _page(request: Request, editor: dict[str, Any], text: str, *,
                errors: dict[str, list[str]] | None = None, status: int = 200) -> Response:
    entity: Entity = editor["entity"]
    try:
        body = parsed(text, entity.name)
        chips = _chips(entity, body)
    except (ValueError, AttributeError, TypeError):
        body, chips = editor["body"], _chips(entity, editor["body"])
    context = await base_context(request, title=f"{entity.label}: layout")
    shown = {"entity": {"name": entity.name, "label": entity.label}, "name": editor["name"],
             "origin": editor["origin"], "base": editor["base"], "body": body}
    return render(request, "designer_layout", {
        **context, **shown, **chips, "document": text, "encoded": json.dumps(body), "errors": errors or {},
        "preview": await _preview_context(request, body, editor["name"])},
        twin={**shown, "errors": errors or {}}, status=status)


async def layout_page(request: Request) -> Response:
    editor = await _editor(request)
    return await _page(request, editor, as_yaml(editor["body"]))


async def save_layout(request: Request) -> Response:
    editor = await _editor(request)
    form = await request.form()
    text = str(form.get("layout") or "")
    entity = editor["entity"].name
    try:
        body = parsed(text, entity)
    except ValueError as error:
        return await _page(request, editor, text, errors={"layout": [str(error)]}, status=422)

    async def refused(errors: dict[str, list[str]]) -> Response:
        return await _page(request, editor, text, errors=errors, status=422)

    return await plan_or_apply(request, form, f"change layout {editor['name']}",
                               customisation.put_layout(editor["name"], body),
                               back=editor["base"], done=editor["base"], refused=refused)


async def _preview_context(request: Request, body: dict[str, Any], name: str) -> dict[str, Any]:
    """What templates/_designer_layout_preview.html shows: the form's tabs as `body` arranges
    them (the fields a new record's form shows), or the reason it cannot."""
    ce = records_of(request).entity(body["entity"])
    try:
        found = tabs(ce, draft(body, name), form_fields(ce))
    except ValueError as error:
        return {"problem": str(error), "tabs": [], "tabbed": False, "ce": ce}
    return {"problem": None, "ce": ce, **tab_context(found)}


async def preview(request: Request) -> Response:
    editor = await _editor(request)
    form = await request.form()
    try:
        body = parsed(str(form.get("layout") or ""), editor["entity"].name)
        shown = await _preview_context(request, body, editor["name"])
    except ValueError as error:
        shown = {"problem": str(error), "tabs": [], "tabbed": False,
                 "ce": records_of(request).entity(editor["entity"].name)}
    twin = {"problem": shown["problem"], "tabs": [
        {"label": t.label, "sections": [
            {"label": s.title, "columns": s.columns, "fields": [f.name for f in s.fields]}
            for s in t.sections]}
        for t in shown["tabs"]]}
    return render(request, "_designer_layout_preview", {"preview": shown}, twin=twin)


routes = [
    Route("/admin/entities/{entity}/layout", layout_page, methods=["GET"]),
    Route("/admin/entities/{entity}/layout", save_layout, methods=["POST"]),
    Route("/admin/entities/{entity}/layout/preview", preview, methods=["POST"]),
]
