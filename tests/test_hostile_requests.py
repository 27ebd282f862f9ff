"""Requests that answered 500 (issue 11, "Never a 5xx for bad input"), through HTTP
in-process on SQLite and PostgreSQL: each now answers a 4xx problem naming the place or
the limit, and nothing is written."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.digits import VERSION_MAX
from slatecrm.metamodel.fieldtypes import CoercionError, FieldTypeRegistry
from slatecrm.metamodel.model import Field
from slatecrm.platform.records.errors import BadQuery
from slatecrm.platform.records.limits import (
    JSON_DEPTH_MAX,
    JSON_NUMBER_LENGTH_MAX,
    SEARCH_TEXT_MAX,
    SORT_KEYS_MAX,
)
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.runtime import RuntimeHolder

from .pack_templates import PackTemplates

JSON = {"content-type": "application/json"}


def refused(response: Any, status: int) -> dict[str, Any]:
    """The problem of a refusal: the status, problem+json, a detail to read."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


def account_count(client: TestClient) -> int:
    count: int = client.get("/api/v1/account?count=true").json()["count"]
    return count


@pytest.fixture
def acme(client: TestClient) -> int:
    made = client.post("/api/v1/account", json={"name": "Acme"})
    assert made.status_code == 201
    record_id: int = made.json()["id"]
    return record_id


# --- versions -------------------------------------------------------------------------------

def test_a_body_version_no_record_can_have_is_refused(client: TestClient, acme: int) -> None:
    for version in (2**63, 2**31, VERSION_MAX + 1, -(2**63) - 1, 0, -1, True, "1", 1.5):
        body = refused(client.patch(f"/api/v1/account/{acme}", json={"name": "B", "version": version}), 400)
        assert body["errors"]["version"] == [
            f"{version!r} is not a record version (a whole number from 1 to 2147483647)"]
    assert client.get(f"/api/v1/account/{acme}").json()["name"] == "Acme"


def test_an_if_match_no_record_can_have_is_refused(client: TestClient, acme: int) -> None:
    for header in (str(2**31), str(2**63), "0", "99999999999999999999999", "-1", 'W/"x"'):
        change = client.patch(f"/api/v1/account/{acme}", json={"name": "B"}, headers={"If-Match": header})
        assert "is not a record version" in refused(change, 400)["errors"]["version"][0]
        refused(client.delete(f"/api/v1/account/{acme}", headers={"If-Match": header}), 400)
    assert client.get(f"/api/v1/account/{acme}").json()["name"] == "Acme"


def test_the_largest_version_is_a_conflict_not_an_error(client: TestClient, acme: int) -> None:
    stale = client.patch(f"/api/v1/account/{acme}", json={"name": "B", "version": VERSION_MAX})
    assert refused(stale, 409)["current_version"] == 1


def test_the_service_refuses_an_out_of_range_version_too(engine: sa.Engine, registry: FieldTypeRegistry,
                                                         pack_templates: PackTemplates) -> None:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    records = RecordsService(engine, RuntimeHolder(engine, registry), registry)
    made = records.create("account", {"name": "Acme"})
    for version in (2**63, 2**31, 0):
        with pytest.raises(BadQuery) as update:
            records.update("account", made.id, {"name": "B"}, version=version)
        assert list(update.value.errors) == ["version"]
        with pytest.raises(BadQuery):
            records.delete("account", made.id, version=version)
    assert records.get("account", made.id).values["name"] == "Acme"


# --- JSON bodies ---------------------------------------------------------------------------------

def nested(depth: int) -> bytes:
    """A JSON value `depth` arrays deep."""
    return b"[" * depth + b"]" * depth


BODY_ROUTES = [
    ("POST", "/api/v1/account", b'{"name":%s}'),
    ("POST", "/api/v1/account", b'[{"name":"A"},{"name":%s}]'),
    ("PATCH", "/api/v1/account/1", b'{"version":1,"name":%s}'),
    ("PUT", "/api/v1/admin/entities/thing", b'{"label":%s}'),
    ("PUT", "/api/v1/admin/entities/account/fields/extra", b'{"type":"text","label":%s}'),
    ("PUT", "/api/v1/admin/entities/opportunity/pipelines/sales/stages/demo", b'{"label":%s}'),
]


def test_json_nested_10000_deep_is_refused_naming_the_limit(client: TestClient, acme: int) -> None:
    deep = f"the body nests arrays and objects more than {JSON_DEPTH_MAX} levels deep (the limit)"
    for method, path, template in BODY_ROUTES:
        for depth in (10_000, JSON_DEPTH_MAX + 5):
            sent = client.request(method, path, content=template % nested(depth), headers=JSON)
            assert refused(sent, 400)["detail"] == deep, (path, depth)
    assert account_count(client) == 1
    at_limit = client.post("/api/v1/account", content=b'{"name":%s}' % nested(JSON_DEPTH_MAX - 1),
                           headers=JSON)
    assert refused(at_limit, 422)["errors"]["name"] == ["expected text, got a list"]


def test_integer_literals_over_4300_digits_are_refused(client: TestClient, acme: int) -> None:
    limit = f"a number in the body is 5000 characters long; at most {JSON_NUMBER_LENGTH_MAX} are read"
    for method, path, template in BODY_ROUTES:
        sent = client.request(method, path, content=template % (b"9" * 5_000), headers=JSON)
        assert refused(sent, 400)["detail"] == limit, path
    assert account_count(client) == 1


def test_numbers_that_are_not_json_numbers_are_refused(client: TestClient) -> None:
    for text, message in ((b"1e400", "1e400 is beyond the range of a number"),
                          (b"-1e400", "-1e400 is beyond the range of a number"),
                          (b"NaN", "NaN is not a JSON number"),
                          (b"Infinity", "Infinity is not a JSON number")):
        sent = client.post("/api/v1/account", content=b'{"name":"A","employees":%s}' % text, headers=JSON)
        assert refused(sent, 400)["detail"] == message
    long_but_read = b"1" * JSON_NUMBER_LENGTH_MAX  # read, then refused by the field, by name
    assert "employees" in refused(client.post("/api/v1/account", content=b'{"name":"A","employees":%s}'
                                              % long_but_read, headers=JSON), 422)["errors"]
    assert account_count(client) == 0


SURROGATES = [
    (b'{"name":"a\\ud800b"}', "name"),
    (b'{"name":"a\xed\xa0\x80b"}', "name"),
    (b'{"name":"\\udfff"}', "name"),
    (b'[{"name":"A"},{"name":"\\ud800"}]', "[1].name"),
    (b'{"name":"A","annual_revenue":{"amount":"1","currency":"\\ud800"}}', "annual_revenue.currency"),
    (b'{"name":"A","\\ud800":"x"}', ""),
    (b'{"name":"A","\xed\xa0\x80":"x"}', ""),
    (b'{"name":"A","annual_revenue":{"\\ud800":"1"}}', "annual_revenue"),
]


def test_lone_surrogates_in_values_and_keys_are_refused_by_place(client: TestClient) -> None:
    for raw, place in SURROGATES:
        body = refused(client.post("/api/v1/account", content=raw, headers=JSON), 400)
        assert list(body["errors"]) == [place], raw
        assert "unpaired surrogate (U+D" in body["errors"][place][0]
    assert account_count(client) == 0


def test_lone_surrogates_in_updates_and_admin_edits(client: TestClient, acme: int) -> None:
    patch = refused(client.patch(f"/api/v1/account/{acme}", content=b'{"version":1,"name":"\xed\xa0\x80"}',
                                 headers=JSON), 400)
    assert list(patch["errors"]) == ["name"]
    refused(client.put("/api/v1/admin/entities/thing", content=b'{"label":"\\ud800"}', headers=JSON), 400)
    refused(client.put("/api/v1/admin/entities/account/fields/extra",
                       content=b'{"type":"text","label":"\\ud800"}', headers=JSON), 400)
    assert client.get(f"/api/v1/account/{acme}").json()["name"] == "Acme"


def test_bodies_that_are_not_utf8_are_refused(client: TestClient) -> None:
    body = refused(client.post("/api/v1/account", content=b'{"name":"\xff"}', headers=JSON), 400)
    assert body["detail"] == "the body is not UTF-8 text (byte 9)"


def test_lone_surrogates_in_query_parameters_never_fail(client: TestClient, acme: int) -> None:
    # Percent-encoded (read with replacement characters): a list, a filter, a search, a
    # sort, a filter's name, the pages and the picker: never a 5xx, and no record matches.
    # As raw bytes (no client sends them, a server passes them on): a 400.
    for query in ("q=%ED%A0%80", "name=%ED%A0%80", "q=%5Cud800", "name__gte=%ED%A0%80"):
        page = client.get(f"/api/v1/account?{query}")
        assert page.status_code == 200 and page.json()["data"] == [], query
    assert "sort" in refused(client.get("/api/v1/account?sort=%ED%A0%80"), 400)["errors"]
    assert refused(client.get("/api/v1/account?%ED%A0%80=1"), 400)["errors"]
    for path in ("/e/account?q=%ED%A0%80", "/search?q=%ED%A0%80", "/e/account/options?q=%ED%A0%80",
                 f"/api/v1/account/{acme}/related/contact?q=%ED%A0%80"):
        assert client.get(path).status_code == 200, path
    for path in ("/api/v1/account", "/e/account", f"/api/v1/account/{acme}/related/contact", "/search"):
        for query in (b"q=\xed\xa0\x80", b"name=\xed\xa0\x80", b"\xed\xa0\x80=1", b"q=a\xffb"):
            status, problem = raw_get(client, path, query)
            assert status == 400 and problem["detail"].startswith("the query string is not UTF-8 text"), path


def raw_get(client: TestClient, path: str, query: bytes) -> tuple[int, Any]:
    """A GET whose query string holds these bytes as they are (not percent-encoded, which
    an HTTP client does not send): the ASGI app called directly, as a server would."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def call() -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
                 "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1),
                 "server": ("testserver", 80), "state": {}}
        await client.app(scope, receive, send)

    assert client.portal is not None
    client.portal.call(call)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


# --- list parameters -------------------------------------------------------------------------------

def test_a_search_over_the_limit_is_refused_naming_it(client: TestClient, acme: int) -> None:
    for length in (50_001, SEARCH_TEXT_MAX + 1):
        body = refused(client.get(f"/api/v1/account?q={'x' * length}"), 400)
        assert body["errors"]["q"] == [f"is {length} characters long; a search is at most {SEARCH_TEXT_MAX}"]
    refused(client.get(f"/api/v1/account/{acme}/related/contact?q={'x' * 50_001}"), 400)
    assert client.get(f"/e/account?q={'x' * 50_001}").status_code == 400
    assert client.get(f"/search?q={'x' * 50_001}").status_code == 400
    assert client.get(f"/e/account/options?q={'x' * 50_001}").status_code == 400
    at_limit = client.get(f"/api/v1/account?q={'x' * SEARCH_TEXT_MAX}")
    assert at_limit.status_code == 200 and at_limit.json()["data"] == []


def test_a_sort_with_more_keys_than_the_limit_is_refused_naming_it(client: TestClient, acme: int) -> None:
    body = refused(client.get("/api/v1/account?sort=" + ",".join(["name"] * 2_000)), 400)
    assert body["errors"]["sort"] == [f"gives 2000 sort keys; at most {SORT_KEYS_MAX} are allowed"]
    assert client.get("/e/account?sort=" + ",".join(["name"] * 2_000)).status_code == 400
    keys = ["-name", "id", "created_at", "updated_at", "version", "owner", "employees", "industry",
            "-annual_revenue", "phone"][:SORT_KEYS_MAX]
    page = client.get("/api/v1/account?sort=" + ",".join(keys))
    assert page.status_code == 200 and [r["id"] for r in page.json()["data"]] == [acme]


# --- loose input ----------------------------------------------------------------------------------

def test_a_body_without_a_json_content_type_is_refused(client: TestClient, acme: int) -> None:
    for headers in ({}, {"content-type": "text/plain"},
                    {"content-type": "application/x-www-form-urlencoded"}):
        body = refused(client.post("/api/v1/account", content=b'{"name":"Guess"}', headers=headers), 415)
        assert "Content-Type: application/json" in body["detail"]
    assert "no Content-Type" in refused(client.patch(f"/api/v1/account/{acme}",
                                                     content=b'{"name":"Guess","version":1}'), 415)["detail"]
    admin = client.put("/api/v1/admin/entities/thing", content=b'{}')
    assert "no Content-Type" in refused(admin, 415)["detail"]
    assert account_count(client) == 1
    utf8 = client.post("/api/v1/account", content=b'{"name":"Typed"}',
                       headers={"content-type": "application/json; charset=utf-8"})
    assert utf8.status_code == 201
    merge = client.patch(f"/api/v1/account/{acme}", content=b'{"name":"Merged","version":1}',
                         headers={"content-type": "application/merge-patch+json"})
    assert merge.status_code == 200 and merge.json()["name"] == "Merged"


def test_duplicate_keys_are_refused_naming_the_key(client: TestClient, acme: int) -> None:
    body = refused(client.post("/api/v1/account", content=b'{"name":"A","industry":"retail","name":"B"}',
                               headers=JSON), 400)
    assert body["detail"] == "the key 'name' appears twice in one object; give each key once"
    nested_money = b'{"name":"A","annual_revenue":{"amount":"1","amount":"2","currency":"EUR"}}'
    assert "'amount' appears twice" in refused(client.post("/api/v1/account", content=nested_money,
                                                           headers=JSON), 400)["detail"]
    version_twice = b'{"name":"B","version":1,"version":2}'
    assert "'version' appears twice" in refused(client.patch(f"/api/v1/account/{acme}", content=version_twice,
                                                             headers=JSON), 400)["detail"]
    admin = b'{"type":"text","type":"integer"}'
    assert "'type' appears twice" in refused(client.put("/api/v1/admin/entities/account/fields/extra",
                                                        content=admin, headers=JSON), 400)["detail"]
    assert account_count(client) == 1


def test_a_json_number_for_a_text_field_is_refused_naming_it(client: TestClient, acme: int) -> None:
    for field, value in (("name", 5), ("website", 2.4e32), ("website", 12), ("phone", 5550100),
                         ("email", 12), ("description", 1.5)):
        message = f"expected text, got a number ({value!r}): send text as a JSON string"
        body = refused(client.post("/api/v1/account", json={"name": "N", field: value}), 422)
        assert body["errors"] == {field: [message]}
        change = refused(client.patch(f"/api/v1/account/{acme}", json={field: value, "version": 1}), 422)
        assert change["errors"] == {field: [message]}
    assert account_count(client) == 1
    assert client.get(f"/api/v1/account/{acme}").json()["version"] == 1
    contact = refused(client.post("/api/v1/contact", json={"name": {"last": "Doe"}, "job_title": 12,
                                                           "emails": [12]}), 422)
    assert contact["errors"] == {
        "job_title": ["expected text, got a number (12): send text as a JSON string"],
        "emails": ["item 1: expected an e-mail address or an object, got a number"]}


def test_numbers_written_as_text_are_still_text(client: TestClient) -> None:
    made = client.post("/api/v1/account", json={"name": "5", "phone": "5550100", "website": "example.com"})
    assert made.status_code == 201
    assert (made.json()["name"], made.json()["phone"], made.json()["website"]) == ("5", "5550100",
                                                                                  "https://example.com")


def test_the_text_types_still_convert_numbers_the_platform_gives(registry: FieldTypeRegistry) -> None:
    """A retype from integer to text, a pack's default: `coerce` converts; only what a
    client gives (`coerce_given`) must be text."""
    for name in ("text", "long_text", "phone", "url"):
        field = Field(name="f", type=name, label="F")
        assert registry[name].coerce(5550100, field) is not None
        with pytest.raises(CoercionError, match="expected text, got a number"):
            registry[name].coerce_given(5550100, field)
        assert registry[name].coerce_given("5550100", field) == registry[name].coerce("5550100", field)
    integer = Field(name="n", type="integer", label="N")
    assert registry["integer"].coerce_given(12, integer) == 12


# --- 405 -----------------------------------------------------------------------------------------

def test_405_answers_say_which_methods_are_allowed(client: TestClient, acme: int) -> None:
    api = refused(client.put(f"/api/v1/account/{acme}", json={}), 405)
    assert api["detail"] == "PUT is not allowed here; this address answers DELETE, GET, HEAD, PATCH"
    assert client.put(f"/api/v1/account/{acme}", json={}).headers["allow"] == "DELETE, GET, HEAD, PATCH"
    assert client.delete("/api/v1/account").headers["allow"] == "GET, HEAD, POST"
    page = client.put("/e/account", content=b"x=1",
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert page.status_code == 405 and page.headers["allow"] == "GET, HEAD"
    assert "text/html" in page.headers["content-type"]
    assert client.delete(f"/e/account/{acme}/edit").headers["allow"] == "GET, HEAD, POST"


# --- auto numbers --------------------------------------------------------------------------------

def test_eight_concurrent_first_creates_get_eight_numbers(engine: sa.Engine, registry: FieldTypeRegistry,
                                                          pack_templates: PackTemplates) -> None:
    """The first creates of an entity with an auto number, all at once: on PostgreSQL some
    failed with a 500 (`UniqueViolation pk_slate_sequence`) when each found no sequence row
    and inserted it."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")  # no record yet: no sequence row
    records = RecordsService(engine, RuntimeHolder(engine, registry), registry)
    records.compiled()  # compiled once, so the threads meet at the write
    start = threading.Barrier(8)
    numbers: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def create(n: int) -> None:
        mine = records.pinned()
        try:
            start.wait()
            made = mine.create("account", {"name": f"Account {n}"})
            with lock:
                numbers.append(made.values["account_number"])
        except BaseException as error:
            with lock:
                failures.append(error)
        finally:
            mine.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(numbers) == [f"ACC-{n:06d}" for n in range(1, 9)]
    assert records.create("account", {"name": "Ninth"}).values["account_number"] == "ACC-000009"
