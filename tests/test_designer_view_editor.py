"""The views designer's structured editor over HTTP (web/designer_views.py,
view_editor_form.py), on SQLite and PostgreSQL: a list, a kanban and a calendar view made
through the structured form are planned, applied, and used by the list page, the board and
the calendar with ?view=; the filter's live check answers the caret; a column the entity
lacks is refused naming it; changing the type answers that type's inputs."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .pack_templates import PackTemplates
from .test_designer_pipelines import pairs, vehicle_site
from .test_designer_views import applied

PAGE = "/admin/entities/vehicle/views"
EDITOR = "/admin/entities/vehicle/view-editor"
CHECK = "/admin/entities/vehicle/check?rule=filter"


@pytest.fixture
def client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
           pack_templates: PackTemplates) -> Iterator[TestClient]:
    yield from vehicle_site(engine, db_url, registry, pack_templates)


def structured(**given: str | list[str]) -> dict[str, list[str]]:
    """A structured editor's form: its marker and the values given (lists in order)."""
    items = [("editor", "structured")]
    for key, value in given.items():
        items += [(key, v) for v in ([value] if isinstance(value, str) else value)]
    return pairs(items)


def vehicles(client: TestClient) -> None:
    for plate, price, registered in (("CHEAP", 5, "2026-03-02"), ("DEAR", 500, "2026-03-10")):
        made = client.post("/api/v1/vehicle", json={"plate": plate, "price": price, "registered": registered,
                                                    "status": "ordered"})
        assert made.status_code == 201, made.text


def test_the_new_view_form_is_the_structured_editor(client: TestClient) -> None:
    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    assert 'id="view-editor-form"' in page.text and 'name="editor" value="structured"' in page.text
    # A list's columns are offered from the entity's fields, the filter is checked as typed.
    assert re.search(r'<select id="vf-columns-add"[^>]*>.*value="plate".*value="price"', page.text, re.S)
    assert f'hx-post="{CHECK}"' in page.text
    assert 'id="view-yaml"' in page.text  # the advanced, no-JS path stays


def test_a_list_view_from_the_structured_form_is_applied(client: TestClient) -> None:
    form = structured(name="dear", label="Dear", type="list", columns=["price", "plate"],
                      filter="price > 100", sort_field=["price", ""], sort_dir=["desc", "asc"], page_size="5")
    plan = client.post(PAGE, data=form)
    assert plan.status_code == 200, plan.text
    assert "change view dear" in plan.text
    applied(client, PAGE, form)
    vehicles(client)
    shown = client.get("/e/vehicle.json?view=dear").json()
    assert shown["view"] == "dear" and shown["columns"] == ["price", "plate"]
    assert [r["plate"] for r in shown["data"]] == ["DEAR"]
    # The view's page shows it in the structured editor, columns in their order.
    page = client.get(PAGE + "/dear").text
    assert re.findall(r'<li class="field-chip" data-field="([a-z_]+)"', page) == ["price", "plate"]
    assert "price &gt; 100" in page and 'name="page_size" inputmode="numeric" value="5"' in page


def test_a_list_view_is_edited_in_the_structured_form(client: TestClient) -> None:
    applied(client, PAGE, structured(name="dear", label="Dear", type="list", columns=["price", "plate"]))
    applied(client, PAGE + "/dear", structured(label="Dearest", type="list", columns=["plate", "registered"]))
    assert client.get("/e/vehicle.json?view=dear").json()["columns"] == ["plate", "registered"]
    assert "Dearest" in client.get(PAGE).text


def test_a_kanban_view_from_the_structured_form_is_applied(client: TestClient) -> None:
    form = structured(name="fleet", label="Fleet", type="kanban", pipeline="lifecycle",
                      card_fields=["price", "registered"], totals="price", filter="price > 100")
    applied(client, PAGE, form)
    vehicles(client)
    board = client.get("/e/vehicle/board/lifecycle.json?view=fleet").json()
    assert board["view"] == "fleet" and board["card_fields"] == ["price", "registered"]
    assert board["sum_field"] == "price"
    ordered = next(c for c in board["columns"] if c["stage"] == "ordered")
    assert [r["plate"] for r in ordered["records"]] == ["DEAR"]
    # Its page shows it in the kanban's inputs, as applied.
    page = client.get(PAGE + "/fleet").text
    assert re.findall(r'<li class="field-chip" data-field="([a-z_]+)"', page) == ["price", "registered"]
    assert '<option value="lifecycle" selected>' in page and '<option value="price" selected>' in page


def test_a_calendar_view_from_the_structured_form_is_applied(client: TestClient) -> None:
    form = structured(name="arrivals", label="Arrivals", type="calendar", field="registered", end_field="",
                      duration_field="", mode="week", filter="price < 100")
    applied(client, PAGE, form)
    vehicles(client)
    shown = client.get("/e/vehicle/calendar.json?view=arrivals&date=2026-03-02").json()
    assert (shown["view"], shown["field"], shown["mode"]) == ("arrivals", "registered", "week")
    plates = [r["plate"] for d in shown["days"] for r in d["records"]]
    assert plates == ["CHEAP"]
    page = client.get(PAGE + "/arrivals").text
    assert '<option value="week" selected>' in page and '<option value="registered" selected>' in page


def test_the_live_check_answers_a_caret_under_a_bad_filter(client: TestClient) -> None:
    bad = client.post(CHECK, data={"filter": "price >> 3"})
    assert bad.status_code == 200, bad.text
    assert 'id="error-filter"' in bad.text and '<pre class="caret">' in bad.text and "^" in bad.text
    twin = client.post(CHECK, data={"filter": "price >> 3"}, headers={"Accept": "application/json"}).json()
    assert twin["ok"] is False and twin["column"] > 0
    good = client.post(CHECK, data={"filter": "price > 3"}, headers={"Accept": "application/json"}).json()
    assert good["ok"] is True and good["gives"] == "boolean"
    # A filter is a condition on stored records: it cannot ask what a save changed.
    changed = client.post(CHECK, data={"filter": "changed(price)"}, headers={"Accept": "application/json"})
    assert changed.json()["ok"] is False


def test_bad_inputs_are_refused_naming_them(client: TestClient) -> None:
    bad = client.post(PAGE, data=structured(name="odd", label="Odd", type="list", columns=["plate", "colour"],
                                            filter="price >> 3", page_size="0"))
    assert bad.status_code == 422, bad.text
    assert 'name="confirm"' not in bad.text
    assert re.search(r'id="error-vf-columns">[^<]*colour', bad.text)
    assert re.search(r"<li>Columns: [^<]*&#39;vehicle&#39; has no field &#39;colour&#39;", bad.text)
    assert re.search(r"<li>Filter: [^<]*column", bad.text)
    assert re.search(r"<li>Page size: [^<]*from 1 to 500", bad.text)
    # What was posted is shown again, to correct.
    assert re.findall(r'<li class="field-chip" data-field="([a-z_]+)"', bad.text) == ["plate", "colour"]
    assert "odd" not in [v["name"] for v in client.get(PAGE + ".json").json()["views"]]


def test_a_kanban_without_its_pipeline_is_refused_by_the_plan(client: TestClient) -> None:
    bad = client.post(PAGE, data=structured(name="board", label="Board", type="kanban", pipeline=""))
    assert bad.status_code == 422, bad.text
    assert "give pipeline" in bad.text


def test_changing_the_type_answers_that_type_s_inputs(client: TestClient) -> None:
    kanban = client.post(EDITOR, data=structured(label="X", type="kanban", filter="price > 1"))
    assert kanban.status_code == 200, kanban.text
    assert 'id="vf-pipeline"' in kanban.text and 'value="lifecycle"' in kanban.text
    assert 'id="vf-totals"' in kanban.text and 'id="vf-columns"' not in kanban.text
    assert "price &gt; 1" in kanban.text  # what was typed stays
    calendar = client.post(EDITOR, data=structured(label="X", type="calendar"))
    assert re.search(r'<select id="vf-field" name="field">.*value="registered"', calendar.text, re.S)
    dates = re.search(r'<select id="vf-field".*?</select>', calendar.text, re.S)
    assert dates and 'value="plate"' not in dates.group(0)
    totals = re.search(r'<select id="vf-totals".*?</select>', kanban.text, re.S)
    assert totals and 'value="price"' in totals.group(0) and 'value="plate"' not in totals.group(0)
