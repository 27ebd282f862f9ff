"""The designer's layout editor over HTTP (web/designer_layouts.py), on SQLite and PostgreSQL:
the editor shows the entity's layout (the default one when it has none) as chips and YAML;
a layout saved shows its plan (no SQL), and once applied the form and the record page follow
it; a layout leaving out a required field, or bad YAML, is refused with the reason; the
preview renders the layout being edited; a change landed meanwhile makes Apply refuse."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.web.designer_layout_body import as_yaml

from .pack_templates import PackTemplates
from .test_designer_pipelines import confirm_of, vehicle_site

PAGE = "/admin/entities/vehicle/layout"
TABBED = """\
tabs:
  - label: Basics
    sections:
      - label: Identity
        columns: 2
        fields: [price, plate]
  - label: Dates
    sections:
      - label: When
        fields: [registered]
"""
NO_PLATE = """\
sections:
  - label: Only price
    fields: [price]
"""


@pytest.fixture
def client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
           pack_templates: PackTemplates) -> Iterator[TestClient]:
    yield from vehicle_site(engine, db_url, registry, pack_templates)


def digest_of(html: str) -> str:
    found = re.search(r'name="plan_digest" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


def apply(client: TestClient, text: str) -> None:
    plan = client.post(PAGE, data={"layout": text})
    assert plan.status_code == 200, plan.text
    done = client.post(PAGE, data={"layout": text, "confirm": confirm_of(plan.text),
                                   "plan_digest": digest_of(plan.text)}, follow_redirects=False)
    assert done.status_code == 303, done.text


def test_the_editor_shows_the_default_layout_as_chips_and_yaml(client: TestClient) -> None:
    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    chips = re.findall(r'<li class="chip" data-field="([a-z_]+)"', page.text)
    assert chips[:3] == ["plate", "price", "registered"]
    assert 'name="layout"' in page.text and "fields:" in page.text
    assert 'id="edit-layout"' in client.get("/admin/entities/vehicle").text
    twin = client.get(PAGE + ".json").json()
    assert twin["body"]["sections"][0]["fields"][:3] == ["plate", "price", "registered"]


def test_a_saved_layout_is_planned_then_the_form_and_record_page_follow(client: TestClient) -> None:
    plan = client.post(PAGE, data={"layout": TABBED})
    assert plan.status_code == 200, plan.text
    assert "change layout vehicle" in plan.text
    form = client.get("/e/vehicle/new")
    assert "Basics" not in form.text  # nothing changed before Apply
    apply(client, TABBED)
    form = client.get("/e/vehicle/new").text
    assert 'role="tab"' in form and "Basics" in form and "Dates" in form
    assert form.index('id="f-price"') < form.index('id="f-plate"') < form.index('id="f-registered"')
    made = client.post("/api/v1/vehicle", json={"plate": "AB-1", "price": 5}).json()
    record = client.get(f"/e/vehicle/{made['id']}").text
    assert "Identity" in record and "When" in record
    assert client.get(PAGE + ".json").json()["origin"] == "organisation"


def test_a_layout_leaving_out_a_required_field_is_refused_with_the_reason(client: TestClient) -> None:
    refused = client.post(PAGE, data={"layout": "tabs:\n  - label: T\n    sections:\n      - label: S\n"
                                                "        fields: [price]\n"})
    assert refused.status_code == 422, refused.text
    assert "plate" in refused.text and "is required" in refused.text
    assert 'name="confirm"' not in refused.text


def test_bad_yaml_and_an_unknown_field_are_refused_at_their_place(client: TestClient) -> None:
    bad = client.post(PAGE, data={"layout": "sections: [\n  - oops"})
    assert bad.status_code == 422 and "line" in bad.text
    unknown = client.post(PAGE, data={"layout": "sections:\n  - label: S\n    fields: [plate, colour]\n"})
    assert unknown.status_code == 422, unknown.text
    assert "no field &#39;colour&#39;" in unknown.text or "no field 'colour'" in unknown.text


def test_the_preview_renders_the_layout_being_edited(client: TestClient) -> None:
    shown = client.post(PAGE + "/preview", data={"layout": TABBED})
    assert shown.status_code == 200, shown.text
    assert re.findall(r'data-field="([a-z_]+)"', shown.text) == ["price", "plate", "registered"]
    assert "Basics" in shown.text and "columns-2" in shown.text
    twin = client.post(PAGE + "/preview.json", data={"layout": NO_PLATE}).json()
    assert twin["tabs"][0]["sections"][0]["fields"] == ["price"]
    wrong = client.post(PAGE + "/preview", data={"layout": "sections: 3"})
    assert wrong.status_code == 200 and "field-error" in wrong.text


def test_apply_refuses_a_stale_plan_and_offers_the_new_one(client: TestClient) -> None:
    plan = client.post(PAGE, data={"layout": TABBED})
    shown, fingerprint = confirm_of(plan.text), digest_of(plan.text)
    apply(client, NO_PLATE.replace("[price]", "[plate, price]"))
    stale = client.post(PAGE, data={"layout": TABBED, "confirm": shown, "plan_digest": fingerprint})
    assert stale.status_code == 409, stale.text
    assert "Another change was applied meanwhile" in stale.text
    assert 'name="confirm"' in stale.text
    assert "Basics" not in client.get("/e/vehicle/new").text


# --- the structured editor: each action applied by the server to the posted text ------------------
EDIT = PAGE + "/edit"


def edited(client: TestClient, text: str, action: str, **extra: str) -> dict[str, Any]:
    """The body the editor shows after `action` on `text` (its JSON twin), asserting it applied."""
    answer = client.post(EDIT + ".json", data={"layout": text, "action": action, **extra})
    assert answer.status_code == 200, answer.text
    assert answer.json()["errors"] == {}
    return dict(answer.json()["body"])


def textarea_of(html: str) -> str:
    found = re.search(r'<textarea id="layout-yaml"[^>]*>(.*?)</textarea>', html, re.S)
    assert found, html
    return unescape(found.group(1))


def placed(body: dict[str, Any]) -> list[list[list[str]]]:
    tabs = body.get("tabs") or [{"sections": body.get("sections")}]
    return [[list(s["fields"]) for s in t["sections"]] for t in tabs]


def test_a_drop_is_applied_to_the_text_as_typed_keeping_unsaved_edits(client: TestClient) -> None:
    typed = TABBED.replace("label: Identity", "label: Who it is")  # an edit not saved yet
    page = client.post(EDIT, data={"layout": typed, "action": "move_field:registered:0:0:1"})
    assert page.status_code == 200, page.text
    text = textarea_of(page.text)
    assert "Who it is" in text and "Identity" not in text
    body = client.post(PAGE + "/preview.json", data={"layout": text}).json()
    assert body["tabs"][0]["sections"][0]["fields"] == ["price", "registered", "plate"]
    assert len(body["tabs"]) == 1  # the Dates tab has an empty section now: the form leaves it out
    # the chips and the preview follow the new text
    chips = re.findall(r'<li class="chip" data-field="([a-z_]+)"', page.text)
    assert chips[:3] == ["price", "registered", "plate"]
    # the drop of the script: action "drop" and the move in the "drop" input
    dropped = client.post(EDIT, data={"layout": TABBED, "action": "drop", "drop": "move_field:plate"})
    assert re.search(r'id="unplaced">\s*<li class="chip" data-field="plate"', dropped.text), dropped.text


def test_fields_sections_and_tabs_are_arranged_by_actions(client: TestClient) -> None:
    body = edited(client, TABBED, "add_section:1")
    assert body["tabs"][1]["sections"][1] == {"label": "New section", "columns": 1, "fields": []}
    body = edited(client, as_yaml(body), "move_field:plate:1:1:0")
    assert placed(body) == [[["price"]], [["registered"], ["plate"]]]
    body = edited(client, as_yaml(body), "move_section:1:1:0:0")
    assert placed(body) == [[["plate"], ["price"]], [["registered"]]]
    body = edited(client, as_yaml(body), "rename_section:0:0", **{"label.0.0": "Plate"})
    assert body["tabs"][0]["sections"][0]["label"] == "Plate"
    body = edited(client, as_yaml(body), "columns:0:0:2")
    assert body["tabs"][0]["sections"][0]["columns"] == 2
    body = edited(client, as_yaml(body), "move_tab:1:0")
    assert [t["label"] for t in body["tabs"]] == ["Dates", "Basics"]
    body = edited(client, as_yaml(body), "rename_tab:0", **{"label.0": "When"})
    assert body["tabs"][0]["label"] == "When"
    body = edited(client, as_yaml(body), "add_tab")
    assert body["tabs"][2]["label"] == "New tab"
    body = edited(client, as_yaml(body), "remove_tab:0")
    assert [t["label"] for t in body["tabs"]] == ["Basics", "New tab"]
    body = edited(client, as_yaml(body), "remove_section:0:1")
    assert placed(body) == [[["plate"]], [[]]]
    page = client.post(EDIT, data={"layout": as_yaml(body), "action": "add_section:0"})
    assert re.search(r'id="unplaced">\s*<li class="chip" data-field="price"', page.text)  # back in the tray
    flat = edited(client, NO_PLATE, "add_tab")
    assert [t["label"] for t in flat["tabs"]] == ["Main", "New tab"]


def test_enter_in_a_label_without_a_script_renames_what_changed_only(client: TestClient) -> None:
    typed = TABBED.replace("label: When", "label: Typed in the text")
    labels = {"label.0": "Basics", "was.label.0": "Basics", "label.1": "Later", "was.label.1": "Dates",
              "label.1.0": "When", "was.label.1.0": "When"}
    body = edited(client, typed, "drop", drop="", **labels)  # Enter: the form's first button, no move
    assert [t["label"] for t in body["tabs"]] == ["Basics", "Later"]
    assert body["tabs"][1]["sections"][0]["label"] == "Typed in the text"  # the text's edit kept


def test_the_compact_fields_are_added_reordered_and_removed(client: TestClient) -> None:
    body = edited(client, TABBED, "add_compact", compact_field="plate")
    body = edited(client, as_yaml(body), "add_compact", compact_field="price")
    assert body["compact"] == {"fields": ["plate", "price"]}
    body = edited(client, as_yaml(body), "move_compact:price:0")
    assert body["compact"] == {"fields": ["price", "plate"]}
    body = edited(client, as_yaml(body), "remove_compact:price")
    assert body["compact"] == {"fields": ["plate"]}
    page = client.post(EDIT, data={"layout": as_yaml(body), "action": "add_compact",
                                   "compact_field": "plate"})
    assert page.status_code == 422 and "already" in page.text


def test_the_related_lists_are_those_pointing_at_the_entity(client: TestClient) -> None:
    # The contact's layout chooses no related list: every one is shown, in the record page's order.
    contact_layout = "/admin/entities/contact/layout"
    page = client.get(contact_layout)
    offered = re.findall(r'<li class="item" data-index="\d+" data-key="([a-z_.]+)"', page.text)
    assert "activity.contact" in offered and 'id="related-default"' in page.text
    text = textarea_of(page.text)
    removed = client.post(contact_layout + "/edit.json",
                          data={"layout": text, "action": "remove_related:0"}).json()
    assert removed["errors"] == {}
    keys = [f"{r['entity']}.{r['field']}" for r in removed["body"]["related_lists"]]
    assert keys == offered[1:]
    added = client.post(contact_layout + "/edit.json", data={
        "layout": as_yaml(removed["body"]), "action": "add_related", "related": offered[0]}).json()["body"]
    assert [f"{r['entity']}.{r['field']}" for r in added["related_lists"]] == [*offered[1:], offered[0]]
    if len(offered) > 1:
        moved = client.post(contact_layout + "/edit.json", data={
            "layout": as_yaml(added), "action": f"move_related:{len(offered) - 1}:0"}).json()["body"]
        assert [f"{r['entity']}.{r['field']}" for r in moved["related_lists"]] == offered
    wrong = client.post(contact_layout + "/edit", data={"layout": text, "action": "add_related",
                                                 "related": "vehicle.x"})
    assert wrong.status_code == 422 and "no related list" in wrong.text


def test_an_action_on_text_that_does_not_parse_is_refused_keeping_the_text(client: TestClient) -> None:
    broken = TABBED + "  - oops: [\n"
    refused = client.post(EDIT, data={"layout": broken, "action": "add_tab"})
    assert refused.status_code == 422, refused.text
    assert "the action was not applied" in refused.text and "line" in refused.text
    assert textarea_of(refused.text) == broken  # nothing lost
    unknown = client.post(EDIT, data={"layout": TABBED, "action": "explode:1"})
    assert unknown.status_code == 422 and "no layout action" in unknown.text
    assert textarea_of(unknown.text) == TABBED
    nowhere = client.post(EDIT, data={"layout": TABBED, "action": "remove_section:5:0"})
    assert nowhere.status_code == 422 and "no tab 6" in nowhere.text
    shape = client.post(EDIT, data={"layout": "sections: 3\n", "action": "add_section:0"})
    assert shape.status_code == 422 and textarea_of(shape.text) == "sections: 3\n"


def test_the_preview_draws_the_form_widgets_inert_with_required_markers(client: TestClient) -> None:
    shown = client.post(PAGE + "/preview", data={"layout": TABBED}).text
    assert re.search(r'<fieldset class="layout-preview-form" disabled inert hx-ignore', shown)
    assert re.search(r'<input[^>]*id="f-plate"', shown) and re.search(r'<input[^>]*id="f-registered"', shown)
    assert 'class="req"' in shown  # plate is required
    twin = client.post(PAGE + "/preview.json", data={"layout": TABBED}).json()
    assert twin["tabs"][0]["sections"][0]["required"] == ["plate"]


def test_a_new_section_left_empty_is_refused_when_reviewed(client: TestClient) -> None:
    body = edited(client, TABBED, "add_section:0")
    refused = client.post(PAGE, data={"layout": as_yaml(body)})
    assert refused.status_code == 422, refused.text
    assert "tabs[0].sections[1].fields: must not be empty" in refused.text
    assert 'name="confirm"' not in refused.text
