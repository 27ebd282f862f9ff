"""Issue 3's scenario through the HTTP API only: an admin defines an entity on a running
server, users work with its records, the admin retypes a field, the API follows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .defaults import make_app, signed_in
from .pack_templates import PackTemplates

VEHICLE = {
    "label": "Vehicle",
    "title_field": "plate",
    "fields": {
        "plate": {"type": "text", "required": True, "unique": True, "max_length": 12},
        "seats": {"type": "text"},
        "price": {"type": "currency", "currency": "EUR"},
        "registered": {"type": "date"},
        "fuel": {"type": "choice", "options": [{"key": "petrol"}, {"key": "diesel"}, {"key": "electric"}]},
        "inspected": {"type": "boolean"},
    },
    "pipelines": {"lifecycle": {"field": "status", "stages": [
        {"key": "ordered"},
        {"key": "in_service", "requires": ["registered"]},
        {"key": "sold", "category": "won", "requires": ["price"]},
    ]}},
}


@pytest.fixture
def client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
           pack_templates: PackTemplates) -> Iterator[TestClient]:
    pack_templates.copy_to(engine, registry, "crm-core")
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def confirmed(client: TestClient, method: str, url: str, body: Any) -> dict[str, Any]:
    """The dry run first, then the same request confirmed against the plan's revision."""
    dry = client.request(method, url, json=body)
    assert dry.status_code == 200, dry.text
    assert dry.json()["applied"] is False
    done = client.request(method, url, json=body, params={"confirm": dry.json()["base_revision"]})
    assert done.status_code == 200, done.text
    result: dict[str, Any] = done.json()
    assert result["applied"] is True
    return result


def test_an_admin_defines_and_changes_an_entity_live(client: TestClient) -> None:
    dry = client.put("/api/v1/admin/entities/vehicle", json=VEHICLE).json()
    assert [c["action"] for c in dry["plan"]["changes"]] == ["create table", "add search index"]
    assert client.get("/api/v1/vehicle").status_code == 404  # a dry run changes nothing
    applied = confirmed(client, "PUT", "/api/v1/admin/entities/vehicle", VEHICLE)
    assert applied["revision"] == 2

    made = client.post("/api/v1/vehicle", json=[
        {"plate": f"V-{i:03d}", "seats": str(2 + i % 6), "fuel": ["petrol", "diesel", "electric"][i % 3],
         "price": f"{10000 + i * 100} EUR"} for i in range(60)])
    assert made.status_code == 201
    assert made.json()["data"][0]["status"] == "ordered"
    query = {"sort": "-price,plate", "limit": 15, "fuel": "electric", "count": "true"}
    page = client.get("/api/v1/vehicle", params=query).json()
    assert page["count"] == 20 and [r["plate"] for r in page["data"][:2]] == ["V-059", "V-056"]
    rest = client.get(page["next"]).json()
    assert len(page["data"]) + len(rest["data"]) == 20 and rest["next"] is None
    assert [r["plate"] for r in client.get("/api/v1/vehicle", params={"q": "v-01"}).json()["data"]] == [
        f"V-{i:03d}" for i in range(10, 20)]

    openapi_before = client.get("/api/v1/openapi.json").json()
    assert openapi_before["components"]["schemas"]["VehicleInput"]["properties"]["seats"]["anyOf"][0][
        "type"] == "string"
    retype = confirmed(client, "PUT", "/api/v1/admin/entities/vehicle/fields/seats",
                       {"type": "integer", "min": 1})
    assert [c["action"] for c in retype["plan"]["changes"]] == [  # seats leaves the search index
        "drop search index", "retype column", "add search index"]
    seats = client.get("/api/v1/vehicle", params={"sort": "-seats", "limit": 1}).json()["data"][0]["seats"]
    assert seats == 7  # numbers now, sorted as numbers
    openapi_after = client.get("/api/v1/openapi.json").json()
    assert {"type": "integer", "minimum": 1}.items() <= \
        openapi_after["components"]["schemas"]["VehicleInput"]["properties"]["seats"]["anyOf"][0].items()

    first = client.get("/api/v1/vehicle", params={"plate": "V-000"}).json()["data"][0]
    refused = client.patch(f"/api/v1/vehicle/{first['id']}", json={"status": "in_service"},
                           headers={"If-Match": str(first["version"])})
    assert refused.status_code == 422
    assert refused.json()["errors"] == {"status": ["stage 'In service' requires Registered"],
                                        "registered": ["is required to enter stage 'In service'"]}
    moved = client.patch(f"/api/v1/vehicle/{first['id']}",
                         json={"status": "in_service", "registered": "2026-03-01"},
                         headers={"If-Match": str(first["version"])})
    assert moved.status_code == 200 and moved.json()["status"] == "in_service"
    sold = client.patch(f"/api/v1/vehicle/{first['id']}", json={"status": "sold"},
                        headers={"If-Match": str(moved.json()["version"])})
    assert sold.status_code == 200
    visits = client.get(f"/api/v1/vehicle/{first['id']}/stages").json()["data"]
    assert [v["stage"] for v in visits] == ["ordered", "in_service", "sold"]
    assert visits[-1]["left_at"] is None and all(v["seconds"] is not None for v in visits[:-1])


def test_edits_that_lose_data_or_break_rules_are_refused(client: TestClient) -> None:
    confirmed(client, "PUT", "/api/v1/admin/entities/vehicle", VEHICLE)
    client.post("/api/v1/vehicle", json=[{"plate": "A", "seats": "four"}, {"plate": "B", "seats": "2"}])
    lossy = client.put("/api/v1/admin/entities/vehicle/fields/seats", json={"type": "integer"})
    assert lossy.status_code == 409
    [risk] = [r for c in lossy.json()["plan"]["changes"] for r in c["risks"]]
    assert risk["message"].startswith("retype seats text → integer: 1 of 2 rows do not convert")
    assert risk["sample_ids"] == [1]
    bad = client.put("/api/v1/admin/entities/vehicle/fields/colour", json={"type": "colour"})
    assert bad.status_code == 422
    assert "'colour' is not a field type" in bad.json()["detail"]
    pack_field = client.put("/api/v1/admin/entities/account/fields/name", json={"type": "integer"})
    assert pack_field.status_code == 422
    assert "defined by pack 'crm-core'" in pack_field.json()["detail"]
    relabel = confirmed(client, "PUT", "/api/v1/admin/entities/account/fields/name",
                        {"label": "Company name"})
    assert relabel["plan"]["changes"][0]["action"] == "change field"
    added = confirmed(client, "PUT", "/api/v1/admin/entities/account/fields/fleet_size", {"type": "integer"})
    assert added["plan"]["changes"][0]["summary"].startswith("add integer field account.fleet_size")
    meta = client.get("/api/v1/meta").json()
    account = next(e for e in meta["entities"] if e["name"] == "account")
    assert account["extended_by"] == ["organisation"]
    assert next(f for f in account["fields"] if f["name"] == "name")["label"] == "Company name"
    stale = client.put("/api/v1/admin/entities/vehicle/fields/doors", json={"type": "integer"},
                       params={"confirm": "1"})
    assert stale.status_code == 409
    listed = client.get("/api/v1/admin/customisations").json()["data"]
    assert [(c["kind"], c["name"]) for c in listed] == [("entity", "vehicle"), ("extension", "account")]
    retired = confirmed(client, "DELETE", "/api/v1/admin/entities/vehicle/fields/inspected", None)
    assert retired["plan"]["changes"][0]["action"] == "retire column"


def test_an_admin_adds_and_changes_stages_one_by_one(engine: sa.Engine, db_url: str,
                                                      registry: FieldTypeRegistry,
                                                      pack_templates: PackTemplates) -> None:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as client:
        confirmed(client, "PUT", "/api/v1/admin/entities/vehicle", VEHICLE)
        base = "/api/v1/admin/entities/vehicle/pipelines/lifecycle/stages"
        confirmed(client, "PUT", f"{base}/in_repair", {"label": "In repair", "after": "in_service"})
        confirmed(client, "PUT", f"{base}/ordered", {"label": "On order", "colour": "#6b7280"})
        meta = client.get("/api/v1/meta").json()
        [lifecycle] = next(e for e in meta["entities"] if e["name"] == "vehicle")["pipelines"]
        assert [(s["key"], s["label"]) for s in lifecycle["stages"]] == [
            ("ordered", "On order"), ("in_service", "In service"), ("in_repair", "In repair"),
            ("sold", "Sold")]
        made = client.post("/api/v1/vehicle", json={"plate": "R-1", "registered": "2026-01-01"}).json()
        moved = client.patch(f"/api/v1/vehicle/{made['id']}", json={"status": "in_repair"},
                             headers={"If-Match": str(made["version"])})
        assert moved.status_code == 200 and moved.json()["status"] == "in_repair"

        # A pack's pipeline takes new stages from the organisation, but keeps its own.
        sales = "/api/v1/admin/entities/opportunity/pipelines/sales/stages"
        added = confirmed(client, "PUT", f"{sales}/demo", {"label": "Demo", "probability": 30,
                                                          "after": "qualification"})
        assert added["revision"] > 2
        keys = [s["key"] for e in client.get("/api/v1/meta").json()["entities"]
                if e["name"] == "opportunity" for s in e["pipelines"][0]["stages"]]
        assert keys[keys.index("qualification") + 1] == "demo"
        owned = client.put(f"{sales}/proposal", json={"label": "Offer", "probability": 50})
        assert owned.status_code == 422 and "defined by pack 'sales'" in owned.json()["detail"]
        relabel = client.put(f"{sales}/proposal", json={"label": "Offer"})  # how it reads: allowed
        assert relabel.status_code == 200 and relabel.json()["applied"] is False
        nowhere = client.put(f"{sales}/late", json={"after": "nowhere"})
        assert nowhere.status_code == 422 and "has no stage 'nowhere'" in nowhere.json()["detail"]
        confirmed(client, "DELETE", f"{sales}/demo", None)
        removed = client.delete(f"{sales}/proposal")
        assert removed.status_code == 422 and "not the organisation's" in removed.json()["detail"]
    app.state.engine.dispose()


def test_titles_from_a_template_name_records_wherever_they_are_referenced(client: TestClient) -> None:
    person = {"title_template": "{first} {last} – {city}",
              "fields": {"first": {"type": "text"}, "last": {"type": "text", "required": True},
                         "city": {"type": "text"}}}
    confirmed(client, "PUT", "/api/v1/admin/entities/driver", person)
    driver = {"type": "reference", "target": "driver"}
    confirmed(client, "PUT", "/api/v1/admin/entities/vehicle",
              {**VEHICLE, "fields": {**VEHICLE["fields"], "driver": driver}})
    ada = client.post("/api/v1/driver", json={"first": "Ada", "last": "Lovelace", "city": "London"}).json()
    assert ada["_title"] == "Ada Lovelace – London"
    bare = client.post("/api/v1/driver", json={"last": "Hopper"}).json()
    assert bare["_title"] == "Hopper"  # blank parts leave no stray spaces or dashes
    car = client.post("/api/v1/vehicle", json={"plate": "T-1", "driver": ada["id"]}).json()
    assert car["driver"] == {"id": ada["id"], "title": "Ada Lovelace – London"}
    listed = client.get("/api/v1/vehicle", params={"plate": "T-1"}).json()["data"][0]
    assert listed["driver"]["title"] == "Ada Lovelace – London"

    wrong = client.put("/api/v1/admin/entities/driver", json={**person, "title_template": "{frist} {last}"})
    assert wrong.status_code == 422
    assert "title_template: 'driver' has no field 'frist' (did you mean 'first'?)" in wrong.json()["detail"]
    spec = client.put("/api/v1/admin/entities/driver", json={**person, "title_template": "{last!r}"})
    assert spec.status_code == 422 and "is not a field placeholder" in spec.json()["detail"]
