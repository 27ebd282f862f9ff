"""The designer's layout editor: `/admin/entities/{entity}/layout` arranges the entity's
record page and form (metamodel/layouts.py) and shows a form preview of the layout being
edited.

The layout travels as one YAML document in a textarea: that is the editor without
JavaScript. The structured editor around it (fields, sections, tabs, related lists and the
compact fields, dragged with Sortable.js in static/designer_layouts.js, and buttons) sends
each action to `/layout/edit` WITH the textarea's current text: the server applies the
action to that text (web/designer_layout_actions.py, layout_edits.py) and answers the page
again, editor, YAML and preview, so unsaved text edits are kept; text that does not parse
refuses the action with the YAML's error, the text left as it was. Saving plans the
organisation's layout (customisation.put_layout, no SQL) and applies it through the one plan
flow (web/designer_plans.py); the layout checks (a required field left out, an unknown
field, an empty section) refuse it with the reason. The preview draws the form's own rows
(web/designer_layout_preview.py).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.metamodel.model import Entity

from .. import customisation
from ..layout_edits import EditRefused, related_key, tabs_of
from .admin import MANAGE_METAMODEL
from .designer_layout_actions import apply_action
from .designer_layout_body import as_yaml, body_of, parsed
from .designer_layout_preview import preview_context, preview_twin
from .designer_plans import plan_or_apply
from .pinning import records_of
from .rights import checked_right
from .templating import render
from .uicontext import base_context


def _offered(request: Request, entity: str) -> list[tuple[str, str]]:
    """The related lists the entity's record page can show (`entity.field`, and a label):
    those of the references pointing at it, then those of the many-to-many links, as the
    record page lists them without a layout (web/record_pages.py)."""
    records = records_of(request)
    metamodel = records.full_snapshot().metamodel
    with records.reading() as reader:
        pairs = list(reader.reverse_references(entity))
        apart = reader.apart_relations(entity).values()
        pairs += [(relation.source, relation.field) for relation, _ in apart]
    out: dict[str, str] = {}
    for other, field in pairs:
        found = metamodel.entity(other)
        pointing = found.field(field) if found is not None else None
        label = f"{found.label_plural} ({pointing.label})" if found is not None and pointing is not None \
            else f"{other}.{field}"
        out.setdefault(f"{other}.{field}", label)
    return list(out.items())


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
            "base": f"/admin/entities/{entity.name}/layout",
            "offered": await run_in_threadpool(_offered, request, entity.name)}


def _chips(entity: Entity, body: dict[str, Any], offered: list[tuple[str, str]]) -> dict[str, Any]:
    """The structured editor: its tabs and sections, the fields no section places, the
    related lists shown (the default: every one offered) and those to add, the compact
    fields and those to add."""
    tab_docs = tabs_of(body)
    labels = {f.name: f.label for f in entity.active_fields}
    placed = {str(n) for t in tab_docs for s in t.get("sections") or () for n in s.get("fields") or ()}
    names = dict(offered)
    given = body.get("related_lists")
    related = [{"key": related_key(r), "label": r.get("label") or names.get(related_key(r), related_key(r))}
               for r in given] if isinstance(given, list) else [{"key": k, "label": v} for k, v in offered]
    shown = {r["key"] for r in related}
    compact = [str(n) for n in ((body.get("compact") or {}).get("fields") or ())]
    return {"tabs": tab_docs, "tabbed": "tabs" in body, "labels": labels,
            "unplaced": [f.name for f in entity.active_fields if f.name not in placed],
            "related": related, "related_default": not isinstance(given, list),
            "related_addable": [(k, v) for k, v in offered if k not in shown],
            "compact": compact,
            "compact_addable": [f.name for f in entity.active_fields if f.name not in compact]}


async def _page(request: Request, editor: dict[str, Any], text: str, *,
                errors: dict[str, list[str]] | None = None, status: int = 200) -> Response:
    entity: Entity = editor["entity"]
    try:
        body = parsed(text, entity.name)
        chips = _chips(entity, body, editor["offered"])
    except (ValueError, AttributeError, TypeError):
        body, chips = editor["body"], _chips(entity, editor["body"], editor["offered"])
    context = await base_context(request, title=f"{entity.label}: layout")
    shown = {"entity": {"name": entity.name, "label": entity.label}, "name": editor["name"],
             "origin": editor["origin"], "base": editor["base"], "body": body}
    return render(request, "designer_layout", {
        **context, **shown, **chips, "document": text, "encoded": json.dumps(body), "errors": errors or {},
        "preview": preview_context(request, body, editor["name"])},
        twin={**shown, "document": text, "errors": errors or {}}, status=status)


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


async def edit(request: Request) -> Response:
    """One action of the structured editor on the posted text: the page again with the text
    rewritten, or (422) the action refused with the reason, the text kept as it was posted."""
    editor = await _editor(request)
    form = await request.form()
    text = str(form.get("layout") or "")
    action = str(form.get("drop") or "") if form.get("action") == "drop" else str(form.get("action") or "")
    action = action or "labels"  # Enter in a label, without a script: the labels changed
    entity: Entity = editor["entity"]
    try:
        body = parsed(text, entity.name)
    except ValueError as error:
        return await _page(request, editor, text, status=422, errors={"layout": [
            f"the YAML does not read, so the action was not applied (fix the text first): {error}"]})
    try:
        changed = apply_action(body, action, form, [f.name for f in entity.active_fields],
                               [key for key, _ in editor["offered"]])
    except (EditRefused, AttributeError, TypeError) as error:
        reason = str(error) if isinstance(error, EditRefused) else \
            f"the layout's shape is not a layout's, so the action was not applied ({error})"
        return await _page(request, editor, text, status=422, errors={"layout": [reason]})
    return await _page(request, editor, as_yaml(changed))


async def preview(request: Request) -> Response:
    editor = await _editor(request)
    form = await request.form()
    try:
        body = parsed(str(form.get("layout") or ""), editor["entity"].name)
        shown = preview_context(request, body, editor["name"])
    except ValueError as error:
        shown = {**preview_context(request, editor["body"], editor["name"]),
                 "problem": str(error), "tabs": [], "tabbed": False}
    context = await base_context(request, title=f"{editor['entity'].label}: layout")  # the rows' `ui`
    return render(request, "_designer_layout_preview", {**context, "preview": shown},
                  twin=preview_twin(shown))


routes = [
    Route("/admin/entities/{entity}/layout", layout_page, methods=["GET"]),
    Route("/admin/entities/{entity}/layout", save_layout, methods=["POST"]),
    Route("/admin/entities/{entity}/layout/edit", edit, methods=["POST"]),
    Route("/admin/entities/{entity}/layout/preview", preview, methods=["POST"]),
]
