"""Composite `unique` and `indexes` of an entity, on SQLite and PostgreSQL: a junction
entity (person ⇄ event through attendance) refuses the same pair twice, through the API
(a 422 naming the fields) and through the plan (existing duplicates block it, by id)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .defaults import make_app, signed_in
from .packs import install, plan, write_pack
from .test_schema_engine import insert

JUNCTION = "x_attendance"


def events(tmp_path: Path, version: str, **attendance: Any) -> Path:
    return write_pack(tmp_path, "events", version, {
        "person": {"title_field": "name", "fields": {"name": {"type": "text", "required": True}}},
        "event": {"title_field": "name", "fields": {"name": {"type": "text", "required": True}}},
        "attendance": {"fields": {
            "person": {"type": "reference", "target": "person", "required": True},
            "event": {"type": "reference", "target": "event", "required": True},
            "role": {"type": "text"},
        }, **attendance},
    })


def indexes(engine: sa.Engine) -> dict[str, tuple[tuple[str, ...], bool]]:
    found = sa.inspect(engine).get_indexes(JUNCTION)
    return {i["name"] or "": (tuple(str(c) for c in i["column_names"]), bool(i["unique"])) for i in found}


def tie(engine: sa.Engine) -> tuple[str, ...]:
    """What ends a non-unique index's columns (tables.IndexSpec.columns_on)."""
    return ("id",) if engine.dialect.name == "postgresql" else ()


@pytest.fixture
def app_client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
               tmp_path: Path) -> Any:
    install(engine, registry, events(tmp_path, "1.0.0", unique=[["person", "event"]],
                                     indexes=[["event", "role"]]))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def test_the_same_pair_twice_is_a_422_naming_both_fields(app_client: TestClient,
                                                         engine: sa.Engine) -> None:
    assert indexes(engine)["ux_x_attendance_person__event"] == (("person", "event"), True)
    assert indexes(engine)["ix_x_attendance_event__role"] == (("event", "role", *tie(engine)), False)
    ada = app_client.post("/api/v1/person", json={"name": "Ada"}).json()["id"]
    bob = app_client.post("/api/v1/person", json={"name": "Bob"}).json()["id"]
    fair = app_client.post("/api/v1/event", json={"name": "Fair"}).json()["id"]
    first = app_client.post("/api/v1/attendance", json={"person": ada, "event": fair})
    assert first.status_code == 201, first.text
    other = app_client.post("/api/v1/attendance", json={"person": bob, "event": fair})
    assert other.status_code == 201, other.text
    again = app_client.post("/api/v1/attendance", json={"person": ada, "event": fair, "role": "x"})
    assert again.status_code == 422, again.text
    message = f"attendance {first.json()['id']} already has this combination of Person and Event"
    assert again.json()["errors"] == {"person": [message], "event": [message]}
    moved = app_client.patch(f"/api/v1/attendance/{other.json()['id']}",
                             json={"person": ada, "version": 1})
    assert moved.status_code == 422 and moved.json()["errors"]["event"] == [message]
    # The form's validate-on-change says so before saving, as saving would.
    checked = app_client.post("/e/attendance/validate", data={"person": str(ada), "event": str(fair)},
                              headers={"Accept": "application/json"})
    assert checked.json()["errors"] == {"person": [message], "event": [message]}
    # Blank values never conflict (the index treats NULLs as distinct): role is optional.
    assert app_client.patch(f"/api/v1/attendance/{other.json()['id']}",
                            json={"role": "speaker", "version": 1}).status_code == 200
    listed = app_client.get("/api/v1/attendance").json()["data"]
    assert sorted((r["person"]["id"], r["event"]["id"]) for r in listed) == [(ada, fair), (bob, fair)]


def test_a_pair_the_database_refuses_in_a_race_is_a_422_naming_both_fields(
        app_client: TestClient, engine: sa.Engine, registry: FieldTypeRegistry) -> None:
    # Two writers can both pass the check before writing; the unique index refuses the second.
    from slatecrm.platform.records.compiled import compile_entities
    from slatecrm.platform.records.constraints import composite_unique_errors
    from slatecrm.platform.storage.runtime import RuntimeHolder

    ada = app_client.post("/api/v1/person", json={"name": "Ada"}).json()["id"]
    fair = app_client.post("/api/v1/event", json={"name": "Fair"}).json()["id"]
    assert app_client.post("/api/v1/attendance", json={"person": ada, "event": fair}).status_code == 201
    runtime = RuntimeHolder(engine, registry).current()
    ce = compile_entities(runtime.metamodel.entities, runtime.tables, registry)["attendance"]
    with pytest.raises(sa.exc.IntegrityError) as refused:
        insert(engine, registry, "attendance", [{"person": ada, "event": fair}])
    message = "another Attendance already has this combination of Person and Event"
    assert composite_unique_errors(ce, refused.value) == {"person": [message], "event": [message]}
    with pytest.raises(sa.exc.IntegrityError) as other:  # not a composite: left to the caller
        insert(engine, registry, "attendance", [{"person": ada, "event": fair + 100}])
    assert composite_unique_errors(ce, other.value) is None


def test_adding_a_composite_unique_over_duplicate_pairs_is_refused_by_id(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, events(tmp_path, "1.0.0"))
    insert(engine, registry, "person", [{"name": "a"}, {"name": "b"}])
    insert(engine, registry, "event", [{"name": "a"}, {"name": "b"}])
    # ids 1..5: 1, 3 and 5 are the same pair; 4 has no event (a NULL never conflicts)
    insert(engine, registry, "attendance", [{"person": p, "event": e}
                                            for p, e in ((1, 1), (1, 2), (1, 1), (2, None), (1, 1))])
    refused = plan(engine, registry, events(tmp_path, "1.1.0", unique=[["person", "event"]]))
    assert refused.plan.blocked
    risks = [r.message for c in refused.plan.changes for r in c.risks]
    assert risks == ["person, event become unique together, but 3 rows share their values with "
                     "another row: ids 1, 3, 5; duplicated: (person 1, event 1) in 3 rows"]
    with engine.begin() as conn:
        conn.execute(sa.delete(sa.table(JUNCTION, sa.column("id"))).where(sa.column("id").in_([3, 5])))
    install(engine, registry, events(tmp_path, "1.1.0", unique=[["person", "event"]]))
    assert indexes(engine)["ux_x_attendance_person__event"] == (("person", "event"), True)
    with pytest.raises(sa.exc.IntegrityError):
        insert(engine, registry, "attendance", [{"person": 1, "event": 1}])
    # Dropping the combination drops its index; the rows stay.
    install(engine, registry, events(tmp_path, "1.2.0", indexes=[["event", "person"]]))
    assert "ux_x_attendance_person__event" not in indexes(engine)
    assert indexes(engine)["ix_x_attendance_event__person"] == (("event", "person", *tie(engine)), False)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sa.table(JUNCTION))).scalar() == 3


def test_the_plan_shows_the_index_sql(engine: sa.Engine, registry: FieldTypeRegistry,
                                      tmp_path: Path) -> None:
    install(engine, registry, events(tmp_path, "1.0.0"))
    planned = plan(engine, registry, events(tmp_path, "1.1.0", unique=[["person", "event"]]))
    [change] = planned.plan.changes
    assert (change.action, change.entity, change.field) == ("add index", "attendance", "person, event")
    assert change.sql == ("CREATE UNIQUE INDEX ux_x_attendance_person__event ON x_attendance "
                          "(person, event)",)


def test_renaming_a_field_of_a_combination_keeps_it_unique(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, events(tmp_path, "1.0.0", unique=[["person", "event"]]))
    insert(engine, registry, "person", [{"name": "a"}])
    insert(engine, registry, "event", [{"name": "a"}, {"name": "b"}])
    insert(engine, registry, "attendance", [{"person": 1, "event": 1}, {"person": 1, "event": 2}])
    renamed = events(tmp_path, "1.1.0", unique=[["person", "occasion"]])
    entity = renamed / "entities" / "attendance.yaml"
    entity.write_text(entity.read_text().replace('"event": {', '"occasion": {"renamed_from": "event", '))
    install(engine, registry, renamed)
    assert indexes(engine)["ux_x_attendance_person__occasion"] == (("person", "occasion"), True)
    assert "ux_x_attendance_person__event" not in indexes(engine)
    with pytest.raises(sa.exc.IntegrityError):
        insert(engine, registry, "attendance", [{"person": 1, "occasion": 2}])


def test_renaming_a_unique_field_keeps_it_unique(engine: sa.Engine, registry: FieldTypeRegistry,
                                                 tmp_path: Path) -> None:
    # The duplicate check before a unique index ran on the new column name, which does not
    # exist until the plan renames it.
    def fleet(version: str, name: str, **extra: str) -> Path:
        return write_pack(tmp_path, "fleet", version, {"vehicle": {"fields": {
            name: {"type": "text", "unique": True, **extra}}}})

    install(engine, registry, fleet("1.0.0", "plate"))
    insert(engine, registry, "vehicle", [{"plate": "A"}, {"plate": "B"}])
    install(engine, registry, fleet("1.1.0", "registration", renamed_from="plate"))
    found = {i["name"]: i["unique"] for i in sa.inspect(engine).get_indexes("x_vehicle")}
    assert found.get("ux_x_vehicle_registration")
    with pytest.raises(sa.exc.IntegrityError):
        insert(engine, registry, "vehicle", [{"registration": "A"}])


def test_an_extension_adds_a_combination_over_its_own_field(registry: FieldTypeRegistry,
                                                            tmp_path: Path) -> None:
    from slatecrm.metamodel.layering import merge
    from slatecrm.platform import installer

    seats = write_pack(tmp_path, "seating", "1.0.0", {}, requires={"events": "^1.0.0"}, extensions=[{
        "entity": "attendance", "fields": {"seat": {"type": "text"}},
        "unique": [["event", "seat"]], "indexes": [["seat", "person"]]}])
    packs = installer.load_packs([str(events(tmp_path, "1.0.0")), str(seats)], registry)
    attendance = merge(packs, registry).entity("attendance")
    assert attendance is not None
    assert [(k.fields, k.pack) for k in attendance.unique] == [(("event", "seat"), "seating")]
    assert [k.fields for k in attendance.indexes] == [("seat", "person")]


@pytest.mark.parametrize("count", ["12", "30"])
def test_sample_data_never_repeats_a_unique_pair(engine: sa.Engine, db_url: str,
                                                 registry: FieldTypeRegistry, tmp_path: Path,
                                                 count: str) -> None:
    import json

    from click.testing import CliRunner

    from slatecrm.platform.cli import main

    pack = events(tmp_path, "1.0.0", unique=[["person", "event"]])
    for args in (["init"], ["pack", "install", str(pack), "--yes"]):
        assert CliRunner().invoke(main, [*args, "--database", db_url]).exit_code == 0
    # The default packs' entities come first; attendance draws from `count` people and events.
    result = CliRunner().invoke(main, ["sample-data", "--database", db_url, "--count", count,
                                       "--json"])
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)["created"]["attendance"]
    with engine.connect() as conn:
        pairs = conn.execute(sa.text("SELECT person, event FROM x_attendance")).all()
    assert len(pairs) == made == len(set(pairs)) and made >= int(count) // 2
