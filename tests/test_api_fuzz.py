"""Thousands of malformed requests: every answer is a 4xx problem with a message, never a 5xx."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from slatecrm.platform.storage.engine import create_engine

from .defaults import field_types, make_app, signed_in
from .pack_templates import PackTemplates

ENTITIES = ["account", "contact", "activity", "lead", "opportunity", "nothing"]
FIELDS = ["name", "email", "amount", "stage", "status", "account", "close_date", "employees", "industry",
          "owner", "version", "id", "annual_revenue", "due_date", "do_not_call", "type", "x", ""]
EXAMPLES = int(os.environ.get("SLATECRM_FUZZ_EXAMPLES", "1500"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    | st.sampled_from(["2026-01-01", "1e400", "NaN", "-0", "12.50 EUR", "closed_won", "<script>",
                       "' OR 1=1"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from([*FIELDS, "amount", "id"]), children, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
query_values = st.text(max_size=20) | st.sampled_from(
    ["-name", "name,-id", "1e3", "x" * 300, "%", "_", "null"])
query_keys = st.sampled_from(["sort", "limit", "after", "q", "name", "employees__gte", "stage__in",
                              "email__lt", "id", "x__y__z", "close_date__blank", "amount", "account",
                              "industry__ne"])


@pytest.fixture(scope="module")
def client(pack_templates: PackTemplates) -> Iterator[TestClient]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/fuzz.db"
        engine = create_engine(url)
        pack_templates.copy_to(engine, field_types(), "crm-core", "sales")
        engine.dispose()
        app = make_app(url)
        with signed_in(app, raise_server_exceptions=False) as http:
            http.post("/api/v1/account", json={"name": "Seed"})
            yield http
        app.state.engine.dispose()


def check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == response.status_code and body["detail"]


fuzz = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@fuzz
@given(entity=st.sampled_from(ENTITIES), body=bodies | json_values)
def test_create_with_any_body(client: TestClient, entity: str, body: Any) -> None:
    check(client.post(f"/api/v1/{entity}", content=json.dumps(body).encode(),
                      headers={"content-type": "application/json"}))


@fuzz
@given(entity=st.sampled_from(ENTITIES), record=st.integers(min_value=0, max_value=3), body=bodies,
       version=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=5)
       | st.integers(-2, 3).map(str))
def test_update_with_any_body_and_version(client: TestClient, entity: str, record: int, body: Any,
                                          version: str | None) -> None:
    headers = {"content-type": "application/json", **({"If-Match": version} if version is not None else {})}
    check(client.patch(f"/api/v1/{entity}/{record}", content=json.dumps(body).encode(), headers=headers))


@fuzz
@given(entity=st.sampled_from(ENTITIES), params=st.lists(st.tuples(query_keys, query_values), max_size=5))
def test_list_with_any_query(client: TestClient, entity: str, params: list[tuple[str, str]]) -> None:
    check(client.get(f"/api/v1/{entity}", params=params))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200), path=st.sampled_from(["/api/v1/account", "/api/v1/account/1",
                                                          "/api/v1/admin/entities/thing",
                                                          "/api/v1/admin/entities/account/fields/x"]),
       method=st.sampled_from(["POST", "PATCH", "PUT"]))
def test_any_bytes_as_a_body(client: TestClient, raw: bytes, path: str, method: str) -> None:
    check(client.request(method, path, content=raw, headers={"content-type": "application/json"}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["thing", "account", "Bad", "select"]), body=bodies | json_values)
def test_admin_edits_with_any_body(client: TestClient, name: str, body: Any) -> None:
    check(client.put(f"/api/v1/admin/entities/{name}", content=json.dumps(body).encode(),
                     headers={"content-type": "application/json"}))


stage_bodies = st.dictionaries(
    st.sampled_from(["label", "after", "requires", "next", "category", "probability", "colour", "key"]),
    json_values | st.sampled_from(["qualification", "proposal", "won", "lost", ["amount"], ["nope"]]),
    max_size=5)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["opportunity/pipelines/sales", "lead/pipelines/nothing", "nothing/pipelines/x",
                             "account/pipelines/new"]),
       key=st.sampled_from(["demo", "proposal", "Bad Key", "x" * 80]), body=stage_bodies | json_values,
       method=st.sampled_from(["PUT", "DELETE"]))
def test_stage_edits_with_any_body(client: TestClient, path: str, key: str, body: Any, method: str) -> None:
    check(client.request(method, f"/api/v1/admin/entities/{path}/stages/{key}",
                         content=json.dumps(body).encode(), headers={"content-type": "application/json"}))
