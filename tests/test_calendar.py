"""The calendar page (issue 15, views: month / week / day over a date field) and the move a
dropped item makes, over HTTP on SQLite and PostgreSQL: only the visible range is read,
with "N more" past a day's cap; the modes place all-day and timed items; a bad field, mode
or date is a 400 naming it, and an entity without date fields says so; a move keeps the
time of day, moves an end field along, refuses a stale version and respects the fields a
role makes read-only or hides. A calendar view (`?view=`) supplies the field, end, mode and
filter, parameters given winning, and is not offered on a field the reader may not see."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.web.calendar_moves import moved
from slatecrm.platform.web.calendar_spec import PER_DAY, window

from .defaults import field_types, make_app, sign_in, signed_in
from .packs import install, write_pack

#: Events placed by a moment (`starts`, ending at `ends` or after `length`), a day (`day`), or
#: either (`due`); a note without any date field beside it.
EVENT: dict[str, Any] = {
    "label": "Event", "label_plural": "Events", "title_field": "name",
    "fields": {"name": {"type": "text", "required": True},
               "starts": {"type": "datetime", "label": "Starts", "indexed": True},
               "ends": {"type": "datetime"},
               "day": {"type": "date", "label": "Day"},
               "due": {"type": "date_or_datetime", "label": "Due"},
               "length": {"type": "duration"},
               "secret_day": {"type": "date"},
               "topic": {"type": "text"}},
}
NOTE: dict[str, Any] = {"label": "Note", "title_field": "text", "fields": {"text": {"type": "text"}}}
#: Calendar views of events (docs/packs.md, "Calendar views"): work meetings by the hour with
#: their end, things due by the week with their length, and one by the day a planner may not see.
CALENDAR_VIEWS = [
    {"kind": "view", "name": "work_meetings", "label": "Work meetings", "entity": "event",
     "type": "calendar", "field": "starts", "end_field": "ends", "mode": "day", "filter": "topic = 'work'"},
    {"kind": "view", "name": "due_this_week", "entity": "event", "type": "calendar", "field": "due",
     "duration_field": "length", "mode": "week"},
    {"kind": "view", "name": "secret_days", "entity": "event", "type": "calendar", "field": "secret_day"},
]
#: A planner may read and change events, but not their start; the secret day is hidden.
PLANNER = {"kind": "role", "name": "planner", "entities": {"event": {
    "actions": ["create", "read", "update"], "scope": "all",
    "fields": {"starts": "read_only", "secret_day": "hidden"}}}}


def event_pack(root: Path) -> Path:
    pack = write_pack(root, "diary", "1.0.0", {"event": EVENT, "note": NOTE})
    (pack / "roles").mkdir()
    (pack / "roles" / "planner.yaml").write_text(json.dumps(PLANNER))
    (pack / "views").mkdir()
    for view in CALENDAR_VIEWS:
        (pack / "views" / f"{view['name']}.yaml").write_text(json.dumps(view))
    return pack


@pytest.fixture
def http(engine: sa.Engine, db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    install(engine, field_types(), event_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as client:
        yield client
    app.state.engine.dispose()


def records_of(http: TestClient) -> RecordsService:
    service: RecordsService = http.app.state.records  # type: ignore[attr-defined]
    return service


def add(http: TestClient, name: str, **values: Any) -> int:
    return records_of(http).create("event", {"name": name, **values}).id


def page(http: TestClient, query: str) -> dict[str, Any]:
    response = http.get(f"/e/event/calendar.json?{query}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def titles(data: dict[str, Any]) -> dict[str, list[str]]:
    return {d["date"]: [r["name"] for r in d["records"]] for d in data["days"] if d["records"]}


# --- the page ---------------------------------------------------------------------------------
def test_a_month_shows_the_records_of_its_weeks_only(http: TestClient) -> None:
    kick = add(http, "Kick-off", starts="2026-12-07T09:30:00Z")
    add(http, "Review", starts="2026-12-31T23:59:00Z")
    add(http, "Spill-over", starts="2027-01-03T08:00:00Z")  # in December's last week on screen
    add(http, "Next month", starts="2027-01-04T08:00:00Z")
    add(http, "Last month", starts="2026-11-29T12:00:00Z")
    add(http, "Undated")
    data = page(http, "field=starts&date=2026-12-15")
    assert (data["first"], data["last"], data["mode"]) == ("2026-11-30", "2027-01-03", "month")
    assert titles(data) == {"2026-12-07": ["Kick-off"], "2026-12-31": ["Review"],
                            "2027-01-03": ["Spill-over"]}

    html = http.get("/e/event/calendar?field=starts&date=2026-12-15").text
    assert "December 2026" in html and "Kick-off" in html and "Next month" not in html
    assert re.search(r'<td class="calendar-day[^"]*" data-day="2026-12-07">', html)
    # Every item links to its record and, without JavaScript, to its edit form.
    assert f'href="/e/event/{kick}"' in html and f'href="/e/event/{kick}/edit"' in html
    assert 'draggable="true"' in html


def test_a_full_day_shows_its_cap_and_how_many_more(http: TestClient) -> None:
    for i in range(PER_DAY["month"] + 3):
        add(http, f"Busy {i:02d}", day="2026-12-09")
    data = page(http, "field=day&date=2026-12-01")
    busy = next(d for d in data["days"] if d["date"] == "2026-12-09")
    assert (len(busy["records"]), busy["count"], busy["more"]) == (PER_DAY["month"], PER_DAY["month"] + 3, 3)
    html = http.get("/e/event/calendar?field=day&date=2026-12-01").text
    assert re.search(r'href="\?[^"]*mode=day[^"]*date=2026-12-09[^"]*">3 more</a>', html)
    day = page(http, "field=day&mode=day&date=2026-12-09")
    assert len(day["days"][0]["records"]) == PER_DAY["month"] + 3


def test_week_and_day_place_timed_items_by_hour_and_days_all_day(http: TestClient) -> None:
    add(http, "Stand-up", due="2026-12-08T09:15:00Z", length="45m")
    add(http, "Holiday", due="2026-12-08")
    add(http, "Lunch", due="2026-12-10T12:00:00Z")
    week = page(http, "field=due&mode=week&date=2026-12-10")
    assert (week["first"], week["last"]) == ("2026-12-07", "2026-12-13")
    assert titles(week) == {"2026-12-08": ["Holiday", "Stand-up"], "2026-12-10": ["Lunch"]}
    html = http.get("/e/event/calendar?field=due&mode=week&date=2026-12-10&duration=length").text
    all_day = re.search(r'data-day="2026-12-08">\s*<ol class="calendar-items">(.*?)</ol>', html, re.S)
    assert all_day and "Holiday" in all_day[1] and "Stand-up" not in all_day[1]
    nine = re.search(r'data-day="2026-12-08" data-hour="9">(.*?)</td>', html, re.S)
    assert nine and "Stand-up" in nine[1] and "09:15–10:00" in nine[1]

    day = http.get("/e/event/calendar?field=due&mode=day&date=2026-12-10").text
    assert "Thursday 10 December 2026" in day and "Lunch" in day and "Stand-up" not in day
    assert re.search(r'data-day="2026-12-10" data-hour="12">(.*?)Lunch', day, re.S)
    # A date field has no hours: its week is one row of days.
    assert 'data-hour=' not in http.get("/e/event/calendar?field=day&mode=week&date=2026-12-10").text


def test_defaults_navigation_and_the_list_link(http: TestClient) -> None:
    before = dt.datetime.now(dt.UTC).date()
    data = page(http, "")
    assert data["field"] == "starts" and data["mode"] == "month"  # the first date field
    assert data["date"] in {before.isoformat(), dt.datetime.now(dt.UTC).date().isoformat()}
    html = http.get("/e/event/calendar?field=day&mode=week&date=2026-12-10").text
    assert re.search(r'rel="prev" href="\?field=day&amp;mode=week&amp;date=2026-12-03"', html)
    assert re.search(r'rel="next" href="\?field=day&amp;mode=week&amp;date=2026-12-17"', html)
    assert re.search(r'href="\?field=day&amp;date=2026-12-10&amp;mode=month"', html)
    assert 'id="calendar-link" href="/e/event/calendar"' in http.get("/e/event").text
    assert 'id="calendar-link"' not in http.get("/e/note").text


@pytest.mark.parametrize(("query", "key", "says"), [
    ("field=topic", "field", "has no date field 'topic'; date fields: starts, ends, day, due, secret_day"),
    ("field=nope", "field", "has no date field 'nope'"),
    ("mode=year", "mode", "'year' is not a calendar mode; modes: month, week, day"),
    ("date=2026-13-01", "date", "'2026-13-01' is not a date (YYYY-MM-DD)"),
    ("date=0001-01-01", "date", "a calendar shows the years 2 to 9998"),
    ("end=starts", "end", "'starts' is not another date field of Event"),
    ("duration=topic", "duration", "Event has no duration field 'topic'"),
])
def test_bad_parameters_are_a_400_naming_them(http: TestClient, query: str, key: str, says: str) -> None:
    response = http.get(f"/e/event/calendar.json?{query}")
    assert response.status_code == 400
    assert any(says in m for m in response.json()["errors"][key]), response.json()
    page_html = http.get(f"/e/event/calendar?{query}")
    assert page_html.status_code == 400 and "text/html" in page_html.headers["content-type"]


def test_an_entity_without_date_fields_has_no_calendar(http: TestClient) -> None:
    response = http.get("/e/note/calendar")
    assert response.status_code == 400
    assert "Note has no date or date and time field to show on a calendar" in response.text
    assert http.get("/e/nothing/calendar").status_code == 404


# --- moves ------------------------------------------------------------------------------------
def reschedule(http: TestClient, record: int, **form: Any) -> Any:
    return http.patch(f"/e/event/{record}/reschedule", data={k: str(v) for k, v in form.items()},
                      headers={"Accept": "application/json"})


def span(response: Any) -> tuple[str, str]:
    return response.json()["starts"], response.json()["ends"]


def test_a_moment_moved_to_another_day_keeps_its_time(http: TestClient) -> None:
    meeting = add(http, "Planning", starts="2026-12-07T14:45:00Z", ends="2026-12-07T16:00:00Z")
    response = reschedule(http, meeting, field="starts", date="2026-12-10", version=1, end="ends")
    assert response.status_code == 200, response.text
    assert span(response) == ("2026-12-10T14:45:00Z", "2026-12-10T16:00:00Z")
    response = reschedule(http, meeting, field="starts", date="2026-12-10", hour=9, version=2, end="ends")
    assert span(response) == ("2026-12-10T09:45:00Z", "2026-12-10T11:00:00Z")
    assert http.get(f"/api/v1/event/{meeting}").json()["starts"] == "2026-12-10T09:45:00Z"
    assert titles(page(http, "field=starts&mode=day&date=2026-12-10")) == {"2026-12-10": ["Planning"]}


def test_days_stay_days_unless_dropped_on_an_hour(http: TestClient) -> None:
    both = add(http, "Offsite", due="2026-12-08", day="2026-12-08")
    day = reschedule(http, both, field="day", date="2026-12-11", hour=10, version=1)
    assert day.json()["day"] == "2026-12-11"
    assert reschedule(http, both, field="due", date="2026-12-09", version=2).json()["due"] == "2026-12-09"
    assert reschedule(http, both, field="due", date="2026-12-09", hour=15,
                      version=3).json()["due"] == "2026-12-09T15:00:00Z"


def test_a_stale_version_is_refused_and_the_calendar_shows_what_is_stored(http: TestClient) -> None:
    meeting = add(http, "Retro", starts="2026-12-07T10:00:00Z")
    records_of(http).update("event", meeting, {"topic": "changed meanwhile"}, version=1)
    response = reschedule(http, meeting, field="starts", date="2026-12-09", version=1)
    assert response.status_code == 409
    assert response.json()["current_version"] == 2 and response.json()["changed"] == ["topic"]
    assert titles(page(http, "field=starts&date=2026-12-01")) == {"2026-12-07": ["Retro"]}


@pytest.mark.parametrize(("form", "key", "says"), [
    ({"field": "starts", "date": "2026-02-30", "version": 1}, "date", "is not a date"),
    ({"field": "starts", "date": "2026-12-01", "hour": 24, "version": 1}, "hour", "is not an hour"),
    ({"field": "starts", "date": "2026-12-01"}, "version", "give the version"),
    ({"field": "topic", "date": "2026-12-01", "version": 1}, "field", "has no date field 'topic'"),
    ({"field": "day", "date": "2026-12-01", "version": 1}, "day", "has no value"),
    ({"field": "starts", "date": "2026-12-01", "version": 1, "end": "secret"}, "end",
     "'secret' is not another date field of Event"),
])
def test_bad_moves_are_refused_naming_the_input(http: TestClient, form: dict[str, Any], key: str,
                                                says: str) -> None:
    meeting = add(http, "Sync", starts="2026-12-07T10:00:00Z")
    response = reschedule(http, meeting, **form)
    assert response.status_code == 422, response.text
    assert says in "; ".join(response.json()["errors"][key])
    assert records_of(http).get("event", meeting).version == 1


def test_a_move_respects_the_fields_a_role_locks_or_hides(http: TestClient) -> None:
    meeting = add(http, "Board", starts="2026-12-07T10:00:00Z", day="2026-12-07", secret_day="2026-12-07")
    sign_in(http, "planner@example.com", roles=("planner",))
    html = http.get("/e/event/calendar?field=starts&date=2026-12-01").text
    assert "Board" in html and 'draggable="true"' not in html and "/edit" not in html
    response = reschedule(http, meeting, field="starts", date="2026-12-09", version=1)
    assert response.status_code == 422 and "read-only" in response.text
    assert records_of(http).get("event", meeting).values["starts"].day == 7
    hidden = http.get("/e/event/calendar.json?field=secret_day")
    assert hidden.status_code == 400 and "secret_day" in hidden.json()["errors"]["field"][0]
    assert "secret_day" not in hidden.json()["errors"]["field"][0].split("date fields:")[1]
    assert reschedule(http, meeting, field="secret_day", date="2026-12-09", version=1).status_code == 422
    assert reschedule(http, meeting, field="day", date="2026-12-09", version=1,
                      end="secret_day").status_code == 422
    moved_day = reschedule(http, meeting, field="day", date="2026-12-09", version=1)
    assert moved_day.status_code == 200 and moved_day.json()["day"] == "2026-12-09"


def test_unsigned_or_cross_site_moves_are_refused(http: TestClient) -> None:
    meeting = add(http, "Guarded", starts="2026-12-07T10:00:00Z")
    token = http.headers.pop("x-csrftoken")
    assert reschedule(http, meeting, field="starts", date="2026-12-09", version=1).status_code == 403
    http.headers["x-csrftoken"] = token
    assert records_of(http).get("event", meeting).version == 1


# --- calendar views ---------------------------------------------------------------------------
def test_a_calendar_view_supplies_the_spec_and_its_filter(http: TestClient) -> None:
    add(http, "Planning", topic="work", starts="2026-12-08T09:00:00Z", ends="2026-12-08T10:30:00Z")
    add(http, "Dentist", topic="home", starts="2026-12-08T14:00:00Z", ends="2026-12-08T15:00:00Z")
    add(http, "Retro", topic="work", starts="2026-12-09T16:00:00Z", due="2026-12-09T16:00:00Z", length="1h")
    data = page(http, "view=work_meetings&date=2026-12-08")
    assert (data["view"], data["field"], data["mode"], data["end_field"]) == (
        "work_meetings", "starts", "day", "ends")
    assert titles(data) == {"2026-12-08": ["Planning"]}  # the view's filter: not the dentist
    html = http.get("/e/event/calendar?view=work_meetings&date=2026-12-08").text
    nine = re.search(r'data-day="2026-12-08" data-hour="9">(.*?)</td>', html, re.S)
    assert nine and "09:00–10:30" in nine[1]
    assert "Dentist" not in html and "topic = &#39;work&#39;" in html
    # Parameters given win: another mode keeps the view's field, end and filter...
    week = page(http, "view=work_meetings&mode=week&date=2026-12-08")
    assert (week["mode"], week["end_field"]) == ("week", "ends")
    assert titles(week) == {"2026-12-08": ["Planning"], "2026-12-09": ["Retro"]}
    # ...while another field drops the view's end (an end goes with its start), and an end or
    # duration given replaces it.
    due = page(http, "view=work_meetings&field=due&mode=week&date=2026-12-08")
    assert (due["field"], due["end_field"], due["duration_field"]) == ("due", None, None)
    assert titles(due) == {"2026-12-09": ["Retro"]}
    lasting = page(http, "view=work_meetings&duration=length&date=2026-12-09")
    assert (lasting["end_field"], lasting["duration_field"]) == (None, "length")
    other = page(http, "view=due_this_week&date=2026-12-09")
    assert (other["field"], other["mode"], other["duration_field"]) == ("due", "week", "length")
    assert titles(other) == {"2026-12-09": ["Retro"]}
    assert sorted(v["view"] for v in other["views"]) == ["due_this_week", "secret_days", "work_meetings"]
    assert sorted(c["view"] for c in http.get("/e/event.json").json()["calendars"]) == [
        "due_this_week", "secret_days", "work_meetings"]


def test_a_calendar_view_on_a_field_hidden_from_the_reader_is_not_offered(http: TestClient) -> None:
    sign_in(http, "planner@example.com", roles=("planner",))
    assert sorted(c["view"] for c in http.get("/e/event.json").json()["calendars"]) == [
        "due_this_week", "work_meetings"]
    assert 'href="/e/event/calendar?view=secret_days"' not in http.get("/e/event").text
    refused = http.get("/e/event/calendar.json?view=secret_days")
    assert refused.status_code == 400 and "no date field 'secret_day'" in refused.json()["errors"]["field"][0]


# --- units ------------------------------------------------------------------------------------
def test_windows_and_moves() -> None:
    month = window("month", dt.date(2027, 2, 14))
    assert (month.first, month.last, month.previous, month.next) == (
        dt.date(2027, 2, 1), dt.date(2027, 2, 28), dt.date(2027, 1, 1), dt.date(2027, 3, 1))
    assert len(window("month", dt.date(2026, 11, 30)).weeks) == 6
    week = window("week", dt.date(2026, 12, 13))
    assert (week.first, week.last, week.previous) == (dt.date(2026, 12, 7), dt.date(2026, 12, 13),
                                                      dt.date(2026, 12, 6))
    moment = dt.datetime(2026, 12, 7, 23, 30, tzinfo=dt.UTC)
    assert moved(moment, dt.date(2026, 12, 1), None, holds_moments=True) == dt.datetime(
        2026, 12, 1, 23, 30, tzinfo=dt.UTC)
    assert moved(dt.date(2026, 12, 7), dt.date(2026, 12, 1), 8, holds_moments=False) == dt.date(2026, 12, 1)


def test_a_month_is_read_in_one_statement(http: TestClient) -> None:
    from .test_read_path import counted

    for day in range(1, 29):
        add(http, f"Daily {day}", starts=f"2026-02-{day:02d}T08:00:00Z")
    http.get("/e/event/calendar.json?field=starts&date=2026-02-01")  # the metamodel read and cached
    with counted(http) as month:
        data = page(http, "field=starts&date=2026-02-01")
    assert len(month.texts) == 1, month.texts  # the 28 visible days, each with its count
    assert sum(d["count"] for d in data["days"]) == 28
