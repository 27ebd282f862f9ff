"""The layout editor's actions (web/designer_layouts.py) as pure functions over a layout's
body: the YAML document the editor's textarea holds, parsed (tabs or sections,
related_lists, compact).

Each action reads the body the user has NOW (their unsaved text edits included) and returns
a new one, so a drag or a button never loses what was typed. An action that cannot apply
(a tab that is not there, a field placed twice) raises EditRefused naming the place; the
layout's own checks (a required field left out, an empty section) run when it is planned.
Empty tabs and sections may exist here for a moment: a new section waits for its fields.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: At most this many compact fields (the pack schema's limit: a board card stays small).
COMPACT_LIMIT = 6

Body = dict[str, Any]


class EditRefused(ValueError):
    """An action the body does not allow, with the reason naming the place."""


def tabs_of(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The body's tabs; a layout given as sections is one unnamed tab (shared, not copied)."""
    tabs = body.get("tabs")
    if isinstance(tabs, list):
        return tabs
    if tabs is not None:
        raise EditRefused("tabs: give a list of tabs, each with a label and sections")
    return [{"label": "", "sections": body.get("sections") if body.get("sections") is not None else []}]


def _with_tabs(body: Body, tabs: list[dict[str, Any]], *, tabbed: bool | None = None) -> Body:
    """`body` holding `tabs`, as tabs or (one unnamed tab) as sections."""
    out = {k: v for k, v in body.items() if k not in {"tabs", "sections"}}
    keep_tabs = tabbed if tabbed is not None else (
        "tabs" in body or len(tabs) != 1 or bool(tabs[0].get("label")))
    if keep_tabs:
        out["tabs"] = tabs
    else:
        out["sections"] = tabs[0].get("sections") or []
    entity = out.pop("entity", None)
    ordered: Body = {"entity": entity} if entity is not None else {}
    for key in ("tabs", "sections", "related_lists", "compact"):
        if key in out:
            ordered[key] = out.pop(key)
    return {**ordered, **out}


def _tab(tabs: list[dict[str, Any]], index: int) -> dict[str, Any]:
    if not 0 <= index < len(tabs):
        raise EditRefused(f"there is no tab {index + 1} (the layout has {len(tabs)})")
    tab: dict[str, Any] = tabs[index]
    if not isinstance(tab, dict):
        raise EditRefused(f"tab {index + 1} is not a mapping with a label and sections")
    if tab.get("sections") is None:
        tab["sections"] = []
    if not isinstance(tab["sections"], list):
        raise EditRefused(f"the sections of tab {index + 1} are not a list")
    return tab


def _section(tabs: list[dict[str, Any]], tab: int, index: int) -> dict[str, Any]:
    sections = _tab(tabs, tab)["sections"]
    if not 0 <= index < len(sections) or not isinstance(sections[index], dict):
        raise EditRefused(f"there is no section {index + 1} in tab {tab + 1}")
    section: dict[str, Any] = sections[index]
    if section.get("fields") is None:
        section["fields"] = []
    if not isinstance(section["fields"], list):
        raise EditRefused(f"the fields of section {index + 1} in tab {tab + 1} are not a list")
    return section


def _clamp(index: int | None, length: int) -> int:
    return length if index is None else max(0, min(index, length))


def _names(label: str, taken: Sequence[str]) -> str:
    """`label`, or `label 2`, `label 3`...: a new tab or section does not repeat a name."""
    if label not in taken:
        return label
    n = 2
    while f"{label} {n}" in taken:
        n += 1
    return f"{label} {n}"


def _edit(body: Body, change: Callable[[list[dict[str, Any]]], bool | None]) -> Body:
    """`body`'s tabs changed by `change` on a copy (which returns whether the result keeps
    its tabs: None to decide from the result)."""
    out = copy.deepcopy(body)
    tabs: list[dict[str, Any]] = copy.deepcopy(tabs_of(out))
    tabbed = change(tabs)
    return _with_tabs(out, tabs, tabbed=tabbed)


# --- fields ------------------------------------------------------------------------------------
def move_field(body: Body, field: str, to_tab: int | None, to_section: int | None,
               index: int | None = None) -> Body:
    """Put `field` in section `to_section` of tab `to_tab` at `index` (the end when None),
    taken out of where it was; no section (None): back to the unplaced fields."""
    def change(tabs: list[dict[str, Any]]) -> None:
        target = _section(tabs, to_tab, to_section) if to_tab is not None and to_section is not None else None
        for tab in tabs:
            for section in tab.get("sections") or ():
                if isinstance(section, dict) and field in (section.get("fields") or ()):
                    section["fields"] = [f for f in section["fields"] if f != field]
        if target is not None:
            target["fields"].insert(_clamp(index, len(target["fields"])), field)
    return _edit(body, change)


# --- sections ----------------------------------------------------------------------------------
def add_section(body: Body, tab: int, label: str = "New section") -> Body:
    """A new empty section (one column) at the end of tab `tab`."""
    def change(tabs: list[dict[str, Any]]) -> None:
        sections = _tab(tabs, tab)["sections"]
        taken = [str(s.get("label") or "") for t in tabs for s in t.get("sections") or ()
                 if isinstance(s, dict)]
        sections.append({"label": _names(label, taken), "columns": 1, "fields": []})
    return _edit(body, change)


def move_section(body: Body, tab: int, section: int, to_tab: int, index: int | None = None) -> Body:
    """Move a section, its fields with it, to tab `to_tab` at `index` (the end when None)."""
    def change(tabs: list[dict[str, Any]]) -> None:
        moved = _section(tabs, tab, section)
        target = _tab(tabs, to_tab)["sections"]
        _tab(tabs, tab)["sections"].pop(section)
        target.insert(_clamp(index, len(target)), moved)
    return _edit(body, change)


def rename_section(body: Body, tab: int, section: int, label: str) -> Body:
    def change(tabs: list[dict[str, Any]]) -> None:
        found = _section(tabs, tab, section)
        if label.strip():
            found["label"] = label.strip()
        else:
            found.pop("label", None)
    return _edit(body, change)


def set_columns(body: Body, tab: int, section: int, columns: int) -> Body:
    if columns not in (1, 2):
        raise EditRefused(f"a section has 1 or 2 columns, not {columns}")

    def change(tabs: list[dict[str, Any]]) -> None:
        _section(tabs, tab, section)["columns"] = columns
    return _edit(body, change)


def remove_section(body: Body, tab: int, section: int) -> Body:
    """Remove a section; its fields go back to the unplaced ones."""
    def change(tabs: list[dict[str, Any]]) -> None:
        _section(tabs, tab, section)
        _tab(tabs, tab)["sections"].pop(section)
    return _edit(body, change)


# --- tabs --------------------------------------------------------------------------------------
def add_tab(body: Body, label: str = "New tab", first: str = "Main") -> Body:
    """A new tab with one empty section; a layout without tabs gets them, its sections in a
    first tab labelled `first`."""
    def change(tabs: list[dict[str, Any]]) -> bool:
        if len(tabs) == 1 and not tabs[0].get("label"):
            tabs[0]["label"] = first
        taken = [str(t.get("label") or "") for t in tabs if isinstance(t, dict)]
        tabs.append({"label": _names(label, taken), "sections": [
            {"label": "New section", "columns": 1, "fields": []}]})
        return True
    return _edit(body, change)


def move_tab(body: Body, tab: int, index: int) -> Body:
    def change(tabs: list[dict[str, Any]]) -> None:
        moved = _tab(tabs, tab)
        tabs.pop(tab)
        tabs.insert(_clamp(index, len(tabs)), moved)
    return _edit(body, change)


def rename_tab(body: Body, tab: int, label: str) -> Body:
    if not label.strip():
        raise EditRefused(f"tab {tab + 1} needs a label (the tab bar shows it)")

    def change(tabs: list[dict[str, Any]]) -> bool:
        _tab(tabs, tab)["label"] = label.strip()
        return True
    return _edit(body, change)


def remove_tab(body: Body, tab: int) -> Body:
    """Remove a tab and its sections; their fields go back to the unplaced ones. The last
    tab stays (a layout has at least one)."""
    def change(tabs: list[dict[str, Any]]) -> bool | None:
        _tab(tabs, tab)
        if len(tabs) == 1:
            raise EditRefused("the layout keeps at least one tab: remove its sections instead")
        tabs.pop(tab)
        return None
    return _edit(body, change)


# --- related lists -----------------------------------------------------------------------------
def _related(body: Body, offered: Sequence[str]) -> list[dict[str, Any]]:
    """The body's related lists (a copy); without any given, the record page's default: every
    one `offered` (`entity.field`)."""
    given = body.get("related_lists")
    if given is None:
        return [{"entity": key.partition(".")[0], "field": key.partition(".")[2]} for key in offered]
    if not isinstance(given, list):
        raise EditRefused("related_lists: give a list of {entity, field} mappings")
    return copy.deepcopy(given)


def related_key(item: Mapping[str, Any]) -> str:
    return f"{item.get('entity')}.{item.get('field')}"


def _with_related(body: Body, lists: list[dict[str, Any]]) -> Body:
    out = copy.deepcopy(body)
    out["related_lists"] = lists
    return _with_tabs(out, copy.deepcopy(tabs_of(out)))


def add_related(body: Body, key: str, offered: Sequence[str]) -> Body:
    """Show the related list `key` (`entity.field`, one of `offered`) last."""
    if key not in offered:
        raise EditRefused(f"{key!r} is no related list of this entity "
                          f"(offered: {', '.join(offered) or 'none'})")
    lists = _related(body, offered)
    if key in {related_key(item) for item in lists}:
        raise EditRefused(f"the related list {key} is shown already")
    entity, _, field = key.partition(".")
    return _with_related(body, [*lists, {"entity": entity, "field": field}])


def move_related(body: Body, index: int, to: int, offered: Sequence[str]) -> Body:
    lists = _related(body, offered)
    if not 0 <= index < len(lists):
        raise EditRefused(f"there is no related list {index + 1}")
    moved = lists.pop(index)
    lists.insert(_clamp(to, len(lists)), moved)
    return _with_related(body, lists)


def remove_related(body: Body, index: int, offered: Sequence[str]) -> Body:
    lists = _related(body, offered)
    if not 0 <= index < len(lists):
        raise EditRefused(f"there is no related list {index + 1}")
    lists.pop(index)
    return _with_related(body, lists)


# --- the compact layout ------------------------------------------------------------------------
def _compact(body: Body) -> list[str]:
    given = body.get("compact")
    if given is None:
        return []
    if not isinstance(given, dict) or not isinstance(given.get("fields") or [], list):
        raise EditRefused("compact: give {fields: [...]}")
    return [str(name) for name in given.get("fields") or ()]


def _with_compact(body: Body, names: list[str]) -> Body:
    out = copy.deepcopy(body)
    if names:
        out["compact"] = {**(out.get("compact") or {}), "fields": names}
    else:
        out.pop("compact", None)  # none: the default card (the schema wants one field or more)
    return _with_tabs(out, copy.deepcopy(tabs_of(out)))


def add_compact(body: Body, field: str) -> Body:
    names = _compact(body)
    if field in names:
        raise EditRefused(f"field {field!r} is in the compact layout already")
    if len(names) >= COMPACT_LIMIT:
        raise EditRefused(f"the compact layout has at most {COMPACT_LIMIT} fields: remove one first")
    return _with_compact(body, [*names, field])


def move_compact(body: Body, field: str, index: int) -> Body:
    names = _compact(body)
    if field not in names:
        raise EditRefused(f"field {field!r} is not in the compact layout")
    names.remove(field)
    names.insert(_clamp(index, len(names)), field)
    return _with_compact(body, names)


def remove_compact(body: Body, field: str) -> Body:
    names = _compact(body)
    if field not in names:
        raise EditRefused(f"field {field!r} is not in the compact layout")
    return _with_compact(body, [n for n in names if n != field])
