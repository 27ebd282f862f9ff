"""Which fields a calendar can use, asked of the field types (never by their names): shared
by the checks of a calendar view (viewchecks.py) and the calendar page
(platform/web/calendar_spec.py), so a view that passes its checks names fields the page
accepts."""

from __future__ import annotations

from .fieldtypes import FieldType
from .model import Field
from .rules.types import DATE, DATETIME


def date_kind(field_type: FieldType, field: Field) -> str | None:
    """"date" for a field of whole days, "datetime" for one holding moments (a field that
    holds either a day or a moment is "datetime": its days are all-day items), None for a
    field a calendar cannot place records by (another type, or one it cannot filter and
    sort on, such as a value computed on read)."""
    if not (field_type.filterable and field_type.sortable):
        return None
    kind = field_type.rule_type(field)
    if kind == DATE:
        return "date"
    if kind == DATETIME:
        return "datetime"
    return None


def is_duration(field_type: FieldType) -> bool:
    """A length of time in whole seconds, which a calendar item's end may be given by."""
    return field_type.seconds_long
