"""A layout as the designer's layout editor holds it: its body (a pack's `kind: layout`
document, less its kind), written as YAML for the textarea and read back from it, and the
Layout a body describes for the preview (web/designer_layouts.py)."""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML

from slatecrm.metamodel.errors import Problem
from slatecrm.metamodel.layouts import Layout, LayoutSection, LayoutTab
from slatecrm.metamodel.model import Entity
from slatecrm.metamodel.yamlsource import parse_yaml


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
