"""Views over HTTP, on SQLite and PostgreSQL: a pack's list view applied by `?view=` on the
list page and in the JSON API (columns, filter with current_user, sort, page size), a kanban
view on the board (filter, card fields, totals), a calendar view on the calendar page (field,
mode, filter; offered by the list's switcher), and personal views saved from the list page,
shared with roles by an administrator, renamed and deleted; none shows a field or a record
the reader may not read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .defaults import make_app, signed_in
from .pack_templates import PackTemplates
from .packs import install, write_files_pack

VIEWS = {
    "views/my_open_opportunities.yaml": """\
        kind: view
        name: my_open_opportunities
        label: My open opportunities
        entity: opportunity
        columns: [name, amount, close_date, stage]
        filter: "owner = current_user.id and stage not in ('closed_won', 'closed_lost')"
        sort: [close_date]
        page_size: 2
        """,
    "views/big_deals.yaml": """\
        kind: view
        name: big_deals
        label: Big deals
        entity: opportunity
        columns: [name, amount]
        filter: "amount >= 1000"
        sort: [-amount]
        """,
    "views/pipeline_board.yaml": """\
        kind: view
        name: pipeline_board
        label: Pipeline by amount
        entity: opportunity
        type: kanban
        pipeline: sales
        card_fields: [close_date]
        totals: amount
        filter: "amount >= 1000"
        """,
    "views/big_closings.yaml": """\
        kind: view
        name: big_closings
        label: Big closings
        entity: opportunity
        type: calendar
        field: close_date
        mode: week
        filter: "amount >= 1000"
        """,
    "views/hot_leads.yaml": """\
        kind: view
        name: hot_leads
        entity: lead
        columns: [last_name, company, rating]
        filter: "rating = 'hot'"
        """,
    "roles/viewer.yaml": """\
        kind: role
        name: amount_blind
        entities:
          opportunity:
            actions: [read]
            scope: all
            fields: {amount: hidden}
          account:
            actions: [read]
            scope: all
        """,
}

REP = "rep@example.com"
BLIND = "blind@example.com"


@pytest.fixture
def app(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, pack_templates: PackTemplates,
        tmp_path: Path) -> Iterator[Starlette]:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    install(engine, registry, "crm-core", "sales", write_files_pack(tmp_path, VIEWS, name="views-pack"))
    made = make_app(db_url)
    yield made
    made.state.engine.dispose()


def deal(http: TestClient, account: int, name: str, amount: str, close: str,
         stage: str = "prospecting") -> int:
    response = http.post("/api/v1/opportunity", json={
        "name": name, "account": account, "amount": {"amount": amount, "currency": "USD"},
        "close_date": close, "stage": stage})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.fixture
def world(app: Starlette) -> Iterator[dict[str, Any]]:
    """An administrator's deals and a sales rep's, signed-in clients of both and of a role
    that may not see amounts."""
    with signed_in(app) as admin, signed_in(app, REP, roles=("sales_rep",)) as rep, \
            signed_in(app, BLIND, roles=("amount_blind",)) as blind:
        account = admin.post("/api/v1/account", json={"name": "Acme"}).json()["id"]
        ids = {
            "a_late": deal(admin, account, "Admin late", "5000", "2027-03-01"),
            "a_early": deal(admin, account, "Admin early", "200", "2027-01-01"),
            "a_mid": deal(admin, account, "Admin mid", "3000", "2027-02-01"),
            "a_won": deal(admin, account, "Admin won", "9000", "2026-12-01", "closed_won"),
            "r_open": deal(rep, account, "Rep open", "1500", "2027-01-15"),
        }
        yield {"admin": admin, "rep": rep, "blind": blind, "ids": ids}


def names(body: dict[str, Any]) -> list[str]:
    return [r["name"] for r in body["data"]]


def test_a_list_view_applies_columns_filter_with_current_user_sort_and_page_size(
        world: dict[str, Any]) -> None:
    admin, rep = world["admin"], world["rep"]
    page = admin.get("/e/opportunity.json?view=my_open_opportunities").json()
    assert page["view"] == "my_open_opportunities"
    assert page["columns"] == ["name", "amount", "close_date", "stage"]
    assert names(page) == ["Admin early", "Admin mid"] and page["count"] == 3  # 2 a page, by close date
    assert {"view": "my_open_opportunities", "label": "My open opportunities"} in page["views"]
    assert {"view": "pipeline_board", "label": "Pipeline by amount", "pipeline": "sales"} in page["boards"]
    assert names(rep.get("/e/opportunity.json?view=my_open_opportunities").json()) == ["Rep open"]
    # The request's own parameters win where given, and its filter narrows the view's.
    narrowed = admin.get("/e/opportunity.json", params={"view": "my_open_opportunities", "limit": "10",
                                                        "sort": "-amount", "filter": "amount > 250",
                                                        "columns": "name"}).json()
    assert names(narrowed) == ["Admin late", "Admin mid"] and narrowed["columns"] == ["name"]
    html = admin.get("/e/opportunity?view=big_deals")
    assert html.status_code == 200
    assert 'aria-current="page">Big deals</a>' in html.text and "amount &gt;= 1000" in html.text


def test_the_api_list_applies_a_view_and_refuses_an_unknown_one(world: dict[str, Any]) -> None:
    admin = world["admin"]
    body = admin.get("/api/v1/opportunity?view=big_deals").json()
    assert names(body) == ["Admin won", "Admin late", "Admin mid", "Rep open"]
    first = admin.get("/api/v1/opportunity?view=my_open_opportunities").json()
    assert names(first) == ["Admin early", "Admin mid"] and first["next_cursor"]
    assert "amount" in first["data"][0]  # an API record keeps every field it may read
    bad = admin.get("/api/v1/opportunity?view=big_deal")
    assert bad.status_code == 400
    assert "no list view 'big_deal'" in bad.text and "did you mean 'big_deals'" in bad.text
    assert admin.get("/api/v1/opportunity?view=pipeline_board").status_code == 400  # a board's, not a list's
    assert admin.get("/e/opportunity?view=nothing").status_code == 400
    document = admin.get("/api/v1/openapi.json").json()
    parameters = document["paths"]["/api/v1/opportunity"]["get"]["parameters"]
    assert any(p["name"] == "view" for p in parameters)


def test_a_kanban_view_filters_the_board_adds_up_its_totals_and_shows_its_card_fields(
        world: dict[str, Any]) -> None:
    admin = world["admin"]
    board = admin.get("/e/opportunity/board/sales.json?view=pipeline_board").json()
    assert board["view"] == "pipeline_board" and board["sum_field"] == "amount"
    assert board["card_fields"] == ["close_date"]
    columns = {c["stage"]: c for c in board["columns"]}
    assert columns["prospecting"]["count"] == 3  # Admin late, Admin mid, Rep open (200 is below 1000)
    assert columns["closed_won"]["count"] == 1
    assert {"view": "pipeline_board", "label": "Pipeline by amount"} in board["views"]
    html = admin.get("/e/opportunity/board/sales?view=pipeline_board").text
    assert "2027-03-01" in html or "Mar" in html  # a card shows its close date
    assert admin.get("/e/opportunity/board/sales?view=big_deals").status_code == 400


def test_a_view_never_shows_a_field_or_record_the_reader_may_not_read(world: dict[str, Any]) -> None:
    rep, blind = world["rep"], world["blind"]
    assert names(rep.get("/api/v1/opportunity?view=big_deals").json()) == ["Rep open"]  # scope: own
    page = blind.get("/e/opportunity.json?view=my_open_opportunities").json()
    assert "amount" not in page["columns"] and page["columns"] == ["name", "close_date", "stage"]
    listed = blind.get("/api/v1/opportunity?view=my_open_opportunities").json()
    assert all("amount" not in r for r in listed["data"])
    # /meta shows the views of the entities the reader can list, and only those.
    assert "hot_leads" in [v["name"] for v in world["admin"].get("/api/v1/meta").json()["views"]]
    assert "hot_leads" not in [v["name"] for v in blind.get("/api/v1/meta").json()["views"]]
    assert blind.get("/api/v1/lead?view=hot_leads").status_code == blind.get("/api/v1/lead").status_code


def save(http: TestClient, name: str, **fields: str) -> Any:
    return http.post("/e/opportunity/views", data={"name": name, **fields}, follow_redirects=False)


def test_personal_views_are_saved_shared_renamed_and_deleted(world: dict[str, Any]) -> None:
    admin, rep, blind = world["admin"], world["rep"], world["blind"]
    made = save(admin, "Mid-size", columns="name,amount", filter="amount > 100 and amount < 4000",
                sort="-amount")
    assert made.status_code == 303, made.text
    key = made.headers["location"].split("view=")[1]
    assert key.startswith("saved-")
    page = admin.get(f"/e/opportunity.json?view={key}").json()
    assert page["columns"] == ["name", "amount"] and names(page) == ["Admin mid", "Rep open", "Admin early"]
    assert page["own_views"] == [{"view": key, "label": "Mid-size", "shared_roles": []}]
    assert admin.get(f"/api/v1/opportunity?view={key}").status_code == 200
    # Another user neither sees nor applies it (not found, like a record out of reach) until it is
    # shared with one of their roles.
    assert rep.get("/e/opportunity.json").json()["shared_views"] == []
    assert rep.get(f"/api/v1/opportunity?view={key}").status_code == 404
    number = key.removeprefix("saved-")
    refused = rep.post(f"/e/opportunity/views/{number}/share", data={"roles": "sales_rep"})
    assert refused.status_code == 403  # sharing is an administrator's
    unknown = admin.post(f"/e/opportunity/views/{number}/share", data={"roles": ["sales_rap"]})
    assert unknown.status_code == 422 and "no role &#39;sales_rap&#39;" in unknown.text
    shared = admin.post(f"/e/opportunity/views/{number}/share", data={"roles": ["sales_rep"]},
                        follow_redirects=False)
    assert shared.status_code == 303
    assert rep.get("/e/opportunity.json").json()["shared_views"] == [{"view": key, "label": "Mid-size"}]
    assert names(rep.get(f"/e/opportunity.json?view={key}").json()) == ["Rep open"]  # still only theirs
    assert blind.get("/e/opportunity.json").json()["shared_views"] == []
    # Only the owner renames or deletes it.
    assert rep.post(f"/e/opportunity/views/{number}/delete").status_code == 422
    assert save(admin, "Big ones", filter="amount > 4000").status_code == 303
    taken = admin.post(f"/e/opportunity/views/{number}/rename", data={"name": "Big ones"})
    assert taken.status_code == 422 and "named &#39;Big ones&#39; already" in taken.text
    assert admin.post(f"/e/opportunity/views/{number}/rename", data={"name": "Middle"}).status_code == 200
    assert {"view": key, "label": "Middle"} in rep.get("/e/opportunity.json").json()["shared_views"]
    assert admin.post(f"/e/opportunity/views/{number}/delete", follow_redirects=False).status_code == 303
    assert admin.get(f"/e/opportunity.json?view={key}").status_code == 404
    assert [v["label"] for v in admin.get("/e/opportunity.json").json()["own_views"]] == ["Big ones"]


def test_a_view_that_cannot_be_read_is_not_saved(world: dict[str, Any]) -> None:
    admin = world["admin"]
    assert save(admin, "").status_code == 422
    bad_filter = save(admin, "Broken", filter="amount >")
    assert bad_filter.status_code == 400 and "filter" in bad_filter.text
    assert save(admin, "Odd columns", columns="name,amont").status_code == 400
    assert save(admin, "Odd sort", sort="amont").status_code == 400
    assert admin.get("/e/opportunity.json").json()["own_views"] == []


def test_the_organisation_replaces_a_packs_view_through_plan_and_confirm(world: dict[str, Any]) -> None:
    admin = world["admin"]
    body = {"entity": "opportunity", "label": "Big deals", "columns": ["name", "amount", "stage"],
            "filter": "amount >= 4000", "sort": ["amount"]}
    planned = admin.put("/api/v1/admin/views/big_deals", json=body)
    assert planned.status_code == 200, planned.text
    assert [c["summary"] for c in planned.json()["plan"]["changes"]] == [
        "change view big_deals (opportunity, list)"]
    assert names(admin.get("/api/v1/opportunity?view=big_deals").json())[0] == "Admin won"  # not applied yet
    base = planned.json()["base_revision"]
    assert admin.put(f"/api/v1/admin/views/big_deals?confirm={base}", json=body).json()["applied"] is True
    assert names(admin.get("/api/v1/opportunity?view=big_deals").json()) == ["Admin late", "Admin won"]
    bad = admin.put("/api/v1/admin/views/odd", json={"entity": "opportunity", "columns": ["amont"]})
    assert bad.status_code == 422 and "has no field 'amont'" in bad.text
    assert world["rep"].put("/api/v1/admin/views/odd", json=body).status_code == 403
    removed = admin.delete("/api/v1/admin/views/big_deals")
    assert [c["summary"] for c in removed.json()["plan"]["changes"]] == [
        "change view big_deals (opportunity, list)"]  # the pack's comes back


def test_a_views_filter_on_a_field_hidden_from_the_reader_is_refused_as_a_filter_would_be(
        world: dict[str, Any]) -> None:
    blind, admin = world["blind"], world["admin"]
    direct = blind.get("/api/v1/opportunity", params={"filter": "amount >= 1000"})
    through_view = blind.get("/api/v1/opportunity?view=big_deals")
    # The field does not exist for this reader: selecting by it would tell its values.
    assert direct.status_code == through_view.status_code == 400
    assert "unknown field 'amount'" in through_view.json()["errors"]["filter"][0]
    exported = admin.get("/e/opportunity/export.csv?view=big_deals")
    assert exported.status_code == 200
    lines = exported.text.strip().splitlines()
    assert lines[0] == "id,Name,Amount" and len(lines) == 5  # the view's columns and records


def calendar_titles(data: dict[str, Any]) -> dict[str, list[str]]:
    return {d["date"]: [r["name"] for r in d["records"]] for d in data["days"] if d["records"]}


def test_a_calendar_view_gives_the_calendar_its_field_mode_and_filter(world: dict[str, Any]) -> None:
    admin = world["admin"]
    week = admin.get("/e/opportunity/calendar.json?view=big_closings&date=2027-01-15").json()
    assert (week["view"], week["field"], week["mode"]) == ("big_closings", "close_date", "week")
    assert (week["first"], week["last"]) == ("2027-01-11", "2027-01-17")
    assert calendar_titles(week) == {"2027-01-15": ["Rep open"]}
    # Explicit parameters win over the view's; its filter still holds (Admin early is 200).
    month = admin.get("/e/opportunity/calendar.json?view=big_closings&mode=month&date=2027-01-15").json()
    assert month["mode"] == "month" and calendar_titles(month) == {"2027-01-15": ["Rep open"]}
    unfiltered = admin.get("/e/opportunity/calendar.json?field=close_date&mode=month&date=2027-01-15").json()
    assert calendar_titles(unfiltered) == {"2027-01-01": ["Admin early"], "2027-01-15": ["Rep open"]}
    # The request's own filter narrows the view's (both hold): nothing is left in January.
    narrowed = admin.get("/e/opportunity/calendar.json", params={
        "view": "big_closings", "mode": "month", "date": "2027-01-15", "filter": "amount < 1000"}).json()
    assert calendar_titles(narrowed) == {}
    # The page marks the view, says its filter, and its links and form keep it.
    html = admin.get("/e/opportunity/calendar?view=big_closings&date=2027-01-15").text
    assert 'aria-current="page">Big closings</a>' in html and "amount &gt;= 1000" in html
    assert 'rel="next" href="?view=big_closings&amp;date=2027-01-22"' in html
    assert '<input type="hidden" name="view" value="big_closings">' in html
    # The reader's scope still holds: a sales rep sees only their own deals.
    rep_week = world["rep"].get("/e/opportunity/calendar.json?view=big_closings&date=2027-03-01").json()
    assert calendar_titles(rep_week) == {}
    assert calendar_titles(admin.get("/e/opportunity/calendar.json?view=big_closings&date=2027-03-01")
                           .json()) == {"2027-03-01": ["Admin late"]}


def test_the_list_switcher_offers_calendar_views_and_a_wrong_view_is_a_400(world: dict[str, Any]) -> None:
    admin, blind = world["admin"], world["blind"]
    page = admin.get("/e/opportunity.json").json()
    assert page["calendars"] == [{"view": "big_closings", "label": "Big closings", "field": "close_date"}]
    assert {"view": "big_closings", "label": "Big closings"} not in page["views"]  # not a list view
    html = admin.get("/e/opportunity").text
    assert 'class="calendar-view" href="/e/opportunity/calendar?view=big_closings"' in html
    assert admin.get("/e/opportunity.json?view=big_closings").status_code == 400  # not on a list
    for key, says in (("big_deals", "'big_deals' is a list view, not a calendar view; calendar views: "
                                    "big_closings"),
                      ("big_closing", "opportunity has no calendar view 'big_closing' (did you mean "
                                      "'big_closings'?)")):
        refused = admin.get(f"/e/opportunity/calendar.json?view={key}")
        assert refused.status_code == 400 and says in refused.json()["errors"]["view"][0], refused.text
        assert admin.get(f"/e/opportunity/calendar?view={key}").status_code == 400
    # A reader who may not see amounts is refused the view's filter, as `?filter=` would be.
    hidden = blind.get("/e/opportunity/calendar.json?view=big_closings")
    assert hidden.status_code == 400 and "unknown field 'amount'" in hidden.json()["errors"]["filter"][0]


def test_the_organisation_defines_a_calendar_view_checked_as_a_packs_is(world: dict[str, Any]) -> None:
    admin = world["admin"]
    bad = admin.put("/api/v1/admin/views/closings", json={"entity": "opportunity", "type": "calendar",
                                                          "field": "amount"})
    assert bad.status_code == 422 and "'amount' is not a date field" in bad.text
    body = {"entity": "opportunity", "type": "calendar", "label": "All closings", "field": "close_date"}
    planned = admin.put("/api/v1/admin/views/closings", json=body)
    assert [c["summary"] for c in planned.json()["plan"]["changes"]] == [
        "add view closings (opportunity, calendar)"]
    base = planned.json()["base_revision"]
    assert admin.put(f"/api/v1/admin/views/closings?confirm={base}", json=body).json()["applied"] is True
    assert {"view": "closings", "label": "All closings", "field": "close_date"} in \
        admin.get("/e/opportunity.json").json()["calendars"]
    month = admin.get("/e/opportunity/calendar.json?view=closings&date=2027-01-15").json()
    assert month["mode"] == "month" and calendar_titles(month) == {"2027-01-01": ["Admin early"],
                                                                   "2027-01-15": ["Rep open"]}
