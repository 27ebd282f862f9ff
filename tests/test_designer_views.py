"""The designer's views pages over HTTP (web/designer_views.py), on SQLite and PostgreSQL: the
entity's views listed; a view created shows its plan (no SQL), and once applied it is in the
list page's switcher and shows its columns; a bad filter is refused with the reason; an
edit changes it; the organisation's view is removed; a stale plan is refused on Apply."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .pack_templates import PackTemplates
from .test_designer_layouts import digest_of
from .test_designer_pipelines import confirm_of, vehicle_site

PAGE = "/admin/entities/vehicle/views"
PRICEY = ("label: Pricey\ntype: list\ncolumns: [plate, price]\nfilter: price > 100\nsort: [-price]\n"
          "page_size: 5\n")


@pytest.fixture
def client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
           pack_templates: PackTemplates) -> Iterator[TestClient]:
    yield from vehicle_site(engine, db_url, registry, pack_templates)


def applied(client: TestClient, url: str, data: dict[str, str]) -> None:
    plan = client.post(url, data=data)
    assert plan.status_code == 200, plan.text
    sent = {**data, "confirm": confirm_of(plan.text), "plan_digest": digest_of(plan.text)}
    done = client.post(url, data=sent, follow_redirects=False)
    assert done.status_code == 303, done.text


def switcher(client: TestClient) -> list[str]:
    page = client.get("/e/vehicle")
    assert page.status_code == 200, page.text
    nav = re.search(r'<nav class="view-switcher".*?</nav>', page.text, re.S)
    return re.findall(r">([^<>]+)</a>", nav.group(0)) if nav else []


def test_a_view_created_is_planned_then_shown_in_the_list_switcher(client: TestClient) -> None:
    assert client.get(PAGE).status_code == 200
    plan = client.post(PAGE, data={"name": "pricey", "view": PRICEY})
    assert plan.status_code == 200, plan.text
    assert "change view pricey" in plan.text
    assert "Pricey" not in switcher(client)
    applied(client, PAGE, {"name": "pricey", "view": PRICEY})
    assert "Pricey" in switcher(client)
    listed = client.get(PAGE + ".json").json()["views"]
    assert [(v["name"], v["own"]) for v in listed] == [("pricey", True)]
    client.post("/api/v1/vehicle", json={"plate": "CHEAP", "price": 5})
    client.post("/api/v1/vehicle", json={"plate": "DEAR", "price": 500})
    shown = client.get("/e/vehicle?view=pricey").text
    assert "DEAR" in shown and "CHEAP" not in shown


def test_a_bad_view_is_refused_with_the_reason(client: TestClient) -> None:
    bad = client.post(PAGE, data={"name": "odd", "view": "type: list\nfilter: price >> 3\n"})
    assert bad.status_code == 422, bad.text
    assert "filter" in bad.text and 'name="confirm"' not in bad.text
    unknown = client.post(PAGE, data={"name": "odd", "view": "type: list\ncolumns: [plate, colour]\n"})
    assert unknown.status_code == 422 and "colour" in unknown.text
    named = client.post(PAGE, data={"name": "Bad Name", "view": PRICEY})
    assert named.status_code == 422 and "lower-case letters" in named.text


def test_a_view_is_edited_then_removed(client: TestClient) -> None:
    applied(client, PAGE, {"name": "pricey", "view": PRICEY})
    page = client.get(PAGE + "/pricey")
    assert page.status_code == 200 and "price &gt; 100" in page.text
    applied(client, PAGE + "/pricey", {"view": PRICEY.replace("Pricey", "Expensive")})
    assert "Expensive" in switcher(client)
    applied(client, PAGE + "/pricey/remove", {})
    assert "Expensive" not in switcher(client)
    assert client.get(PAGE + "/pricey").status_code == 404


def test_apply_refuses_a_stale_plan(client: TestClient) -> None:
    plan = client.post(PAGE, data={"name": "pricey", "view": PRICEY})
    applied(client, PAGE, {"name": "other", "view": "label: Other\ntype: list\n"})
    stale = client.post(PAGE, data={"name": "pricey", "view": PRICEY, "confirm": confirm_of(plan.text),
                                    "plan_digest": digest_of(plan.text)})
    assert stale.status_code == 409, stale.text
    assert "Another change was applied meanwhile" in stale.text
