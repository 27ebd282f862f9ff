"""Where a record goes when its calendar item is dropped on another day or hour: the new
value of the date field, worked out on the server so every client moves records alike.
A moment moved to another day keeps its time of day; dropped on an hour it keeps its
minutes; an all-day value dropped on an hour becomes a moment at that hour when the field
can hold one. An end field, when the calendar has one, moves by the same distance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ..records.compiled import CompiledEntity
from ..records.errors import ValidationFailed
from .calendar_spec import FIRST_YEAR, LAST_YEAR, date_kind


def target_of(form: Mapping[str, Any]) -> tuple[dt.date, int | None]:
    """The day (`date`, YYYY-MM-DD) and optional hour (`hour`, 0 to 23) an item was dropped on;
    a bad one is refused naming its input."""
    text, hour_text = str(form.get("date") or "").strip(), str(form.get("hour") or "").strip()
    try:
        day = dt.date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is None or not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValidationFailed({"date": [f"{text[:40]!r} is not a date (YYYY-MM-DD) a calendar shows"]})
    if not hour_text:
        return day, None
    if not (hour_text.isascii() and hour_text.isdigit() and 0 <= int(hour_text) <= 23):
        raise ValidationFailed({"hour": [f"{hour_text[:10]!r} is not an hour (0 to 23)"]})
    return day, int(hour_text)


def moved(value: Any, day: dt.date, hour: int | None, *, holds_moments: bool) -> dt.date | dt.datetime:
    """`value` (a day or a moment) placed on `day`, at `hour` if given."""
    if isinstance(value, dt.datetime):
        moment = value.astimezone(dt.UTC)
        clock = moment.timetz() if hour is None else moment.timetz().replace(hour=hour)
        return dt.datetime.combine(day, clock)
    if hour is not None and holds_moments:
        return dt.datetime.combine(day, dt.time(hour), dt.UTC)
    return day


def _shifted(value: Any, was: dt.date | dt.datetime, now: dt.date | dt.datetime) -> Any:
    """An end moved as its start moved from `was` to `now`: a moment by the same time, a
    day by the same number of days."""
    if isinstance(value, dt.datetime):
        return value + (_as_moment(now) - _as_moment(was))
    if isinstance(value, dt.date):
        return value + (_as_moment(now).date() - _as_moment(was).date())
    return value


def changes(ce: CompiledEntity, values: Mapping[str, Any], field: str, end_field: str | None,
            day: dt.date, hour: int | None) -> dict[str, Any]:
    """The partial update moving a record (its current `values`) by its `field` to `day`
    (and `hour`); the field must be one a calendar places records by, and hold a value."""
    compiled = ce.fields.get(field)
    kind = date_kind(compiled) if compiled is not None else None
    if compiled is None or kind is None:
        raise ValidationFailed({"field": [f"{ce.entity.label} has no date field {field[:60]!r}"]})
    current = values.get(field)
    if current is None:
        raise ValidationFailed({field: ["has no value: open the record to give it one"]})
    new = moved(current, day, hour, holds_moments=kind == "datetime")
    out: dict[str, Any] = {field: new}
    if end_field:
        if end_field == field or end_field not in ce.fields or date_kind(ce.fields[end_field]) is None:
            raise ValidationFailed({"end": [f"{end_field[:60]!r} is not another date field of "
                                            f"{ce.entity.label}"]})
        if values.get(end_field) is not None:
            out[end_field] = _shifted(values[end_field], current, new)
    return out


def _as_moment(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return dt.datetime.combine(value, dt.time(0), dt.UTC)
