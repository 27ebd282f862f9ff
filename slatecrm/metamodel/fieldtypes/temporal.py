"""Field types of time beyond a date or a moment: a time of day (`time`), a length of time
(`duration`, kept as whole seconds) and a value that is either a whole day or a moment
(`date_or_datetime`, an all-day event or one at a set time)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from ..rules.types import DATETIME, TIME, Type
from .base import CoercionError, ColumnSpec, FieldType, FormInputs, SampleSource
from .builtin import DateTime, _bounded_integer, _kind, _WholeNumberInRules, whole_number
from .sqltypes import UTCDateTime

if TYPE_CHECKING:
    from ..model import Field


# --- time of day ---------------------------------------------------------------------------
_CLOCK = re.compile(
    r"(?P<hour>[0-9]{1,2})(?::(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))?)?"
    r"\s*(?:(?P<half>[ap])\.?\s*m\.?)?", re.IGNORECASE)
_HOUR = "(?:[01][0-9]|2[0-3])"


class TimeOfDay(FieldType):
    """A time of day without a date or a time zone ("14:30"): a SQL TIME column on both
    databases (SQLite keeps it as fixed-width text, which sorts as the times do), whole
    seconds; `step` (minutes) keeps values on a grid from midnight, as the form's picker does."""

    name = "time"
    label = "Time of day"
    settings_schema = {"step": {"type": "integer", "minimum": 1, "maximum": 720,
                                "description": "minutes between the times allowed, from midnight"}}
    constraint_settings = ("step",)
    widget_template = "widgets/time.html"
    list_rank: ClassVar[int | None] = 8

    def rule_type(self, field: Field) -> Type | None:
        return TIME

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.Time()

    def step(self, field: Field) -> int | None:
        """Minutes between the allowed times, or None for any whole second."""
        step = field.settings.get("step")
        return None if step is None else int(step)

    def convert(self, value: Any, field: Field) -> dt.time:
        if isinstance(value, dt.datetime):
            raise CoercionError(f"expected a time of day, got a date and time ({value.isoformat()})")
        if isinstance(value, dt.time):
            if value.tzinfo is not None:
                raise CoercionError("a time of day keeps no time zone")
            moment = value
        elif isinstance(value, str):
            moment = self.read(value)
        else:
            raise CoercionError(f"expected a time of day (like 14:30), got {_kind(value)}")
        if moment.microsecond:
            raise CoercionError(f"{moment.isoformat()} has a fraction of a second; a time keeps whole "
                                "seconds")
        step = self.step(field)
        if step is not None and (moment.second or (moment.hour * 60 + moment.minute) % step):
            raise CoercionError(f"{self.display(moment, field)} is not on the field's {step}-minute step "
                                "(counted from midnight)")
        return moment

    def read(self, text: str) -> dt.time:
        """A time as a person types it: 14:30, 14:30:15, 2:30 pm, 2pm, 12 a.m."""
        typed = text.strip()
        match = _CLOCK.fullmatch(typed)
        if match is None:
            raise CoercionError(f"{typed[:40]!r} is not a time of day (like 14:30 or 2:30 pm)")
        hour, half = int(match["hour"]), (match["half"] or "").lower()
        minute, second = int(match["minute"] or 0), int(match["second"] or 0)
        if not half and match["minute"] is None:
            raise CoercionError(f"{typed!r} is not a time of day: give minutes (14:00) or am / pm (2 pm)")
        if half:
            if not 1 <= hour <= 12:
                raise CoercionError(f"{typed!r} is not a time of day: with am / pm the hour is 1 to 12")
            hour = hour % 12 + (12 if half == "p" else 0)
        if hour > 23 or minute > 59 or second > 59:
            raise CoercionError(f"{typed!r} is not a time of day (00:00 to 23:59:59)")
        return dt.time(hour, minute, second)

    def to_json(self, value: Any, field: Field) -> Any:
        return None if value is None else value.isoformat()

    def display(self, value: Any, field: Field) -> str:
        if value is None:
            return ""
        return str(value.strftime("%H:%M:%S" if value.second else "%H:%M"))

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        if isinstance(value, dt.time):
            return {"": self.display(value, field)}
        return {"": "" if value is None else str(value)}

    def input_step(self, field: Field) -> int | None:
        """The form input's `step` in seconds (None: the browser's default, a minute)."""
        step = self.step(field)
        return None if step is None else step * 60

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^{_HOUR}:[0-5][0-9]:[0-5][0-9]$"}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # 24-hour texts; with a step, only the minutes on it (an enum when a pattern cannot say).
        step = self.step(field)
        if step is None:
            return {"type": "string", "pattern": f"^{_HOUR}:[0-5][0-9](?::[0-5][0-9])?$"}
        if 60 % step == 0:
            minutes = "|".join(f"{m:02d}" for m in range(0, 60, step))
            return {"type": "string", "pattern": f"^{_HOUR}:(?:{minutes})(?::00)?$"}
        return {"type": "string", "enum": [f"{m // 60:02d}:{m % 60:02d}" for m in range(0, 24 * 60, step)]}

    def sample(self, field: Field, pick: SampleSource) -> Any:
        step = self.step(field) or 15
        slots = [m for m in range(8 * 60, 18 * 60 + 1) if m % step == 0] or [0]
        minute = pick.random.choice(slots)
        return f"{minute // 60:02d}:{minute % 60:02d}"


# --- duration ------------------------------------------------------------------------------
#: Seconds in each unit a duration is written with (a day is 24 hours).
UNITS: dict[str, int] = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_UNIT_WORDS = {
    "d": "d", "day": "d", "days": "d",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
}
_PART = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,6})?)\s*([a-z]+)\s*,?\s*", re.IGNORECASE)
_HMS = re.compile(r"([0-9]{1,9}):([0-5][0-9])(?::([0-5][0-9]))?")
#: Seconds a duration may hold (285 million years): exact as a JSON number in every client
#: (a double), well within the 64-bit column.
MAX_SECONDS = 2**53 - 1
_DURATION_SETTING = {"anyOf": [{"type": "integer", "minimum": 0},
                               {"type": "string", "minLength": 1}],
                     "description": "seconds, or a duration as text (90m, 1h 30m)"}


def parse_duration(text: str) -> int:
    """Whole seconds from a duration as people write it: 1h 30m, 90m, 1:30 (h:mm), 1:30:15,
    1.5h, 2d 3h, 45 minutes. A bare number is refused (seconds or minutes?)."""
    typed = text.strip()
    if not typed:
        raise CoercionError("give a duration (like 1h 30m)")
    if re.fullmatch(r"[+-]?[0-9.]+", typed):
        raise CoercionError(f"{typed[:40]!r} has no unit: write 90m, 1h 30m or 1:30 (hours:minutes)")
    if typed.startswith("-"):
        raise CoercionError(f"{typed[:40]!r}: a duration cannot be negative")
    clock = _HMS.fullmatch(typed)
    if clock:
        return int(clock[1]) * 3_600 + int(clock[2]) * 60 + int(clock[3] or 0)
    total, position = Decimal(0), 0
    for part in _PART.finditer(typed):
        if part.start() != position:
            break
        unit = _UNIT_WORDS.get(part[2].lower())
        if unit is None:
            raise CoercionError(f"{part[2]!r} is not a unit of time; use d, h, m or s")
        total += Decimal(part[1]) * UNITS[unit]
        position = part.end()
    if position != len(typed):
        raise CoercionError(f"{typed[:40]!r} is not a duration (like 1h 30m, 90m, 1:30 or 2d 3h)")
    if total != total.to_integral_value():
        raise CoercionError(f"{typed[:40]!r} is not a whole number of seconds")
    return int(total)


def format_duration(seconds: int) -> str:
    """1h 30m, 2d 3h, 45s, 0m: the units that are not zero, largest first."""
    if seconds == 0:
        return "0m"
    sign, rest = ("-" if seconds < 0 else ""), abs(seconds)
    parts = []
    for unit, size in UNITS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + " ".join(parts)


class Duration(_WholeNumberInRules):
    """A length of time: whole seconds in an integer column, written and shown as 1h 30m.
    The API gives the seconds as an integer and takes an integer or a duration's text; rules
    read the seconds (a number); boards add durations up."""

    name = "duration"
    label = "Duration"
    settings_schema = {"min": _DURATION_SETTING, "max": _DURATION_SETTING}
    constraint_settings = ("min", "max")
    widget_template = "widgets/duration.html"
    summable = True
    seconds_long = True
    sum_rank: ClassVar[int | None] = None  # added up when a board is asked to (?sum=)
    list_rank: ClassVar[int | None] = 6

    # Rules read the seconds as a number; a formula's result is rounded half up to a second.

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.BigInteger()

    def bound(self, field: Field, which: str) -> int | None:
        """The field's `min` or `max` in seconds (None: unbounded, or given badly)."""
        given = field.settings.get(which)
        if given is None or isinstance(given, bool):
            return None
        try:
            return given if isinstance(given, int) else parse_duration(str(given))
        except CoercionError:
            return None

    def low(self, field: Field) -> int:
        return max(0, self.bound(field, "min") or 0)

    def high(self, field: Field) -> int:
        high = self.bound(field, "max")
        return MAX_SECONDS if high is None else min(high, MAX_SECONDS)

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        for which in ("min", "max"):
            given = field.settings.get(which)
            if isinstance(given, str):
                try:
                    parse_duration(given)
                except CoercionError as problem:
                    yield which, str(problem)
        low, high = self.bound(field, "min"), self.bound(field, "max")
        if low is not None and high is not None and low > high:
            yield "min", f"{format_duration(low)} is longer than max ({format_duration(high)})"

    def convert(self, value: Any, field: Field) -> int:
        if isinstance(value, str):
            seconds = parse_duration(value)
        elif isinstance(value, dt.timedelta):
            seconds = whole_number(Decimal(value.days * 86_400 + value.seconds) + Decimal(value.microseconds)
                                   / 1_000_000)
        else:
            try:
                seconds = whole_number(value)
            except CoercionError as problem:
                raise CoercionError(f"{problem}; a duration is whole seconds, or a text like 1h 30m") \
                    from None
        if seconds < 0:
            raise CoercionError(f"{seconds}: a duration cannot be negative")
        if seconds > MAX_SECONDS:
            raise CoercionError("is too long for a duration")
        if seconds < self.low(field):
            raise CoercionError(f"must be at least {format_duration(self.low(field))}")
        if seconds > self.high(field):
            raise CoercionError(f"must be at most {format_duration(self.high(field))}")
        return seconds

    def display(self, value: Any, field: Field) -> str:
        return "" if value is None else format_duration(int(value))

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        if isinstance(value, int):
            return {"": format_duration(value)}
        return {"": "" if value is None else str(value)}

    def total(self, amount: Any, group: Mapping[str, Any], field: Field) -> Any:
        return int(amount or 0)

    def value_schema(self, field: Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer", "minimum": self.low(field),
                                  "description": "seconds"}
        if self.bound(field, "max") is not None:
            schema["maximum"] = self.high(field)
        return schema

    def output_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "integer", "minimum": 0, "description": "seconds"}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # The canonical form, whole seconds (a text like "1h 30m" is read too).
        return {**_bounded_integer(self.low(field), self.high(field), MAX_SECONDS),
                "description": "seconds (a text like \"1h 30m\" is accepted too)"}

    def filter_schema(self, field: Field) -> dict[str, Any]:
        # A filter is text with units (`minutes__gte=1h 30m`).
        if self.bound(field, "min") is None and self.bound(field, "max") is None:
            return {"type": "string", "pattern": "^[0-9]{1,6}[dhms](?: ?[0-9]{1,6}[dhms]){0,3}$"}
        return {"type": "string", "enum": sorted({format_duration(self.low(field)),
                                                  format_duration(self.high(field))})}

    def sample(self, field: Field, pick: SampleSource) -> Any:
        low, high = self.low(field), min(self.high(field), 8 * 3_600)
        quarter = pick.random.randint(low // 900 + (low % 900 > 0), max(low // 900, high // 900))
        return quarter * 900 if low <= quarter * 900 <= self.high(field) else low


# --- a date or a date and time ---------------------------------------------------------------
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MOMENT = DateTime()


class DateOrDateTime(FieldType):
    """A whole day (an all-day event) or a moment: one UTC datetime column (an all-day value
    at midnight UTC of its day, so both kinds sort and filter together) and a companion
    `<name>__all_day` column, true for an all-day value and null otherwise. The API gives
    "2026-12-07" for a day and an ISO 8601 date and time (UTC) otherwise; rules read it as a
    date and time (a day as its midnight UTC)."""

    name = "date_or_datetime"
    label = "Date, or date and time"
    widget_template = "widgets/date_or_datetime.html"
    list_rank: ClassVar[int | None] = 8

    def rule_type(self, field: Field) -> Type | None:
        return DATETIME

    def rule_value(self, value: Any, field: Field) -> Any:
        return self.moment(value)

    def moment(self, value: Any) -> dt.datetime | None:
        """The moment a value stands for: a day is its midnight, UTC."""
        if value is None or isinstance(value, dt.datetime):
            return value
        return dt.datetime.combine(value, dt.time(0), dt.UTC)

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return UTCDateTime()

    def columns(self, field: Field) -> list[ColumnSpec]:
        return [ColumnSpec("", self.sql_type(field)), ColumnSpec("all_day", sa.Boolean())]

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        # Null, not false, for a moment: a retype that drops the column loses nothing then.
        return {"": self.moment(value), "all_day": True if _is_day(value) else None}

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        moment = values.get("")
        if moment is None:
            return None
        if values.get("all_day"):
            return moment.astimezone(dt.UTC).date()
        return moment

    def convert(self, value: Any, field: Field) -> dt.date | dt.datetime:
        if isinstance(value, dt.datetime):
            return _MOMENT.convert(value, field)
        if isinstance(value, dt.date):
            return value
        if not isinstance(value, str):
            raise CoercionError(f"expected a date (all day) or a date and time, got {_kind(value)}")
        text = value.strip()
        if _DAY.fullmatch(text):
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                raise CoercionError(f"{text!r} is not a date (YYYY-MM-DD)") from None
        try:
            return _MOMENT.convert(text.replace(" ", "T", 1) if _DAY.match(text) else text, field)
        except CoercionError:
            raise CoercionError(f"{text[:40]!r} is not a date (YYYY-MM-DD, all day) or a date and "
                                "time (ISO 8601)") from None

    def to_json(self, value: Any, field: Field) -> Any:
        if value is None:
            return None
        return value.isoformat() if _is_day(value) else _MOMENT.to_json(value, field)

    def display(self, value: Any, field: Field) -> str:
        if value is None:
            return ""
        return f"{value.isoformat()} (all day)" if _is_day(value) else _MOMENT.display(value, field)

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        if _is_day(value):
            return {"": value.isoformat(), "time": "", "all_day": "true"}
        if isinstance(value, dt.datetime):
            moment = value.astimezone(dt.UTC)
            return {"": moment.date().isoformat(), "time": moment.strftime("%H:%M"), "all_day": ""}
        return {"": "" if value is None else str(value), "time": "", "all_day": ""}

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        """A date input, a time input and an "all day" box: a day when the box is ticked or
        no time is given, else the date at that time (UTC)."""
        day, time, all_day = inputs(""), inputs("time"), inputs("all_day")
        if not day:
            return f"{time[0]} (no date)" if time else None
        if all_day or not time:
            return day[0]
        return f"{day[0]}T{time[0]}"

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}],
                "description": "a date (YYYY-MM-DD) for an all-day value, else a date and time"}

    def output_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "anyOf": [
            {"format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
            {"format": "date-time", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T.*Z$"}],
            "description": "a date (YYYY-MM-DD) for an all-day value, else a date and time in UTC"}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                          _MOMENT.input_schema(field, required=required)],
                "description": "a date (YYYY-MM-DD) for an all-day value, else a date and time"}

    def sample(self, field: Field, pick: SampleSource) -> Any:
        day = pick.today + dt.timedelta(days=pick.random.randint(-30, 30))
        if pick.random.random() < 0.3:
            return day.isoformat()
        return dt.datetime.combine(day, dt.time(pick.random.randint(8, 17)), dt.UTC).isoformat()


def _is_day(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


TEMPORAL_TYPES: tuple[FieldType, ...] = (TimeOfDay(), Duration(), DateOrDateTime())

__all__ = ["TEMPORAL_TYPES", "DateOrDateTime", "Duration", "TimeOfDay", "format_duration",
           "parse_duration"]
