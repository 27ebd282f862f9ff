"""The designer's pipeline pages over HTTP (web/designer_pipelines.py): every change shows its
plan first and applies on confirmation against the revision shown; the board follows a new
stage order, a stage's required fields are enforced once applied, a change made meanwhile
makes Apply refuse with the new plan, and a pack's own stages stay the pack's but for their
label and colour."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import customisation

from .defaults import make_app, signed_in
from .pack_templates import PackTemplates

VEHICLE = {
    "label": "Vehicle",
    "title_field": "plate",
    "fields": {
        "plate": {"type": "text", "required": True},
        "price": {"type": "integer"},
        "registered": {"type": "date"},
    },
    "pipelines": {"lifecycle": {"field": "status", "stages": [
        {"key": "ordered"},
        {"key": "in_service"},
        {"key": "sold", "category": "won"},
    ]}},
}
PAGE = "/admin/entities/vehicle/pipelines/lifecycle"


@pytest.fixture
def client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
           pack_templates: PackTemplates) -> Iterator[TestClient]:
    yield from vehicle_site(engine, db_url, registry, pack_templates)


def vehicle_site(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
                 pack_templates: PackTemplates) -> Iterator[TestClient]:
    """The sales packs and an organisation's vehicle entity with its lifecycle pipeline; an
    administrator signed in."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    planned = customisation.plan_edit(engine, registry, "define vehicle",
                                      customisation.put_entity("vehicle", VEHICLE))
    customisation.apply_edit(engine, planned, author="test")
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def confirm_of(html: str) -> str:
    found = re.search(r'name="confirm" value="(\d+)"', html)
    assert found, html
    return found.group(1)


def pairs(items: Any) -> dict[str, list[str]]:
    """Form pairs as httpx takes them: each name with its values, in order."""
    out: dict[str, list[str]] = {}
    for name, value in items:
        out.setdefault(name, []).append(value)
    return out


def stage_order(html: str, marker: str) -> list[str]:
    return re.findall(marker, html)


def board_order(client: TestClient) -> list[str]:
    board = client.get("/e/vehicle/board/lifecycle")
    assert board.status_code == 200, board.text
    return stage_order(board.text, r'<h2 id="col-([a-z_]+)"')


def test_the_page_lists_the_stages_in_order(client: TestClient) -> None:
    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    assert stage_order(page.text, r'<li class="stage-row[^"]*" data-key="([a-z_]+)"') == \
        ["ordered", "in_service", "sold"]
    assert "defined by the <strong>organisation</strong>" in page.text
    twin = client.get(PAGE + ".json").json()
    assert [s["key"] for s in twin["stages"]] == ["ordered", "in_service", "sold"]


def test_reordering_shows_a_plan_and_then_the_board_follows(client: TestClient) -> None:
    order = [("order", "sold"), ("order", "ordered"), ("order", "in_service")]
    plan = client.post(PAGE + "/order", data=pairs(order))
    assert plan.status_code == 200, plan.text
    assert "reorder the stages of vehicle.lifecycle" in plan.text
    assert board_order(client) == ["ordered", "in_service", "sold"]  # nothing changed yet
    done = client.post(PAGE + "/order", data=pairs([*order, ("confirm", confirm_of(plan.text))]),
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    assert board_order(client) == ["sold", "ordered", "in_service"]


def test_the_up_and_down_buttons_reorder_without_javascript(client: TestClient) -> None:
    keys = [("order", k) for k in ("ordered", "in_service", "sold")]
    plan = client.post(PAGE + "/order", data=pairs([*keys, ("move", "sold:up")]))
    assert plan.status_code == 200, plan.text
    # The plan page carries the new order back, not the button.
    assert re.findall(r'name="order" value="([a-z_]+)"', plan.text) == ["ordered", "sold", "in_service"]
    assert 'name="move"' not in plan.text
    replay = [("order", k) for k in ("ordered", "sold", "in_service")]
    client.post(PAGE + "/order", data=pairs([*replay, ("confirm", confirm_of(plan.text))]))
    assert board_order(client) == ["ordered", "sold", "in_service"]


def test_a_stage_s_required_fields_are_enforced_once_applied(client: TestClient) -> None:
    form = {"label": "In service", "category": "open", "probability": "40", "colour": "#2a9d8f",
            "requires": ["price", "registered"], "next_mode": "any", "condition": "", "condition_message": ""}
    plan = client.post(PAGE + "/stages/in_service", data=form)
    assert plan.status_code == 200, plan.text
    assert "change stage vehicle.lifecycle.in_service" in plan.text
    before = client.post("/api/v1/vehicle", json={"plate": "AB-1", "status": "in_service"})
    assert before.status_code == 201, before.text  # not required before Apply
    done = client.post(PAGE + "/stages/in_service", data={**form, "confirm": confirm_of(plan.text)},
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    refused = client.post("/api/v1/vehicle", json={"plate": "AB-2", "status": "in_service"})
    assert refused.status_code == 422, refused.text
    assert set(refused.json()["errors"]) >= {"price", "registered"}
    ok = client.post("/api/v1/vehicle", json={"plate": "AB-3", "status": "in_service", "price": 10,
                                              "registered": "2026-01-02"})
    assert ok.status_code == 201, ok.text
    stage = client.get(PAGE + ".json").json()["stages"][1]
    assert (stage["probability"], stage["colour"]) == (40, "#2a9d8f")
    assert stage["requires"] == ["price", "registered"]


def test_allowed_next_stages_and_entry_condition_are_saved(client: TestClient) -> None:
    form = {"label": "Ordered", "category": "open", "next_mode": "listed", "next": ["in_service"],
            "condition": "plate != \"\"", "condition_message": "give the plate"}
    plan = client.post(PAGE + "/stages/ordered", data=form)
    client.post(PAGE + "/stages/ordered", data={**form, "confirm": confirm_of(plan.text)})
    stage = client.get(PAGE + ".json").json()["stages"][0]
    assert stage["next"] == ["in_service"]
    assert stage["condition"] == 'plate != ""'
    made = client.post("/api/v1/vehicle", json={"plate": "CD-1", "status": "ordered"}).json()
    jump = client.patch(f"/api/v1/vehicle/{made['id']}", json={"status": "sold"},
                        headers={"If-Match": str(made["version"])})
    assert jump.status_code in (409, 422), jump.text


def test_a_bad_form_value_names_the_field(client: TestClient) -> None:
    page = client.post(PAGE + "/stages/sold", data={"category": "won", "probability": "150", "colour": "red"})
    assert page.status_code == 422
    assert "give a whole number from 0 to 100" in page.text
    assert "write the colour as #rrggbb" in page.text


def test_a_bad_entry_condition_is_refused_at_its_place(client: TestClient) -> None:
    page = client.post(PAGE + "/stages/sold", data={"category": "won", "condition": "price >> 3"})
    assert page.status_code == 422, page.text
    assert "condition" in page.text and "column" in page.text


def test_the_condition_is_checked_as_typed_with_a_caret(client: TestClient) -> None:
    bad = client.post(PAGE + "/check", data={"condition": "price > 'x'"})
    assert bad.status_code == 200
    assert 'class="field-error"' in bad.text and "column" in bad.text
    caret = re.search(r'<pre class="caret">(.*?)</pre>', bad.text, re.S)
    assert caret and caret.group(1).splitlines()[-1].strip() == "^"
    good = client.post(PAGE + "/check", data={"condition": "price > 3"})
    assert "reads well" in good.text and "field-error" not in good.text


def test_adding_and_retiring_a_stage(client: TestClient) -> None:
    plan = client.post(PAGE + "/stages", data={"key": "scrapped", "label": "Scrapped", "after": "sold"})
    assert plan.status_code == 200, plan.text
    client.post(PAGE + "/stages", data={"key": "scrapped", "label": "Scrapped", "after": "sold",
                                        "confirm": confirm_of(plan.text)})
    assert board_order(client) == ["ordered", "in_service", "sold", "scrapped"]
    plan = client.post(PAGE + "/stages/scrapped/remove", data={})
    assert plan.status_code == 200, plan.text
    client.post(PAGE + "/stages/scrapped/remove", data={"confirm": confirm_of(plan.text)})
    assert board_order(client) == ["ordered", "in_service", "sold"]
    bad = client.post(PAGE + "/stages", data={"key": "Bad Key"})
    assert bad.status_code == 422 and "lower-case letters" in bad.text


def test_apply_refuses_when_another_change_landed_and_offers_the_new_plan(client: TestClient) -> None:
    order = [("order", "sold"), ("order", "ordered"), ("order", "in_service")]
    shown = confirm_of(client.post(PAGE + "/order", data=pairs(order)).text)
    other = client.post(PAGE + "/stages", data={"key": "leased", "after": "ordered"})
    client.post(PAGE + "/stages", data={"key": "leased", "after": "ordered",
                                        "confirm": confirm_of(other.text)})
    stale = client.post(PAGE + "/order", data=pairs([*order, ("confirm", shown)]))
    # The order now misses the stage added meanwhile: refused, naming every stage.
    assert stale.status_code == 422, stale.text
    order = [("order", k) for k in ("sold", "ordered", "leased", "in_service")]
    again = client.post(PAGE + "/order", data=pairs([*order, ("confirm", shown)]))
    assert again.status_code == 409, again.text
    assert "Another change was applied meanwhile" in again.text
    fresh = confirm_of(again.text)
    assert fresh != shown
    client.post(PAGE + "/order", data=pairs([*order, ("confirm", fresh)]))
    assert board_order(client) == ["sold", "ordered", "leased", "in_service"]


def test_a_pack_s_own_stages_stay_the_pack_s(client: TestClient) -> None:
    sales = "/admin/entities/opportunity/pipelines/sales"
    page = client.get(sales)
    assert page.status_code == 200, page.text
    assert "defined by pack <strong>sales</strong>" in page.text
    twin = client.get(sales + ".json").json()
    assert not any(s["editable"] for s in twin["stages"])
    # Its label and colour may be changed (the organisation's stage_overrides); the rest is the pack's.
    stage = client.get(sales + "/stages/proposal")
    assert re.search(r'id="s-label" name="label" value="[^"]*">', stage.text), stage.text
    assert re.search(r'id="s-category" name="category" disabled>', stage.text), stage.text
    before = next(s for s in twin["stages"] if s["key"] == "proposal")
    form = {"label": "Offer", "colour": "#aa3311", "category": "lost", "probability": "99"}
    bad = client.post(sales + "/stages/proposal", data={**form, "colour": "red"})
    assert bad.status_code == 422 and "write the colour as #rrggbb" in bad.text
    plan = client.post(sales + "/stages/proposal", data=form)
    assert plan.status_code == 200, plan.text
    done = client.post(sales + "/stages/proposal", data={**form, "confirm": confirm_of(plan.text)},
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    after = next(s for s in client.get(sales + ".json").json()["stages"] if s["key"] == "proposal")
    assert (after["label"], after["colour"]) == ("Offer", "#aa3311")
    assert (after["category"], after["probability"], after["pack"]) == (
        before["category"], before["probability"], "sales")
    assert "Offer" in client.get("/e/opportunity/board/sales").text
    # The organisation adds a stage, then moves it among the pack's.
    plan = client.post(sales + "/stages", data={"key": "demo", "label": "Demo", "after": "prospecting"})
    client.post(sales + "/stages", data={"key": "demo", "label": "Demo", "after": "prospecting",
                                         "confirm": confirm_of(plan.text)})
    keys = [s["key"] for s in client.get(sales + ".json").json()["stages"]]
    assert keys[:3] == ["prospecting", "demo", "qualification"]
    moved = [k for k in keys if k != "demo"]
    moved.insert(moved.index("proposal") + 1, "demo")
    plan = client.post(sales + "/order", data=pairs([("order", k) for k in moved]))
    assert plan.status_code == 200, plan.text
    client.post(sales + "/order", data={"order": moved, "confirm": confirm_of(plan.text)})
    assert [s["key"] for s in client.get(sales + ".json").json()["stages"]] == moved
    # Its label changes where it stands.
    form = {"label": "Product demo", "category": "open", "next_mode": "any"}
    plan = client.post(sales + "/stages/demo", data=form)
    client.post(sales + "/stages/demo", data={**form, "confirm": confirm_of(plan.text)})
    stages = client.get(sales + ".json").json()["stages"]
    assert [s["key"] for s in stages] == moved
    assert next(s for s in stages if s["key"] == "demo")["label"] == "Product demo"
    swapped = list(moved)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    refused = client.post(sales + "/order", data=pairs([("order", k) for k in swapped]))
    assert refused.status_code == 422 and "keep the pack&#39;s order" in refused.text


def test_only_metamodel_managers_and_csrf(client: TestClient, engine: sa.Engine) -> None:
    app: Any = client.app
    with signed_in(app, "rep@example.com", roles=("sales_rep",), raise_server_exceptions=False) as rep:
        assert rep.get(PAGE).status_code == 403
        assert rep.post(PAGE + "/order", data={"order": "sold"}).status_code == 403
    del client.headers["x-csrftoken"]
    assert client.post(PAGE + "/order", data={"order": "sold"}).status_code == 403
    assert client.get("/admin/entities/vehicle/pipelines/nope").status_code == 404


def test_retiring_a_stage_that_holds_records_shows_them_in_the_plan(client: TestClient) -> None:
    made = client.post("/api/v1/vehicle", json={"plate": "EF-1", "status": "sold"})
    assert made.status_code == 201, made.text
    plan = client.post(PAGE + "/stages/sold/remove", data={})
    assert plan.status_code == 200, plan.text
    assert "1 of 1 rows hold values the new definition refuses" in plan.text
    client.post(PAGE + "/stages/sold/remove", data={"confirm": confirm_of(plan.text)})
    assert board_order(client) == ["ordered", "in_service"]
    kept = client.get(f"/api/v1/vehicle/{made.json()['id']}")
    assert kept.status_code == 200 and kept.json()["status"] == "sold"  # the data is kept
