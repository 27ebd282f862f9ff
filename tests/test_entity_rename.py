"""Renaming an entity (`renamed_from` on the entity), on SQLite and PostgreSQL: one planned,
transactional change renames its table with the rows, indexes, auto numbers, history, the
foreign keys pointing to it and the organisation's customisations naming it; a pack still
naming the old entity is refused at its file:line; a failure midway changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.platform import installer
from slatecrm.platform.storage.system import customisations, history, sequences

from .dbstate import drift, platform_rows, schema_snapshot
from .defaults import make_app, signed_in
from .packs import install, plan, write_pack


def ticket(**extra: Any) -> dict[str, Any]:
    return {"title_field": "subject", "fields": {
        "subject": {"type": "text", "required": True},
        "number": {"type": "auto_number", "prefix": "T-", "digits": 3},
        "status": {"type": "choice", "options": [{"key": "open"}, {"key": "closed"}]},
        "parent": {"type": "reference", "target": extra.pop("target", "ticket"), "on_delete": "set_null"},
    }, "indexes": [["status", "subject"]], **extra}


def support(tmp_path: Path, version: str, renamed: bool = False, comment_target: str | None = None) -> Path:
    name = "case_file" if renamed else "ticket"
    target = comment_target or name
    entities = {
        name: ticket(target=name, **({"renamed_from": "ticket"} if renamed else {})),
        "comment": {"title_field": "body", "fields": {
            "body": {"type": "text", "required": True},
            "ticket": {"type": "reference", "target": target, "on_delete": "cascade", "required": True},
        }},
    }
    return write_pack(tmp_path, "support", version, entities)


@pytest.fixture
def app_client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Any:
    install(engine, registry, support(tmp_path, "1.0.0"))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def fill(http: TestClient) -> None:
    """Tickets 1 and 2 (2's parent is 1), a comment on each, one edit of ticket 1."""
    first = http.post("/api/v1/ticket", json={"subject": "Printer jammed", "status": "open"})
    assert first.status_code == 201, first.text
    second = http.post("/api/v1/ticket", json={"subject": "Toner empty", "parent": 1})
    assert second.status_code == 201, second.text
    assert http.patch("/api/v1/ticket/1", json={"status": "closed", "version": 1}).status_code == 200
    for n in (1, 2):
        assert http.post("/api/v1/comment", json={"body": f"on {n}", "ticket": n}).status_code == 201


def test_rename_keeps_rows_numbers_history_search_and_references(
        app_client: TestClient, engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
        tmp_path: Path) -> None:
    fill(app_client)
    planned = plan(engine, registry, support(tmp_path, "2.0.0", renamed=True)).plan
    assert not planned.blocked
    [rename] = [c for c in planned.changes if c.action == "rename table"]
    assert planned.changes[0] is rename  # first: every later change names the new table
    assert rename.summary == ("rename entity ticket → case_file: table x_ticket → x_case_file with its 2 "
                              "rows (data kept), its indexes and auto numbers; the references of "
                              "comment.ticket follow it")
    assert any("RENAME TO x_case_file" in s for s in rename.sql), rename.sql
    assert rename.sql[-1].startswith("-- rename entity ticket → case_file in the platform's rows")
    # Nothing is retired, created or retyped: the entity keeps its fields and data.
    assert {c.action for c in planned.changes} <= {"rename table", "add search index"}, \
        [(c.action, c.summary) for c in planned.changes]
    install(engine, registry, support(tmp_path, "2.0.0", renamed=True))

    tables = sa.inspect(engine).get_table_names()
    assert "x_case_file" in tables and "x_ticket" not in tables
    assert drift(engine) == []
    # A later plan of the same packs is empty: every index, key and sequence has its new name.
    assert plan(engine, registry, support(tmp_path, "2.0.0", renamed=True)).plan.is_empty
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("x_case_file")}
    assert {"ix_x_case_file_owner", "ix_x_case_file_number", "ix_x_case_file_status__subject"} <= indexes
    assert not any("ticket" in name for name in indexes)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            names = conn.execute(sa.text(
                "SELECT relname FROM pg_class UNION SELECT conname FROM pg_constraint "
                "UNION SELECT proname FROM pg_proc")).scalars().all()
        names = [n for n in names if "x_ticket" in n]  # tables, indexes, sequences, keys, functions
        assert names == []

    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as http:
            one = http.get("/api/v1/case_file/1").json()
            assert (one["subject"], one["number"], one["status"]) == ("Printer jammed", "T-001", "closed")
            assert http.get("/api/v1/case_file/2").json()["parent"]["id"] == 1
            assert http.get("/api/v1/ticket/1").status_code == 404
            # The auto number goes on where it was; history is the record's still.
            third = http.post("/api/v1/case_file", json={"subject": "Paper tray"})
            assert third.status_code == 201 and third.json()["number"] == "T-003", third.text
            changes = http.get("/api/v1/case_file/1/history").json()["data"]
            assert [c["action"] for c in changes] == ["create", "update"]
            # The search index is made again under the new name, with every row.
            found = http.get("/api/v1/case_file", params={"q": "printer"}).json()["data"]
            assert [r["id"] for r in found] == [1]
            # References to the table follow it: a comment on a missing record is refused,
            # and deleting a case file cascades to its comments.
            assert http.post("/api/v1/comment", json={"body": "x", "ticket": 99}).status_code == 422
            assert http.delete("/api/v1/case_file/2", params={"version": 1}).status_code == 204
            left = http.get("/api/v1/comment").json()["data"]
            assert [c["ticket"]["id"] for c in left] == [1]
            assert http.get("/api/v1/case_file/1").json()["subject"] == "Printer jammed"
    finally:
        app.state.engine.dispose()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sequences.c.entity)).scalars().all() == ["case_file"]
        assert set(conn.execute(sa.select(history.c.entity)).scalars()) == {"case_file", "comment"}


def test_a_failure_midway_renames_nothing(app_client: TestClient, engine: sa.Engine,
                                          registry: FieldTypeRegistry, tmp_path: Path) -> None:
    fill(app_client)
    before = schema_snapshot(engine), platform_rows(engine)
    installation = plan(engine, registry, support(tmp_path, "2.0.0", renamed=True))
    seen: list[str] = []

    def fail_after_the_rename(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "RENAME TO" in statement.upper():
            seen.append(statement)
        elif seen and statement.lstrip().upper().startswith("UPDATE SLATE_HISTORY"):
            raise RuntimeError("injected failure")

    sa.event.listen(engine, "before_cursor_execute", fail_after_the_rename)
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            installer.install(engine, installation, author="test")
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail_after_the_rename)
    assert seen  # the table was renamed when it failed
    assert (schema_snapshot(engine), platform_rows(engine)) == before
    with engine.connect() as conn:
        assert conn.execute(sa.select(sequences.c.entity)).scalars().all() == ["ticket"]
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert app_client.get("/api/v1/ticket/1").json()["subject"] == "Printer jammed"
    install(engine, registry, support(tmp_path, "2.0.0", renamed=True))  # still applies
    assert drift(engine) == []


def test_a_pack_still_naming_the_old_entity_is_refused_at_its_line(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, support(tmp_path, "1.0.0"))
    with pytest.raises(DefinitionError) as refused:
        plan(engine, registry, support(tmp_path, "2.0.0", renamed=True, comment_target="ticket"))
    [problem] = refused.value.problems
    assert str(problem.location).startswith("entities/comment.yaml:")
    assert problem.message == (
        "reference target 'ticket' is not an entity; entity 'ticket' was renamed to 'case_file' "
        "(at entities/case_file.yaml:3:11): name 'case_file' instead")


def test_renamed_from_an_entity_still_defined_is_refused(registry: FieldTypeRegistry,
                                                         tmp_path: Path) -> None:
    pack = write_pack(tmp_path, "support", "1.0.0", {
        "ticket": ticket(), "case_file": ticket(renamed_from="ticket", target="case_file")})
    with pytest.raises(DefinitionError) as refused:
        merge(installer.load_packs([str(pack)], registry), registry)
    messages = [p.message for p in refused.value.problems]
    assert any(m.startswith("renamed_from: entity 'ticket' is still defined (at entities/ticket.yaml:")
               for m in messages), messages


def admin(http: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """An admin API edit: its plan (a dry run), then the same request confirmed."""
    planned = http.put(path, json=body)
    assert planned.status_code == 200, planned.text
    done = http.put(path, json=body, params={"confirm": planned.json()["base_revision"]})
    assert done.status_code in (200, 201), done.text
    return planned.json()  # type: ignore[no-any-return]


def test_the_organisations_customisations_follow_the_rename(
        app_client: TestClient, engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    """An organisation's extension of the entity (a field of its own) and its own entity
    referring to it move to the new name with the pack's rename."""
    admin(app_client, "/api/v1/admin/entities/ticket/fields/site", {"type": "text", "label": "Site"})
    admin(app_client, "/api/v1/admin/entities/visit", {
        "label": "Visit", "fields": {"about": {"type": "reference", "target": "ticket"}}})
    app_client.post("/api/v1/ticket", json={"subject": "Printer jammed", "site": "Paris"})
    install(engine, registry, support(tmp_path, "2.0.0", renamed=True))
    with engine.connect() as conn:
        stored = {(r.kind, r.name): r.document for r in conn.execute(sa.select(customisations))}
    assert set(stored) == {("extension", "case_file"), ("entity", "visit")}
    assert stored[("extension", "case_file")]["entity"] == "case_file"
    assert stored[("entity", "visit")]["fields"]["about"]["target"] == "case_file"
    assert drift(engine) == []
    assert plan(engine, registry, support(tmp_path, "2.0.0", renamed=True)).plan.is_empty
    keys = sa.inspect(engine).get_foreign_keys("x_visit")
    about = [k for k in keys if k["constrained_columns"] == ["about"]]
    assert [k["referred_table"] for k in about] == ["x_case_file"]
    with engine.connect() as conn:
        site = conn.execute(sa.text("SELECT site FROM x_case_file WHERE id = 1")).scalar()
    assert site == "Paris"
    assert "ticket" not in json.dumps(list(stored.values()))


def test_rename_with_a_renamed_field_an_added_field_and_a_changed_index_in_one_plan(
        app_client: TestClient, engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    fill(app_client)
    pack = support(tmp_path, "2.0.0", renamed=True)
    entity = pack / "entities" / "case_file.yaml"
    doc = json.loads(entity.read_text())
    doc["fields"]["title"] = {**doc["fields"].pop("subject"), "renamed_from": "subject"}
    doc["fields"]["due"] = {"type": "date"}
    doc["title_field"] = "title"
    doc["indexes"] = [["status", "due"]]
    entity.write_text(json.dumps(doc))
    planned = plan(engine, registry, pack).plan
    assert [c.action for c in planned.changes][:2] == ["rename table", "drop index"]
    assert ("rename column", "title") in [(c.action, c.field) for c in planned.changes]
    install(engine, registry, pack)
    assert drift(engine) == []
    assert plan(engine, registry, pack).plan.is_empty
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, title, number FROM x_case_file ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(1, "Printer jammed", "T-001"), (2, "Toner empty", "T-002")]


def test_the_cli_shows_each_step_of_the_rename(db_url: str, engine: sa.Engine, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from slatecrm.platform.cli import main

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, [*args, "--database", db_url], catch_exceptions=False)

    assert run("init").exit_code == 0
    assert run("pack", "install", str(support(tmp_path, "1.0.0")), "--yes").exit_code == 0
    shown = run("pack", "plan", str(support(tmp_path, "2.0.0", renamed=True)))
    assert shown.exit_code == 0, shown.output
    assert "rename entity ticket → case_file: table x_ticket → x_case_file with its 0 rows" in shown.output
    assert "ALTER TABLE x_ticket RENAME TO x_case_file" in shown.output
    assert "-- rename entity ticket → case_file in the platform's rows (slate_sequence," in shown.output
    done = run("pack", "install", str(support(tmp_path, "2.0.0", renamed=True)), "--yes")
    assert done.exit_code == 0, done.output
    assert "x_case_file" in sa.inspect(engine).get_table_names()


def test_the_admin_api_renames_an_entity_of_the_organisation(
        app_client: TestClient, engine: sa.Engine) -> None:
    admin(app_client, "/api/v1/admin/entities/site", {
        "title_field": "name", "fields": {"name": {"type": "text"}}})
    admin(app_client, "/api/v1/admin/entities/visit", {
        "fields": {"place": {"type": "reference", "target": "site"}}})
    assert app_client.post("/api/v1/site", json={"name": "Paris"}).status_code == 201
    assert app_client.post("/api/v1/visit", json={"place": 1}).status_code == 201
    planned = admin(app_client, "/api/v1/admin/entities/location", {
        "renamed_from": "site", "title_field": "name", "fields": {"name": {"type": "text"}}})
    assert [c["action"] for c in planned["plan"]["changes"]] == ["rename table", "add search index"]
    assert app_client.get("/api/v1/location/1").json()["name"] == "Paris"
    assert app_client.get("/api/v1/visit/1").json()["place"]["title"] == "Paris"
    with engine.connect() as conn:
        names = set(conn.execute(sa.select(customisations.c.kind, customisations.c.name)).all())
        visit = conn.execute(sa.select(customisations.c.document)
                             .where(customisations.c.name == "visit")).scalar_one()
    assert names == {("entity", "location"), ("entity", "visit")}
    assert visit["fields"]["place"]["target"] == "location"
    assert drift(engine) == []


def test_a_renamed_entity_keeps_its_many_to_many_links(engine: sa.Engine, db_url: str,
                                                       registry: FieldTypeRegistry, tmp_path: Path) -> None:
    """The junction table of a many-to-many field is named after its entity: it follows the
    rename with its links, its index and keys take the new name, and a later plan is empty."""
    def pack(version: str, renamed: bool) -> Path:
        name = "case_file" if renamed else "ticket"
        entities = {
            "tag": {"title_field": "label", "fields": {"label": {"type": "text", "required": True}}},
            name: {"title_field": "subject", **({"renamed_from": "ticket"} if renamed else {}), "fields": {
                "subject": {"type": "text", "required": True},
                "tags": {"type": "many_to_many", "target": "tag", "inverse": "tickets"}}},
        }
        return write_pack(tmp_path / version, "support", version, entities)

    install(engine, registry, pack("1.0.0", False))
    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as http:
            for label in ("urgent", "printer"):
                assert http.post("/api/v1/tag", json={"label": label}).status_code == 201
            made = http.post("/api/v1/ticket", json={"subject": "Jammed", "tags": [1, 2]})
            assert made.status_code == 201, made.text
    finally:
        app.state.engine.dispose()
    planned = plan(engine, registry, pack("2.0.0", True)).plan
    [rename] = [c for c in planned.changes if c.action == "rename table"]
    assert any("x_ticket__tags" in s and "x_case_file__tags" in s for s in rename.sql), rename.sql
    assert not [c for c in planned.changes if c.action == "create apart table"]
    install(engine, registry, pack("2.0.0", True))
    tables = sa.inspect(engine).get_table_names()
    assert "x_case_file__tags" in tables and "x_ticket__tags" not in tables
    assert drift(engine) == []
    assert plan(engine, registry, pack("2.0.0", True)).plan.is_empty
    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as http:
            tags = http.get("/api/v1/case_file/1").json()["tags"]
            assert [t["title"] for t in tags] == ["urgent", "printer"]
            linked = http.get("/api/v1/tag/2/related/tickets").json()["data"]
            assert [r["subject"] for r in linked] == ["Jammed"]
    finally:
        app.state.engine.dispose()


def test_a_polymorphic_reference_follows_a_renamed_target(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    """A polymorphic reference keeps the target's entity name beside the id: the rename
    rewrites those values in the same change, so the note still points to its record."""
    def pack(version: str, renamed: bool) -> Path:
        name = "case_file" if renamed else "ticket"
        entities = {
            name: {"title_field": "subject", **({"renamed_from": "ticket"} if renamed else {}),
                   "fields": {"subject": {"type": "text", "required": True}}},
            "customer": {"title_field": "name", "fields": {"name": {"type": "text", "required": True}}},
            "note": {"title_field": "body", "fields": {
                "body": {"type": "text", "required": True},
                "about": {"type": "reference", "targets": [name, "customer"], "on_delete": "cascade"}}},
        }
        return write_pack(tmp_path / version, "support", version, entities)

    install(engine, registry, pack("1.0.0", False))
    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as http:
            assert http.post("/api/v1/ticket", json={"subject": "Jammed"}).status_code == 201
            assert http.post("/api/v1/customer", json={"name": "Acme"}).status_code == 201
            for about in ({"entity": "ticket", "id": 1}, {"entity": "customer", "id": 1}):
                made = http.post("/api/v1/note", json={"body": "x", "about": about})
                assert made.status_code == 201, made.text
    finally:
        app.state.engine.dispose()
    planned = plan(engine, registry, pack("2.0.0", True)).plan
    assert not planned.blocked
    [rename] = [c for c in planned.changes if c.action == "rename table"]
    assert any("x_note.about__entity" in s for s in rename.sql), rename.sql
    install(engine, registry, pack("2.0.0", True))
    assert plan(engine, registry, pack("2.0.0", True)).plan.is_empty
    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as http:
            notes = http.get("/api/v1/note", params={"sort": "id"}).json()["data"]
            assert [(n["about"]["entity"], n["about"]["title"]) for n in notes] == [
                ("case_file", "Jammed"), ("customer", "Acme")]
            # on_delete still reaches it under the new name
            assert http.delete("/api/v1/case_file/1", params={"version": 1}).status_code == 204
            assert [n["id"] for n in http.get("/api/v1/note").json()["data"]] == [2]
    finally:
        app.state.engine.dispose()
