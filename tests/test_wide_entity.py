"""An entity with 500 fields of every type installs, plans, applies and serves its form,
record page and lists on SQLite and PostgreSQL; the plan warns when a table nears what its
database takes (columns; PostgreSQL's row width) and refuses to go beyond, before any DDL
(storage/capacity.py, docs/packs.md "Limits of an entity's table")."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from faker import Faker

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.fieldtypes.base import SampleSource
from slatecrm.metamodel.model import ChoiceOption, Field
from slatecrm.platform.cli import main
from slatecrm.platform.storage import capacity, revisions
from slatecrm.platform.storage.capacity import MAX_COLUMNS

from .dbstate import drift, platform_rows, schema_snapshot
from .defaults import make_app, signed_in
from .packs import install, plan, write_pack

#: Settings a type needs to be defined (types not named here are used when they need none).
SETTINGS: dict[str, dict[str, Any]] = {
    "choice": {"options": [{"key": "a"}, {"key": "b"}]},
    "multi_choice": {"options": [{"key": "a"}, {"key": "b"}]},
    "reference": {"target": "place", "on_delete": "set_null"},
    "currency": {"currency": "EUR"},
    "auto_number": {"prefix": "W-"},
}
#: Types with one field only: a stage needs a pipeline of its own, an auto number a sequence.
ONCE = ("stage", "auto_number")


def field_types(registry: FieldTypeRegistry) -> list[str]:
    return [t.name for t in registry
            if t.name not in ONCE and (t.name in SETTINGS or not t.required_settings)]


def wide_fields(registry: FieldTypeRegistry, count: int) -> dict[str, dict[str, Any]]:
    """`count` fields cycling through every type (and one stage and one auto number)."""
    kinds = field_types(registry)
    fields: dict[str, dict[str, Any]] = {"name": {"type": "text", "required": True},
                                         "stage": {"type": "stage"},
                                         "number": {"type": "auto_number", "prefix": "W-"}}
    for i in range(count - len(fields)):
        kind = kinds[i % len(kinds)]
        fields[f"f{i}_{kind}"] = {"type": kind, **SETTINGS.get(kind, {})}
    return fields


def wide_pack(tmp_path: Path, registry: FieldTypeRegistry, version: str, count: int) -> Path:
    return write_pack(tmp_path, "wide", version, {
        "place": {"title_field": "name", "fields": {"name": {"type": "text"}}},
        "wide": {"title_field": "name", "fields": wide_fields(registry, count),
                 "pipelines": {"flow": {"field": "stage", "stages": [{"key": "new"}, {"key": "done"}]}}},
    })


def values(registry: FieldTypeRegistry, fields: dict[str, dict[str, Any]], place: int) -> dict[str, Any]:
    """A JSON value for every writable field, made up by its type (as sample data does)."""
    pick = SampleSource(random.Random(14), Faker(), dt.date(2026, 3, 1))
    body: dict[str, Any] = {}
    for name, doc in fields.items():
        field_type = registry[doc["type"]]
        settings = {k: v for k, v in doc.items() if k in field_type.settings_schema and k != "options"}
        if not field_type.writable or doc["type"] == "stage":
            continue
        if doc["type"] == "reference":
            body[name] = place
            continue
        field = Field(name, doc["type"], name, settings=settings,
                      choices=tuple(ChoiceOption(o["key"], o["key"]) for o in doc.get("options", ())))
        value = field_type.sample(field, pick)
        if value is not None:
            body[name] = field_type.to_json(field_type.coerce(value, field), field)
    body["name"] = "Widest"
    return body


@pytest.mark.slow
def test_an_entity_of_500_fields_installs_and_serves_its_pages(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    pack = wide_pack(tmp_path, registry, "1.0.0", 500)
    planned = plan(engine, registry, pack).plan
    assert not planned.blocked, [r.message for c in planned.changes for r in c.risks]
    install(engine, registry, pack)
    columns = sa.inspect(engine).get_columns("x_wide")
    assert len(columns) > 500
    assert drift(engine) == []
    fields = wide_fields(registry, 500)
    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as http:
            place = http.post("/api/v1/place", json={"name": "Lyon"}).json()["id"]
            body = values(registry, fields, place)
            assert len(body) > 400
            made = http.post("/api/v1/wide", json=body)
            assert made.status_code == 201, made.text[:2000]
            record = made.json()
            assert record["number"] == "W-00001" and record["stage"] == "new"
            got = http.get(f"/api/v1/wide/{record['id']}").json()
            assert {k: got[k] for k in body} == {k: record[k] for k in body}
            listed = http.get("/api/v1/wide", params={"limit": 5})
            assert listed.status_code == 200 and [r["id"] for r in listed.json()["data"]] == [record["id"]]
            form = http.get("/e/wide/new")
            assert form.status_code == 200 and form.text.count("<label") >= 400
            page = http.get(f"/e/wide/{record['id']}")
            assert page.status_code == 200 and "Widest" in page.text and "Lyon" in page.text
            last = list(fields)[-1]
            assert f'name="{last}' in http.get(f"/e/wide/{record['id']}/edit").text
            listed_page = http.get("/e/wide")
            assert listed_page.status_code == 200 and "Widest" in listed_page.text
            edited = http.patch(f"/api/v1/wide/{record['id']}", json={"f0_text": "changed", "version": 1})
            assert edited.status_code == 200, edited.text[:2000]
            exported = http.get("/e/wide/export.csv")
            assert exported.status_code == 200 and "changed" in exported.text
    finally:
        app.state.engine.dispose()
    # Adding fields to the wide table plans and applies like any other change.
    grown = wide_pack(tmp_path, registry, "1.1.0", 520)
    install(engine, registry, grown)
    # Each new field brings the columns its type keeps in the table (main and companions:
    # a currency's code, an all-day flag, a composite value's parts; none for one stored apart).
    with engine.connect() as conn:
        wide = revisions.current_metamodel(conn)[1].entity("wide")
    assert wide is not None
    added = [f for f in wide.fields if f.name in list(wide_fields(registry, 520))[500:]]
    assert len(added) == 20
    assert len(sa.inspect(engine).get_columns("x_wide")) == len(columns) + sum(
        0 if registry[f.type].stored_apart else len(registry[f.type].columns(f)) for f in added)
    assert plan(engine, registry, grown).plan.is_empty


def numbers(count: int) -> dict[str, dict[str, Any]]:
    """`count` integer fields: one column each, 8 fixed bytes each on PostgreSQL."""
    return {f"n{i}": {"type": "integer"} for i in range(count)}


def texts(count: int) -> dict[str, dict[str, Any]]:
    return {f"t{i}": {"type": "text"} for i in range(count)}


def risks(planned: Any) -> list[tuple[str, bool]]:
    return [(r.message, r.blocking) for c in planned.changes if c.action == "check table size"
            for r in c.risks]


@pytest.mark.slow
def test_the_plan_warns_near_the_column_limit_and_refuses_beyond(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    limit = MAX_COLUMNS[engine.dialect.name]
    system = 7
    near = int(limit * 0.8) - system  # text fields: no row-width concern on either database
    install(engine, registry, write_pack(tmp_path, "big", "1.0.0", {"big": {"fields": texts(10)}}))
    nearer = write_pack(tmp_path, "big", "1.1.0", {"big": {"fields": texts(near)}})
    warned = plan(engine, registry, nearer).plan
    found = risks(warned)
    assert not warned.blocked
    search = int(engine.dialect.name == "postgresql")  # the stored search vector of the texts
    expected = f"big: table x_big will have {near + system + search:,} columns ({near:,} for fields, " \
               f"0 companion, 0 of retired fields, 7 system"
    database = "PostgreSQL" if engine.dialect.name == "postgresql" else "SQLite"
    assert any(m.startswith(expected) and m.endswith(f"80% of the {limit:,} a {database} table takes")
               for m, refused in found if not refused), found
    over = limit - system - search + 1
    before = schema_snapshot(engine), platform_rows(engine)
    bigger = write_pack(tmp_path, "big", "1.2.0", {"big": {"fields": texts(over)}})
    found = risks(plan(engine, registry, bigger).plan)
    assert [refused for _, refused in found] == [True] + [False] * (len(found) - 1), found
    assert found[0][0].startswith(f"big: table x_big would have {limit + 1:,} columns ({over:,} for fields")
    assert f"more than the {limit:,} a {database} table takes; move fields to a related entity" in found[0][0]
    # The command refuses the plan before any DDL: nothing changed.
    result = CliRunner().invoke(main, ["pack", "install", str(bigger), "--yes", "--database", db_url],
                                catch_exceptions=False)
    assert result.exit_code == 3, result.output
    assert "refused: big: table x_big would have" in " ".join(result.output.split())
    assert (schema_snapshot(engine), platform_rows(engine)) == before


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_counts_dropped_columns_and_companions(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    fields: dict[str, dict[str, Any]] = {**texts(600), **{f"c{i}": {"type": "currency"} for i in range(300)}}
    install(engine, registry, write_pack(tmp_path, "big", "1.0.0", {"big": {"fields": fields}}))
    # Retype the 600 texts to long texts… same column; to integers: a new column each, the old dropped.
    retyped = {**{f"t{i}": {"type": "integer"} for i in range(600)},
               **{f"c{i}": {"type": "currency"} for i in range(300)}}
    planned = plan(engine, registry, write_pack(tmp_path, "big", "1.1.0", {"big": {"fields": retyped}})).plan
    found = risks(planned)
    # 7 system + 900 + 300 companion + 601 dropped: the retype's 600 old columns, and the search
    # vector (no field is searched any more) = 1,808
    assert planned.blocked, found
    assert found[0][0].startswith("big: table x_big would have 1,808 columns (900 for fields, "
                                  "300 companion, 0 of retired fields, 7 system, "
                                  "601 dropped but still counted by PostgreSQL)"), found


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_refuses_fixed_width_columns_wider_than_a_row(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "big", "1.0.0", {"big": {"fields": numbers(10)}}))
    warned = risks(plan(engine, registry, write_pack(tmp_path, "big", "1.1.0",
                                                     {"big": {"fields": numbers(820)}})).plan)
    assert [(m.split(":")[0], refused) for m, refused in warned] == [("big", False)], warned
    assert "of the 8,160 bytes of a PostgreSQL row" in warned[0][0]
    widest = write_pack(tmp_path, "big", "1.2.0", {"big": {"fields": numbers(1100)}})
    refused = plan(engine, registry, widest).plan
    assert refused.blocked
    [message] = [m for m, blocking in risks(refused) if blocking]
    assert message.startswith("big: the fixed-width columns of table x_big (whole numbers, dates, moments, "
                              "true/false, references) take 8,")
    assert "a record with them all filled could never be stored" in message


def test_the_column_limit_is_checked_on_every_change_of_the_table(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check with a limit of 60 columns (fast): companion and retired columns count."""
    monkeypatch.setitem(capacity.MAX_COLUMNS, engine.dialect.name, 60)
    search = int(engine.dialect.name == "postgresql")
    install(engine, registry, write_pack(tmp_path, "big", "1.0.0", {"big": {"fields": numbers(30)}}))
    # 7 system + 30 + 10 currencies (and their 10 codes) = 57 columns: 95% of 60
    money = {f"m{i}": {"type": "currency"} for i in range(10)}
    warned = plan(engine, registry, write_pack(tmp_path, "big", "1.1.0",
                                               {"big": {"fields": {**numbers(30), **money}}})).plan
    assert not warned.blocked
    assert next(m for m, _ in risks(warned)) == (
        "big: table x_big will have 57 columns (40 for fields, 10 companion, 0 of retired fields, "
        f"7 system), 95% of the 60 a {'PostgreSQL' if search else 'SQLite'} table takes")
    install(engine, registry, write_pack(tmp_path, "big", "1.1.0",
                                         {"big": {"fields": {**numbers(30), **money}}}))
    # Fields removed are retired: their columns stay, and count.
    refused = plan(engine, registry, write_pack(tmp_path, "big", "1.2.0",
                                                {"big": {"fields": {**numbers(20), **texts(4)}}})).plan
    assert refused.blocked
    [message] = [m for m, blocking in risks(refused) if blocking]
    # 24 fields + 30 retired (10 numbers, 10 currencies with their codes) + 7 system = 61
    assert message.startswith(f"big: table x_big would have {61 + search} columns (24 for fields, "
                              "0 companion, 30 of retired fields, 7 system")
    # A plan that leaves the table alone says nothing of it.
    assert plan(engine, registry, write_pack(tmp_path, "big", "1.1.0",
                                             {"big": {"fields": {**numbers(30), **money}}})).plan.is_empty
