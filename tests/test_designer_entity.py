"""The designer's entity pages over HTTP (web/designer_pages.py, designer_pipelines.py): the
creation forms live at paths no name can take, so an entity or a field named `new` is
reachable; a retired entity of the organisation is restored with its records; an entity
made in the designer gets a pipeline; an organisation's override of a pack's entity label,
field or stage is reverted to the pack's. Every change shows its plan first. On SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import customisation, layers

from .pack_templates import PackTemplates
from .signed_in import Site, site
from .test_api_live_editing import VEHICLE, confirmed
from .test_designer import applied, hidden, reviewed, text_of


@pytest.fixture
def web(engine: sa.Engine, db_url: str, pack_templates: PackTemplates,
        registry: FieldTypeRegistry) -> Iterator[Site]:
    yield from site(engine, db_url, pack_templates, registry)


@pytest.fixture
def admin(web: Site) -> TestClient:
    return web.client(web.user("root@example.com", "Rita Root", roles=("administrator",)))


def meta_entity(http: TestClient, name: str) -> dict[str, object] | None:
    return next((e for e in http.get("/api/v1/meta").json()["entities"] if e["name"] == name), None)


def test_the_creation_forms_are_at_paths_no_name_takes(admin: TestClient) -> None:
    listed = admin.get("/admin/entities").text
    assert 'href="/admin/new-entity"' in listed
    page = applied(admin, "/admin/new-entity", {"name": "vessel", "label": "Vessel", "title_field": "name"})
    assert 'href="/admin/entities/vessel/new-field"' in page
    applied(admin, "/admin/entities/vessel/new-field",
            {"op": "save", "name": "flag", "type": "text", "label": "Flag"})
    field = admin.get("/admin/entities/vessel/fields/flag")
    assert field.status_code == 200 and 'action="/admin/entities/vessel/fields/flag"' in field.text
    # The old paths are an entity's and a field's pages like any other: there is none named `new`
    # (an SQL keyword: no entity nor field can take it, the designer says so).
    assert admin.get("/admin/entities/new").status_code == 404
    assert admin.get("/admin/entities/vessel/fields/new").status_code == 404
    refused = admin.post("/admin/new-entity", data={"name": "new", "label": "Novelty", "title_field": "name"})
    assert refused.status_code == 422 and "'new' is an SQL keyword" in text_of(refused.text)


def test_a_retired_entity_is_restored_with_its_records(admin: TestClient) -> None:
    confirmed(admin, "PUT", "/api/v1/admin/entities/vehicle", VEHICLE)
    made = admin.post("/api/v1/vehicle", json={"plate": "AB-123", "fuel": "diesel", "status": "ordered"})
    assert made.status_code == 201, made.text
    record = made.json()["id"]
    applied(admin, "/admin/entities/vehicle", {"op": "retire"})
    assert admin.get("/api/v1/vehicle").status_code == 404
    listed = admin.get("/admin/entities").text
    retired = re.search(r'<li id="retired-vehicle">.*?</li>', listed, re.S)
    assert retired and "Review restoring it" in retired.group(0)
    plan, _ = reviewed(admin, "/admin/entities", {"op": "restore", "entity": "vehicle"})
    assert "restore entity vehicle with its 1 rows" in text_of(plan)
    assert admin.get("/api/v1/vehicle").status_code == 404  # nothing applied yet
    page = applied(admin, "/admin/entities", {"op": "restore", "entity": "vehicle"})
    assert 'id="field-plate"' in page and 'href="/admin/entities/vehicle/pipelines/lifecycle"' in page
    kept = admin.get(f"/api/v1/vehicle/{record}")
    assert kept.status_code == 200, kept.text
    values = kept.json()
    assert (values["plate"], values["fuel"], values["status"]) == ("AB-123", "diesel", "ordered")
    assert 'id="retired-vehicle"' not in admin.get("/admin/entities").text
    # Restoring what is not retired, or nothing, is refused with the reason.
    again = admin.post("/admin/entities", data={"op": "restore", "entity": "vehicle"})
    assert again.status_code == 422 and "entity 'vehicle' is not retired" in text_of(again.text)
    none = admin.post("/admin/entities", data={"op": "restore", "entity": "vessel"})
    assert none.status_code == 422 and "there is no retired entity 'vessel'" in text_of(none.text)


def test_restore_entity_writes_back_the_document_retiring_removed(
        engine: sa.Engine, registry: FieldTypeRegistry, pack_templates: PackTemplates) -> None:
    pack_templates.copy_to(engine, registry, "crm-core")

    def done(summary: str, edit: object) -> None:
        planned = customisation.plan_edit(engine, registry, summary, edit)
        customisation.apply_edit(engine, planned, author="test")

    done("define", customisation.put_entity("vehicle", {**VEHICLE, "validations": [
        {"name": "plate_long", "condition": "len(plate) > 2", "message": "too short", "field": "plate"}]}))
    done("retire a field", customisation.delete_field("vehicle", "seats"))
    with engine.connect() as conn:
        before = layers.documents(conn)[("entity", "vehicle")]
    done("retire", customisation.delete_entity("vehicle"))
    with engine.connect() as conn:
        assert ("entity", "vehicle") not in layers.documents(conn)
    with pytest.raises(DefinitionError, match="is defined by pack 'crm-core'"):
        customisation.plan_edit(engine, registry, "x", customisation.delete_entity("account"))
    planned = customisation.plan_edit(engine, registry, "restore", customisation.restore_entity("vehicle"))
    assert [c.action for c in planned.plan.changes][:1] == ["restore table"]
    assert not any(c.action == "add column" for c in planned.plan.changes)
    customisation.apply_edit(engine, planned, author="test")
    with engine.connect() as conn:
        restored = layers.documents(conn)[("entity", "vehicle")]
    assert set(restored["fields"]) == set(before["fields"]) | {"status"}  # the stage field, declared now
    assert restored["fields"]["plate"] == {"type": "text", "label": "Plate", "required": True, "unique": True,
                                           "max_length": 12}
    assert [o["key"] for o in restored["fields"]["fuel"]["options"]] == ["petrol", "diesel", "electric"]
    stages = restored["pipelines"]["lifecycle"]["stages"]
    assert [s["key"] for s in stages] == ["ordered", "in_service", "sold"]
    assert restored["pipelines"]["lifecycle"]["stages"][1]["requires"] == ["registered"]
    assert restored["validations"][0]["name"] == "plate_long"
    with pytest.raises(DefinitionError, match="is not retired"):
        customisation.plan_edit(engine, registry, "again", customisation.restore_entity("vehicle"))


def test_a_pipeline_is_made_for_an_entity_that_has_none(admin: TestClient) -> None:
    applied(admin, "/admin/new-entity", {"name": "vessel", "label": "Vessel", "title_field": "name"})
    page = admin.get("/admin/entities/vessel")
    assert 'href="/admin/entities/vessel/new-pipeline"' in page.text
    url = "/admin/entities/vessel/new-pipeline"
    form = admin.get(url)
    assert form.status_code == 200 and 'name="field" pattern="[a-z][a-z0-9_]*" value="stage"' in form.text
    sent = {"name": "voyage", "label": "Voyage", "field": "stage",
            "stage_key": ["planned", "sailing", ""], "stage_label": ["Planned", "At sea", ""]}
    plan, _ = reviewed(admin, url, sent)
    assert "add column" in plan and "stage" in plan
    assert admin.get("/admin/entities/vessel/pipelines/voyage").status_code == 404  # nothing applied yet
    done = applied(admin, url, sent)
    assert "Planned" in done and "At sea" in done and 'id="stage-sailing"' in done
    made = admin.post("/api/v1/vessel", json={"name": "Mary", "stage": "sailing"})
    assert made.status_code == 201, made.text
    assert "Mary" in admin.get("/e/vessel/board/voyage").text
    # Bad input names the input; a pipeline is never replaced by a new one of its name.
    none = admin.post(url, data={"name": "second", "field": "phase", "stage_key": [""], "stage_label": [""]})
    assert none.status_code == 422 and "Stages: give at least one stage" in text_of(none.text)
    bad = admin.post(url, data={"name": "second", "field": "phase", "stage_key": ["Not Good"],
                                "stage_label": ["x"]})
    assert bad.status_code == 422 and "stage 1 (x): give a key" in text_of(bad.text)
    twice = admin.post(url, data={**sent, "field": "phase"})
    assert twice.status_code == 422 and "vessel has a pipeline 'voyage' already" in text_of(twice.text)
    wrong = admin.post(url, data={**sent, "name": "second", "field": "name"})
    assert wrong.status_code == 422 and "runs on field 'name', which is a text field" in text_of(wrong.text)


def test_an_override_of_a_pack_s_definitions_is_reverted(admin: TestClient) -> None:
    page = "/admin/entities/account"
    assert 'id="revert-labels"' not in admin.get(page).text
    applied(admin, page, {"op": "relabel", "label": "Client", "label_plural": "Clients"})
    assert meta_entity(admin, "account")["label"] == "Client"  # type: ignore[index]
    shown = admin.get(page).text
    assert 'id="revert-labels"' in shown
    plan, _ = reviewed(admin, page, {"op": "revert_labels"})
    assert "revert entity account to the pack" in text_of(plan)
    assert 'id="revert-labels"' not in applied(admin, page, {"op": "revert_labels"})
    assert meta_entity(admin, "account")["label"] == "Account"  # type: ignore[index]
    # A pack's field the organisation relabelled.
    field = "/admin/entities/account/fields/name"
    assert 'id="revert"' not in admin.get(field).text
    applied(admin, field, {"op": "save", "type": "text", "label": "Company name", "required": "1"})
    assert 'id="revert"' in admin.get(field).text
    assert "changed by the organisation" in admin.get(page).text
    applied(admin, field, {"op": "revert", "type": "text", "label": "Company name"})
    assert 'value="Company name"' not in admin.get(field).text and 'id="revert"' not in admin.get(field).text
    # A pack's stage the organisation relabelled: the revert is on its entity's page.
    sales = "/admin/entities/opportunity/pipelines/sales/stages/proposal"
    form = {"label": "Offer", "category": "open"}
    relabel = admin.post(sales, data=form)
    admin.post(sales, data={**form, "confirm": hidden(relabel.text, "confirm")})
    opportunity = admin.get("/admin/entities/opportunity").text
    assert 'id="revert-stage-sales-proposal"' in opportunity and "Offer" in opportunity
    applied(admin, "/admin/entities/opportunity",
            {"op": "revert_stage", "pipeline": "sales", "stage_key": "proposal"})
    stages = admin.get("/admin/entities/opportunity/pipelines/sales.json").json()["stages"]
    assert next(s for s in stages if s["key"] == "proposal")["label"] == "Proposal"
    # ... and on the stage's own page, where it was relabelled.
    assert 'id="revert-stage"' not in admin.get(sales).text
    relabel = admin.post(sales, data=form)
    admin.post(sales, data={**form, "confirm": hidden(relabel.text, "confirm")})
    assert 'id="revert-stage"' in admin.get(sales).text
    plan = admin.post(sales + "/revert", data={})
    assert plan.status_code == 200 and "revert stage opportunity.sales.proposal" in text_of(plan.text)
    done = admin.post(sales + "/revert", data={"confirm": hidden(plan.text, "confirm")},
                      follow_redirects=False)
    assert done.status_code == 303, done.text
    reverted = admin.get(sales).text
    assert 'value="Proposal"' in reverted and 'id="revert-stage"' not in reverted
    again = admin.post(sales + "/revert", data={})
    assert again.status_code == 422 and "does not override stage 'proposal'" in text_of(again.text)
    # Nothing to revert: refused with the reason.
    nothing = admin.post(page, data={"op": "revert_labels"})
    assert nothing.status_code == 422 and "does not relabel entity 'account'" in text_of(nothing.text)
    field_nothing = admin.post(field, data={"op": "revert", "type": "text"})
    assert field_nothing.status_code == 422
    assert "does not override field account.name" in text_of(field_nothing.text)
