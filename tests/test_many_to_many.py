"""The `many_to_many` field type in every layer, on SQLite and PostgreSQL: the junction
table (plan / apply / retire / purge), the API (ids in, ids with titles out, add / remove,
related lists on both sides, refusals naming the field and the id), forms and pages, CSV
export and the OpenAPI document."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.rules import RuleContext, RuleError, check, compile_python
from slatecrm.platform import installer
from slatecrm.platform.cli import main
from slatecrm.platform.records.compiled import compile_entities
from slatecrm.platform.records.rulesql import SqlCompiler
from slatecrm.platform.storage import revisions
from slatecrm.platform.storage.runtime import build_runtime

from .defaults import make_app, signed_in
from .packs import install, plan, write_files_pack, write_pack
from .rules.strategies import NOW

JUNCTION = "x_deal__people"


def entities(**deal_fields: Any) -> dict[str, Any]:
    """Deals and people; a deal links people (`people`, shown on a person as `deals`)."""
    return {
        "person": {"label": "Person", "label_plural": "People", "title_field": "name",
                   "fields": {"name": {"type": "text", "required": True}, "role": {"type": "text"}}},
        "deal": {"label": "Deal", "label_plural": "Deals", "title_field": "name",
                 "fields": {"name": {"type": "text", "required": True},
                            **({"people": {"type": "many_to_many", "target": "person", "inverse": "deals"}}
                               if "people" not in deal_fields else {}),
                            **{k: v for k, v in deal_fields.items() if v is not None}}},
    }


def deals_pack(root: Path, version: str = "1.0.0", **deal_fields: Any) -> Path:
    return write_pack(root, "sales", version, entities(**deal_fields))


# --- pack validation ------------------------------------------------------------------------
BAD = """\
kind: entity
name: deal
fields:
  name:
    type: text
  people:
    type: many_to_many
    target: persn
  owners:
    type: many_to_many
    target: person
    inverse: name
  helpers:
    type: many_to_many
    target: person
    inverse: deals
  advisers:
    type: many_to_many
    target: person
    inverse: deals
  tagged:
    type: many_to_many
    target: person
    unique: true
    default: [1]
"""
PERSON = """\
kind: entity
name: person
fields:
  name:
    type: text
"""


def test_bad_definitions_are_refused_at_their_file_and_line(tmp_path: Path) -> None:
    pack = write_files_pack(tmp_path, {"entities/deal.yaml": BAD, "entities/person.yaml": PERSON},
                            name="sales", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    where = "entities/deal.yaml"
    assert f"{where}:6:3: fields.people: target 'persn' is not an entity (did you mean 'person'?)" \
        in result.output
    assert f"{where}:9:3: fields.owners: inverse: 'name' is already a field of person" in result.output
    assert f"{where}:17:3: fields.advisers: inverse: 'deals' is already the inverse name of deal.helpers " \
        "on person" in result.output
    assert f"{where}:21:3: fields.tagged: a many_to_many field is kept in a table of its own" in result.output
    assert f"{where}:21:3: fields.tagged: default: a many_to_many field has no default" in result.output
    loose = write_files_pack(tmp_path / "loose", {"entities/deal.yaml": BAD.split("  people:")[0] + (
        "  loose:\n    type: many_to_many\n")}, name="sales", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(loose)], catch_exceptions=False)
    assert f"{where}:6:3: fields.loose: missing required key 'target'" in result.output


# --- plan, apply, retire, purge --------------------------------------------------------------
def junction_rows(engine: sa.Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            f"SELECT source_id, target_id FROM {JUNCTION} ORDER BY source_id, target_id"))]


def test_install_makes_a_junction_table_with_keys_that_cascade(engine: sa.Engine, registry: FieldTypeRegistry,
                                                               tmp_path: Path) -> None:
    installation = plan(engine, registry, deals_pack(tmp_path))
    assert not installation.plan.blocked
    created = [c for c in installation.plan.changes if c.action == "create apart table"]
    assert [c.summary for c in created] == [
        f"create table {JUNCTION} for many_to_many field deal.people"]
    assert any("CREATE TABLE" in s and JUNCTION in s for s in created[0].sql)
    installer.install(engine, installation, author="test")
    inspector = sa.inspect(engine)
    assert "people" not in {c["name"] for c in inspector.get_columns("x_deal")}  # no column
    assert inspector.get_pk_constraint(JUNCTION)["constrained_columns"] == ["source_id", "target_id"]
    keys = {fk["constrained_columns"][0]: fk for fk in inspector.get_foreign_keys(JUNCTION)}
    assert keys["source_id"]["referred_table"] == "x_deal"
    assert keys["target_id"]["referred_table"] == "x_person"
    assert all(fk["options"].get("ondelete") == "CASCADE" for fk in keys.values())




def seed(engine: sa.Engine) -> None:
    """Two people and a deal linking both, written straight into the tables."""
    now = NOW
    with engine.begin() as conn:
        for table, rows in (("x_person", [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob"}]),
                            ("x_deal", [{"id": 1, "name": "Big"}])):
            conn.execute(sa.table(table, sa.column("id"), sa.column("name"), sa.column("created_at"),
                                  sa.column("updated_at")).insert(),
                         [{**r, "created_at": now, "updated_at": now} for r in rows])
        conn.execute(sa.text(f"INSERT INTO {JUNCTION} (source_id, target_id) VALUES (1, 1), (1, 2)"))


def test_retire_keeps_the_links_restore_brings_them_back_purge_drops_them(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, deals_pack(tmp_path))
    seed(engine)
    retired = plan(engine, registry, deals_pack(tmp_path, "2.0.0", people=None))
    [change] = [c for c in retired.plan.changes if c.field == "people"]
    assert change.action == "retire column" and "its table and data are kept" in change.summary
    assert not change.sql
    installer.install(engine, retired, author="test")
    assert junction_rows(engine) == [(1, 1), (1, 2)]
    restored = plan(engine, registry, deals_pack(tmp_path, "3.0.0"))
    assert [c.action for c in restored.plan.changes if c.field == "people"] == ["restore column"]
    installer.install(engine, restored, author="test")
    assert junction_rows(engine) == [(1, 1), (1, 2)]
    install(engine, registry, deals_pack(tmp_path, "4.0.0", people=None))
    purged = plan(engine, registry, deals_pack(tmp_path, "5.0.0", people=None), purge=(("deal", "people"),))
    [change] = [c for c in purged.plan.changes if c.field == "people"]
    assert change.action == "drop apart table" and any(f"DROP TABLE {JUNCTION}" in s for s in change.sql)
    assert change.risks[0].message == f"purge deletes the 2 rows of {JUNCTION} for good"
    installer.install(engine, purged, author="test")
    assert not sa.inspect(engine).has_table(JUNCTION)


def test_rename_moves_the_table_and_a_new_target_is_refused_while_links_exist(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, deals_pack(tmp_path))
    seed(engine)
    renamed = {"type": "many_to_many", "target": "person", "renamed_from": "people"}
    install(engine, registry, deals_pack(tmp_path, "2.0.0", people=None, team=renamed))
    assert not sa.inspect(engine).has_table(JUNCTION)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM x_deal__team")).scalar_one() == 2
    other = write_pack(tmp_path / "v3", "sales", "3.0.0", {
        **entities(people=None, team={"type": "many_to_many", "target": "deal"})})
    refused = plan(engine, registry, other)
    assert refused.plan.blocked
    [change] = [c for c in refused.plan.changes if c.field == "team"]
    assert "cannot convert its 2 stored rows" in change.risks[0].message


# --- API, forms, pages, CSV, OpenAPI --------------------------------------------------------
@pytest.fixture
def sales(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
          tmp_path: Path) -> Iterator[TestClient]:
    install(engine, registry, deals_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def make(client: TestClient, entity: str, **values: object) -> int:
    response = client.post(f"/api/v1/{entity}", json=values)
    assert response.status_code == 201, response.text
    made: int = response.json()["id"]
    return made


def patch(client: TestClient, record: int, **values: object) -> Any:
    """A PATCH of the deal's current version."""
    version = client.get(f"/api/v1/deal/{record}").json()["version"]
    return client.patch(f"/api/v1/deal/{record}", json={**values, "version": version})


def linked(client: TestClient, record: int) -> list[int]:
    return [p["id"] for p in client.get(f"/api/v1/deal/{record}").json()["people"]]


def test_api_round_trip_add_remove_and_titles(sales: TestClient) -> None:
    ann, bob, cy = (make(sales, "person", name=n) for n in ("Ann", "Bob", "Cy"))
    deal = sales.post("/api/v1/deal", json={"name": "Big", "people": [bob, {"id": ann}]})
    assert deal.status_code == 201, deal.text
    assert deal.json()["people"] == [{"id": ann, "title": "Ann"}, {"id": bob, "title": "Bob"}]
    made = deal.json()["id"]
    changed = patch(sales, made, people={"add": [cy], "remove": [ann]})
    assert changed.status_code == 200, changed.text
    assert [p["title"] for p in changed.json()["people"]] == ["Bob", "Cy"]
    assert changed.json()["version"] == 2
    assert patch(sales, made, people=[ann]).json()["people"] == [{"id": ann, "title": "Ann"}]
    assert patch(sales, made, people=None).json()["people"] == []
    assert patch(sales, made, people={"add": [ann, bob]}).status_code == 200
    assert linked(sales, made) == [ann, bob]
    history = sales.get(f"/api/v1/deal/{made}/history").json()["data"]
    assert [e["version"] for e in history] == [1, 2, 3, 4, 5]  # each change of the links is versioned
    assert [link["id"] for link in history[-1]["changes"]["people"][1]] == [ann, bob]
    listed = sales.get("/api/v1/deal").json()["data"]
    assert [p["title"] for p in listed[0]["people"]] == ["Ann", "Bob"]


def test_links_to_missing_records_are_refused_naming_the_field_and_id(sales: TestClient) -> None:
    ann = make(sales, "person", name="Ann")
    refused = sales.post("/api/v1/deal", json={"name": "Big", "people": [ann, 9999]})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"]["people"] == ["there is no person with id 9999"]
    made = make(sales, "deal", name="Small", people=[ann])
    refused = patch(sales, made, people={"add": [8888]})
    assert refused.status_code == 422
    assert "there is no person with id 8888" in refused.json()["errors"]["people"]
    assert linked(sales, made) == [ann]  # nothing refused was kept


@pytest.mark.parametrize("value", [True, 2**70, -1, 0, "x", [True], [1.5], {"add": 3}, {"drop": [1]},
                                   {"add": [1], "remove": [1]}, [[1]], {"n": 3}, list(range(1, 1200))],
                         ids=lambda v: repr(v)[:30])
def test_hostile_values_are_refused_never_a_server_error(sales: TestClient, value: object) -> None:
    refused = sales.post("/api/v1/deal", json={"name": "Odd", "people": value})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"]["people"]


def test_deleting_either_side_removes_the_links(sales: TestClient, engine: sa.Engine) -> None:
    ann, bob = make(sales, "person", name="Ann"), make(sales, "person", name="Bob")
    one = make(sales, "deal", name="One", people=[ann, bob])
    two = make(sales, "deal", name="Two", people=[bob])
    assert len(junction_rows(engine)) == 3
    version = sales.get(f"/api/v1/person/{bob}").json()["version"]
    assert sales.delete(f"/api/v1/person/{bob}", headers={"If-Match": str(version)}).status_code == 204
    assert junction_rows(engine) == [(one, ann)]
    assert linked(sales, two) == []
    version = sales.get(f"/api/v1/deal/{one}").json()["version"]
    assert sales.delete(f"/api/v1/deal/{one}", headers={"If-Match": str(version)}).status_code == 204
    assert junction_rows(engine) == []


def test_related_lists_page_both_sides(sales: TestClient) -> None:
    people = [make(sales, "person", name=f"P{i}") for i in range(5)]
    big = make(sales, "deal", name="Big", people=people)
    small = make(sales, "deal", name="Small", people=people[:1])
    make(sales, "deal", name="None")

    def titles(url: str, **params: str) -> tuple[list[str], Any]:
        response = sales.get(url, params=params)
        assert response.status_code == 200, response.text
        return [r["_title"] for r in response.json()["data"]], response.json()

    first, body = titles(f"/api/v1/deal/{big}/related/people", sort="name", limit="2", count="true")
    assert first == ["P0", "P1"] and body["count"] == 5
    rest, _ = titles(f"/api/v1/deal/{big}/related/people", sort="name", limit="10", after=body["next_cursor"])
    assert rest == ["P2", "P3", "P4"]
    assert titles(f"/api/v1/person/{people[0]}/related/deals", sort="name")[0] == ["Big", "Small"]
    assert titles(f"/api/v1/person/{people[4]}/related/deals")[0] == ["Big"]
    assert titles(f"/api/v1/deal/{small}/related/people", filter='name = "P0"')[0] == ["P0"]
    unknown = sales.get(f"/api/v1/person/{people[0]}/related/nothing")
    assert unknown.status_code == 400 and "deals" in unknown.text
    assert sales.get("/api/v1/deal/99999/related/people").status_code == 404


def test_openapi_describes_the_links_and_both_related_lists(sales: TestClient) -> None:
    document = sales.get("/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]
    shown = schemas["Deal"]["properties"]["people"]
    assert {"type": "array", "items": {"type": "object", "required": ["id", "title"], "properties": {
        "id": {"type": "integer", "minimum": 1}, "title": {"type": "string"}}}} in shown["anyOf"]
    given = next(s for s in schemas["DealInput"]["properties"]["people"]["anyOf"] if s.get("anyOf"))
    assert {"type": "object", "additionalProperties": False, "minProperties": 1,
            "properties": {"add": {"type": "array", "items": {"type": "integer", "minimum": 1,
                                                               "maximum": 2**63 - 1},
                                   "maxItems": 1000, "uniqueItems": True},
                           "remove": {"type": "array", "items": {"type": "integer", "minimum": 1,
                                                                  "maximum": 2**63 - 1},
                                      "maxItems": 1000, "uniqueItems": True}},
            "description": "links to add and to remove, the others kept"} in given["anyOf"]
    assert "/api/v1/deal/{id}/related/people" in document["paths"]
    assert "/api/v1/person/{id}/related/deals" in document["paths"]
    assert "/api/v1/person/{id}/related/deal.people" not in document["paths"]


def test_form_multi_select_saves_and_pages_show_linked_lists_on_both_sides(sales: TestClient) -> None:
    ann, bob, cy = (make(sales, "person", name=n) for n in ("Ann", "Bob", "Cy"))
    form = sales.get("/e/deal/new").text
    assert 'name="people" aria-describedby="error-people"' in form and "multiple" in form
    assert f'<option value="{ann}">Ann</option>' in form
    made = sales.post("/e/deal/new", data={"name": "Big", "people": [str(ann), str(cy)]},
                      follow_redirects=False)
    assert made.status_code == 303, made.text
    deal = int(made.headers["location"].rsplit("/", 1)[1])
    assert linked(sales, deal) == [ann, cy]
    page = sales.get(f"/e/deal/{deal}").text
    assert f'<a href="/e/person/{ann}">Ann</a>, <a href="/e/person/{cy}">Cy</a>' in page  # the value
    assert 'id="linked-people"' in page and 'aria-label="Unlink Cy"' in page
    edit = sales.get(f"/e/deal/{deal}/edit").text
    assert f'<option value="{ann}" selected>Ann</option>' in edit
    assert f'<option value="{bob}">Bob</option>' in edit
    changed = sales.post(f"/e/deal/{deal}/edit", data={
        "name": "Big", "people": [str(bob)], "_was.people": [str(ann), str(cy)], "_was.name": "Big",
        "version": "1"}, follow_redirects=False)
    assert changed.status_code == 303, changed.text
    assert linked(sales, deal) == [bob]
    # link and unlink from the person's page (the inverse side) and from the deal's
    person_page = sales.get(f"/e/person/{ann}").text
    assert 'id="linked-deals"' in person_page and f'<option value="{deal}">Big</option>' in person_page
    done = sales.post(f"/e/person/{ann}/links/deals", data={"action": "link", "other": str(deal)},
                      follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/e/person/{ann}#linked-deals"
    assert linked(sales, deal) == [ann, bob]
    assert sales.post(f"/e/deal/{deal}/links/people", data={"action": "unlink", "other": str(bob)},
                      follow_redirects=False).status_code == 303
    assert linked(sales, deal) == [ann]
    refused = sales.post(f"/e/deal/{deal}/links/people", data={"action": "link", "other": "9999"})
    assert refused.status_code == 422 and "there is no person with id 9999" in refused.text
    refused = sales.post(f"/e/person/{ann}/links/deals", data={"action": "link", "other": "9999"})
    assert refused.status_code == 422 and "there is no deal with id 9999" in refused.text
    refused = sales.post(f"/e/deal/{deal}/links/people", data={"action": "link", "other": str(deal + 100)},
                         headers={"HX-Request": "true"})
    assert refused.status_code == 422
    assert linked(sales, deal) == [ann]


def test_search_keeps_the_chosen_records_of_a_multi_select(sales: TestClient) -> None:
    ann, bob = make(sales, "person", name="Ann Lee"), make(sales, "person", name="Bob Ray")
    found = sales.get("/e/person/options", params=[("q", "Bob"), ("keep", "people"), ("multiple", "1"),
                                                   ("people", str(ann))])
    assert found.status_code == 200
    assert f'<option value="{ann}" selected>Ann Lee</option>' in found.text
    assert f'<option value="{bob}">Bob Ray</option>' in found.text


def test_csv_export_shows_the_linked_titles(sales: TestClient) -> None:
    ann, bob = make(sales, "person", name="Ann"), make(sales, "person", name="Bob")
    make(sales, "deal", name="Big", people=[bob, ann])
    make(sales, "deal", name="None")
    rows = list(csv.reader(io.StringIO(sales.get("/e/deal/export.csv?sort=name").text)))
    assert rows[0] == ["id", "Name", "People"]
    assert [r[1:] for r in rows[1:]] == [["Big", "Ann, Bob"], ["None", ""]]



# --- the rule language ------------------------------------------------------------------------
def test_rules_check_the_links_and_refuse_what_they_cannot_mean(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, deals_pack(tmp_path))
    with engine.connect() as conn:
        _, metamodel = revisions.current_metamodel(conn)
    for good in ("3 in people", "id not in people", "count(people) > 2", "people is blank",
                 'any(p in people: p.role = "buyer" and p.name starts_with "A")'):
        check(good, metamodel, "deal", registry=registry)
    for bad, message in (
            ('people = 3', "'people' is a list of links to person: use 'x in people'"),
            ('people.name = "x"', "'people' is a list of links to person"),
            ('"x" in people', "cannot look for a text among links to person"),
            ("count(name)", "count() counts the links of a many-to-many field"),
            ('any(p in name: p.role = "x")', "'name' is not one"),
            ('any(p in people: role = "x")', "name the linked record's fields as p.<field> (a person)"),
            ('any(p in people: p.nothing = "x")', "unknown field 'nothing' on person"),
            ("any(p in people: p.name)", "any() needs a condition")):
        with pytest.raises(RuleError) as refused:
            check(bad, metamodel, "deal", registry=registry)
        assert message in str(refused.value), (bad, str(refused.value))


ROLES = ("buyer", "user", None)
link_sets = st.lists(st.lists(st.integers(1, 4), max_size=4, unique=True), min_size=1, max_size=6)
rules = st.one_of(
    st.builds("{} in people".format, st.integers(1, 5)),
    st.builds("{} not in people".format, st.integers(1, 5)),
    st.just("id in people"),
    st.builds("count(people) {} {}".format, st.sampled_from(["=", "!=", "<", ">=", ">"]), st.integers(0, 4)),
    st.just("people is blank"), st.just("people is not blank"),
    st.builds('any(p in people: p.role = "{}")'.format, st.sampled_from(["buyer", "user"])),
    st.just('any(p in people: p.role is blank)'),
    st.just('any(p in people: p.role != "buyer") and count(people) < 3'),
)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(links=link_sets, rule=rules, negate=st.booleans())
def test_rule_filters_select_the_same_records_in_sql_and_python(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path_factory: pytest.TempPathFactory,
        links: list[list[int]], rule: str, negate: bool) -> None:
    if not sa.inspect(engine).has_table(JUNCTION):  # once per database, not per example
        install(engine, registry, deals_pack(tmp_path_factory.mktemp("sales")))
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
    runtime = build_runtime(number, metamodel, registry)
    entities = compile_entities(metamodel.entities, runtime.tables, registry)
    deal, person = entities["deal"], entities["person"]
    junction = runtime.tables.apart("deal", "people")
    people = {i: {"id": i, "name": f"P{i}", "role": ROLES[i % 3]} for i in range(1, 5)}
    with engine.begin() as conn:
        conn.execute(junction.delete())
        conn.execute(deal.table.delete())
        conn.execute(person.table.delete())
        conn.execute(person.table.insert(), [{**p, "created_at": NOW, "updated_at": NOW, "version": 1}
                                             for p in people.values()])
        conn.execute(deal.table.insert(), [{"id": i, "name": f"D{i}", "created_at": NOW, "updated_at": NOW,
                                            "version": 1} for i in range(1, len(links) + 1)])
        rows = [{"source_id": i, "target_id": t} for i, targets in enumerate(links, start=1) for t in targets]
        if rows:
            conn.execute(junction.insert(), rows)
    text = f"not ({rule})" if negate else rule
    checked = check(text, metamodel, "deal", registry=registry)
    closure = compile_python(checked.typed)
    context = RuleContext(now=NOW, lookup=lambda entity, key: people.get(key) if entity == "person" else None)
    records = [{"id": i, "name": f"D{i}", "people": tuple(sorted(targets))}
               for i, targets in enumerate(links, start=1)]
    with engine.connect() as conn:
        where = SqlCompiler(runtime.tables, engine.dialect.name, registry).condition(checked.typed, "deal")
        in_sql = set(conn.execute(sa.select(deal.table.c.id).where(where(context))).scalars())
    in_python = {r["id"] for r in records if closure(r, context) is True}
    assert in_python == in_sql, f"{text}: Python {sorted(in_python)}, SQL {sorted(in_sql)}"
    if text == 'any(p in people: p.role = "buyer")':
        assert in_sql == {i for i, targets in enumerate(links, start=1) if any(t % 3 == 0 for t in targets)}


def test_list_filters_by_links(sales: TestClient) -> None:
    ann = make(sales, "person", name="Ann", role="buyer")
    bob = make(sales, "person", name="Bob", role="user")
    both = make(sales, "deal", name="Both", people=[ann, bob])
    one = make(sales, "deal", name="One", people=[bob])
    none = make(sales, "deal", name="None")

    def ids(rule: str) -> list[int]:
        response = sales.get("/api/v1/deal", params={"filter": rule})
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json()["data"])
    assert ids(f"{ann} in people") == [both]
    assert ids("count(people) >= 1") == sorted([both, one])
    assert ids("people is blank") == [none]
    assert ids('any(p in people: p.role = "buyer")') == [both]
    assert ids('not any(p in people: p.role = "buyer")') == sorted([one, none])
    refused = sales.get("/api/v1/deal", params={"filter": "people = 1"})
    assert refused.status_code == 400 and "is a list of links" in refused.text


# --- link attributes: `through` a link entity ---------------------------------------------------
def roles_pack(root: Path, version: str = "1.0.0", **link: Any) -> Path:
    """Deals link people through `deal_person` records, each with the person's role on the deal."""
    defined = entities(people=None, contacts={"type": "many_to_many", "target": "person",
                                              "through": "deal_person", "inverse": "deal_links"})
    defined["deal_person"] = {
        "label": "Deal person", "label_plural": "Deal people",
        "fields": {"deal": {"type": "reference", "target": "deal", "required": True, "on_delete": "cascade"},
                   "person": {"type": "reference", "target": "person", "required": True,
                              "on_delete": "cascade"},
                   "role": {"type": "choice", "options": [{"key": "buyer"}, {"key": "user"}]}},
        "unique": [["deal", "person"]], **link}
    return write_pack(root, "sales", version, defined)


@pytest.fixture
def roles(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
          tmp_path: Path) -> Iterator[TestClient]:
    install(engine, registry, roles_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def test_links_with_attributes_are_link_records(roles: TestClient, engine: sa.Engine) -> None:
    assert not sa.inspect(engine).has_table("x_deal__contacts")  # the link entity's table holds them
    ann, bob = make(roles, "person", name="Ann"), make(roles, "person", name="Bob")
    deal = make(roles, "deal", name="Big")
    make(roles, "deal_person", deal=deal, person=ann, role="buyer")
    link = make(roles, "deal_person", deal=deal, person=bob, role="user")
    assert roles.get(f"/api/v1/deal/{deal}").json()["contacts"] == [{"id": ann, "title": "Ann"},
                                                                   {"id": bob, "title": "Bob"}]
    twice = roles.post("/api/v1/deal_person", json={"deal": deal, "person": ann, "role": "user"})
    assert twice.status_code == 422, twice.text  # one link per pair
    refused = patch(roles, deal, contacts={"add": [bob]})
    assert refused.status_code == 422
    assert "links with attributes are deal_person records" in refused.json()["errors"]["contacts"][0]
    # the link's attribute is edited on the link record; the related lists read the links
    version = roles.get(f"/api/v1/deal_person/{link}").json()["version"]
    assert roles.patch(f"/api/v1/deal_person/{link}", json={"role": "buyer", "version": version}
                       ).status_code == 200
    assert [r["_title"] for r in roles.get(f"/api/v1/deal/{deal}/related/contacts").json()["data"]] \
        == ["Ann", "Bob"]
    assert [r["_title"] for r in roles.get(f"/api/v1/person/{ann}/related/deal_links").json()["data"]] \
        == ["Big"]
    buyers = roles.get(f"/api/v1/deal/{deal}/related/deal_person.deal", params={"filter": 'role = "buyer"'})
    assert sorted(r["person"]["id"] for r in buyers.json()["data"]) == [ann, bob]
    assert [r["id"] for r in roles.get("/api/v1/deal", params={
        "filter": 'any(c in contacts: c.name = "Bob") and count(contacts) = 2'}).json()["data"]] == [deal]
    page = roles.get(f"/e/deal/{deal}").text
    assert 'id="linked-contacts"' in page and "Unlink" not in page and 'class="link-form"' not in page
    assert "Add deal person" in page  # the link entity's related list, with its role column
    form = roles.get(f"/e/deal/{deal}/edit").text
    assert '<p id="f-contacts" class="readonly">Ann, Bob</p>' in form
    saved = roles.post(f"/e/deal/{deal}/edit", data={"name": "Bigger", "_was.name": "Big", "version": "1"},
                       follow_redirects=False)
    assert saved.status_code == 303, saved.text
    version = roles.get(f"/api/v1/person/{bob}").json()["version"]
    assert roles.delete(f"/api/v1/person/{bob}", headers={"If-Match": str(version)}).status_code == 204
    contacts = roles.get(f"/api/v1/deal/{deal}").json()["contacts"]
    assert [c["id"] for c in contacts] == [ann]  # the link record went with the person (cascade)


def test_a_link_entity_must_hold_the_pair_once(engine: sa.Engine, registry: FieldTypeRegistry,
                                               tmp_path: Path) -> None:
    def problems(**link: Any) -> str:
        pack = roles_pack(tmp_path / str(len(link)) / next(iter(link), "x"), **link)
        return CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False).output
    assert "through: deal_person must keep one link per pair: add `unique: [[deal, person]]` to it" \
        in problems(unique=[])
    missing = problems(fields={"deal": {"type": "reference", "target": "deal"}, "who": {"type": "text"}},
                       unique=[])
    assert "through: deal_person needs a reference field 'person' to person" in missing


def test_sample_data_links_records(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
                                   tmp_path: Path) -> None:
    from slatecrm.platform.records.service import RecordsService
    from slatecrm.platform.sampledata import Generator
    from slatecrm.platform.storage.runtime import RuntimeHolder

    install(engine, registry, deals_pack(tmp_path))
    records = RecordsService(engine, RuntimeHolder(engine, registry), registry)
    report = Generator(records, seed=4).run(12)
    assert report.created == {"person": 12, "deal": 12}
    deals = records.page("deal").records
    assert sum(1 for d in deals if d.values["people"]) >= 6
    assert all(1 <= len(d.values["people"]) <= 3 for d in deals if d.values["people"])
