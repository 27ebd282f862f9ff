"""The views designer's structured editor (templates/_view_editor.html): what it offers for an
entity, the values it shows for a view's body, and the body a posted form gives.

The structured form and the YAML textarea plan the same document (customisation.put_view),
so either can edit any view. What the editor offers is asked of the field types, never by a
type's name: a list may sort by what its type sorts on, a board adds up what is summable, a
calendar places records by what calendarfields.py accepts and ends them after a duration.
A posted name that is not among what is offered is refused naming its input, before
planning; the rest (a filter that is not a condition, a pipeline gone meanwhile...) is
checked by the plan, as a pack's view is (metamodel/viewchecks.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData

from slatecrm.metamodel.calendarfields import date_kind, is_duration
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import SORTABLE_SYSTEM, Entity, Field
from slatecrm.metamodel.views import CALENDAR_MODES, VIEW_TYPES

#: A list's page size bounds (those of a pack's view: pack-files.schema.json).
PAGE_SIZES = (1, 500)
DIRECTIONS = ("asc", "desc")
#: The keys each kind of view's editor shows besides label, type and description.
EDITED = {"list": ("columns", "filter", "sort", "page_size"),
          "kanban": ("pipeline", "card_fields", "totals", "filter", "sort"),
          "calendar": ("field", "end_field", "duration_field", "mode", "filter")}


def _named(fields: list[Field]) -> list[dict[str, str]]:
    return [{"name": f.name, "label": f.label or f.name} for f in fields]


def choices(entity: Entity, registry: FieldTypeRegistry) -> dict[str, Any]:
    """What each input of the editor offers for `entity`, by input."""
    fields = list(entity.active_fields)
    typed = [(f, t) for f in fields if (t := registry.of(f)) is not None]
    sortable = _named([f for f, t in typed if t.sortable])
    sortable += [{"name": n, "label": n.replace("_", " ")} for n in SORTABLE_SYSTEM
                 if not any(s["name"] == n for s in sortable)]
    return {
        "types": list(VIEW_TYPES), "modes": list(CALENDAR_MODES), "directions": list(DIRECTIONS),
        "fields": _named(fields), "sortable": sortable,
        "labels": {f.name: f.label or f.name for f in fields},
        "summable": _named([f for f, t in typed if t.summable]),
        "dates": _named([f for f, t in typed if date_kind(t, f)]),
        "durations": _named([f for f, t in typed if is_duration(t)]),
        "pipelines": [{"name": p.name, "label": p.label or p.name} for p in entity.pipelines],
    }


def values_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """The editor's values for a view's body (sort keys as field and direction rows)."""
    sort = [str(k) for k in body.get("sort") or ()]
    return {
        "label": str(body.get("label") or ""), "type": str(body.get("type") or "list"),
        "description": str(body.get("description") or ""),
        "columns": [str(c) for c in body.get("columns") or ()],
        "card_fields": [str(c) for c in body.get("card_fields") or ()],
        "filter": str(body.get("filter") or ""),
        "sort": [{"field": k.lstrip("-"), "direction": "desc" if k.startswith("-") else "asc"} for k in sort],
        "page_size": "" if body.get("page_size") is None else str(body["page_size"]),
        **{key: str(body.get(key) or "") for key in ("pipeline", "totals", "field", "end_field",
                                                       "duration_field", "mode")},
    }


def values_posted(form: FormData) -> dict[str, Any]:
    """The editor's values as posted (a sort row with no field is left out)."""
    def one(key: str) -> str:
        return str(form.get(key) or "").strip()

    fields, directions = form.getlist("sort_field"), form.getlist("sort_dir")
    sort = [{"field": str(f).strip(), "direction": str(directions[i]) if i < len(directions) else "asc"}
            for i, f in enumerate(fields) if str(f).strip()]
    return {
        "label": one("label"), "type": one("type") or "list", "description": one("description"),
        "columns": [str(c) for c in form.getlist("columns") if str(c).strip()],
        "card_fields": [str(c) for c in form.getlist("card_fields") if str(c).strip()],
        "filter": str(form.get("filter") or "").strip(), "sort": sort, "page_size": one("page_size"),
        **{key: one(key) for key in ("pipeline", "totals", "field", "end_field", "duration_field", "mode")},
    }


def body_of_values(values: Mapping[str, Any], entity: Entity,
                   offered: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The view's body the editor's `values` give, and the problems by input name (empty
    when none). Only the keys of the view's type go in, and only those given."""
    errors: dict[str, list[str]] = {}
    kind = values["type"]
    if kind not in VIEW_TYPES:
        return {}, {"type": [f"{kind!r} is not a kind of view; choose {', '.join(VIEW_TYPES)}"]}
    body: dict[str, Any] = {"type": kind}
    for key in ("label", "description"):
        if values[key]:
            body[key] = values[key]
    for key in EDITED[kind]:
        found = _value(key, values, entity, offered, errors)
        if found not in (None, "", []):
            body[key] = found
    return body, errors


def _value(key: str, values: Mapping[str, Any], entity: Entity, offered: Mapping[str, Any],
           errors: dict[str, list[str]]) -> Any:
    """One key's value for the body, or None, with its problem put under its input."""
    given = values[key]
    if key in ("columns", "card_fields"):
        for name in given:
            _among(key, name, offered["fields"], f"{entity.name!r} has no field {name!r}", errors)
        twice = sorted({n for n in given if given.count(n) > 1})
        if twice:
            errors.setdefault(key, []).append(f"{', '.join(twice)}: named more than once")
        return list(given)
    if key == "sort":
        keys = []
        for row in given:
            _among("sort_field", row["field"], offered["sortable"],
                   f"{entity.name!r} has no field {row['field']!r} to sort by", errors)
            if row["direction"] not in DIRECTIONS:
                errors.setdefault("sort_dir", []).append(f"{row['direction']!r}: choose asc or desc")
            keys.append(("-" if row["direction"] == "desc" else "") + row["field"])
        return keys
    if key == "page_size":
        return _page_size(given, errors)
    if not given:
        return None
    lists = {"pipeline": ("pipelines", "pipeline"), "totals": ("summable", "number or amount field"),
             "field": ("dates", "date field"), "end_field": ("dates", "date field"),
             "duration_field": ("durations", "duration field")}
    if key in lists:
        among, what = lists[key]
        _among(key, given, offered[among], f"{entity.name!r} has no {what} {given!r}", errors)
    elif key == "mode" and given not in CALENDAR_MODES:
        errors.setdefault(key, []).append(f"{given!r}: choose {', '.join(CALENDAR_MODES)}")
    return given


def _among(key: str, name: str, offered: list[dict[str, str]], message: str,
           errors: dict[str, list[str]]) -> None:
    names = [o["name"] for o in offered]
    if name not in names:
        errors.setdefault(key, []).append(f"{message}; choose among {', '.join(names) or 'none'}")


def _page_size(given: str, errors: dict[str, list[str]]) -> int | None:
    if not given:
        return None
    low, high = PAGE_SIZES
    try:
        size = int(given)
    except ValueError:
        size = 0
    if not low <= size <= high:
        errors.setdefault("page_size", []).append(f"{given!r}: give a whole number from {low} to {high}")
        return None
    return size
