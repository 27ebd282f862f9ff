"""Composite indexes (`indexes:` and `unique:` lists of an entity) changed and dropped on
SQLite and PostgreSQL; a unique one over duplicated values is refused naming the values;
a field without a column of its own cannot be part of one (file:line)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import ColumnSpec, FieldType, FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import Field
from slatecrm.platform import installer

from .dbstate import drift
from .packs import install, plan, write_pack
from .test_schema_engine import insert


def desk(tmp_path: Path, version: str, **options: Any) -> Path:
    return write_pack(tmp_path, "desk", version, {"task": {"title_field": "subject", "fields": {
        "subject": {"type": "text"},
        "status": {"type": "choice", "options": [{"key": "open"}, {"key": "done"}]},
        "due": {"type": "date"},
        "budget": {"type": "currency", "currency": "EUR"},
    }, **options}})


def indexes(engine: sa.Engine) -> dict[str, tuple[tuple[str, ...], bool]]:
    found = sa.inspect(engine).get_indexes("x_task")
    return {i["name"] or "": (tuple(str(c) for c in i["column_names"]), bool(i["unique"])) for i in found}


def test_a_changed_composite_index_is_made_again_and_a_removed_one_dropped(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    tie = ("id",) if engine.dialect.name == "postgresql" else ()
    install(engine, registry, desk(tmp_path, "1.0.0", indexes=[["status", "due"]]))
    assert indexes(engine)["ix_x_task_status__due"] == (("status", "due", *tie), False)
    insert(engine, registry, "task", [{"subject": "a", "status": "open"}])
    # Reordered and widened: a new name, the old index dropped first.
    changed = plan(engine, registry, desk(tmp_path, "1.1.0", indexes=[["due", "status", "budget"]])).plan
    assert [(c.action, c.field) for c in changed.changes] == [
        ("drop index", "status, due"), ("add index", "due, status, budget")]
    install(engine, registry, desk(tmp_path, "1.1.0", indexes=[["due", "status", "budget"]]))
    found = indexes(engine)
    assert "ix_x_task_status__due" not in found
    # A currency brings its code column along.
    assert found["ix_x_task_due__status__budget"] == (("due", "status", "budget", "budget__currency", *tie),
                                                      False)
    install(engine, registry, desk(tmp_path, "1.2.0"))
    assert not [name for name in indexes(engine) if "__" in name]
    assert drift(engine) == []


def test_a_unique_combination_over_duplicates_names_the_values(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, desk(tmp_path, "1.0.0"))
    insert(engine, registry, "task", [
        {"subject": "call", "status": "open"}, {"subject": "call", "status": "open"},
        {"subject": "mail", "status": "done"}, {"subject": "call", "status": "open"},
        {"subject": "mail", "status": "done"}, {"subject": "call", "status": None}])
    refused = plan(engine, registry, desk(tmp_path, "1.1.0", unique=[["subject", "status"]])).plan
    assert refused.blocked
    [risk] = [r for c in refused.changes for r in c.risks]
    assert risk.message == ("subject, status become unique together, but 5 rows share their values with "
                            "another row: ids 1, 2, 3, 4, 5; duplicated: (subject 'call', status 'open') "
                            "in 3 rows, (subject 'mail', status 'done') in 2 rows")
    assert "ux_x_task_subject__status" not in indexes(engine)  # nothing ran
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM x_task WHERE id IN (2, 4, 5)"))
    install(engine, registry, desk(tmp_path, "1.1.0", unique=[["subject", "status"]]))
    assert indexes(engine)["ux_x_task_subject__status"] == (("subject", "status"), True)


class Elsewhere(FieldType):
    """A type whose values live outside the entity's table (as links in a table of their own)."""

    name = "elsewhere"
    label = "Elsewhere"

    def columns(self, field: Field) -> list[ColumnSpec]:
        return []


def test_a_field_without_a_column_cannot_be_indexed(registry: FieldTypeRegistry, tmp_path: Path) -> None:
    wider = FieldTypeRegistry([*registry, Elsewhere()])
    pack = desk(tmp_path, "1.0.0", indexes=[["status", "links"]], unique=[["links", "subject"]])
    entity = pack / "entities" / "task.yaml"
    text = entity.read_text().replace('"subject": {', '"links": {"type": "elsewhere"},\n"subject": {')
    entity.write_text(text)
    with pytest.raises(DefinitionError) as refused:
        merge(installer.load_packs([str(pack)], wider), wider)
    found = sorted(str(p) for p in refused.value.problems)
    reason = ("field 'links': a elsewhere field has no column in the entity's table (its values are kept "
              "elsewhere) and cannot be unique or indexed")
    assert len(found) == 2 and all(p.endswith(reason) for p in found), found
    located = re.compile(r"/entities/task\.yaml:[0-9]+:[0-9]+: (unique|indexes)\[0\]: ")
    assert all(located.search(p) for p in found), found


def descending_columns(engine: sa.Engine, index: str) -> list[str]:
    """The columns `index` holds descending, as the database says."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            found = {i["name"]: i for i in sa.inspect(conn).get_indexes("x_task")}[index]
            return sorted(c for c, how in (found.get("column_sorting") or {}).items() if "desc" in how)
        sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = :n"),
                           {"n": index}).scalar_one()
    return sorted(re.findall(r'"?(\w+)"? DESC', sql))


def test_a_descending_column_serves_a_list_sorted_both_ways(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    from .defaults import make_app, signed_in

    install(engine, registry, desk(tmp_path, "1.0.0", indexes=[["status", "-due"]]))
    assert descending_columns(engine, "ix_x_task_status__due__desc") == ["due"]
    assert drift(engine) == []
    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as http:
            for subject, due in (("a", "2026-01-02"), ("b", "2026-03-04"), ("c", "2026-02-03")):
                assert http.post("/api/v1/task", json={"subject": subject, "status": "open",
                                                       "due": due}).status_code == 201
            listed = http.get("/api/v1/task", params={"sort": "status,-due", "limit": 2})
            first = [r["subject"] for r in listed.json()["data"]]
            after = listed.json()["next_cursor"]
            rest = http.get("/api/v1/task", params={"sort": "status,-due", "after": after}).json()["data"]
            assert first + [r["subject"] for r in rest] == ["b", "c", "a"]
    finally:
        app.state.engine.dispose()
    # Another direction is another index: the old one dropped, the new one made.
    changed = plan(engine, registry, desk(tmp_path, "1.1.0", indexes=[["status", "due"]])).plan
    assert [(c.action, c.field) for c in changed.changes] == [
        ("drop index", "status, -due"), ("add index", "status, due")]
    install(engine, registry, desk(tmp_path, "1.1.0", indexes=[["status", "due"]]))
    assert descending_columns(engine, "ix_x_task_status__due") == []
    assert plan(engine, registry, desk(tmp_path, "1.1.0", indexes=[["status", "due"]])).plan.is_empty


def test_a_field_named_twice_in_an_index_is_refused(registry: FieldTypeRegistry, tmp_path: Path) -> None:
    def problems(**options: Any) -> list[str]:
        pack = desk(tmp_path / str(len(options) + len(str(options))), "1.0.0", **options)
        with pytest.raises(DefinitionError) as refused:
            merge(installer.load_packs([str(pack)], registry), registry)
        return [str(p) for p in refused.value.problems]

    [twice] = problems(indexes=[["due", "-due"]])
    assert re.search(r"entities/task\.yaml:[0-9]+:[0-9]+: indexes\[0\]: \[due, due\] names field 'due' "
                     "twice$", twice), twice
    # A unique combination has no direction (it is the same constraint either way).
    [signed] = problems(unique=[["subject", "-status"]])
    assert re.search(r"entities/task\.yaml:[0-9]+:[0-9]+: unique\[0\]\[1\]: '-status' is not a valid name",
                     signed), signed
