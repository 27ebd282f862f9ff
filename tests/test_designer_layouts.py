"""The designer's layout editor over HTTP (web/designer_layouts.py), on SQLite and PostgreSQL:
the editor shows the entity's layout (the default one when it has none) as chips and YAML;
a layout saved shows its plan (no SQL), and once applied the form and the record page follow
it; a layout leaving out a required field, or bad YAML, is refused with the reason; the
preview renders the layout being edited; a change landed meanwhile makes Apply refuse."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

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
