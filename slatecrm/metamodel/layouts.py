"""`kind: layout`: how an entity's record page and form are arranged, and its compact form.

A layout places fields in sections (one or two columns) grouped in tabs, picks the related
lists a record page shows (which ones, in which order, their columns, sort and length), and
names the few fields of the compact form (board cards, hover previews). It only arranges: a
field left out still exists, is read and written through the API, and keeps its value when
a form is saved. Checks against the merged metamodel are in layoutchecks.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as attribute
from typing import Any

from .errors import Location

#: A related list's length when the layout does not give one (the record page's default).
RELATED_LIMIT = 10


@dataclass(frozen=True)
class LayoutSection:
    label: str
    #: 1 or 2: the section's fields in one column or side by side.
    columns: int
    fields: tuple[str, ...]


@dataclass(frozen=True)
class LayoutTab:
    #: "" for a layout given as sections without tabs (one unnamed tab, shown without a tab bar).
    label: str
    sections: tuple[LayoutSection, ...]


@dataclass(frozen=True)
class RelatedList:
    """Records of `entity` whose `field` points at the layout's entity (a reference, a
    line item's parent reference, a many-to-many on either side)."""

    entity: str
    field: str
    #: Fields of `entity` shown as columns (none: the default columns).
    columns: tuple[str, ...] = ()
    #: Sort keys of `entity` (`-name` descending; none: the entity's default sort).
    sort: tuple[str, ...] = ()
    limit: int = RELATED_LIMIT
    label: str | None = None


@dataclass(frozen=True)
class Layout:
    name: str
    entity: str
    tabs: tuple[LayoutTab, ...] = ()
    #: None: the record page's default related lists (every one); a tuple: exactly these.
    related_lists: tuple[RelatedList, ...] | None = None
    #: The compact layout's fields (none: the default card).
    compact: tuple[str, ...] = ()
    #: The pack that defines it ("organisation" for the organisation's layer).
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)
    #: Where each name the layout gives stands: `entity`, `field:<name>`, `compact:<name>`,
    #: `related:<i>`, `related:<i>:field`, `related:<i>:column:<name>`, `related:<i>:sort:<key>`.
    locations: Mapping[str, Location] = attribute(default_factory=dict, compare=False)

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.source)

    @property
    def placed(self) -> tuple[str, ...]:
        """The fields the record page and the form show, in layout order."""
        return tuple(name for tab in self.tabs for section in tab.sections for name in section.fields)

    @property
    def tabbed(self) -> bool:
        """Whether the page shows a tab bar (a layout given as sections has one unnamed tab)."""
        return any(tab.label for tab in self.tabs)


# --- the stored form (kept with each revision) ------------------------------------------------
def _location_dict(location: Location) -> dict[str, Any] | None:
    return vars(location).copy() if location != Location() else None


def _location_from(data: Mapping[str, Any] | None) -> Location:
    return Location(**data) if data else Location()


def layout_dict(layout: Layout) -> dict[str, Any]:
    related = None if layout.related_lists is None else [
        {"entity": r.entity, "field": r.field, "columns": list(r.columns), "sort": list(r.sort),
         "limit": r.limit, "label": r.label} for r in layout.related_lists]
    return {
        "name": layout.name, "entity": layout.entity, "pack": layout.pack,
        "tabs": [{"label": t.label, "sections": [{"label": s.label, "columns": s.columns,
                                                  "fields": list(s.fields)} for s in t.sections]}
                 for t in layout.tabs],
        "related_lists": related, "compact": list(layout.compact),
        "source": _location_dict(layout.source),
        "locations": {key: _location_dict(where) for key, where in layout.locations.items()},
    }


def layout_from(data: Mapping[str, Any]) -> Layout:
    related = data.get("related_lists")
    return Layout(
        name=data["name"], entity=data["entity"], pack=data.get("pack", ""),
        tabs=tuple(LayoutTab(t["label"], tuple(LayoutSection(s["label"], s["columns"], tuple(s["fields"]))
                                               for s in t["sections"])) for t in data.get("tabs", ())),
        related_lists=None if related is None else tuple(
            RelatedList(r["entity"], r["field"], tuple(r.get("columns", ())), tuple(r.get("sort", ())),
                        r.get("limit", RELATED_LIMIT), r.get("label")) for r in related),
        compact=tuple(data.get("compact", ())), source=_location_from(data.get("source")),
        locations={key: _location_from(where) for key, where in (data.get("locations") or {}).items()},
    )
