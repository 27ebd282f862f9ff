"""The OpenAPI document is the contract: it validates, says what a create must give exactly
as the records service does, and the bugs the live schemathesis run (scripts/fuzz.py)
found stay fixed. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records.limits import Limits

from .defaults import make_app, signed_in
from .pack_templates import PackTemplates
from .test_api_live_editing import confirmed


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    spec: dict[str, Any] = answer.json()
    return spec


def test_the_document_is_valid_openapi_with_every_route(document: dict[str, Any]) -> None:
    validate(document)  # raises on an invalid document
    paths = document["paths"]
    for route in ("/api/v1/meta", "/api/v1/openapi.json", "/api/v1/opportunity/{id}/stages",
                  "/api/v1/account/{id}/related/opportunity.account", "/api/v1/admin/customisations",
                  "/api/v1/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}"):
        assert route in paths, route
    patch = paths["/api/v1/account/{id}"]["patch"]["responses"]
    assert {"200", "400", "404", "409", "413", "415", "422", "503"} <= set(patch)
    assert patch["409"] == {"$ref": "#/components/responses/Problem409"}
    assert "application/problem+json" in document["components"]["responses"]["Problem422"]["content"]


def accepts_null(schema: dict[str, Any]) -> bool:
    """Whether a value schema lets JSON null through (the parts of an object value may be blank;
    the value itself may not)."""
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind) or schema.get("const", 0) is None:
        return True
    if None in schema.get("enum", ()):
        return True
    return any(accepts_null(branch) for key in ("anyOf", "oneOf") for branch in schema.get(key, ()))


def test_create_schemas_require_what_the_service_requires(client: TestClient,
                                                          document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    entities = [path.rsplit("/", 1)[1] for path, item in document["paths"].items()
                if "post" in item and "operationId" in item["post"]
                and item["post"]["operationId"].startswith("create_")]
    assert {"account", "contact", "opportunity", "lead", "activity"} <= set(entities)
    for entity in entities:
        name = "".join(part.capitalize() for part in entity.split("_"))
        refused = client.post(f"/api/v1/{entity}", json={})
        assert refused.status_code == 422, (entity, refused.text)
        errors = refused.json()["errors"]
        required = {field for field, messages in errors.items() if "is required" in messages}
        assert required == set(schemas[f"{name}Input"]["required"]), entity
        # a required field may not be sent blank, even one the service fills when left out
        for field in schemas[f"{name}Input"]["required"]:
            assert not accepts_null(schemas[f"{name}Input"]["properties"][field]), (entity, field)


def test_a_create_in_a_stage_must_give_what_the_stage_requires(client: TestClient,
                                                                document: dict[str, Any]) -> None:
    branches = document["components"]["schemas"]["OpportunityInput"]["allOf"][0]["anyOf"]
    proposal = next(b for b in branches if b["properties"]["stage"].get("const") == "proposal")
    assert proposal["required"] == ["stage", "primary_contact", "amount", "close_date"]
    client.post("/api/v1/account", json={"name": "Acme"})
    refused = client.post("/api/v1/opportunity", json={"name": "Big", "account": 1, "stage": "proposal"})
    assert refused.status_code == 422
    assert {"primary_contact", "amount", "close_date"} <= set(refused.json()["errors"])


def test_list_parameters_carry_the_bounds_and_each_fields_form(document: dict[str, Any]) -> None:
    listing = document["paths"]["/api/v1/opportunity"]["get"]
    parameters = {p["name"]: p["schema"] for p in listing["parameters"]}
    assert parameters["limit"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert parameters["q"]["maxLength"] == 1000
    assert parameters["stage"]["enum"][0] == "prospecting"
    assert parameters["close_date__gte"]["format"] == "date"
    assert parameters["amount__blank"] == {"type": "boolean"}
    assert parameters["amount__gte"]["type"] == "string"  # a currency amount is filtered as text
    assert parameters["count"]["type"] == "boolean"
    names = [p["name"] for p in listing["parameters"]]
    assert len(names) == len(set(names))
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert page["required"] == ["data", "next"]  # the count keys come with count=true only
    assert {"count", "count_capped", "count_estimate"} <= set(page["properties"])


def test_a_field_named_like_a_list_parameter_is_filtered_with_eq(client: TestClient) -> None:
    """`count` is the list's own parameter (count=true); a field named `count` is filtered
    as `count__eq`, and the document names each parameter once."""
    confirmed(client, "PUT", "/api/v1/admin/entities/tally",
              {"label": "Tally", "title_field": "name",
               "fields": {"name": {"type": "text"}, "count": {"type": "integer"}}})
    client.post("/api/v1/tally", json=[{"name": "a", "count": 1}, {"name": "b", "count": 3}])
    found = client.get("/api/v1/tally", params={"count__eq": 3, "count": "true"}).json()
    assert [r["name"] for r in found["data"]] == ["b"] and found["count"] == 1
    refused = client.get("/api/v1/tally", params={"count": 3})
    assert refused.status_code == 400 and set(refused.json()["errors"]) == {"count"}
    listing = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/tally"]["get"]
    names = [p["name"] for p in listing["parameters"]]
    assert len(names) == len(set(names)) and {"count", "count__eq", "count__gte"} <= set(names)
    assert next(p for p in listing["parameters"] if p["name"] == "count")["schema"]["type"] == "boolean"


# --- what the live schemathesis run found ------------------------------------------------------

def test_a_range_filter_on_a_yes_no_field_is_no_500(client: TestClient) -> None:
    client.post("/api/v1/account", json={"name": "Acme"})
    contact = client.post("/api/v1/contact", json={"name": {"last": "Ada"}, "account": 1,
                                                   "do_not_call": True})
    assert contact.status_code == 201, contact.text
    for op, found in (("lt", 0), ("lte", 1), ("gt", 0), ("gte", 1)):
        page = client.get(f"/api/v1/contact?do_not_call__{op}=true&count=true")
        assert page.status_code == 200, page.text
        assert page.json()["count"] == found, op


def test_a_blank_filter_takes_true_or_false_only(client: TestClient) -> None:
    client.post("/api/v1/account", json={"name": "Acme"})
    assert client.get("/api/v1/account?website__blank=true&count=true").json()["count"] == 1
    assert client.get("/api/v1/account?website__blank=false&count=true").json()["count"] == 0
    refused = client.get("/api/v1/account?website__blank=null")  # was read as "false"
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"website__blank": ["'null' is not true or false"]}


def test_a_whole_number_written_with_a_fraction_is_a_whole_number(client: TestClient) -> None:
    account = client.post("/api/v1/account", json={"name": "Acme"}).json()
    contact = client.post("/api/v1/contact", json={"name": {"last": "Ada"}, "account": 1.0})
    assert contact.status_code == 201, contact.text  # JSON Schema's integer: 1.0 is one
    changed = client.patch(f"/api/v1/account/{account['id']}", json={"employees": 2e1, "version": 1.0})
    assert changed.status_code == 200, changed.text
    assert changed.json()["employees"] == 20
    fraction = client.patch(f"/api/v1/account/{account['id']}", json={"employees": 2.5, "version": 2})
    assert fraction.status_code == 422 and "2.5 is not a whole number" in fraction.text


def test_a_post_to_a_fixed_api_route_is_405_with_allow(client: TestClient) -> None:
    for path in ("/api/v1/meta", "/api/v1/openapi.json"):
        answer = client.post(path, json={})
        assert answer.status_code == 405, (path, answer.text)
        assert answer.headers["allow"] == "GET, HEAD"


# --- the JSON body limits are configurable like the others -----------------------------------

@pytest.fixture
def strict(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
           pack_templates: PackTemplates) -> Iterator[TestClient]:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    limits = Limits.from_environment({"SLATECRM_MAX_JSON_DEPTH": "3", "SLATECRM_MAX_JSON_NUMBER_LENGTH": "5"})
    with signed_in(make_app(db_url, limits=limits), raise_server_exceptions=False) as http:
        yield http
        http.app.state.engine.dispose()  # type: ignore[attr-defined]


def test_json_depth_and_number_length_follow_the_environment(strict: TestClient) -> None:
    three = strict.post("/api/v1/account", json={"name": "Acme", "annual_revenue": {"amount": "12345"}})
    assert three.status_code == 201, three.text  # two levels: within 3
    deep = strict.post("/api/v1/account", json={"name": "Acme", "x": {"y": {"z": {}}}})  # four
    assert deep.status_code == 400
    assert deep.json()["errors"] == {
        "": ["the body nests arrays and objects more than 3 levels deep (the limit)"]}
    long = strict.post("/api/v1/account", content=b'{"name": "Acme", "employees": 123456}',
                       headers={"content-type": "application/json"})
    assert long.status_code == 400
    assert long.json()["errors"] == {"": ["a number in the body is 6 characters long; at most 5 are read"]}
