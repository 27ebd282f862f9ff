"""Line items (`type: lines`) on SQLite and PostgreSQL: pack validation, the parent's value as
the ordered list of its lines (created, changed with their ids kept, reordered, removed in
one write), one version check for the whole document, a refused line refusing all of it,
roll-ups over the lines, deletes cascading, the form without JavaScript and the record page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.cli import main
from slatecrm.platform.records.errors import ValidationFailed, VersionConflict
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.services import records_service

from .defaults import make_app, plugin_manager, signed_in
from .packs import install, write_files_pack, write_pack

QUOTE_LINE: dict[str, Any] = {
    "label": "Quote line", "title_field": "product", "fields": {
        "quote": {"type": "reference", "target": "quote", "on_delete": "cascade", "required": True},
        "position": {"type": "integer"},
        "product": {"type": "text", "required": True},
        "qty": {"type": "integer", "min": 1},
        "unit_price": {"type": "decimal", "precision": 12, "scale": 2},
        "amount": {"type": "decimal", "precision": 12, "scale": 2, "formula": "qty * unit_price"},
    }}
QUOTE: dict[str, Any] = {
    "label": "Quote", "title_field": "name", "fields": {
        "name": {"type": "text", "required": True},
        "items": {"type": "lines", "entity": "quote_line", "label": "Items"},
        "total": {"type": "rollup", "function": "sum", "over": "quote_line.quote", "field": "amount"},
        "line_count": {"type": "rollup", "function": "count", "over": "quote_line.quote"},
    }}


def quotes_pack(root: Path) -> Path:
    return write_pack(root, "quotes", "1.0.0", {"quote": QUOTE, "quote_line": QUOTE_LINE})


# --- pack validation -------------------------------------------------------------------------
BAD = """\
kind: entity
name: quote
fields:
  name:
    type: text
  nowhere:
    type: lines
    entity: invoice_line
  unhooked:
    type: lines
    entity: note
  loose:
    type: lines
    entity: loose_line
"""
NOTE = """\
kind: entity
name: note
fields:
  text:
    type: text
"""
LOOSE = """\
kind: entity
name: loose_line
fields:
  quote:
    type: reference
    target: quote
  product:
    type: text
"""


def test_bad_definitions_are_refused_at_their_file_and_line(tmp_path: Path) -> None:
    pack = write_files_pack(tmp_path, {"entities/quote.yaml": BAD, "entities/note.yaml": NOTE,
                                       "entities/loose.yaml": LOOSE}, name="quotes", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    output = " ".join(result.output.split())
    where = "entities/quote.yaml"
    assert f"{where}:6:3: fields.nowhere: entity: 'invoice_line' is not an entity" in output
    assert f"{where}:9:3: fields.unhooked: via: note has no reference(s) to quote" in output
    assert f"{where}:12:3: fields.loose: via: loose_line.quote must have on_delete: cascade" in output
    assert f"{where}:12:3: fields.loose: position: loose_line needs a whole-number field 'position'" in output


def test_good_definitions_validate(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["pack", "validate", str(quotes_pack(tmp_path))],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output


# --- the service -------------------------------------------------------------------------------
@pytest.fixture
def quotes(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> RecordsService:
    install(engine, registry, quotes_pack(tmp_path))
    return records_service(engine, plugin_manager())


def products(records: RecordsService, quote: int) -> list[tuple[Any, ...]]:
    lines = records.get("quote", quote).values["items"]
    return [(line["product"], line["qty"], line["amount"]) for line in lines]


def test_lines_are_saved_changed_reordered_and_removed_with_their_parent(quotes: RecordsService) -> None:
    records = quotes
    made = records.create("quote", {"name": "Q1", "items": [
        {"product": "Desk", "qty": 2, "unit_price": "100"},
        {"product": "Chair", "qty": 4, "unit_price": "25.50"},
        {"product": "Lamp", "qty": 1, "unit_price": "9.99"}]})
    assert made.version == 1
    assert products(records, made.id) == [("Desk", 2, "200.00"), ("Chair", 4, "102.00"), ("Lamp", 1, "9.99")]
    assert made.values["total"] == Decimal("311.99") and made.values["line_count"] == 3
    desk, chair, lamp = (line["id"] for line in made.values["items"])
    # Replace the list: Lamp first and changed, Desk kept as it was, Chair removed, Rug new.
    changed = records.update("quote", made.id, {"items": [
        {"id": lamp, "qty": 3}, {"id": desk}, {"product": "Rug", "qty": 1, "unit_price": "50"}]},
        version=made.version)
    assert changed.version == 2
    items = changed.values["items"]
    assert [line["id"] for line in items][:2] == [lamp, desk]
    assert products(records, made.id) == [("Lamp", 3, "29.97"), ("Desk", 2, "200.00"), ("Rug", 1, "50.00")]
    assert changed.values["total"] == Decimal("279.97") and changed.values["line_count"] == 3
    assert chair not in {line["id"] for line in items}
    # Sending back what was read changes nothing: no new version.
    same = records.update("quote", made.id, {"items": records.as_json(changed)["items"]}, version=2)
    assert same.version == 2
    # The child records are ordinary records, ordered by their position.
    lines = records.page("quote_line").records
    assert sorted((r.values["position"], r.values["product"]) for r in lines) == [(1, "Lamp"), (2, "Desk"),
                                                                                 (3, "Rug")]
    # The parent's history shows the lines as they changed.
    assert any("items" in entry.changes for entry in records.history("quote", made.id))


def test_a_caller_holding_the_transaction_saves_lines_in_it(quotes: RecordsService) -> None:
    """A service bound to a caller's connection (a workflow's run) writes the lines on that
    connection, in the caller's transaction: rolled back with it, committed with it."""
    with quotes.engine.connect() as conn:
        conn.begin()
        quotes.bound(conn, savepoints=False).create("quote", {"name": "Gone", "items": [
            {"product": "Desk", "qty": 1, "unit_price": "10"}]})
        conn.rollback()
        conn.begin()
        kept = quotes.bound(conn, savepoints=False).create("quote", {"name": "Kept", "items": [
            {"product": "Chair", "qty": 2, "unit_price": "5"}]})
        conn.commit()
    assert [r.values["name"] for r in quotes.page("quote").records] == ["Kept"]
    assert products(quotes, kept.id) == [("Chair", 2, "10.00")]


def test_one_version_check_for_the_whole_document(quotes: RecordsService) -> None:
    records = quotes
    made = records.create("quote", {"name": "Q", "items": [{"product": "Desk", "qty": 1, "unit_price": "1"}]})
    records.update("quote", made.id, {"items": [{"product": "Other", "qty": 1, "unit_price": "1"}]},
                   version=1)
    with pytest.raises(VersionConflict) as conflict:
        records.update("quote", made.id, {"items": []}, version=1)
    assert "items" in conflict.value.changed
    assert products(records, made.id) == [("Other", 1, "1.00")]


def test_a_refused_line_refuses_the_whole_document(quotes: RecordsService) -> None:
    records = quotes
    made = records.create("quote", {"name": "Q", "items": [{"product": "Desk", "qty": 1, "unit_price": "5"}]})
    with pytest.raises(ValidationFailed) as refused:
        records.update("quote", made.id, {"name": "Renamed", "items": [
            {"product": "Ok", "qty": 1, "unit_price": "1"}, {"product": "Bad", "qty": 0}]}, version=1)
    [message] = refused.value.errors["items"]
    assert message.startswith("line 2: qty: ")
    kept = records.get("quote", made.id)
    assert kept.values["name"] == "Q" and kept.version == 1 and kept.values["total"] == Decimal("5.00")
    assert products(records, made.id) == [("Desk", 1, "5.00")]
    with pytest.raises(ValidationFailed) as foreign:
        records.update("quote", made.id, {"items": [{"id": 999999}]}, version=1)
    assert "is not a line of this record" in foreign.value.errors["items"][0]
    for bad in ("x", [1], {"product": "x"}, [{"id": "x"}], [{"quote": 3}], [{"position": 2}]):
        with pytest.raises(ValidationFailed) as shape:
            records.create("quote", {"name": "Odd", "items": bad})
        assert shape.value.errors["items"]


def test_deleting_the_parent_deletes_its_lines(quotes: RecordsService) -> None:
    records = quotes
    made = records.create("quote", {"name": "Q", "items": [{"product": "Desk", "qty": 1}]})
    records.delete("quote", made.id)
    assert records.page("quote_line").records == []


# --- API, OpenAPI, form, page ---------------------------------------------------------------------
@pytest.fixture
def http(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Iterator[TestClient]:
    install(engine, registry, quotes_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as client:
        yield client
    app.state.engine.dispose()


def test_api_round_trip(http: TestClient) -> None:
    made = http.post("/api/v1/quote", json={"name": "Q", "items": [
        {"product": "Desk", "qty": 2, "unit_price": "10"}, {"product": "Lamp", "qty": 1, "unit_price": "3"}]})
    assert made.status_code == 201, made.text
    body = made.json()
    assert [line["product"] for line in body["items"]] == ["Desk", "Lamp"] and body["total"] == "23.00"
    desk = body["items"][0]["id"]
    patched = http.patch(f"/api/v1/quote/{body['id']}", json={
        "version": body["version"], "items": [{"id": desk, "qty": 5}]})
    assert patched.status_code == 200, patched.text
    assert [(line["id"], line["qty"]) for line in patched.json()["items"]] == [(desk, 5)]
    assert patched.json()["total"] == "50.00"
    refused = http.patch(f"/api/v1/quote/{body['id']}", json={
        "version": patched.json()["version"], "items": [{"id": desk, "qty": "many"}]})
    assert refused.status_code == 422 and refused.json()["errors"]["items"][0].startswith("line 1: qty:")
    stale = http.patch(f"/api/v1/quote/{body['id']}", json={"version": body["version"], "items": []})
    assert stale.status_code == 409
    schema = http.get("/api/v1/openapi.json").json()["components"]["schemas"]
    assert {"type": "array"}.items() <= next(s for s in schema["Quote"]["properties"]["items"]["anyOf"]
                                             if s.get("type") == "array").items()


def test_form_without_javascript_adds_reorders_and_removes_lines(http: TestClient) -> None:
    form = http.get("/e/quote/new").text
    assert 'name="items__0__product"' in form and 'name="items__2__qty"' in form  # blank rows
    made = http.post("/e/quote/new", data={
        "name": "Q", "_fields": ["name", "items"], "items__rows": "3",
        "items__0__position": "2", "items__0__product": "Desk", "items__0__qty": "1",
        "items__0__unit_price": "10",
        "items__1__position": "1", "items__1__product": "Lamp", "items__1__qty": "2",
        "items__1__unit_price": "1.50"}, follow_redirects=False)
    assert made.status_code == 303, made.text
    page = http.get(made.headers["location"]).text
    assert page.index("Lamp") < page.index("Desk") and "<table class=\"line-items\">" in page
    quote = int(made.headers["location"].rstrip("/").split("/")[-1])
    record = http.get(f"/api/v1/quote/{quote}").json()
    lamp, desk = (line["id"] for line in record["items"])
    edit = http.get(f"/e/quote/{quote}/edit").text
    assert f'name="items__0__id" value="{lamp}"' in edit and 'name="items__0__remove"' in edit
    version = re.search(r'name="version" value="(\d+)"', edit)
    assert version is not None
    saved = http.post(f"/e/quote/{quote}/edit", data={
        "version": version.group(1), "name": "Q", "_fields": ["name", "items"], "items__rows": "5",
        "items__0__id": str(lamp), "items__0__position": "1", "items__0__product": "Lamp",
        "items__0__qty": "2", "items__0__unit_price": "1.50", "items__0__remove": "1",
        "items__1__id": str(desk), "items__1__position": "1", "items__1__product": "Desk",
        "items__1__qty": "3", "items__1__unit_price": "10",
        "items__2__position": "2", "items__2__product": "Rug", "items__2__qty": "1"}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    after = http.get(f"/api/v1/quote/{quote}").json()
    assert [(line["product"], line["qty"]) for line in after["items"]] == [("Desk", 3), ("Rug", 1)]
    assert after["items"][0]["id"] == desk and after["total"] == "30.00" and after["line_count"] == 2


@pytest.mark.parametrize("items", [
    "x", 12, True, {"product": "x"}, [1], [[]], [{"id": True}], [{"id": -1}], [{"id": 2**70}],
    [{"id": "1e3"}], [{"qty": 2**70, "product": "x"}], [{"product": "x", "nothing": 1}],
    [{"product": "x", "qty": "NaN"}], [{"product": None}], [{"quote": 1, "product": "x"}],
    [{"product": "x"}] * 501,
], ids=lambda v: repr(v)[:40])
def test_hostile_lines_are_refused_naming_the_field(http: TestClient, items: Any) -> None:
    refused = http.post("/api/v1/quote", json={"name": "Odd", "items": items})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"]["items"]
    assert http.get("/api/v1/quote_line").json()["data"] == []  # nothing of the document was kept


@pytest.mark.parametrize("value", [1, "1", {"amount": 1}, [1], None])
def test_rollups_are_never_written_through_the_api(http: TestClient, value: Any) -> None:
    refused = http.post("/api/v1/quote", json={"name": "Q", "total": value})
    assert refused.status_code == 422 and refused.json()["errors"]["total"]
