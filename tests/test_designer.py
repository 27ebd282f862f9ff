"""The admin designer's pages over HTTP (issue 15): entities and fields listed with where
they come from; every change (new entity, field added, changed, retired, restored, a
validation, a relabel) shows its plan first and is applied only when Apply confirms that
plan against the revision it was made on; a plan that puts data at risk is refused with the
rows it would hurt; a change that landed meanwhile makes Apply refuse and offer the new plan;
rules are checked as they are typed; the history lists who changed what, with the plan
applied. On SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .pack_templates import PackTemplates
from .signed_in import Site, site
from .test_api_live_editing import VEHICLE, confirmed


@pytest.fixture
def web(engine: sa.Engine, db_url: str, pack_templates: PackTemplates,
        registry: FieldTypeRegistry) -> Iterator[Site]:
    yield from site(engine, db_url, pack_templates, registry)


@pytest.fixture
def admin(web: Site) -> TestClient:
    return web.client(web.user("root@example.com", "Rita Root", roles=("administrator",)))


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name} in the page"
    return html.unescape(found.group(1))


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def reviewed(http: TestClient, url: str, form: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Post the form for review: the plan page, and the form as Apply would post it."""
    shown = http.post(url, data=form)
    assert shown.status_code == 200, shown.text
    assert 'id="apply"' in shown.text
    return shown.text, {**form, "confirm": hidden(shown.text, "confirm"),
                        "plan_digest": hidden(shown.text, "plan_digest")}


def applied(http: TestClient, url: str, form: Mapping[str, Any]) -> str:
    """Review then apply; the page the designer goes to afterwards."""
    _, confirm = reviewed(http, url, form)
    done = http.post(url, data=confirm)
    assert done.status_code == 303, done.text
    page = http.get(done.headers["location"])
    assert page.status_code == 200
    return page.text


def test_the_entities_with_where_they_come_from(web: Site, admin: TestClient) -> None:
    confirmed(admin, "PUT", "/api/v1/admin/entities/vehicle", VEHICLE)
    listed = admin.get("/admin/entities")
    assert listed.status_code == 200
    row = re.search(r'<tr id="entity-account">.*?</tr>', listed.text, re.S)
    assert row and "crm-core" in row.group(0)
    vehicle = re.search(r'<tr id="entity-vehicle">.*?</tr>', listed.text, re.S)
    assert vehicle and "organisation" in vehicle.group(0) and "<td>7</td>" in vehicle.group(0)  # 6 + stage
    assert 'href="/admin/entities"' in admin.get("/").text  # the admin nav links the designer
    page = admin.get("/admin/entities/vehicle")
    assert page.status_code == 200
    assert 'href="/admin/entities/vehicle/fields/plate"' in page.text
    assert 'href="/admin/entities/vehicle/pipelines/lifecycle"' in page.text
    twin = admin.get("/admin/entities/vehicle.json").json()
    assert {f["name"]: f["origin"] for f in twin["fields"]}["plate"] == "organisation"
    assert admin.get("/admin/entities/vehicel").status_code == 404
    # Only holders of manage_metamodel; every POST needs the CSRF token.
    rep = web.client(web.user("rep@example.com", "Rep", roles=("sales_rep",)))
    assert rep.get("/admin/entities").status_code == 403
    assert rep.post("/admin/entities/account", data={"op": "relabel", "label": "X", "label_plural": "Xs"}
                    ).status_code == 403
    assert 'href="/admin/entities"' not in rep.get("/").text
    anonymous = web.client().get("/admin/entities")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    del admin.headers["x-csrftoken"]
    assert admin.post("/admin/entities/account", data={"op": "relabel", "label": "X", "label_plural": "Xs"}
                      ).status_code == 403


def test_a_new_entity_is_planned_then_applied(admin: TestClient) -> None:
    form = {"name": "vessel", "label": "Vessel", "label_plural": "Vessels", "title_field": "name"}
    plan, _ = reviewed(admin, "/admin/new-entity", form)
    assert "create table" in plan and "CREATE TABLE" in plan.upper()
    assert admin.get("/admin/entities/vessel").status_code == 404  # nothing applied yet
    page = applied(admin, "/admin/new-entity", form)
    assert "Vessel" in page and 'id="field-name"' in page
    again = admin.post("/admin/new-entity", data=form)
    assert again.status_code == 422 and "exists already" in text_of(again.text)
    bad = admin.post("/admin/new-entity", data={**form, "name": "Bad Name"})
    assert bad.status_code == 422 and "lower-case letters" in text_of(bad.text)


def test_a_field_added_to_a_pack_entity_appears_in_its_form(admin: TestClient) -> None:
    form = {"op": "save", "name": "fleet_size", "type": "integer", "label": "Fleet size", "setting.min": "0"}
    plan, _ = reviewed(admin, "/admin/entities/account/new-field", form)
    assert "add column" in plan and "fleet_size" in plan and "ALTER TABLE" in plan.upper()
    assert 'name="fleet_size"' not in admin.get("/e/account/new").text
    page = applied(admin, "/admin/entities/account/new-field", form)
    assert 'id="field-fleet_size"' in page
    assert 'name="fleet_size"' in admin.get("/e/account/new").text
    field = admin.get("/admin/entities/account/fields/fleet_size")
    assert 'name="setting.min" value="0"' in field.text
    # A pack's own field takes the organisation's label, not a new type.
    locked = admin.get("/admin/entities/account/fields/name")
    assert "may change its label, help, default, options and form logic only" in text_of(locked.text)
    relabel = applied(admin, "/admin/entities/account/fields/name",
                      {"op": "save", "type": "text", "label": "Company name", "required": "1"})
    assert "Company name" in relabel


def test_a_choice_keeps_its_options_order_and_colours(admin: TestClient) -> None:
    form = {"op": "save", "name": "tier", "type": "choice", "label": "Tier",
            "option_key": ["gold", "silver", ""], "option_label": ["Gold", "Silver", ""],
            "option_colour": ["#d4af37", "", ""]}
    applied(admin, "/admin/entities/account/new-field", form)
    meta = admin.get("/api/v1/meta").json()
    account = next(e for e in meta["entities"] if e["name"] == "account")
    tier = next(f for f in account["fields"] if f["name"] == "tier")
    options = tier.get("options") or tier.get("choices")
    assert [o["key"] for o in options] == ["gold", "silver"]
    assert options[0].get("colour") == "#d4af37"
    # Reordered (the rows in another order) and one removed: the plan says so, Apply keeps it.
    applied(admin, "/admin/entities/account/fields/tier",
            {"op": "save", "type": "choice", "label": "Tier", "option_key": ["silver", "gold", "bronze"],
             "option_label": ["Silver", "Gold", "Bronze"], "option_colour": ["", "#d4af37", ""]})
    meta = admin.get("/api/v1/meta").json()
    account = next(e for e in meta["entities"] if e["name"] == "account")
    tier = next(f for f in account["fields"] if f["name"] == "tier")
    assert [o["key"] for o in (tier.get("options") or tier.get("choices"))] == ["silver", "gold", "bronze"]
    refused = admin.post("/admin/entities/account/fields/tier",
                         data={"op": "save", "type": "choice", "option_key": [""],
                               "option_label": ["Nameless"], "option_colour": [""]})
    assert refused.status_code == 422 and "needs a key" in text_of(refused.text)


def test_a_type_change_that_loses_data_is_refused_with_the_rows(admin: TestClient) -> None:
    confirmed(admin, "PUT", "/api/v1/admin/entities/vehicle", VEHICLE)
    admin.post("/api/v1/vehicle", json=[{"plate": "A", "seats": "four"}, {"plate": "B", "seats": "2"},
                                        {"plate": "C", "seats": "5"}])
    refused = admin.post("/admin/entities/vehicle/fields/seats", data={"op": "save", "type": "integer"})
    assert refused.status_code == 409
    shown = text_of(refused.text)
    assert "Refused" in shown and "1 of 3 rows" in shown and "do not convert" in shown
    assert 'id="apply"' not in refused.text
    # The same with Apply forced: still refused, nothing changed.
    forced = admin.post("/admin/entities/vehicle/fields/seats",
                        data={"op": "save", "type": "integer", "confirm": "999", "plan_digest": "x"})
    assert forced.status_code == 409
    meta = admin.get("/api/v1/meta").json()
    vehicle = next(e for e in meta["entities"] if e["name"] == "vehicle")
    assert next(f for f in vehicle["fields"] if f["name"] == "seats")["type"] == "text"


def test_a_new_required_field_says_how_many_rows_have_no_value(admin: TestClient) -> None:
    confirmed(admin, "PUT", "/api/v1/admin/entities/vehicle", VEHICLE)
    admin.post("/api/v1/vehicle", json=[{"plate": "A"}, {"plate": "B"}])
    shown = admin.post("/admin/entities/vehicle/new-field",
                       data={"op": "save", "name": "vin", "type": "text", "required": "1"})
    assert "2 of 2 rows" in text_of(shown.text)


def test_apply_after_another_change_refuses_and_offers_the_new_plan(admin: TestClient) -> None:
    form = {"op": "save", "name": "fleet_size", "type": "integer"}
    _, confirm = reviewed(admin, "/admin/entities/account/new-field", form)
    confirmed(admin, "PUT", "/api/v1/admin/entities/account/fields/vat_number", {"type": "text"})
    stale = admin.post("/admin/entities/account/new-field", data=confirm)
    assert stale.status_code == 409
    assert "the metamodel changed since this plan was shown" in text_of(stale.text)
    assert hidden(stale.text, "confirm") == str(int(str(confirm["confirm"])) + 1)
    assert 'name="fleet_size"' not in admin.get("/e/account/new").text
    # The new plan, confirmed, applies.
    done = admin.post("/admin/entities/account/new-field",
                      data={**form, "confirm": hidden(stale.text, "confirm"),
                            "plan_digest": hidden(stale.text, "plan_digest")})
    assert done.status_code == 303
    # A form changed after its review is not applied under the plan shown for the old one.
    _, confirm = reviewed(admin, "/admin/entities/account/new-field", {**form, "name": "branches"})
    changed = admin.post("/admin/entities/account/new-field", data={**confirm, "type": "text"})
    assert changed.status_code == 409 and "not the one shown" in text_of(changed.text)


def test_a_field_is_retired_and_restored_with_its_data(admin: TestClient) -> None:
    confirmed(admin, "PUT", "/api/v1/admin/entities/vehicle", VEHICLE)
    made = admin.post("/api/v1/vehicle", json={"plate": "A", "seats": "four"}).json()
    page = applied(admin, "/admin/entities/vehicle/fields/seats", {"op": "retire", "type": "text"})
    row = re.search(r'<tr id="field-seats" class="retired">.*?</tr>', page, re.S)
    assert row and "retired" in row.group(0)
    assert "seats" not in admin.get(f"/api/v1/vehicle/{made['id']}").json()
    field = admin.get("/admin/entities/vehicle/fields/seats")
    assert 'id="restore"' in field.text
    applied(admin, "/admin/entities/vehicle/fields/seats",
            {"op": "restore", "type": "text", "label": "Seats"})
    assert admin.get(f"/api/v1/vehicle/{made['id']}").json()["seats"] == "four"


def test_a_field_added_to_an_entity_with_a_layout_is_placed_in_it_until_retired(admin: TestClient) -> None:
    """The default account layout shows only what it places: the designer places a new field
    in its first section, in the same plan, and retiring the field takes it out again."""
    form = {"op": "save", "name": "fleet_size", "type": "integer", "label": "Fleet size"}
    plan, _ = reviewed(admin, "/admin/entities/account/new-field", form)
    assert "change layout account" in text_of(plan)
    applied(admin, "/admin/entities/account/new-field", form)
    sent = re.findall(r'name="_fields" value="([a-z_]+)"', admin.get("/e/account/new").text)
    assert sent.index("fleet_size") == sent.index("tags") + 1  # the end of the first section

    def account_layout() -> dict[str, Any]:
        meta = admin.get("/api/v1/meta").json()
        found: dict[str, Any] = next(lay for lay in meta["layouts"] if lay["entity"] == "account")
        return found

    layout = account_layout()
    assert layout["pack"] == "organisation" and len(layout["related_lists"]) == 4
    assert layout["tabs"][0]["sections"][0]["fields"][-1] == "fleet_size"
    applied(admin, "/admin/entities/account/fields/fleet_size", {"op": "retire", "type": "integer"})
    placed = [n for t in account_layout()["tabs"] for s in t["sections"] for n in s["fields"]]
    assert "fleet_size" not in placed
    assert admin.get("/e/account/new").status_code == 200
    applied(admin, "/admin/entities/account/fields/fleet_size",
            {"op": "restore", "type": "integer", "label": "Fleet size"})
    assert 'name="fleet_size"' in admin.get("/e/account/new").text


def test_rules_are_checked_as_typed_with_a_caret(admin: TestClient) -> None:
    bad = admin.post("/admin/entities/account/check?rule=formula",
                     data={"formula": "name + + 1", "type": "text"})
    assert bad.status_code == 200
    caret = re.search(r'<pre class="caret">(.*?)</pre>', bad.text, re.S)
    assert caret, bad.text
    line, mark = html.unescape(caret.group(1)).split("\n")
    assert line == "name + + 1" and mark.endswith("^")
    twin = admin.post("/admin/entities/account/check?rule=formula", data={"formula": "name + + 1"},
                      headers={"accept": "application/json"}).json()
    assert twin["ok"] is False and twin["column"] == len(mark)
    unknown = admin.post("/admin/entities/account/check?rule=condition", data={"condition": "nmae = 'x'"},
                         headers={"accept": "application/json"}).json()
    assert "nmae" in unknown["message"] and unknown["line"] == 1 and unknown["column"] == 1
    good = admin.post("/admin/entities/account/check?rule=condition", data={"condition": "name != ''"})
    assert "valid" in good.text
    wrong_type = admin.post("/admin/entities/account/check?rule=formula",
                            data={"formula": "name", "type": "integer"},
                            headers={"accept": "application/json"})
    assert wrong_type.json()["ok"] is False


def test_validations_and_labels_of_an_entity(admin: TestClient) -> None:
    here = "/admin/entities/account"
    page = applied(admin, here, {"op": "validation", "name": "named", "condition": "name != 'x'",
                                 "message": "Not x", "field": "name"})
    assert 'id="validation-named"' in page
    refused = admin.post("/api/v1/account", json={"name": "x"})
    assert refused.status_code == 422 and "Not x" in refused.text
    bad = admin.post(here, data={"op": "validation", "name": "broken", "condition": "nmae = 1",
                                 "message": "m"})
    assert bad.status_code == 422 and "nmae" in text_of(bad.text)
    page = applied(admin, here, {"op": "remove_validation", "validation": "named"})
    assert 'id="validation-named"' not in page
    page = applied(admin, here, {"op": "relabel", "label": "Company", "label_plural": "Companies"})
    assert "<h1>Company</h1>" in page
    assert ">Companies<" in admin.get("/").text


def test_history_says_who_changed_what_with_the_plan(admin: TestClient) -> None:
    applied(admin, "/admin/entities/account/new-field",
            {"op": "save", "name": "fleet_size", "type": "integer"})
    listed = admin.get("/admin/history")
    assert listed.status_code == 200
    newest = admin.get("/admin/history.json").json()["data"][0]
    assert newest["who"] == "Rita Root" and "define field account.fleet_size" in newest["source"]
    assert listed.text.index(f'id="revision-{newest["id"]}"') < listed.text.index(
        f'id="revision-{newest["id"] - 1}"')
    one = admin.get(f"/admin/history/{newest['id']}")
    assert one.status_code == 200 and "fleet_size" in one.text and "ALTER TABLE" in one.text.upper()
    assert admin.get("/admin/history/9999").status_code == 404


def test_a_reference_field_and_an_entity_retired_with_its_data(admin: TestClient) -> None:
    applied(admin, "/admin/new-entity", {"name": "vessel", "label": "Vessel", "title_field": "name"})
    form = admin.get("/admin/entities/vessel/new-field?type=reference&name=company")
    assert '<select id="f-target" name="target">' in form.text  # the type's own settings
    page = applied(admin, "/admin/entities/vessel/new-field",
                   {"op": "save", "name": "company", "type": "reference", "target": "account"})
    assert 'id="field-company"' in page
    meta = admin.get("/api/v1/meta").json()
    vessel = next(e for e in meta["entities"] if e["name"] == "vessel")
    company = next(f for f in vessel["fields"] if f["name"] == "company")
    assert company["type"] == "reference" and company["settings"]["target"] == "account"
    made = admin.post("/api/v1/vessel", json={"name": "Nautilus"})
    assert made.status_code == 201, made.text
    # A pack's entity cannot be retired here: the page offers no retirement, a forced post is refused.
    assert 'id="entity-retire"' not in admin.get("/admin/entities/account").text
    forced = admin.post("/admin/entities/account", data={"op": "retire"})
    assert forced.status_code == 422 and "defined by pack" in text_of(forced.text)
    plan, _ = reviewed(admin, "/admin/entities/vessel", {"op": "retire"})
    assert "1 rows are kept" in text_of(plan) or "rows are kept" in text_of(plan)
    listed = applied(admin, "/admin/entities/vessel", {"op": "retire"})
    assert 'id="entity-vessel"' not in listed
    retired = re.search(r'<section class="card" id="retired-entities">.*?</section>', listed, re.S)
    assert retired and "vessel" in retired.group(0)
    assert admin.get("/admin/entities/vessel").status_code == 404


def test_bad_input_is_refused_naming_the_input_never_a_500(admin: TestClient) -> None:
    url = "/admin/entities/account/new-field"
    cases = [({"type": "gadget"}, "'gadget' is not a field type"),
             ({"type": "integer", "setting.min": "abc"}, "min: give a number"),
             ({"type": "text", "more": "[unclosed"}, "Other settings"),
             ({"type": "text", "more": "- a list"}, "give the other settings as a YAML mapping"),
             ({"type": "choice", "option_key": ["Bad Key"], "option_label": [""], "option_colour": [""]},
              "Bad Key"),
             ({"type": "text", "max_length": "x", "setting.max_length": "-3"}, "max_length")]
    for extra, said in cases:
        answer = admin.post(url, data={"op": "save", "name": "probe", **extra})
        assert answer.status_code == 422, (extra, answer.status_code)
        assert said in text_of(answer.text), (extra, text_of(answer.text)[-600:])
        assert 'id="apply"' not in answer.text
    unknown = admin.post("/admin/entities/account", data={"op": "explode"})
    assert unknown.status_code == 422 and "there is no change 'explode'" in text_of(unknown.text)
    assert admin.get("/admin/entities/account/fields/nope").status_code == 404
    assert admin.get("/admin/history?before=abc").status_code == 200
