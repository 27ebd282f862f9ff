"""A field the designer adds to an entity with a layout is placed in it, in the same plan.

A layout shows only the fields it places (docs/packs.md "Layouts"), so a field added in the
designer to an entity whose pack ships a layout would exist without showing on its record
page or form, which the admin who just made it would take for a failure. As the designer
adds the field, it also appends it to the first section of the layout's first tab, through
the organisation's layout (a copy of the pack's when it has none yet), and the plan says so
("change layout …"). Retiring an organisation's field takes it out of that layout again.
The admin API leaves layouts alone: a script places fields with PUT /admin/layouts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from slatecrm.metamodel.model import Metamodel

from ..layers import Documents
from .designer_layout_body import body_of

Edit = Callable[[Documents, Metamodel], None]


def _sections(body: dict[str, Any]) -> list[dict[str, Any]]:
    tabs = body.get("tabs")
    listed = tabs[0].get("sections", []) if tabs else body.get("sections", [])
    return [section for section in listed if isinstance(section, dict)]


def placing(edit: Edit, entity: str, field: str) -> Edit:
    """`edit` (adding `field` to `entity`), then `field` placed in the entity's layout."""
    def both(docs: Documents, current: Metamodel) -> None:
        edit(docs, current)
        layout, target = current.layout_of(entity), current.entity(entity)
        if layout is None or target is None or not layout.tabs or field in layout.placed:
            return
        key = ("layout", layout.name)
        body = copy.deepcopy(docs[key]) if key in docs else {
            "kind": "layout", **body_of(layout, target), "name": layout.name}
        sections = _sections(body)
        if not sections:
            return
        sections[0]["fields"] = [*sections[0].get("fields", []), field]
        docs[key] = body
    return both


def unplacing(edit: Edit, entity: str, field: str) -> Edit:
    """`edit` (retiring `field`), then `field` taken out of the organisation's layout of
    `entity` (a pack's layout cannot place the organisation's field)."""
    def both(docs: Documents, current: Metamodel) -> None:
        edit(docs, current)
        layout = current.layout_of(entity)
        if layout is None or ("layout", layout.name) not in docs:
            return
        body = docs[("layout", layout.name)]
        for tab in body.get("tabs") or [body]:
            for section in tab.get("sections", []):
                section["fields"] = [name for name in section.get("fields", []) if name != field]
            tab["sections"] = [section for section in tab.get("sections", []) if section["fields"]]
        if body.get("tabs"):
            body["tabs"] = [tab for tab in body["tabs"] if tab["sections"]]
        compact = [name for name in (body.get("compact") or {}).get("fields", []) if name != field]
        if compact:
            body["compact"] = {"fields": compact}
        else:
            body.pop("compact", None)
    return both
