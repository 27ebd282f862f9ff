"""The layout editor's form preview (templates/_designer_layout_preview.html): the new-record
form as the layout being edited arranges it, drawn with the form's own rows
(templates/_form_row.html and each field type's widget), so the preview shows the real
inputs, their help and required markers. It is inert: the rows sit in a disabled fieldset
(nothing is sent with the editor's form) marked `hx-ignore` and `inert` (no widget asks the
server for anything)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ..records.compiled import CompiledEntity
from .designer_layout_body import draft
from .layout_view import tab_context, tabs
from .pinning import records_of
from .widgets import form_fields, raw_inputs


def new_record_inputs(ce: CompiledEntity) -> dict[str, Any]:
    """What a new record's form shows in its inputs: each field's default (or nothing)."""
    raw: dict[str, Any] = {}
    for compiled in form_fields(ce):
        value = compiled.field.default
        if value is not None:
            try:
                value = compiled.type.coerce(value, compiled.field)
            except ValueError:
                value = None
        raw.update(raw_inputs(compiled, value))
    return raw


def preview_context(request: Request, body: dict[str, Any], name: str) -> dict[str, Any]:
    """The preview's tabs as `body` arranges them, with what the form's rows are rendered
    with; or the reason it cannot (`problem`)."""
    ce = records_of(request).entity(body["entity"])
    rows = {"ce": ce, "raw": new_record_inputs(ce), "errors": {}, "hidden": frozenset(),
            "locked": frozenset(), "options": {}, "suggestions": {}, "record": None, "oob": False,
            "validate": ""}
    try:
        found = tabs(ce, draft(body, name), form_fields(ce))
    except ValueError as error:
        return {"problem": str(error), "tabs": [], "tabbed": False, **rows}
    return {"problem": None, **rows, **tab_context(found)}


def preview_twin(shown: dict[str, Any]) -> dict[str, Any]:
    """The preview as JSON: its tabs, sections and fields (with whether each is required)."""
    return {"problem": shown["problem"], "tabs": [
        {"label": t.label, "sections": [
            {"label": s.title, "columns": s.columns, "fields": [f.name for f in s.fields],
             "required": [f.name for f in s.fields if f.field.required]}
            for s in t.sections]}
        for t in shown["tabs"]]}
