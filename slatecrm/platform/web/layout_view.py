"""An entity's layout (metamodel/layouts.py) as the record page, the form and the board show it.

Without a layout the pages keep their default arrangement (widgets.py `sections`: one
unnamed tab). With one, only the fields it places are shown, in its tabs and sections; a
field the user may not read is missing from the compiled entity and so from the page even
when placed. Tabs work without a script (every panel shown, the tab bar as links to them);
app.js hides the panels not chosen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from slatecrm.metamodel.layouts import Layout

from ..records.compiled import CompiledEntity, CompiledField
from .widgets import Section, sections


@dataclass(frozen=True)
class Tab:
    #: "" for the one unnamed tab of a page without tabs.
    label: str
    #: The panel's id (the tab bar links to it).
    anchor: str
    sections: list[Section]


def layout_of(ce: CompiledEntity, layouts: Iterable[Layout]) -> Layout | None:
    return next((layout for layout in layouts if layout.entity == ce.name), None)


def tabs(ce: CompiledEntity, layout: Layout | None,
         fields: Iterable[CompiledField] | None = None) -> list[Tab]:
    """The tabs of a record page (`fields`: every readable field) or a form (`fields`: those
    a form shows), empty sections and tabs left out."""
    shown = {f.name: f for f in (fields if fields is not None else ce.fields.values())}
    if layout is None or not layout.tabs:
        return [Tab("", "tab-1", sections(ce, shown.values()))]
    out = []
    for index, tab in enumerate(layout.tabs, start=1):
        found = [Section(section.label, [shown[name] for name in section.fields if name in shown],
                         section.columns) for section in tab.sections]
        found = [section for section in found if section.fields]
        if found:
            out.append(Tab(tab.label, f"tab-{index}", found))
    return out


def tab_context(found: list[Tab]) -> dict[str, Any]:
    """What a page's template needs of its tabs: them, and whether it shows a tab bar."""
    return {"tabs": found, "tabbed": len(found) > 1 or any(tab.label for tab in found)}


def compact_fields(ce: CompiledEntity, layout: Layout | None) -> list[CompiledField] | None:
    """The fields of the entity's compact form (board cards, previews); None: the default."""
    if layout is None or not layout.compact:
        return None
    return [ce.fields[name] for name in layout.compact if name in ce.fields]
