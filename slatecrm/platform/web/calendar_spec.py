"""What a calendar shows, apart from how it is drawn: its spec (the entity, the date field it
places records by, the mode, and optionally where an item ends), the fields a calendar may
use, and the days a mode makes visible. Kept small and free of requests so that a saved
`view` of type calendar can hand a spec to the page later, as the URL does today.

Days are UTC days, as every date and time the UI shows is UTC (docs/ui.md, "Calendar")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from ...metamodel import calendarfields
from ...metamodel.views import CALENDAR_MODES
from ..records.compiled import CompiledEntity, CompiledField
from ..records.errors import BadQuery

MODES = CALENDAR_MODES
#: Items listed per day before "N more": a month's cells are small, a day has room.
PER_DAY = {"month": 4, "week": 12, "day": 60}
#: The years a calendar can show: a day one either side of them still exists in Python.
FIRST_YEAR, LAST_YEAR = 2, 9998


@dataclass(frozen=True)
class CalendarSpec:
    """One calendar: `field` places the records (a date, a date and time, or either);
    `end_field` (a later moment or day) or `duration_field` (a length of time), when given,
    say where a timed item ends, and a move keeps the end the same distance after the start."""

    entity: str
    field: str
    mode: str = "month"
    end_field: str | None = None
    duration_field: str | None = None


def date_kind(compiled: CompiledField) -> str | None:
    """"date", "datetime" or None (metamodel/calendarfields.py), for a field as the reader sees it."""
    return calendarfields.date_kind(compiled.type, compiled.field)


def date_fields(ce: CompiledEntity) -> list[CompiledField]:
    """The fields of `ce` a calendar can place records by, in the entity's order."""
    return [f for f in ce.fields.values() if date_kind(f) is not None]


def duration_kind(compiled: CompiledField) -> bool:
    """A length of time in whole seconds, as the type says."""
    return calendarfields.is_duration(compiled.type)


def spec_from(ce: CompiledEntity, params: Mapping[str, str]) -> CalendarSpec:
    """The spec a calendar page's parameters ask for (`field`, `mode`, `end`, `duration`),
    with the entity's first date field and month by default. A field that is missing, not
    a date, or hidden from the reader (it is not in `ce` then) is a 400 naming the parameter
    and the fields there are."""
    fields = date_fields(ce)
    known = ", ".join(f.name for f in fields) or "none"
    if not fields:
        raise BadQuery({"field": [f"{ce.entity.label} has no date or date and time field to show "
                                  "on a calendar"]})
    errors: dict[str, list[str]] = {}
    name = params.get("field", "").strip() or fields[0].name
    if name not in {f.name for f in fields}:
        errors["field"] = [f"{ce.entity.label} has no date field {name[:60]!r}; date fields: {known}"]
    mode = params.get("mode", "").strip() or "month"
    if mode not in MODES:
        errors["mode"] = [f"{mode[:20]!r} is not a calendar mode; modes: {', '.join(MODES)}"]
    end = params.get("end", "").strip() or None
    if end is not None and (end == name or end not in {f.name for f in fields}):
        errors["end"] = [f"{end[:60]!r} is not another date field of {ce.entity.label}; date fields: {known}"]
    duration = params.get("duration", "").strip() or None
    if duration is not None and not (duration in ce.fields and duration_kind(ce.fields[duration])):
        errors["duration"] = [f"{ce.entity.label} has no duration field {duration[:60]!r}"]
    if end and duration and "end" not in errors:
        errors["duration"] = ["give an end field or a duration field, not both"]
    if errors:
        raise BadQuery(errors)
    return CalendarSpec(ce.name, name, mode, end, duration)


def day_from(text: str, today: dt.date) -> dt.date:
    """The `date` parameter (YYYY-MM-DD), today when empty; a 400 naming it otherwise."""
    typed = text.strip()
    if not typed:
        return today
    try:
        day = dt.date.fromisoformat(typed) if len(typed) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise BadQuery({"date": [f"{typed[:40]!r} is not a date (YYYY-MM-DD)"]})
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise BadQuery({"date": [f"a calendar shows the years {FIRST_YEAR} to {LAST_YEAR}"]})
    return day


@dataclass(frozen=True)
class Window:
    """The days a calendar shows (`first` to `last`, both included) around the day asked
    for, and the days its previous and next buttons go to."""

    mode: str
    day: dt.date
    first: dt.date
    last: dt.date
    previous: dt.date
    next: dt.date

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def weeks(self) -> list[list[dt.date]]:
        days = self.days
        return [days[i:i + 7] for i in range(0, len(days), 7)]


def window(mode: str, day: dt.date) -> Window:
    """Month: the weeks (Monday first) that hold the month's days; week: Monday to Sunday;
    day: that day. Previous and next move by one month, week or day."""
    if mode == "day":
        return Window(mode, day, day, day, day - dt.timedelta(days=1), day + dt.timedelta(days=1))
    if mode == "week":
        monday = day - dt.timedelta(days=day.weekday())
        return Window(mode, day, monday, monday + dt.timedelta(days=6),
                      day - dt.timedelta(days=7), day + dt.timedelta(days=7))
    start = day.replace(day=1)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    end = following - dt.timedelta(days=1)
    first = start - dt.timedelta(days=start.weekday())
    last = end + dt.timedelta(days=6 - end.weekday())
    previous = (start - dt.timedelta(days=1)).replace(day=1)
    return Window(mode, day, first, last, previous, following)
