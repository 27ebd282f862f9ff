"""Planner statistics: ANALYZE after schema applies, large loads, and on request.

Without statistics SQLite's planner guesses (every index looks equally selective) and picks
the wrong index for a filtered, sorted page; PostgreSQL's autovacuum analyzes eventually,
but not right after a table is made or filled. So the platform runs ANALYZE itself, on the
tables whose shape or contents just changed (docs/decisions.md, "Planner statistics").

On SQLite `PRAGMA analysis_limit` bounds the work: each index is sampled (about a thousand
rows of it) rather than read whole, so analyzing a million-row table costs milliseconds,
not seconds. PostgreSQL's ANALYZE samples on its own (default_statistics_target).

Statistics are an optimisation: a failure to gather them is logged, never raised, and
never undoes the change it follows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import sqlalchemy as sa

log = logging.getLogger(__name__)

#: Rows of each index SQLite reads for its statistics (PRAGMA analysis_limit).
SQLITE_ANALYSIS_LIMIT = 1_000
#: Records created in one call from which the entity's table is analyzed afterwards.
LARGE_LOAD = 1_000


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
    sqlite = conn.dialect.name == "sqlite"
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
    if sqlite:
        conn.exec_driver_sql(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}")
    for statement in statements:
        conn.exec_driver_sql(statement)
    if sqlite:
        conn.exec_driver_sql("PRAGMA optimize")  # the rest of what SQLite's own advice wants
    conn.commit()
    return names
