"""Fixtures: a fresh database per test, on SQLite and on PostgreSQL.

PostgreSQL tests get a database with a random name of their own, empty or a copy of a
template; afterwards it is emptied for a later test of the same run or dropped, and the run
ends when all are dropped (tests/postgres_drops.py). When the server is unreachable they are
skipped, except under CI=true (or SLATECRM_REQUIRE_POSTGRES=1), where that is a failure.

A test that needs the default packs installed gets a copy of a database installed once per
session (`pack_templates`, see tests/pack_templates.py): `client` does this, and so can any
fixture with `pack_templates.copy_to(engine, registry, "crm-core", "sales")` in place of
`install(engine, registry, "crm-core", "sales")`. A test of installing itself calls `install`.

Test databases do not wait for the disk at each commit (see `_no_waiting_for_the_disk`): a
test checks what a database holds, never whether it survives a power cut.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records.limits import Limits
from slatecrm.platform.storage.engine import create_engine

from .defaults import Client, field_types, make_app, signed_in
from .pack_templates import PackTemplates
from .postgres_drops import BackgroundDrops

POSTGRES_URL = os.environ.get(
    "SLATECRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


DROPS = BackgroundDrops(POSTGRES_URL)  # this process's test databases, emptied or dropped off the tests' path


def _no_waiting_for_the_disk() -> None:
    """Commits that do not wait for fsync, in the tests only: an application crash still
    loses nothing (what a test can see), a power cut could lose the last commits.

    PostgreSQL: `synchronous_commit=off` through libpq's PGOPTIONS, so the servers and CLI
    commands that tests start as subprocesses get it too. SQLite in WAL mode:
    `synchronous=NORMAL` (no fsync per commit, only at checkpoints), through the app's own
    setting for its engines (`SLATECRM_SQLITE_SYNCHRONOUS`, subprocesses too) and on every
    other connection of this process. A commit then costs microseconds instead of a disk
    flush, which the machine's other processes make slow and uneven."""
    options = os.environ.get("PGOPTIONS", "")
    if "synchronous_commit" not in options:
        os.environ["PGOPTIONS"] = f"{options} -c synchronous_commit=off".strip()
    os.environ.setdefault("SLATECRM_SQLITE_SYNCHRONOUS", "NORMAL")

    @sa.event.listens_for(sa.pool.Pool, "connect")
    def _sqlite_normal_sync(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")


_no_waiting_for_the_disk()

#: A list's count has a time budget of 20 ms (records/limits.py); a loaded test machine can
#: stall any statement that long, which would turn an exact count into "not known" at random.
#: The apps and servers of the tests get a roomy budget; tests/test_count_budget.py sets
#: small ones where the budget itself is under test.
os.environ.setdefault("SLATECRM_COUNT_BUDGET_MS", "60000")
#: TestClient's requests say `Host: testserver`; apps answer only to the hosts on their list
#: (web/hosts.py), so the tests' apps add it to the loopback names.
os.environ.setdefault("SLATECRM_ALLOWED_HOSTS", "testserver localhost 127.0.0.1 [::1]")
#: A password hashed with the default parameters (64 MiB, t=3) takes 0.14 s of a core here, and
#: the tests make and check thousands of them (users of every access test, logins): a quarter of
#: the suite's time. The tests' hashes take argon2-cffi's CHEAPEST parameters (a test setting,
#: identity/passwords.py) in this process and the servers and commands it starts; the default
#: parameters are checked where they are under test (test_identity.py).
os.environ.setdefault("SLATECRM_PASSWORD_HASHING", "CHEAPEST")


def postgres_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("SLATECRM_REQUIRE_POSTGRES") == "1"


@cache
def postgres_problem() -> str | None:
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as error:
        return f"PostgreSQL at {POSTGRES_URL} is unreachable: {error.orig}"
    finally:
        engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _postgres_databases_dropped() -> Iterator[None]:
    """The session ends when its last PostgreSQL database is gone; one left behind is an error."""
    yield
    failures = DROPS.wait()
    assert not failures, "PostgreSQL test databases that could not be dropped:\n" + "\n".join(failures)


@pytest.fixture(scope="session")
def pack_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackTemplates]:
    """Installed-pack databases to copy, built on first use (per xdist worker), dropped at the end."""
    templates = PackTemplates(tmp_path_factory.mktemp("pack-templates"), POSTGRES_URL, DROPS.drop_at_end)
    yield templates
    templates.drop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One Chromium per browser test module (tests/browser.py): a launch costs more than most
    browser tests. Each test opens a context of its own in it (cookies, storage, pages), so no
    test sees another's state. Not one per test process: Playwright's sync API keeps an asyncio
    loop running on the main thread while it is open, and the tests after it that run a loop
    of their own, or check that reads stay off the event loop's thread, then fail."""
    from .browser import launch, require_browser

    require_browser()
    yield from launch()


@pytest.fixture
def registry() -> FieldTypeRegistry:
    return field_types()


def _postgres_database(templates: PackTemplates | None = None) -> Iterator[str]:
    """A database with a random name that no other test is using, as `CREATE DATABASE` makes it:
    new, or one another test used and that was emptied since (tests/postgres_drops.py); emptied
    or dropped afterwards, off the test's path. With `templates`, its creation is left to a
    template copy (see PackTemplates.defer)."""
    problem = postgres_problem()
    if problem:
        if postgres_required():
            pytest.fail(problem + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(problem)
    if templates is None:
        name = DROPS.take() or _new_postgres_database()
    else:
        name = f"slatecrm_test_{secrets.token_hex(6)}"
        templates.defer(name)
    try:
        yield sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        if templates is not None:
            templates.forget(name)
        DROPS.recycle(name)


def _new_postgres_database() -> str:
    name = f"slatecrm_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return name


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'slatecrm.db'}"
    else:
        copies = "pack_templates" in request.fixturenames  # a fixture will copy a template here
        yield from _postgres_database(request.getfixturevalue("pack_templates") if copies else None)


@pytest.fixture
def other_db_url(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second empty database of the same kind as `db_url` (a "customer" database next to a
    sandbox: pack export and install between two databases)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'other.db'}"
    else:
        yield from _postgres_database()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Every database a test was promised exists when its body runs, copied or not."""
    templates = getattr(item, "funcargs", {}).get("pack_templates")
    if isinstance(templates, PackTemplates):
        templates.create_deferred()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
           pack_templates: PackTemplates) -> Iterator[TestClient]:
    """The app over a database with the default packs (crm-core, sales), in-process, signed in
    as an administrator (tests/defaults.py `signed_in`; the same helper gives other users)."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    app = make_app(db_url, body_limit=64 * 1024)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


@pytest.fixture
def bounded(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
            pack_templates: PackTemplates) -> Iterator[Client]:
    """In-process clients of apps over the default packs, each with the limits given
    (records/limits.py); closed and disposed of after the test."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    opened: list[TestClient] = []

    def make(**limits: int) -> TestClient:
        http = signed_in(make_app(db_url, limits=Limits(**limits)), raise_server_exceptions=False)
        opened.append(http.__enter__())
        return http

    yield make
    for http in opened:
        http.__exit__(None, None, None)
        http.app.state.engine.dispose()  # type: ignore[attr-defined]
