"""Views: named ways of looking at an entity's records (`kind: view`, by a pack or the
organisation's layer).

A list view says which columns a list shows, a default filter (a rule-language condition),
its order and page size; a kanban view says which pipeline a board shows, the fields on
its cards and the number field its columns add up; a calendar view says which date field
places the records, where an item ends, and whether a month, a week or a day shows. A view
only chooses among what the read path gives: it never widens what a user may read, so it
needs no tables and no DDL, only a new revision when it changes.

This module holds the definitions; they are read in packs.py, checked against the merged
metamodel and merged by name in viewchecks.py, and stored with each revision (model.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as attribute
from typing import Any

from .errors import Location

#: The kinds of view a pack may define.
VIEW_TYPES = ("list", "kanban", "calendar")
#: Keys that only mean something for one kind of view.
LIST_ONLY = ("columns", "page_size")
KANBAN_ONLY = ("pipeline", "card_fields", "totals")
CALENDAR_ONLY = ("field", "end_field", "duration_field", "mode")
#: The keys of each kind only it takes (`sort` is for lists and boards: a calendar orders
#: each day by its field).
OWN_KEYS = {"list": LIST_ONLY, "kanban": KANBAN_ONLY, "calendar": (*CALENDAR_ONLY,)}
#: What a calendar shows at once (the default first).
CALENDAR_MODES = ("month", "week", "day")


@dataclass(frozen=True)
class View:
    name: str
    label: str
    entity: str
    type: str = "list"
    description: str = ""
    #: list: the fields shown, in order (empty: the list's default columns)
    columns: tuple[str, ...] = ()
    #: a rule-language condition every record shown meets (docs/rules.md)
    filter: str | None = None
    #: sort keys, `-` first for descending (empty: the entity's default order)
    sort: tuple[str, ...] = ()
    #: list: records per page (None: the list's default)
    page_size: int | None = None
    #: kanban: the pipeline whose stages are the board's columns
    pipeline: str | None = None
    #: kanban: the fields shown on each card besides its title
    card_fields: tuple[str, ...] = ()
    #: kanban: the number or amount field each column adds up
    totals: str | None = None
    #: calendar: the date (or date and time) field that places the records
    field: str | None = None
    #: calendar: a later date field where a timed item ends, or a duration field saying how long
    end_field: str | None = None
    duration_field: str | None = None
    #: calendar: month, week or day (None: month)
    mode: str | None = None
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)
    #: where each key given stands in the pack, so a problem with one points at its line
    locations: Mapping[str, Location] = attribute(default_factory=dict, compare=False)

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.source)


def view_dict(view: View) -> dict[str, Any]:
    """The stored form of a view (what a revision keeps)."""
    data = {f.name: getattr(view, f.name) for f in dataclasses.fields(view)
            if f.name not in ("source", "locations")}
    for key in ("columns", "sort", "card_fields"):
        data[key] = list(data[key])
    data["source"] = vars(view.source).copy() if view.source.file else None
    data["locations"] = {k: vars(v).copy() for k, v in view.locations.items()}
    return data


def view_from(data: Mapping[str, Any]) -> View:
    known = {f.name for f in dataclasses.fields(View)} - {"source", "locations"}
    values = {k: v for k, v in data.items() if k in known}
    for key in ("columns", "sort", "card_fields"):
        values[key] = tuple(values.get(key) or ())
    source = data.get("source")
    return View(**values, source=Location(**source) if source else Location(),
                locations={k: Location(**v) for k, v in (data.get("locations") or {}).items()})
