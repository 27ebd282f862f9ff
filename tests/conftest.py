"""Fixtures: a fresh database per test, on SQLite and on PostgreSQL.

PostgreSQL tests create a database with a random name and drop it afterwards. When the
server is unreachable they are skipped, except under CI=true (or
SLATECRM_REQUIRE_POSTGRES=1), where that is a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from functools import cache

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.storage.engine import create_engine

from .defaults import field_types, make_app
from .packs import install

POSTGRES_URL = os.environ.get(
    "SLATECRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


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


@pytest.fixture
def registry() -> FieldTypeRegistry:
    return field_types()


def _postgres_database() -> Iterator[str]:
    problem = postgres_problem()
    if problem:
        if postgres_required():
            pytest.fail(problem + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(problem)
    name = f"slatecrm_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'slatecrm.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry) -> Iterator[TestClient]:
    """The app over a database with the default packs (crm-core, sales), in-process."""
    install(engine, registry, "crm-core", "sales")
    app = make_app(db_url, body_limit=64 * 1024)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()
