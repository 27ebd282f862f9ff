"""apply(plan): the plan's DDL, its data conversion and the new revision row, in ONE transaction.

On any failure the transaction rolls back and schema and metamodel stay exactly as they
were: PostgreSQL's DDL is transactional, and SQLite's is too once the driver stops
committing on its own (see engine.py). SQLite also needs foreign keys off while a table
is rebuilt (a rebuild with them on would cascade deletes into child tables); that pragma
cannot change inside a transaction, so it is set around it, and the foreign keys are
checked with `PRAGMA foreign_key_check` before commit.

After the commit the tables the plan touched are analyzed (storage/statistics.py): a new
or rebuilt table has no statistics, and without them SQLite's plans go wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from slatecrm import __version__

from .plan import Plan
from .revisions import head_id
from .statistics import analyze
from .system import revisions


class StaleSnapshot(Exception):
    """The metamodel changed after the plan was made; plan again."""


class ForeignKeyViolation(Exception):
    """After the change, some rows would point to records that do not exist."""


def apply(engine: sa.Engine, plan: Plan, *, source: str, author: str,
          also: Callable[[sa.Connection, int], None] | None = None) -> int:
    """Run `plan` and record it as the next revision; `also(conn, revision)` joins the
    same transaction (the installer stores pack rows there). Returns the revision number."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            _sqlite_foreign_keys(conn, on=False)
        try:
            options = {"sqlite_begin": "IMMEDIATE"} if sqlite else {}
            with conn.execution_options(**options).begin():
                if not sqlite:
                    conn.execute(sa.text(f"LOCK TABLE {revisions.name} IN EXCLUSIVE MODE"))
                head = head_id(conn)
                if head != plan.base_revision:
                    raise StaleSnapshot(
                        f"the metamodel is at revision {head} now, but this plan was made against "
                        f"revision {plan.base_revision}: plan again")
                ops = Operations(MigrationContext.configure(conn))
                for change in plan.changes:
                    for step in change.steps:
                        if step.ddl is not None:
                            step.ddl(ops)
                        if step.data is not None:
                            step.data(conn)
                if sqlite:
                    _check_foreign_keys(conn)
                number = head + 1
                conn.execute(revisions.insert().values(
                    id=number, created_at=dt.datetime.now(dt.UTC), source=source, author=author,
                    summary=summarise(plan), platform_version=__version__, plan=plan.as_dict(),
                    metamodel=plan.target.as_dict()))
                if also is not None:
                    also(conn, number)
        finally:
            if sqlite:
                _sqlite_foreign_keys(conn, on=True)
    analyze(engine, touched_tables(plan))
    return number


#: Changes after which a table's statistics are missing or stale: a new table or index, a
#: table rebuilt, values converted. Adding or retiring a column leaves every index as it
#: was, and reading a large table's indexes whole (statistics.py) would cost seconds.
STALE_AFTER = frozenset({"create table", "add index", "add search index", "retype column",
                         "restore table", "restore column", "rename table"})


def touched_tables(plan: Plan) -> list[str]:
    """The tables of the entities (still in the metamodel) whose statistics the plan made
    missing or stale."""
    names = []
    stale = (c.entity for c in plan.changes if c.action in STALE_AFTER or c.rewrites_table)
    for entity in dict.fromkeys(stale):
        target = plan.target.entity(entity)
        if target is not None:
            names.append(target.table_name)
    return names


def _sqlite_foreign_keys(conn: sa.Connection, *, on: bool) -> None:
    """Outside any transaction (where SQLite honours it), on the driver's connection."""
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _check_foreign_keys(conn: sa.Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table, rowid, parent = broken[0][0], broken[0][1], broken[0][2]
        raise ForeignKeyViolation(f"{len(broken)} rows would point to missing records, e.g. "
                                  f"{table} id {rowid} → {parent}")


def summarise(plan: Plan) -> str:
    counts: dict[str, int] = {}
    for change in plan.changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    return ", ".join(f"{n} × {action}" for action, n in counts.items()) or "no changes"
