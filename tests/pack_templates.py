"""Databases with packs installed, built once per test session and copied for each test.

Installing crm-core and sales (planning, DDL for every table and index, the first revision)
costs seconds, and most tests need exactly that database before they start. A test run
installs each set of packs once per database kind into a template, then gives every test a
copy of its own:

- SQLite: the template is a file; a copy is a file copy (`shutil.copyfile`).
- PostgreSQL: the template is a database with a random name, made on first use and dropped
  when the session ends; a copy is `CREATE DATABASE … TEMPLATE …`, which clones it on the
  server. PostgreSQL refuses to clone a database anyone is connected to, so the template's
  engine is disposed as soon as it is built and nothing connects to it again.
  Creating and dropping a database are the dear part (a drop forces a checkpoint of the
  whole server), so a test that will copy (its fixtures request `pack_templates`) does not
  get an empty database first: `db_url` defers its creation to the copy (`defer`), and
  whatever was deferred and not copied is created empty before the test body runs
  (`create_deferred`, called from conftest's `pytest_runtest_call`).

Under pytest-xdist each worker is a session of its own and builds its own templates (one
more install per worker, no file lock, no race between workers over one template). A copy is
byte-for-byte what `install` would have made, so a test cannot tell the difference; a test
of installing itself calls `tests.packs.install` instead.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.storage.engine import create_engine

from .packs import install


@dataclass(frozen=True)
class Template:
    """One installed database to copy: a SQLite file or a PostgreSQL database name."""

    location: str
    revision: int


class PackTemplates:
    """Installed-pack templates of one test session, by database kind and pack list."""

    def __init__(self, folder: Path, postgres_admin_url: str, drop_database: Callable[[str], None]) -> None:
        self.folder = folder
        self.postgres_admin_url = postgres_admin_url
        self.drop_database = drop_database
        self._templates: dict[tuple[str, tuple[str, ...]], Template] = {}
        self._deferred: set[str] = set()

    def defer(self, database: str) -> None:
        """The PostgreSQL database `database` does not exist yet: a copy will create it."""
        self._deferred.add(database)

    def forget(self, database: str) -> None:
        """The test is over (or its setup failed): nothing is to be created for it any more."""
        self._deferred.discard(database)

    def create_deferred(self) -> None:
        """Create, empty, every deferred database that no copy has created."""
        names, self._deferred = sorted(self._deferred), set()
        if names:
            with self._admin() as conn:
                for name in names:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def copy_to(self, engine: sa.Engine, registry: FieldTypeRegistry, *packs: str) -> int:
        """Make `engine`'s database, which must be empty, a copy of one with `packs` installed
        (names or paths, as `install` takes them); the revision number, as `install` returns.

        The engine's pooled connections are closed: the next checkout sees the copy. A template
        is installed with the registry of its first request; the default packs use built-in
        field types only, so any registry that has them installs the same database."""
        kind = engine.dialect.name
        template = self._templates.get((kind, packs))
        if template is None:
            template = self._templates[(kind, packs)] = self._build(kind, registry, packs)
        if engine.url.database not in self._deferred:
            _refuse_unless_empty(engine)
        engine.dispose()
        if kind == "sqlite":
            self._copy_sqlite(engine, template)
        elif kind == "postgresql":
            self._copy_postgres(engine, template)
        else:
            raise NotImplementedError(f"no template copies for {kind}")
        return template.revision

    def drop(self) -> None:
        """Drop the PostgreSQL templates (SQLite ones go with the session's temporary folder)."""
        for (kind, _), template in self._templates.items():
            if kind == "postgresql":
                self.drop_database(template.location)
        self._templates.clear()

    # --- building ------------------------------------------------------------------------------

    def _build(self, kind: str, registry: FieldTypeRegistry, packs: tuple[str, ...]) -> Template:
        name = f"slatecrm_template_{secrets.token_hex(6)}"
        if kind == "sqlite":
            path = self.folder / f"{name}.db"
            url = f"sqlite:///{path}"
            location = str(path)
        elif kind == "postgresql":
            with self._admin() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            url = sa.engine.make_url(self.postgres_admin_url).set(database=name).render_as_string(
                hide_password=False)
            location = name
        else:
            raise NotImplementedError(f"no template copies for {kind}")
        engine = create_engine(url)
        try:
            revision = install(engine, registry, *packs)
        finally:
            engine.dispose()  # SQLite: the last close checkpoints the WAL into the file
        if kind == "sqlite":
            leftovers = [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
            assert not leftovers, f"the template {path} still has {leftovers}: a copy would miss them"
        return Template(location, revision)

    # --- copying -------------------------------------------------------------------------------

    @staticmethod
    def _copy_sqlite(engine: sa.Engine, template: Template) -> None:
        target = engine.url.database
        assert target and target != ":memory:", "a template is copied to a file, not to :memory:"
        for suffix in ("-wal", "-shm"):  # an empty database's journal must not outlive it
            Path(target + suffix).unlink(missing_ok=True)
        shutil.copyfile(template.location, target)

    def _copy_postgres(self, engine: sa.Engine, template: Template) -> None:
        name = engine.url.database
        assert name, "the engine names no database"
        with self._admin() as conn:
            if name in self._deferred:
                self._deferred.discard(name)
            else:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template.location}"')

    def _admin(self) -> sa.Connection:
        admin = sa.create_engine(self.postgres_admin_url, isolation_level="AUTOCOMMIT",
                                 poolclass=sa.pool.NullPool)
        return admin.connect()


def _refuse_unless_empty(engine: sa.Engine) -> None:
    """A copy replaces the database: never one that holds anything."""
    if engine.dialect.name == "sqlite" and not Path(str(engine.url.database)).exists():
        return  # not created yet (connecting would only create an empty file)
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
    assert not tables, f"a pack template is copied only into an empty database; it has {tables}"
