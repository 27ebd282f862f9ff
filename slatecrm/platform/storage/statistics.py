"""Planner statistics: ANALYZE after schema applies, large loads, and on request.

Without statistics SQLite's planner guesses (every index looks equally selective) and picks
the wrong index for a filtered, sorted page; PostgreSQL's autovacuum analyzes eventually,
but not right after a table is made or filled. So the platform runs ANALYZE itself, on the
tables whose shape or contents just changed (docs/decisions.md, "Planner statistics").

On SQLite each ANALYZE reads the named tables' indexes whole. `PRAGMA analysis_limit`
would make it a sample, but SQLite's sample is the first rows of each index in key order,
not a random one: on skewed data (40,000 records of one status) it recorded 1,001 rows per
value and the planner chose a plan 12x slower. A whole read costs about 0.2 s at 200,000
rows and 1.7 s at a million (six indexes), and runs only after applies and after loads that
are large for their table (`analyze_after_load`), so its cost stays a share of the load's.
No pragma is set, so none is left behind on a pooled connection. PostgreSQL's ANALYZE
samples at random on its own (default_statistics_target).

Statistics are an optimisation: a failure to gather them is logged, never raised, and
never undoes the change it follows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

log = logging.getLogger(__name__)

#: Records created in one call from which the entity's table is analyzed afterwards (when
#: they are many for its size, see `analyze_after_load`).
LARGE_LOAD = 1_000
#: A load is large for a table when its statistics knew fewer than this many times its rows
#: (PostgreSQL's autovacuum analyzes a table once a tenth of it changed, by default).
LOAD_SHARE = 10


def analyze_after_load(engine: sa.Engine, table: str, added: int) -> bool:
    """ANALYZE `table` after `added` rows were loaded into it, when that is LARGE_LOAD rows
    or more and its statistics are missing or knew fewer than LOAD_SHARE times `added`:
    loading a million rows in batches of a thousand analyzes while the table is small and
    its shape changes, not after every batch (each ANALYZE of a large PostgreSQL table
    samples 30,000 rows: it cost more than the batch it followed). Whether it analyzed."""
    if added < LARGE_LOAD:
        return False
    try:
        with engine.connect() as conn:
            known = known_rows(conn, table)
    except sa.exc.DBAPIError as error:
        log.warning("statistics of %s were not read: %s", table, error)
        return False
    if known is not None and known >= LOAD_SHARE * added:
        return False
    return bool(analyze(engine, [table]))


def known_rows(conn: sa.Connection, table: str) -> int | None:
    """The rows `table` has as its statistics know them, or None without statistics."""
    if conn.dialect.name == "sqlite":
        if not sa.inspect(conn).has_table("sqlite_stat1"):
            return None
        stats = conn.exec_driver_sql("SELECT stat FROM sqlite_stat1 WHERE tbl = ?", (table,)).scalars().all()
        return max((int(stat.split()[0]) for stat in stats if stat), default=None)
    if conn.dialect.name == "postgresql":
        rows = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                            {"t": conn.dialect.identifier_preparer.quote(table)}).scalar()
        return None if rows is None or rows < 0 else int(rows)
    return None


def analyze(engine: sa.Engine, tables: Iterable[str] | None = None) -> list[str]:
    """Gather statistics for `tables` (those that exist), or for the whole database when
    None. Returns the tables analyzed ([] for the whole database, or on failure)."""
    try:
        with engine.connect() as conn:
            return analyze_on(conn, tables)
    except sa.exc.DBAPIError as error:  # e.g. a lock held elsewhere: the next load analyzes
        log.warning("statistics were not gathered: %s", error)
        return []


def analyze_on(conn: sa.Connection, tables: Iterable[str] | None = None) -> list[str]:
    """`analyze` on a connection outside any transaction of the caller; commits its own."""
    preparer = conn.dialect.identifier_preparer
    if tables is None:
        names: list[str] = []
        statements = ["ANALYZE"]
    else:
        existing = set(sa.inspect(conn).get_table_names())
        names = sorted({t for t in tables if t in existing})
        statements = [f"ANALYZE {preparer.quote(t)}" for t in names]
    if not statements or (tables is not None and not names):
        return []
    for statement in statements:
        conn.exec_driver_sql(statement)
    conn.commit()
    return names


class _Explain(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """`EXPLAIN (FORMAT JSON) <select>` with the select's parameters bound as usual
    (SQLAlchemy's documented recipe for a statement of one's own: a construct compiled by
    `compiles`)."""

    inherit_cache = False

    def __init__(self, select: sa.Select[Any]):
        self.select = select


@compiles(_Explain, "postgresql")
def _explain_postgresql(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + str(compiler.process(element.select, **kw))


def planner_rows(conn: sa.Connection, select: sa.Select[Any]) -> int | None:
    """The rows the planner expects `select` to give (plans it, runs nothing): a list's
    "about N" when counting it ran past its budget. PostgreSQL only: SQLite's planner
    keeps no row estimate worth showing (its `sqlite_stat1` figures are per index
    prefix, not per query), so None there, as on a failure."""
    if conn.dialect.name != "postgresql":
        return None
    try:
        plan = conn.execute(_Explain(select)).scalar_one()
    except sa.exc.DBAPIError as error:
        log.warning("no row estimate: %s", error)
        return None
    if isinstance(plan, str):
        plan = json.loads(plan)
    rows = plan[0]["Plan"].get("Plan Rows")
    return int(rows) if isinstance(rows, int | float) else None
