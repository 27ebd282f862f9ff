"""The JSON API through HTTP (in-process), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records import listing

from .packs import install


def problem_of(response: object) -> dict[str, object]:
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    return body


def test_create_read_update_with_versions(client: TestClient) -> None:
    made = client.post("/api/v1/account", json={"name": "Acme", "industry": "finance",
                                                "annual_revenue": {"amount": "2500000", "currency": "EUR"}})
    assert made.status_code == 201
    assert made.headers["location"] == "/api/v1/account/1" and made.headers["etag"] == '"1"'
    body = made.json()
    assert (body["name"], body["industry"], body["version"], body["_title"]) == ("Acme", "finance", 1, "Acme")
    assert body["annual_revenue"] == {"amount": "2500000", "currency": "EUR"}
    changed = client.patch("/api/v1/account/1", json={"employees": 40}, headers={"If-Match": '"1"'})
    assert changed.status_code == 200 and changed.json()["version"] == 2
    stale = client.patch("/api/v1/account/1", json={"phone": "+1 555 0100"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    problem = problem_of(stale)
    assert problem["changed"] == ["employees"] and problem["current_version"] == 2
    by_body = client.patch("/api/v1/account/1", json={"phone": "+1 555 0100", "version": 2})
    assert by_body.status_code == 200 and by_body.json()["phone"] == "+1 555 0100"
    unversioned = client.patch("/api/v1/account/1", json={"phone": "1"})
    assert unversioned.status_code == 422
    assert problem_of(unversioned)["errors"] == {"version": ["give the version this change is based on"]}
    history = client.get("/api/v1/account/1/history").json()["data"]
    assert [h["version"] for h in history] == [1, 2, 3]
    assert history[1]["changes"] == {"employees": [None, 40]}


def test_invalid_records_get_every_field_error(client: TestClient) -> None:
    response = client.post("/api/v1/contact", json={"emails": ["not an address"], "account": 7,
                                                    "colour": "red"})
    assert response.status_code == 422
    errors = problem_of(response)["errors"]
    assert errors == {
        "emails": ["item 1: value: 'not an address' is not an e-mail address"],
        "colour": ["contact has no field 'colour'"],
        "name": ["is required"],
        "account": ["there is no account with id 7"],
    }


def test_errors_are_problems_with_the_right_status(client: TestClient) -> None:
    assert client.get("/api/v1/acount").status_code == 404
    assert "did you mean 'account'" in str(problem_of(client.get("/api/v1/acount"))["detail"])
    assert client.get("/api/v1/account/99").status_code == 404
    bad_json = client.post("/api/v1/account", content=b"{nope", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "not valid JSON" in str(problem_of(bad_json)["errors"])
    assert client.post("/api/v1/account", json=[1, 2]).status_code == 400
    assert client.post("/api/v1/account", content=b"name=x",
                       headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 415
    too_big = client.post("/api/v1/account", json={"name": "x" * 70_000})
    assert too_big.status_code == 413 and problem_of(too_big)["status"] == 413
    assert client.put("/api/v1/account/1", json={}).status_code == 405
    assert client.get("/api/v2/whatever").status_code == 404


def test_lists_sort_filter_search_and_page(client: TestClient) -> None:
    created = client.post("/api/v1/account", json=[
        {"name": f"Company {i:03d}", "employees": i * 10, "industry": ["finance", "retail"][i % 2]}
        for i in range(120)])
    assert created.status_code == 201 and len(created.json()["data"]) == 120
    page = client.get("/api/v1/account?sort=-employees&limit=20&industry=retail&employees__gte=300"
                      "&count=true").json()
    assert page["count"] == 45 and not page["count_capped"]
    assert [r["employees"] for r in page["data"][:3]] == [1190, 1170, 1150]
    seen = [r["employees"] for r in page["data"]]
    while page["next"]:
        assert "count=true" in page["next"]  # the next link keeps asking for the count
        page = client.get(page["next"]).json()
        assert page["count"] == 45
        seen += [r["employees"] for r in page["data"]]
    assert seen == list(range(1190, 299, -20))  # every match once, in order, across 3 pages
    found = client.get("/api/v1/account", params={"q": "company 07"}).json()
    assert sorted(r["name"] for r in found["data"]) == [f"Company {i:03d}" for i in range(70, 80)]
    bad = client.get("/api/v1/account?sort=colour&employees__gte=many&after=zzz")
    assert bad.status_code == 400
    assert set(problem_of(bad)["errors"]) == {"sort", "employees__gte"}  # type: ignore[arg-type]
    assert client.get("/api/v1/account?after=zzz").status_code == 400


def test_counts_stop_at_the_cap_and_say_so(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "COUNT_CAP", 25)
    client.post("/api/v1/account", json=[{"name": f"Capped {i}", "employees": i} for i in range(40)])
    page = client.get("/api/v1/account", params={"limit": 10, "count": "true"}).json()
    assert (page["count"], page["count_capped"]) == (25, True)  # "25+": there are more
    few = client.get("/api/v1/account", params={"employees__lt": 5, "count": "true"}).json()
    assert (few["count"], few["count_capped"]) == (5, False)
    assert "25+ accounts" in client.get("/e/account").text


def test_a_list_answers_its_count_only_when_asked(client: TestClient) -> None:
    """docs/api.md, "Lists": `count=true` adds the count keys; `count=false` or nothing
    leaves them out; any other value is refused, naming the parameter."""
    client.post("/api/v1/account", json=[{"name": f"Account {i}"} for i in range(3)])
    for params in ({}, {"count": "false"}, {"count": "false", "limit": 2}):
        body = client.get("/api/v1/account", params=params).json()
        assert len(body["data"]) == params.get("limit", 3)
        assert not {"count", "count_capped", "count_estimate"} & set(body), body
    asked = client.get("/api/v1/account", params={"count": "true", "limit": 2}).json()
    assert (asked["count"], asked["count_capped"], len(asked["data"])) == (3, False, 2)
    for wrong in ("yes", "1", "", "TRUE"):
        refused = client.get("/api/v1/account", params={"count": wrong})
        assert refused.status_code == 400, wrong
        assert set(problem_of(refused)["errors"]) == {"count"}  # type: ignore[arg-type]
    # The pages people read keep counting, whatever the URL says.
    assert "3 accounts" in client.get("/e/account", params={"count": "false"}).text
    twin = client.get("/e/account.json").json()
    assert (twin["count"], twin["count_capped"]) == (3, False)


def test_related_records_and_stage_history(client: TestClient) -> None:
    acme = client.post("/api/v1/account", json={"name": "Acme"}).json()
    jane = client.post("/api/v1/contact", json={"name": {"last": "Doe"}, "account": acme["id"]}).json()
    assert jane["account"] == {"id": acme["id"], "title": "Acme"}
    deal = client.post("/api/v1/opportunity", json={"name": "Deal", "account": acme["id"]}).json()
    refused = client.patch(f"/api/v1/opportunity/{deal['id']}", json={"stage": "qualification", "version": 1})
    assert refused.status_code == 422
    assert problem_of(refused)["errors"] == {
        "stage": ["stage 'Qualification' requires Primary contact"],
        "primary_contact": ["is required to enter stage 'Qualification'"]}
    moved = client.patch(f"/api/v1/opportunity/{deal['id']}",
                         json={"stage": "qualification", "primary_contact": jane["id"], "version": 1})
    assert moved.status_code == 200
    visits = client.get(f"/api/v1/opportunity/{deal['id']}/stages").json()["data"]
    assert [(v["stage"], v["left_at"] is None) for v in visits] == [("prospecting", False),
                                                                     ("qualification", True)]
    contacts = client.get(f"/api/v1/account/{acme['id']}/related/contact").json()
    assert [c["id"] for c in contacts["data"]] == [jane["id"]] and "count" not in contacts
    counted = client.get(f"/api/v1/account/{acme['id']}/related/contact", params={"count": "true"}).json()
    assert (counted["count"], counted["count_capped"]) == (1, False)
    assert client.get(f"/api/v1/account/{acme['id']}/related/lead").json()["data"] == []  # converted_account
    wrong = client.get(f"/api/v1/account/{acme['id']}/related/opportunity.name")
    assert wrong.status_code == 400
    assert "'opportunity.name' is not a reference to it" in str(problem_of(wrong)["errors"])
    activities = client.get(f"/api/v1/contact/{jane['id']}/related/activity.contact").json()
    assert activities["data"] == []


def test_meta_describes_the_live_metamodel(client: TestClient) -> None:
    meta = client.get("/api/v1/meta").json()
    assert meta["revision"] == 1
    names = [e["name"] for e in meta["entities"]]
    assert {"account", "contact", "activity", "lead", "opportunity", "opportunity_contact"} == set(names)


def test_openapi_follows_the_metamodel_without_restart(client: TestClient, engine: sa.Engine,
                                                       registry: FieldTypeRegistry, tmp_path: object) -> None:
    import time
    from pathlib import Path

    from .packs import write_pack

    before = client.get("/api/v1/openapi.json").json()
    assert before["openapi"] == "3.1.0" and before["info"]["version"].endswith("+revision.1")
    assert "/api/v1/vehicle" not in before["paths"]
    account = before["components"]["schemas"]["Account"]["properties"]
    assert account["industry"]["anyOf"][0]["enum"][:2] == ["technology", "manufacturing"]
    assert before["components"]["schemas"]["AccountInput"]["required"] == ["name"]
    install(engine, registry, write_pack(Path(str(tmp_path)), "fleet", "1.0.0", {"vehicle": {"fields": {
        "plate": {"type": "text", "required": True}, "seats": {"type": "integer", "min": 1}}}}))
    deadline = time.monotonic() + 120  # a failure detector: the wait is on the condition below
    after = client.get("/api/v1/openapi.json").json()
    while "/api/v1/vehicle" not in after["paths"] and time.monotonic() < deadline:
        time.sleep(0.1)
        after = client.get("/api/v1/openapi.json").json()
    assert after["info"]["version"].endswith("+revision.2")
    vehicle = after["components"]["schemas"]["VehicleInput"]
    assert vehicle["required"] == ["plate"]
    assert {"type": "integer", "minimum": 1}.items() <= vehicle["properties"]["seats"]["anyOf"][0].items()
    made = client.post("/api/v1/vehicle", json={"plate": "AB-123", "seats": 5})
    assert made.status_code == 201 and made.json()["seats"] == 5
