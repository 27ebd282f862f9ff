"""Indexes that serve a list's keyset order (sort keys, then id) to its LIMIT: on PostgreSQL
every non-unique index the platform makes ends with `id`, on SQLite the rowid does that
already (docs/decisions.md, "Indexes end with the id on PostgreSQL")."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.cli import main
from slatecrm.platform.storage import revisions
from slatecrm.platform.storage.fulltext import INDEX_PREFIX
from slatecrm.platform.storage.tables import outdated_indexes, wanted_indexes
from slatecrm.platform.web.app import create_app
from slatecrm.plugins.manager import make_plugin_manager

from .dbstate import drift
from .defaults import signed_in
from .pack_templates import PackTemplates
from .packs import install, write_pack

BLANKS = 3_000  # a run of equal sort values much longer than a page


def reflected_indexes(engine: sa.Engine, table: str) -> dict[str, tuple[tuple[str, ...], bool]]:
    with engine.connect() as conn:
        return {i["name"]: (tuple(i["column_names"]), bool(i["unique"]))
                for i in sa.inspect(conn).get_indexes(table)
                if i["name"] and not i["name"].startswith(INDEX_PREFIX)}  # search: fulltext.py's


def test_non_unique_indexes_end_with_the_id_on_postgresql_only(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "desk", "1.0.0", {
        "queue": {"title_field": "name", "fields": {"name": {"type": "text", "required": True}}},
        "ticket": {
            "title_field": "subject",
            "fields": {
                "subject": {"type": "text", "required": True},
                "code": {"type": "text", "unique": True},
                "status": {"type": "text", "indexed": True},
                "due": {"type": "date"},
                "queue": {"type": "reference", "target": "queue"},
                "seat": {"type": "integer"},
            },
            "unique": [["queue", "seat"]],
            "indexes": [["status", "due"]],
        }}))
    tie = ("id",) if engine.dialect.name == "postgresql" else ()
    assert reflected_indexes(engine, "x_ticket") == {
        "ix_x_ticket_owner": (("owner", *tie), False),
        "ux_x_ticket_code": (("code",), True),
        "ix_x_ticket_status": (("status", *tie), False),
        "ix_x_ticket_queue": (("queue", *tie), False),
        "ux_x_ticket_queue__seat": (("queue", "seat"), True),
        "ix_x_ticket_status__due": (("status", "due", *tie), False),
    }
    assert drift(engine) == []  # the runtime's tables say the same


def list_statement(client: TestClient, engine: sa.Engine, path: str) -> tuple[list[int], str, Any]:
    """The ids of a list page, and the statement (with its parameters) that read them."""
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "x_opportunity" in statement and "LIMIT" in statement.upper() and "ORDER BY" in statement.upper():
            seen.append((statement, parameters))

    app_engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    sa.event.listen(app_engine, "before_cursor_execute", keep)
    try:
        response = client.get(path)
    finally:
        sa.event.remove(app_engine, "before_cursor_execute", keep)
    assert response.status_code == 200, response.text
    assert len(seen) == 1, seen
    return [r["id"] for r in response.json()["data"]], *seen[0]


def sorts_in_plan(engine: sa.Engine, statement: str, parameters: Any) -> list[str]:
    """The plan's lines that sort rows the index did not give in order (none is the goal)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = [str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            return [r for r in rows if "TEMP B-TREE" in r]
        rows = [str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)]
        return [r for r in rows if "Sort" in r]


def test_a_page_over_a_run_of_blanks_reads_the_index_in_order_and_init_upgrades_older_indexes(
        engine: sa.Engine, registry: FieldTypeRegistry, pack_templates: PackTemplates) -> None:
    """A page of deals sorted by close date, all of them blank, is read from the index in
    order: no Sort node that would read the whole run of blanks. An index an older SlateCRM
    made on PostgreSQL (without the id) still serves, sorting, and `slatecrm init` makes it again."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.table("x_opportunity", sa.column("name"), sa.column("created_at"),
                              sa.column("updated_at")).insert(),
                     [{"name": f"Deal {i}", "created_at": now, "updated_at": now} for i in range(BLANKS)])
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE x_opportunity")
    path = "/api/v1/opportunity?sort=close_date&limit=50"
    with signed_in(create_app(engine, make_plugin_manager())) as client:
        ids, statement, parameters = list_statement(client, engine, path)
    assert len(ids) == 50 and ids == sorted(ids)  # within blanks, by id
    assert sorts_in_plan(engine, statement, parameters) == []
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "sqlite":  # nothing to upgrade: init changes nothing
        result = CliRunner().invoke(main, ["init", "--database", url], catch_exceptions=False)
        assert result.exit_code == 0 and "Installed" not in result.output, result.output
        return

    # The index as SlateCRM made it before: it still serves, with a sort over the blanks.
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_x_opportunity_close_date")
        conn.exec_driver_sql("CREATE INDEX ix_x_opportunity_close_date ON x_opportunity (close_date)")
        conn.exec_driver_sql("ANALYZE x_opportunity")
        _, metamodel = revisions.current_metamodel(conn)
        assert outdated_indexes(conn, wanted_indexes(metamodel, registry).values()) == {
            "ix_x_opportunity_close_date"}
    with signed_in(create_app(engine, make_plugin_manager())) as client:  # serve does not refuse it
        old_ids, statement, parameters = list_statement(client, engine, path)
    assert old_ids == ids
    assert sorts_in_plan(engine, statement, parameters) != []

    result = CliRunner().invoke(main, ["init", "--database", url], catch_exceptions=False)
    assert result.exit_code == 0 and "Installed" in result.output, result.output
    assert reflected_indexes(engine, "x_opportunity")["ix_x_opportunity_close_date"] == (
        ("close_date", "id"), False)
    with engine.connect() as conn:
        _, metamodel = revisions.current_metamodel(conn)
        assert outdated_indexes(conn, wanted_indexes(metamodel, registry).values()) == set()
    assert sorts_in_plan(engine, statement, parameters) == []
    assert drift(engine) == []
    again = CliRunner().invoke(main, ["init", "--database", url], catch_exceptions=False)
    assert again.exit_code == 0 and "Installed" not in again.output, again.output  # once
