"""Folding several fields into one composite field (`renamed_from: {part: former field}`), on
SQLite and PostgreSQL: one planned change renames (or copies) each former field's column into
its part's column and converts every value with the composite type's own coercion of the part;
a value that does not convert blocks the plan, naming the records; bad definitions are refused
at their file:line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.cli import main
from slatecrm.platform.storage import revisions

from .dbstate import drift
from .defaults import make_app, signed_in
from .packs import install, plan, write_files_pack, write_pack

SALUTATION = {"type": "choice", "options": [{"key": "mr"}, {"key": "ms"}, {"key": "mx"}, {"key": "dr"},
                                            {"key": "sir"}]}
BILLING = {"billing_street": "billing_street", "billing_city": "billing_city",
           "billing_postal_code": "billing_postal_code", "billing_country": "billing_country"}
FOLDED_ADDRESS = {"street": "billing_street", "city": "billing_city",
                  "postal_code": "billing_postal_code", "country": "billing_country"}
FOLDED_NAME = {"salutation": "salutation", "first": "first_name", "last": "last_name"}


def v1(root: Path) -> Path:
    return write_pack(root, "crm", "1.0.0", {
        "account": {"title_field": "name", "fields": {
            "name": {"type": "text", "required": True},
            "billing_street": {"type": "text"},
            "billing_city": {"type": "text", "indexed": True},
            "billing_postal_code": {"type": "integer"},  # not a text: copied, not renamed
            "billing_country": {"type": "text"},
            "phone": {"type": "text"},
        }},
        "contact": {"title_field": "last_name", "fields": {
            "salutation": SALUTATION,
            "first_name": {"type": "text"},
            "last_name": {"type": "text"},
            "email": {"type": "email"},
        }},
    })


def v2(root: Path, version: str = "2.0.0") -> Path:
    return write_pack(root, "crm", version, {
        "account": {"title_field": "name", "fields": {
            "name": {"type": "text", "required": True},
            "billing_address": {"type": "address", "renamed_from": FOLDED_ADDRESS},
            "phone": {"type": "text"},
        }},
        "contact": {"title_field": "name", "fields": {
            "name": {"type": "person_name", "required": True, "renamed_from": FOLDED_NAME},
            "email": {"type": "email"},
        }},
    })


@pytest.fixture
def http(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Any:
    install(engine, registry, v1(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as client:
        yield client
    app.state.engine.dispose()


def post(http: TestClient, entity: str, body: dict[str, Any]) -> int:
    made = http.post(f"/api/v1/{entity}", json=body)
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def fill(http: TestClient) -> None:
    post(http, "account", {"name": "Acme", "billing_street": "Hauptstraße 1", "billing_city": "Berlin",
                           "billing_postal_code": 10115, "billing_country": "Germany", "phone": "030"})
    post(http, "account", {"name": "Bare"})
    post(http, "account", {"name": "Only city", "billing_city": "  Lyon ", "billing_country": "fr"})
    post(http, "contact", {"salutation": "dr", "first_name": "Ada", "last_name": "Lovelace",
                           "email": "ada@example.org"})
    post(http, "contact", {"first_name": "Alan"})


def values(engine: sa.Engine, table: str, *columns: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")).all()]


def test_fold_keeps_every_value_as_a_part(http: TestClient, engine: sa.Engine, db_url: str,
                                          registry: FieldTypeRegistry, tmp_path: Path) -> None:
    fill(http)
    planned = plan(engine, registry, v2(tmp_path)).plan
    assert not planned.blocked, [r.message for c in planned.changes for r in c.risks]
    folds = {c.field: c for c in planned.changes if c.action == "fold fields"}
    assert set(folds) == {"billing_address", "name"}
    assert folds["billing_address"].summary == (
        "fold fields account.billing_street, account.billing_city, account.billing_postal_code, "
        "account.billing_country into address field account.billing_address: street ← billing_street "
        "(column renamed); city ← billing_city (column renamed); postal_code ← billing_postal_code "
        "(copied); country ← billing_country (column renamed); 2 values to convert")
    assert folds["name"].summary.startswith(
        "fold fields contact.salutation, contact.first_name, contact.last_name into person_name field "
        "contact.name: salutation ← salutation (column renamed); first ← first_name (column renamed); "
        "last ← last_name (column renamed)"), folds["name"].summary
    # The former fields are not retired: their data moves; the others stay as they are.
    # A required name: the contacts without a last name are told (a warning: kept as they are).
    assert [(r.message, r.blocking) for r in folds["name"].risks] == [
        ("name is required: 1 rows have no last: ids 2", False)]
    assert not [c for c in planned.changes if c.action in ("retire column", "add column")], \
        [(c.action, c.summary) for c in planned.changes]
    assert any(c.action == "drop index" and c.field == "billing_city" for c in planned.changes)
    # Each step: the renames, the added part columns, the conversion, the dropped former column.
    sql = folds["billing_address"].sql
    assert any("billing_street" in line and "RENAME" in line.upper() for line in sql), sql
    assert any("ADD COLUMN billing_address__postal_code" in line for line in sql), sql
    assert any("ADD COLUMN billing_address__region" in line for line in sql), sql
    assert any(line.startswith("-- convert the 2 values of billing_address") for line in sql), sql
    assert "DROP COLUMN billing_postal_code" in sql[-1], sql
    install(engine, registry, v2(tmp_path))

    assert drift(engine) == []
    assert plan(engine, registry, v2(tmp_path)).plan.is_empty
    with engine.connect() as conn:
        _, stored = revisions.current_metamodel(conn)
    account = stored.entity("account")
    assert account is not None and account.field("billing_address") is not None
    assert account.field("billing_address").renamed_from == FOLDED_ADDRESS  # type: ignore[union-attr]
    assert {f.name for f in account.fields} == {"name", "billing_address", "phone"}
    columns = {c["name"] for c in sa.inspect(engine).get_columns("x_account")}
    assert not columns & set(BILLING), columns
    assert values(engine, "x_account", "billing_address", "billing_address__city",
                  "billing_address__postal_code", "billing_address__country", "billing_address__region") == [
        ("Hauptstraße 1", "Berlin", "10115", "DE", None), (None, None, None, None, None),
        (None, "Lyon", None, "FR", None)]

    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as client:
            acme = client.get("/api/v1/account/1").json()
            assert acme["billing_address"] == {"street": "Hauptstraße 1", "city": "Berlin",
                                               "postal_code": "10115", "country": "DE"}
            assert acme["phone"] == "030"
            assert client.get("/api/v1/account/2").json()["billing_address"] is None
            assert client.get("/api/v1/account/3").json()["billing_address"] == {"city": "Lyon",
                                                                                 "country": "FR"}
            ada = client.get("/api/v1/contact/1").json()
            assert ada["name"] == {"salutation": "Dr.", "first": "Ada", "last": "Lovelace"}
            assert ada["email"] == "ada@example.org"
            assert client.get("/api/v1/contact/2").json()["name"] == {"first": "Alan"}
            found = client.get("/api/v1/account", params={"billing_address.city": "Berlin"}).json()["data"]
            assert [r["id"] for r in found] == [1]
            searched = client.get("/api/v1/account", params={"q": "Lyon"}).json()["data"]
            assert [r["id"] for r in searched] == [3]
            changed = client.patch("/api/v1/contact/2", json={"name": {"first": "Alan", "last": "Turing"},
                                                              "version": 1})
            assert changed.status_code == 200, changed.text
            assert changed.json()["name"] == {"first": "Alan", "last": "Turing"}
    finally:
        app.state.engine.dispose()


def test_a_value_that_does_not_convert_blocks_and_changes_nothing(
        http: TestClient, engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    fill(http)
    post(http, "account", {"name": "Nowhere", "billing_country": "Atlantis"})
    post(http, "contact", {"salutation": "sir", "last_name": "Knight"})
    before = (values(engine, "x_account", "id", *BILLING), values(engine, "x_contact", "*"))
    planned = plan(engine, registry, v2(tmp_path)).plan
    assert planned.blocked
    risks = {c.field: [r for r in c.risks if r.blocking] for c in planned.changes
             if c.action == "fold fields"}
    [country] = risks["billing_address"]
    assert country.message == ("fold into billing_address: 1 of 3 rows do not convert (id 4: country: "
                               "'Atlantis' is not an ISO 3166 country code (like FR or US)): ids 4")
    assert country.sample_ids == (4,)
    [salutation] = risks["name"]
    assert salutation.sample_ids == (3,) and "salutation: 'sir' is not one of" in salutation.message
    with pytest.raises(AssertionError):
        install(engine, registry, v2(tmp_path))
    assert (values(engine, "x_account", "id", *BILLING), values(engine, "x_contact", "*")) == before
    assert "billing_address" not in {c["name"] for c in sa.inspect(engine).get_columns("x_account")}
    # Corrected, the same upgrade goes through.
    assert http.patch("/api/v1/account/4", json={"billing_country": "NZ", "version": 1}).status_code == 200
    assert http.patch("/api/v1/contact/3", json={"salutation": "mr", "version": 1}).status_code == 200
    install(engine, registry, v2(tmp_path))
    assert values(engine, "x_account", "billing_address__country") == [("DE",), (None,), ("FR",), ("NZ",)]
    assert values(engine, "x_contact", "name__salutation") == [("Dr.",), (None,), ("Mr.",)]
    assert plan(engine, registry, v2(tmp_path)).plan.is_empty


def test_a_former_field_the_entity_does_not_have_is_refused_at_its_line(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, v1(tmp_path))
    pack = write_pack(tmp_path, "crm", "2.0.0", {
        "account": {"title_field": "name", "fields": {
            "name": {"type": "text", "required": True},
            "billing_address": {"type": "address",
                                "renamed_from": {**FOLDED_ADDRESS, "region": "billing_state"}},
        }},
        "contact": {"fields": {"last_name": {"type": "text"}}},
    })
    with pytest.raises(DefinitionError) as refused:
        plan(engine, registry, pack)
    [problem] = [str(p) for p in refused.value.problems]
    assert "crm/entities/account.yaml:10:5: fields.billing_address: " in problem and problem.endswith(
        "renamed_from: 'account' has no field 'billing_state' to fold into part 'region' of "
        "'billing_address'"), problem


BAD = """\
kind: entity
name: account
title_field: name
fields:
  name:
    type: text
  phone:
    type: text
    renamed_from: {number: tel}
  billing_address:
    type: address
    renamed_from:
      street: billing_street
      town: billing_city
      country: billing_country
  shipping_address:
    type: address
    renamed_from: {street: billing_street, city: shipping_city}
  shipping_city:
    type: text
  contact_name:
    type: person_name
    renamed_from: {first: first_name, last: first_name}
indexes:
  - [billing_city, name]
"""


def test_bad_fold_definitions_are_refused_at_their_file_and_line(tmp_path: Path) -> None:
    pack = write_files_pack(tmp_path, {"entities/account.yaml": BAD}, name="crm", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    output = " ".join(result.output.split())
    for expected in [
        "entities/account.yaml:7:3: fields.phone: renamed_from: a text field has no parts, so it cannot "
        "be made from several fields; give the one former field's name",
        "entities/account.yaml:10:3: fields.billing_address: renamed_from: 'town' is not a part; the parts "
        "of address fields: street, city, region, postal_code, country",
        "entities/account.yaml:16:3: fields.shipping_address: renamed_from: field 'shipping_city' (for "
        "part 'city') is still defined (at line 19); remove it: its data moves into 'shipping_address'",
        "entities/account.yaml:16:3: fields.shipping_address: renamed_from: field 'billing_street' is "
        "taken by field 'billing_address' (at line 10) already",
        "entities/account.yaml:21:3: fields.contact_name: renamed_from: field 'first_name' is folded into "
        "more than one part",
        # an index naming a former field is refused: that field is gone
        "entities/account.yaml:25:5: indexes[0]: 'account' has no field 'billing_city'",
    ]:
        assert expected in output, output


def test_a_renamed_from_of_another_shape_is_refused_by_the_pack_schema(tmp_path: Path) -> None:
    text = ("kind: entity\nname: account\nfields:\n  name:\n    type: text\n  addr:\n    type: address\n"
            "    renamed_from: 5\n  other:\n    type: address\n    renamed_from: {city: 7}\n")
    pack = write_files_pack(tmp_path, {"entities/account.yaml": text}, name="crm", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert "entities/account.yaml:8:19: fields.addr.renamed_from: expected text, got the number 5" in output
    assert "entities/account.yaml:11:26: fields.other.renamed_from.city: expected text, got the number 7" \
        in output
    assert "2 problem(s)" in output, output


def test_a_fold_in_the_stored_form_reads_back_the_same(registry: FieldTypeRegistry, tmp_path: Path) -> None:
    from slatecrm.metamodel.layering import merge
    from slatecrm.metamodel.model import Metamodel
    from slatecrm.platform import installer

    metamodel = merge(installer.load_packs([str(v2(tmp_path))], registry), registry)
    stored = json.loads(json.dumps(metamodel.as_dict()))
    again = Metamodel.from_dict(stored)
    assert again == metamodel
    account = again.entity("account")
    assert account is not None
    assert account.field("billing_address").renamed_from == FOLDED_ADDRESS  # type: ignore[union-attr]
    assert account.field("phone").renamed_from is None  # type: ignore[union-attr]


def test_an_admin_folds_fields_of_an_own_entity_live(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, pack_templates: Any) -> None:
    """Through the admin API: a field defined with a `renamed_from` mapping replaces the former
    fields in the organisation's own entity, and the fold keeps their values."""
    pack_templates.copy_to(engine, registry, "crm-core")
    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as client:
            venue = {"label": "Venue", "title_field": "title", "fields": {
                "title": {"type": "text", "required": True},
                "street": {"type": "text"}, "town": {"type": "text"}, "land": {"type": "text"}}}
            confirm(client, "/api/v1/admin/entities/venue", venue)
            post(client, "venue", {"title": "Hall", "street": "Rue 1", "town": "Paris", "land": "France"})
            body = {"type": "address",
                    "renamed_from": {"street": "street", "city": "town", "country": "land"}}
            done = confirm(client, "/api/v1/admin/entities/venue/fields/place", body)
            assert "fold fields" in [c["action"] for c in done["plan"]["changes"]], done["plan"]
            hall = client.get("/api/v1/venue/1").json()
            assert hall["place"] == {"street": "Rue 1", "city": "Paris", "country": "FR"}
            assert not {"street", "town", "land"} & set(hall), hall
    finally:
        app.state.engine.dispose()


def confirm(client: TestClient, url: str, body: Any) -> dict[str, Any]:
    dry = client.put(url, json=body)
    assert dry.status_code == 200, dry.text
    done = client.put(url, json=body, params={"confirm": dry.json()["base_revision"]})
    assert done.status_code == 200, done.text
    result: dict[str, Any] = done.json()
    assert result["applied"] is True, result
    return result
