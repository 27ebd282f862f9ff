"""The calendar page of an entity with date fields (month, week or day), and the move a
dropped item makes. The page reads only the visible days, each as a first page of the
records service's read path with a range filter on the field (every day in one
statement, each with its capped count for "N more"); a move is a partial update through
the records service based on the version the page showed, so a stale one is refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from slatecrm.digits import VERSION_MAX, parse_digits

from ..records.compiled import CompiledEntity
from ..records.errors import ValidationFailed
from ..records.listing import Filter, ListQuery
from ..records.service import Page, Record, RecordsService
from .calendar_moves import changes, target_of
from .calendar_spec import PER_DAY, CalendarSpec, Window, date_fields, date_kind, day_from, spec_from, window
from .jsonresponse import JSONResponse
from .pinning import records_of
from .record_pages import locked_fields
from .templating import render
from .uicontext import base_context
from .view_choice import AppliedView, chosen, metamodel_views, narrowed
from .workflows_api import now


@dataclass(frozen=True)
class Item:
    """A record as the calendar shows it: all day, or at a time (`hour` places it in the
    week and day grids); `ends` is the end's text when the spec says where it ends."""

    record: Record
    timed: bool
    hour: int
    time: str
    ends: str


@dataclass(frozen=True)
class Day:
    day: dt.date
    items: list[Item]
    #: Records of the day in all (to the count cap), shown or not.
    count: int
    capped: bool

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.items))

    def at(self, hour: int) -> list[Item]:
        return [i for i in self.items if i.timed and i.hour == hour]

    @property
    def all_day(self) -> list[Item]:
        return [i for i in self.items if not i.timed]


def day_queries(spec: CalendarSpec, shown: Window, search: str | None,
                expression: str | None) -> list[tuple[str, ListQuery]]:
    """One bounded query per visible day: the field from the day's midnight (UTC) to the
    next's, in time order, at most PER_DAY items."""
    out = []
    for day in shown.days:
        bounds = (Filter(spec.field, "gte", (day.isoformat(),)),
                  Filter(spec.field, "lt", ((day + dt.timedelta(days=1)).isoformat(),)))
        out.append((spec.entity, ListQuery(sort=(spec.field,), filters=bounds, limit=PER_DAY[spec.mode],
                                           search=search, expression=expression)))
    return out


def item_of(spec: CalendarSpec, record: Record) -> Item:
    value = record.values.get(spec.field)
    if not isinstance(value, dt.datetime):
        return Item(record, False, 0, "", "")
    moment = value.astimezone(dt.UTC)
    ends = ""
    end: Any = None
    if spec.end_field:
        end = record.values.get(spec.end_field)
    elif spec.duration_field and record.values.get(spec.duration_field) is not None:
        end = moment + dt.timedelta(seconds=int(record.values[spec.duration_field]))
    if isinstance(end, dt.datetime):
        end = end.astimezone(dt.UTC)
        ends = end.strftime("%H:%M") if end.date() == moment.date() else end.strftime("%Y-%m-%d %H:%M")
    elif isinstance(end, dt.date):
        ends = end.isoformat()
    return Item(record, True, moment.hour, moment.strftime("%H:%M"), ends)


def read_days(records: RecordsService, spec: CalendarSpec, shown: Window, search: str | None,
              expression: str | None) -> list[Day]:
    pages: Sequence[Page] = records.first_pages(day_queries(spec, shown, search, expression))
    return [Day(day, [item_of(spec, r) for r in page.records], page.count or 0, page.count_capped)
            for day, page in zip(shown.days, pages, strict=True)]


def title_of(shown: Window) -> str:
    if shown.mode == "day":
        return shown.day.strftime("%A %d %B %Y")
    if shown.mode == "week":
        return f"Week of {shown.first.isoformat()} to {shown.last.isoformat()}"
    return shown.day.strftime("%B %Y")


def narrowing(params: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The list's search (`q`) and filter expression (`filter`), kept by the calendar."""
    return (params.get("q", "").strip() or None, params.get("filter", "").strip() or None)


def spec_params(params: Mapping[str, str], view: AppliedView | None) -> dict[str, str]:
    """The spec's parameters with what a calendar view fills in: its field and mode unless
    the request gives them, and its end or duration field while the calendar shows the
    view's field and the request gives neither `end` nor `duration` (an end belongs with
    its start)."""
    given = {key: params.get(key, "").strip() for key in ("field", "mode", "end", "duration")}
    if view is None:
        return given
    filled = {**given, "field": given["field"] or view.field or "", "mode": given["mode"] or view.mode or ""}
    if filled["field"] == view.field and not (given["end"] or given["duration"]):
        filled.update(end=view.end_field or "", duration=view.duration_field or "")
    return filled


def offered(records: RecordsService, ce: CompiledEntity) -> list[AppliedView]:
    """The calendar views of an entity whose field the reader may see (a view of a hidden
    field would only answer a 400): what the list's and the calendar's switchers offer."""
    dates = {f.name for f in date_fields(ce)}
    return [v for v in metamodel_views(records, ce.name, "calendar") if v.field in dates]


async def calendar(request: Request) -> Response:
    records = records_of(request)
    entity = request.path_params["entity"]
    ce = await run_in_threadpool(records.entity, entity)
    view = await chosen(request, records, entity, "calendar")
    spec = spec_from(ce, spec_params(request.query_params, view))
    today = now(request).astimezone(dt.UTC).date()
    shown = window(spec.mode, day_from(request.query_params.get("date", ""), today))
    search, expression = narrowing(request.query_params)
    expression = narrowed(expression, view)
    days = await run_in_threadpool(read_days, records, spec, shown, search, expression)
    locked = await locked_fields(records, entity, new_record=False)
    movable = ce.fields[spec.field].type.writable and not ({spec.field, spec.end_field} & locked)
    title = f"{ce.entity.label_plural}: calendar"
    context = await base_context(request, entity=entity, title=title)
    views = await run_in_threadpool(offered, records, ce)
    twin = {"entity": entity, "view": view.key if view else None,
            "views": [{"view": v.key, "label": v.label} for v in views],
            "field": spec.field, "mode": spec.mode, "date": shown.day.isoformat(),
            "first": shown.first.isoformat(), "last": shown.last.isoformat(),
            "end_field": spec.end_field, "duration_field": spec.duration_field,
            "days": [{"date": d.day.isoformat(), "count": d.count, "more": d.more,
                      "records": [records.as_json(i.record) for i in d.items]} for d in days]}
    return render(request, "calendar", {
        **context, "ce": ce, "spec": spec, "shown": shown, "days": days, "today": today,
        "heading": title_of(shown), "fields": date_fields(ce), "movable": movable,
        "timed": date_kind(ce.fields[spec.field]) == "datetime", "hours": range(24),
        "view": view, "views": views,
    }, twin=twin, entity=entity)


async def reschedule(request: Request) -> Response:
    """PATCH: move a record by a calendar's field to the day (and hour) it was dropped on,
    based on the `version` the calendar showed (a stale one is a 409 naming what changed)."""
    records = records_of(request)
    entity, record_id = request.path_params["entity"], int(request.path_params["id"])
    ce = await run_in_threadpool(records.entity, entity)
    form = await request.form()
    day, hour = target_of(form)
    version = parse_digits(str(form.get("version") or "").strip(), VERSION_MAX)
    if version is None:
        raise ValidationFailed({"version": ["give the version of the record the calendar showed"]})
    field, end = str(form.get("field") or ""), str(form.get("end") or "").strip() or None
    current = await run_in_threadpool(records.get, entity, record_id)
    update = changes(ce, current.values, field, end, day, hour)
    saved = await run_in_threadpool(records.update, entity, record_id, update, version=version)
    return JSONResponse(records.as_json(saved))
