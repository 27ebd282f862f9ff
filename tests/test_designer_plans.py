"""One plan display for every designer page (web/designer_plans.py, templates/_plan.html):
the entity and field pages, the pipeline pages and the pack installation show a plan the
same way (its statements, "N of M rows" at risk, the base revision), and every Apply carries
the base revision and the plan's fingerprint, so that an Apply made stale by another change,
or sent for another plan than the one shown, is refused with the new plan (409). On SQLite
and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.web.designer_plans import EDITED, Outcome, decided

from .pack_templates import PackTemplates
from .test_designer import hidden, text_of
from .test_designer_packs import GADGET, pack_zip, upload
from .test_designer_pipelines import PAGE, board_order, pairs, vehicle_site

ORDER = [("order", "sold"), ("order", "ordered"), ("order", "in_service")]


@pytest.fixture
def http(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
         pack_templates: PackTemplates) -> Iterator[TestClient]:
    yield from vehicle_site(engine, db_url, registry, pack_templates)


def shows_a_plan(page: str, summary: str) -> None:
    """What every designer page's plan shows: the summary, the base revision, Apply with the
    revision and the fingerprint, Cancel."""
    assert summary in text_of(page)
    revision = re.search(r'id="plan-revision">(\d+)<', page)
    assert revision, page
    assert hidden(page, "confirm") == revision.group(1)
    assert re.fullmatch(r"[0-9a-f]{16}", hidden(page, "plan_digest"))
    assert 'id="apply"' in page and 'id="cancel"' in page


def test_every_designer_page_shows_its_plan_the_same_way(http: TestClient, tmp_path: Path) -> None:
    vin = {"op": "save", "name": "vin", "type": "text"}
    field = http.post("/admin/entities/vehicle/new-field", data=vin)
    assert field.status_code == 200, field.text
    shows_a_plan(field.text, "define field vehicle.vin")
    order = http.post(PAGE + "/order", data=pairs(ORDER))
    assert order.status_code == 200, order.text
    shows_a_plan(order.text, "reorder the stages of vehicle.lifecycle")
    pack = upload(http, pack_zip(tmp_path, GADGET))
    assert pack.status_code == 200, pack.text
    shows_a_plan(pack.text, "gadgets")
    assert "CREATE TABLE" in pack.text and ">Install</button>" in pack.text


def test_rows_at_risk_read_n_of_m_rows_on_the_pipeline_pages_too(http: TestClient) -> None:
    made = http.post("/api/v1/vehicle", json=[{"plate": "A", "status": "sold"}, {"plate": "B"}])
    assert made.status_code in (200, 201), made.text
    plan = http.post(PAGE + "/stages/sold/remove", data={})
    assert plan.status_code == 200, plan.text
    assert re.search(r'<p class="risk">\s*<strong>1 of 2 rows</strong>', plan.text), plan.text


def test_a_pipeline_apply_for_another_plan_is_refused_with_the_new_plan(http: TestClient) -> None:
    shown = http.post(PAGE + "/order", data=pairs(ORDER)).text
    # The fingerprint of the plan shown, sent with another order: not applied.
    other = [("order", "in_service"), ("order", "sold"), ("order", "ordered")]
    refused = http.post(PAGE + "/order", data=pairs([*other, ("confirm", hidden(shown, "confirm")),
                                                     ("plan_digest", hidden(shown, "plan_digest"))]))
    assert refused.status_code == 409, refused.text
    assert "not the one shown" in text_of(refused.text)
    assert board_order(http) == ["ordered", "in_service", "sold"]
    # The new plan's own Apply goes through.
    again = pairs([*other, ("confirm", hidden(refused.text, "confirm")),
                   ("plan_digest", hidden(refused.text, "plan_digest"))])
    done = http.post(PAGE + "/order", data=again, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert board_order(http) == ["in_service", "sold", "ordered"]


def test_a_pack_install_for_another_plan_is_refused(http: TestClient, tmp_path: Path) -> None:
    shown = upload(http, pack_zip(tmp_path, GADGET)).text
    form = {"archive": hidden(shown, "archive"), "filename": hidden(shown, "filename"),
            "confirm": hidden(shown, "confirm"), "plan_digest": "0123456789abcdef"}
    refused = http.post("/admin/packs/install", data=form, follow_redirects=False)
    assert refused.status_code == 409, refused.text
    assert "not the one shown" in text_of(refused.text)
    assert http.get("/api/v1/gadget").status_code == 404
    form["plan_digest"] = hidden(refused.text, "plan_digest")
    done = http.post("/admin/packs/install", data=form, follow_redirects=False)
    assert done.status_code == 303, done.text


def test_a_field_page_apply_without_the_fingerprint_is_refused(http: TestClient) -> None:
    """The field form can still be edited under its plan: Apply must name the plan it applies."""
    form = {"op": "save", "name": "vin", "type": "text"}
    shown = http.post("/admin/entities/vehicle/new-field", data=form).text
    unnamed = {**form, "confirm": hidden(shown, "confirm")}
    refused = http.post("/admin/entities/vehicle/new-field", data=unnamed)
    assert refused.status_code == 409 and "not the one shown" in text_of(refused.text)
    assert 'name="vin"' not in http.get("/e/vehicle/new").text


def test_the_json_twin_of_a_plan_page_carries_the_plan_and_its_notice(http: TestClient) -> None:
    answer = http.post(PAGE + "/order", data=pairs([*ORDER, ("confirm", "0")]),
                       headers={"accept": "application/json"})
    assert answer.status_code == 409, answer.text
    twin = answer.json()
    assert twin["plan"]["summary"] == "reorder the stages of vehicle.lifecycle" and twin["plan"]["digest"]
    assert "Another change was applied meanwhile" in twin["notice"] and twin["errors"][""] == [twin["notice"]]


def _plan(**over: Any) -> dict[str, Any]:
    return {"blocked": False, "base_revision": 7, "digest": "d", "changes": [], **over}


def test_decided_unit() -> None:
    assert decided(_plan(), {}, replayed=False) == Outcome(_plan(), {}, 200)
    assert decided(_plan(), {"confirm": "7", "plan_digest": "d"}, replayed=False) is None
    assert decided(_plan(), {"confirm": "7"}, replayed=True) is None
    assert decided(_plan(), {"confirm": "7"}, replayed=False) == Outcome(_plan(), {"": [EDITED]}, 409)
    assert decided(_plan(), {"confirm": "7", "plan_digest": "e"}, replayed=True) == Outcome(
        _plan(), {"": [EDITED]}, 409)
    stale = decided(_plan(), {"confirm": "6", "plan_digest": "d"}, replayed=True)
    assert stale is not None and stale.status == 409 and "revision 6" in stale.errors[""][0]
    blocked = decided(_plan(blocked=True), {"confirm": "7", "plan_digest": "d"}, replayed=False)
    assert blocked is not None and blocked.status == 409 and blocked.plan == _plan(blocked=True)
