"""Database engines set up the way the schema engine needs them.

SQLite: Python's sqlite3 module would commit before DDL on its own; with
isolation_level=None and our own BEGIN, DDL is transactional like on PostgreSQL.
Foreign keys are on for every connection (the schema engine turns them off, outside
its transaction, while it rebuilds tables).
"""

from __future__ import annotations

import os
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from slatecrm.metamodel.rules import regexes

DEFAULT_URL = "sqlite:///slatecrm.db"
URL_VARIABLE = "SLATECRM_DATABASE_URL"
#: Execution option of a read-only connection on SQLite: no BEGIN (see connect_for_reading).
READS_ONLY = "slate_reads_only"


def database_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get(URL_VARIABLE) or DEFAULT_URL


def normalise_url(url: str | URL) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_engine(url: str | URL, **kwargs: Any) -> Engine:
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 30}, **kwargs)
        _setup_sqlite(engine, in_memory=parsed.database in (None, "", ":memory:"))
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True, **kwargs)


def _setup_sqlite(engine: Engine, in_memory: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        # Rule filters' `matches`: RE2, as in the Python closures (SQLite has no REGEXP).
        dbapi_connection.create_function("slate_regexp", 2, regexes.search, deterministic=True)
        dbapi_connection.create_function("slate_lower", 1, regexes.lower, deterministic=True)
        dbapi_connection.create_function("slate_upper", 1, regexes.upper, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(READS_ONLY):
            return  # each statement reads on its own (autocommit), as on PostgreSQL below
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


def connect_for_reading(engine: Engine) -> sa.Connection:
    """A connection for a request's reads: no transaction held open (autocommit), so a
    long read (a CSV export streaming) keeps no snapshot, lock or idle transaction, and a
    failed statement does not spoil the ones after it. Each statement sees what was
    committed when it started, on both databases. Never write through it."""
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        return conn.execution_options(**{READS_ONLY: True})
    return conn.execution_options(isolation_level="AUTOCOMMIT")


def ensure_database(url: str | URL) -> bool:
    """Create the PostgreSQL database named in `url` if it does not exist. True if created."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return False
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": parsed.database}).scalar()
            if exists:
                return False
            quoted = admin.dialect.identifier_preparer.quote(parsed.database)
            conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
            return True
    finally:
        admin.dispose()


class StatementTimedOut(Exception):
    """A statement ran past the engine's statement timeout and the database stopped it.
    The web layer answers 503 with this message (docs/api.md, "Limits"), never a 500."""

    def __init__(self, timeout_ms: int):
        self.timeout_ms = timeout_ms
        super().__init__(f"the query took longer than {timeout_ms / 1000:g} s (the statement timeout, "
                         "SLATECRM_STATEMENT_TIMEOUT_MS) and was stopped; nothing was changed. "
                         "Narrow the filter or search, or try again later")


#: SQLite virtual-machine instructions between two looks at the clock: a few microseconds
#: of Python per look, a few hundred looks a second on a long statement.
_PROGRESS_STEPS = 10_000


class _Deadline:
    """When the statement running on one SQLite connection must stop (monotonic seconds)."""

    def __init__(self) -> None:
        self.at = float("inf")

    def passed(self) -> int:
        return 1 if time.monotonic() > self.at else 0


def bound_statements(engine: Engine, timeout_ms: int) -> None:
    """Stop every statement of `engine` that runs longer than `timeout_ms`, so no query
    holds a worker past it (issue 11, section 3). PostgreSQL: `SET statement_timeout` on
    each new connection (the pool's existing connections are dropped, so every one has
    it). SQLite has no timeout of its own: a progress handler, installed on a connection's
    first statement, interrupts the statement once the deadline set when that statement
    started has passed; rows fetched later from it (a CSV export's page) count against it
    too. Either way the error is raised as `StatementTimedOut`."""
    if engine.dialect.name == "postgresql":
        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True  # a SET outside any transaction is kept
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {int(timeout_ms)}")
            dbapi_connection.autocommit = autocommit

        engine.dispose()
    elif engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "before_cursor_execute")
        def _start(conn: sa.Connection, cursor: Any, statement: str, parameters: Any,
                   context: Any, executemany: bool) -> None:
            info = conn.connection.info
            deadline = info.get("slate_deadline")
            if deadline is None:
                deadline = info["slate_deadline"] = _Deadline()
                driver: Any = conn.connection.driver_connection
                driver.set_progress_handler(deadline.passed, _PROGRESS_STEPS)
            deadline.at = time.monotonic() + timeout_ms / 1000

    @sa.event.listens_for(engine, "handle_error")
    def _timed_out(context: sa.engine.ExceptionContext) -> None:
        if _is_timeout(context.original_exception):
            raise StatementTimedOut(timeout_ms) from context.original_exception


def _is_timeout(error: BaseException) -> bool:
    """SQLite's interrupted statement, PostgreSQL's cancelled one (SQLSTATE 57014)."""
    if getattr(error, "sqlstate", None) == "57014":
        return True
    return type(error).__name__ == "OperationalError" and str(error) == "interrupted"
