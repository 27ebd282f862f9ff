"""What a test compares: the database's schema as reflected, and the platform's own rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from slatecrm.platform.storage import revisions
from slatecrm.platform.storage.fulltext import INDEX_PREFIX, SEARCH_COLUMN
from slatecrm.platform.storage.runtime import build_runtime

from .defaults import field_types


def schema_snapshot(engine: sa.Engine) -> dict[str, Any]:
    """Tables, columns, indexes and foreign keys as the database reports them."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        snapshot: dict[str, Any] = {}
        for table in sorted(inspector.get_table_names()):
            snapshot[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in inspector.get_indexes(table)),
                "foreign_keys": sorted(_foreign_keys(conn, inspector, table)),
            }
        return snapshot


def _foreign_keys(conn: sa.Connection, inspector: Any, table: str) -> list[tuple[Any, ...]]:
    if conn.dialect.name == "sqlite":  # the pragma knows ON DELETE of inline keys too
        rows = conn.exec_driver_sql(f'PRAGMA foreign_key_list("{table}")').all()
        return [((r[3],), r[2], "" if r[6] == "NO ACTION" else r[6]) for r in rows]
    return [(tuple(f["constrained_columns"]), f["referred_table"],
             (f.get("options") or {}).get("ondelete") or "") for f in inspector.get_foreign_keys(table)]


def platform_rows(engine: sa.Engine) -> dict[str, Any]:
    from slatecrm.platform.storage.system import packs
    from slatecrm.platform.storage.system import revisions as revision_table

    with engine.connect() as conn:
        return {
            "revisions": conn.execute(sa.select(revision_table.c.id, revision_table.c.source)
                                      .order_by(revision_table.c.id)).all(),
            "packs": conn.execute(sa.select(packs.c.name, packs.c.version, packs.c.checksum)
                                  .order_by(packs.c.name)).all(),
        }


def table_identity(engine: sa.Engine, table: str) -> Any:
    """Changes when the database rewrites or rebuilds the table."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return conn.execute(sa.text("SELECT rootpage FROM sqlite_master WHERE name = :t"),
                                {"t": table}).scalar_one()
        return conn.execute(sa.text("SELECT relfilenode FROM pg_class WHERE relname = :t"),
                            {"t": table}).scalar_one()


def drift(engine: sa.Engine) -> list[Any]:
    """Differences between the database and the current revision's tables (expect none)."""
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        runtime = build_runtime(number, metamodel, field_types(), conn.dialect.name)
        owned = set(runtime.metadata.tables)

        def include(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
            if kind == "index" and (name or "").startswith(INDEX_PREFIX):
                return False  # search indexes are the planner's, not tables' (storage/fulltext.py)
            if kind == "column" and name == SEARCH_COLUMN:
                return False  # and so is PostgreSQL's stored search vector
            table = obj if kind == "table" else getattr(obj, "table", None)
            table_name = name if kind == "table" else getattr(table, "name", None)
            return table_name in owned

        context = MigrationContext.configure(conn, opts={"include_object": include,
                                                         "compare_type": False})
        return list(compare_metadata(context, runtime.metadata))
