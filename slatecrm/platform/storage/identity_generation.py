"""The identity generation: one number per database that every change to who a session or
token stands for raises, in the changing transaction, so a principal cached by a server
process (web/authentication.py) can be checked with one indexed read per request.

The database raises it, not the code that makes the changes: triggers on every table a
`Principal` or a token's or session's validity is read from (`WATCHED`), so a change made
by any path (the admin API, the CLI, sample data, a test's insert, a statement typed into
the database's shell) is seen by every worker of every process on its next request. The
uses a request notes (`last_used_at`, `last_seen_at`) and new token or session rows (no
cache holds a secret that did not exist) do not raise it.

On PostgreSQL the triggers run BEFORE each statement, so a transaction takes the row's lock
before any row of the tables it changes: identity changes queue behind each other in one
order and cannot deadlock on it. Reading is one statement of the primary key (`GENERATION`).
A table added to what a principal is read from must be added to `WATCHED`, and `slatecrm
init` run (it recreates the triggers; `missing` makes a server refuse a database without them).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from . import system

table = system.identity_generation
ROW = 1


@dataclass(frozen=True)
class Watched:
    """A table whose changes raise the generation: every column, or all but `ignored`
    (updates of those alone do not); `inserts`: whether a new row does."""

    table: sa.Table
    ignored: tuple[str, ...] = ()
    inserts: bool = True

    def columns(self) -> list[str]:
        return [c.name for c in self.table.columns if c.name not in self.ignored]


WATCHED = (
    Watched(system.users),
    Watched(system.user_roles),
    Watched(system.team_members),
    Watched(system.user_attributes),  # what sharing rules read as current_user.<attribute>
    Watched(system.api_tokens, ignored=("last_used_at",), inserts=False),
    Watched(system.sessions, ignored=("last_seen_at",), inserts=False),
)

#: The current generation (None in a database without the row: nothing may be cached then).
GENERATION = sa.select(table.c.generation).where(table.c.id == ROW)
_BUMP = f"UPDATE {table.name} SET generation = generation + 1 WHERE id = {ROW}"
_FUNCTION = f"{table.name}_bump"


def _events(watched: Watched) -> list[tuple[str, str]]:
    """(name suffix, event) of each trigger a table needs."""
    update = "UPDATE" if not watched.ignored else f"UPDATE OF {', '.join(watched.columns())}"
    events = [("update", update), ("delete", "DELETE")]
    return [("insert", "INSERT"), *events] if watched.inserts else events


def trigger_names(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"{w.table.name}_identity" for w in WATCHED]
    return [f"{w.table.name}_identity_{suffix}" for w in WATCHED for suffix, _ in _events(w)]


def _sqlite_statements() -> list[str]:
    statements = []
    for watched in WATCHED:
        for suffix, event in _events(watched):
            name = f"{watched.table.name}_identity_{suffix}"
            # Dropped and made again: a column added since is watched too.
            statements += [f"DROP TRIGGER IF EXISTS {name}",
                           f"CREATE TRIGGER {name} AFTER {event} ON {watched.table.name} "
                           f"BEGIN {_BUMP}; END"]
    return statements


def _postgresql_statements() -> list[str]:
    statements = [f"CREATE OR REPLACE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                  f"BEGIN {_BUMP}; RETURN NULL; END $$"]
    for watched in WATCHED:
        name = f"{watched.table.name}_identity"
        events = " OR ".join(event for _, event in _events(watched))
        truncate = " OR TRUNCATE"
        statements += [f"DROP TRIGGER IF EXISTS {name} ON {watched.table.name}",
                       f"CREATE TRIGGER {name} BEFORE {events}{truncate} ON {watched.table.name} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}()"]
    return statements


def install(conn: sa.Connection) -> None:
    """The row and the triggers (idempotent; run by `slatecrm init` with the system tables)."""
    if conn.dialect.name == "sqlite":
        statements = _sqlite_statements()
    elif conn.dialect.name == "postgresql":
        statements = _postgresql_statements()
    else:  # pragma: no cover - the two supported databases
        raise NotImplementedError(f"an identity generation on {conn.dialect.name}")
    for statement in statements:
        conn.exec_driver_sql(statement)
    if conn.execute(GENERATION).first() is None:
        conn.execute(table.insert().values(id=ROW, generation=0))


def missing(conn: sa.Connection) -> list[str]:
    """The triggers a database lacks (made by an older SlateCRM: `slatecrm init` adds them)."""
    wanted = trigger_names(conn.dialect.name)
    if conn.dialect.name == "postgresql":
        found = conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars()
    else:
        found = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()
    have = set(found)
    return [name for name in wanted if name not in have]
