"""Database engines set up the way the schema engine needs them.

SQLite: Python's sqlite3 module would commit before DDL on its own; with
isolation_level=None and our own BEGIN, DDL is transactional like on PostgreSQL.
Foreign keys are on for every connection (the schema engine turns them off, outside
its transaction, while it rebuilds tables).
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Mapping
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from slatecrm.metamodel.rules import regexes

DEFAULT_URL = "sqlite:///slatecrm.db"
URL_VARIABLE = "SLATECRM_DATABASE_URL"
#: Execution option of a read-only connection on SQLite: no BEGIN (see connect_for_reading).
READS_ONLY = "slate_reads_only"
#: Execution option: the engine's statement timeout in milliseconds (bound_statements).
TIMEOUT_MS = "slate_timeout_ms"
#: Execution option of one statement: its own, shorter time budget (scalar_within_budget).
BUDGET_MS = "slate_budget_ms"


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
        pragmas = sqlite_pragmas(os.environ)  # a bad setting stops here, before any connection
        in_memory = parsed.database in (None, "", ":memory:")
        # A file's connections are pooled as PostgreSQL's are (an in-memory database has one).
        pool = {} if in_memory else pool_options(os.environ)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30}, **{**pool, **kwargs})
        _setup_sqlite(engine, in_memory=in_memory, pragmas=pragmas)
    else:
        engine = sa.create_engine(parsed, **{**pool_options(os.environ), "pool_pre_ping": True, **kwargs})
    _name_timeouts(engine)
    engine.update_execution_options(**{KEEP_RESULT_COLUMNS: True})
    return engine


#: SQLAlchemy's execution option (the one its ORM sets) that reads a cached statement's rows
#: with the result columns of the statement first compiled, instead of re-keying them by the
#: Column objects of each new statement object of the same shape. The engine reads rows by
#: their labels only, never by Column object, and each user's read filter makes statement
#: objects of their own (the same SQL with their id bound): re-keying a record's 40 columns
#: for each of them cost 7% of a get by id (bench/findings.md).
KEEP_RESULT_COLUMNS = "_result_disable_adapt_to_context"


#: PostgreSQL connections one app worker keeps open, and the extra ones it may open at a
#: burst (closed again when returned): sized for one worker serving Starlette's thread
#: pool (40 threads, most of them waiting on the database only briefly), docs/api.md "Limits".
POOL_SIZE = 20
MAX_OVERFLOW = 10
POOL_VARIABLES = {"pool_size": "SLATECRM_DB_POOL_SIZE", "max_overflow": "SLATECRM_DB_MAX_OVERFLOW"}


def pool_options(environ: Mapping[str, str]) -> dict[str, int]:
    """The pool's size and overflow, from the environment or the defaults above; a bad value
    stops the app from starting, naming the variable. SQLite files get the same pool: with
    SQLAlchemy's default of 5, eight busy clients overflowed it, and each overflow connection,
    closed on return, was opened again with its PRAGMAs and an empty page cache (13% of a
    get's checkouts opened one; a get's server CPU was 2.0-2.4 ms instead of 1.3-1.4 ms,
    bench/findings.md). Idle connections keep their page cache (SQLITE_CACHE_KIB at most each,
    only as much as they read)."""
    options = {"pool_size": POOL_SIZE, "max_overflow": MAX_OVERFLOW}
    for name, variable in POOL_VARIABLES.items():
        text = environ.get(variable, "").strip()
        if not text:
            continue
        if not text.isdigit() or (name == "pool_size" and int(text) < 1):
            raise ValueError(f"{variable}={text!r}: expected a whole number"
                             f"{' of at least 1' if name == 'pool_size' else ''}")
        options[name] = int(text)
    return options


#: Each SQLite connection's page cache, in KiB (SQLite's default is 2,000 KiB). Measured at a
#: million rows (docs/decisions.md, "SQLite connection settings"): a bulk create of 1,000
#: rows dirties some 5,000 index pages, which a 2 MiB cache spills and reads back; 64 MiB
#: holds them. A memory map and temp_store=MEMORY won nothing there, and are left off.
SQLITE_CACHE_KIB = 65_536
#: When a commit waits for the disk (PRAGMA synchronous). FULL: at every commit, so a power
#: cut loses nothing committed. NORMAL (in WAL mode): only at checkpoints, so a crash of the
#: process or the OS loses nothing, a power cut may lose the last commits (never corrupts).
SYNCHRONOUS_VARIABLE = "SLATECRM_SQLITE_SYNCHRONOUS"
SYNCHRONOUS_DEFAULT = "FULL"
SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")


def sqlite_pragmas(environ: Mapping[str, str]) -> dict[str, str]:
    """The PRAGMAs every SQLite connection gets besides foreign keys, busy timeout and WAL:
    the page cache, and `synchronous` from the environment (a value other than FULL, NORMAL or EXTRA stops the
    app from starting, naming the variable; OFF is not offered: an OS crash could corrupt
    the file)."""
    synchronous = environ.get(SYNCHRONOUS_VARIABLE, "").strip().upper() or SYNCHRONOUS_DEFAULT
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"{SYNCHRONOUS_VARIABLE}={environ[SYNCHRONOUS_VARIABLE]!r}: expected one of "
                         f"{', '.join(SYNCHRONOUS_MODES)}")
    return {"cache_size": str(-SQLITE_CACHE_KIB), "synchronous": synchronous}


def _setup_sqlite(engine: Engine, in_memory: bool, pragmas: Mapping[str, str]) -> None:
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
        for name, value in pragmas.items():
            cursor.execute(f"PRAGMA {name}={value}")
        cursor.close()

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _start(conn: sa.Connection, cursor: Any, statement: str, parameters: Any,
               context: Any, executemany: bool) -> None:
        """SQLite has no statement timeout of its own: a progress handler, installed on a
        connection's first bounded statement, interrupts the statement once the deadline
        set when it started has passed (its budget, else the engine's timeout); rows
        fetched later from it (a CSV export's page) count against it too."""
        options = context.execution_options if context is not None else conn.get_execution_options()
        ms = options.get(BUDGET_MS) or options.get(TIMEOUT_MS)
        info = conn.connection.info
        deadline = info.get("slate_deadline")
        if deadline is None:
            if ms is None:
                return  # nothing bounds this connection yet: no handler to pay for
            deadline = info["slate_deadline"] = _Deadline()
            driver: Any = conn.connection.driver_connection
            driver.set_progress_handler(deadline.passed, _PROGRESS_STEPS)
        deadline.at = float("inf") if ms is None else time.monotonic() + ms / 1000

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


#: Locales whose collation orders text by code point: the C locale (byte order, which for
#: UTF-8 is code point order) and glibc's C.UTF-8 (code point order by definition; a test
#: checks it on the tests' server). PostgreSQL 17's builtin provider has C and C.UTF-8,
#: 18 adds PG_UNICODE_FAST, all three ordering by code point.
CODE_POINT_LOCALES = frozenset({"c", "posix", "c.utf-8", "c.utf8", "pg_unicode_fast"})
_code_point_order: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def text_in_code_point_order(engine: Engine) -> bool:
    """Whether the database compares text by code point, as SQLite (BINARY) and Python do,
    so that `x >= 'Abc' AND x < 'Abd'` selects exactly the values starting with "Abc" and
    an index on x can answer it (records/rulesql.py, `starts_with`). Asked of PostgreSQL
    once per engine: its order is the database's collation, fixed when it was created."""
    known = _code_point_order.get(engine)
    if known is None:
        if engine.dialect.name == "sqlite":
            known = True
        else:
            with engine.connect() as conn:
                known = database_orders_by_code_point(conn)
        _code_point_order[engine] = known
    return known


def database_orders_by_code_point(conn: sa.Connection) -> bool:
    """PostgreSQL: the current database's default collation orders by code point. The
    encoding must be UTF-8 (byte order is code point order only there, and any successor
    character a prefix range names can be stored); the provider libc with a C locale, or
    the builtin one (PostgreSQL 17+). ICU collations never do. The columns of pg_database
    differ between versions (datlocprovider from 15, datlocale from 17), hence the row
    read whole."""
    row = conn.execute(sa.text("SELECT *, pg_encoding_to_char(encoding) AS encoding_name FROM pg_database "
                               "WHERE datname = current_database()")).mappings().one()
    if row["encoding_name"] != "UTF8":
        return False
    provider = row.get("datlocprovider", "c")
    if provider == "c":
        return str(row["datcollate"]).lower() in CODE_POINT_LOCALES
    if provider == "b":
        return str(row.get("datlocale") or "").lower() in CODE_POINT_LOCALES
    return False


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
    it). SQLite: the engine's progress-handler deadline (`_setup_sqlite`), from the
    execution option set here. Either way the error is raised as `StatementTimedOut`."""
    if engine.dialect.name == "postgresql":
        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True  # a SET outside any transaction is kept
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {int(timeout_ms)}")
            dbapi_connection.autocommit = autocommit

        engine.dispose()
    engine.update_execution_options(**{TIMEOUT_MS: int(timeout_ms)})  # SQLite's deadline, the message


class OverBudget(Exception):
    """A statement given its own time budget (`scalar_within_budget`) ran past it."""


def _name_timeouts(engine: Engine) -> None:
    @sa.event.listens_for(engine, "handle_error")
    def _timed_out(context: sa.engine.ExceptionContext) -> None:
        options = context.execution_context.execution_options if context.execution_context else {}
        named = timeout_named(context.original_exception, options)
        if named is not None:
            raise named from context.original_exception


def timeout_named(error: BaseException, options: Mapping[str, Any]) -> Exception | None:
    """The app's exception for a driver's `error` when it is a statement the database
    stopped (OverBudget under a statement's own budget, StatementTimedOut under the
    engine's timeout), for the execution `options` it ran with; None for any other error.
    Statements SQLAlchemy runs get it from the engine's handle_error listener; a driver
    call it does not see (PostgreSQL's COPY, records/inserts.py) asks here itself."""
    if not _is_timeout(error):
        return None
    if options.get(BUDGET_MS):
        return OverBudget()
    if options.get(TIMEOUT_MS):
        return StatementTimedOut(options[TIMEOUT_MS])
    return None


def scalar_within_budget(conn: sa.Connection, statement: sa.Executable, budget_ms: int) -> Any | None:
    """The statement's one value, or None when it ran past `budget_ms` (an optional answer,
    such as a list's count, that must not cost more than the page it goes with).
    SQLite: the progress-handler deadline, shorter for this statement only. PostgreSQL:
    `SET LOCAL statement_timeout` in a transaction of its own on an autocommit connection,
    committed when the count ran (the setting ends with it), or a SAVEPOINT inside the
    caller's, rolled back after (a released one would leave the setting to the caller), so a
    cancelled statement neither aborts the caller's transaction nor leaves the setting behind.

    Why commit, not roll back, a transaction that wrote nothing: psycopg forgets every
    statement it has prepared on the connection at a ROLLBACK (a rolled-back DDL could have
    changed what they refer to). A list's count on every request kept the read connections
    from ever preparing one, so PostgreSQL planned each statement of each request again
    (0.5 ms for a page read as a union, as long as running it; bench/findings.md)."""
    options = {BUDGET_MS: int(budget_ms)}
    try:
        if conn.dialect.name != "postgresql":
            return conn.execute(statement, execution_options=options).scalar_one()
        driver: Any = conn.connection.driver_connection
        outside = driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with driver.transaction(force_rollback=not outside):
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(budget_ms)}")
            return conn.execute(statement, execution_options=options).scalar_one()
    except OverBudget:
        return None
    except sa.exc.DBAPIError as error:  # an engine made without create_engine's listener
        if error.orig is not None and _is_timeout(error.orig):
            return None
        raise


def _is_timeout(error: BaseException) -> bool:
    """SQLite's interrupted statement, PostgreSQL's cancelled one (SQLSTATE 57014)."""
    if getattr(error, "sqlstate", None) == "57014":
        return True
    return type(error).__name__ == "OperationalError" and str(error) == "interrupted"
