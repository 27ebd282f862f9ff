"""The runtime of one metamodel revision: its SQLAlchemy tables, built once and swapped in
atomically.

Making a runtime costs only reading and parsing the revision's metamodel: each table,
and each thing derived from the revision, is built when first used (once, however many
threads ask at the same time), so a process with hundreds of entities answers its first
request after building the few that request needs, not all of them.

A `Runtime` holds what every layer needs that depends only on the metamodel revision:
the SQLAlchemy tables, and (through `derived`) whatever an upper layer builds from them
once per revision (the records layer's compiled entities and rules, the web layer's
OpenAPI document). The storage layer does not know what those are; it only keeps them
with the revision, so that they are all swapped together when the head moves.

A process notices a revision applied by another process by polling the head revision
number, one indexed query at most every `poll_interval` seconds. The poll runs on the
connection the caller gives (a request's own connection), never on a fresh one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import Metamodel

from . import revisions as revision_store
from .once import Once
from .tables import EntityTables

T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    revision: int
    metamodel: Metamodel
    #: By entity name; each table is built when first asked for (tables.EntityTables).
    #: Not compared: comparing would build them all, and revision and metamodel decide them.
    tables: EntityTables = field(compare=False)
    _derived: Once[str, Any] = field(default_factory=Once, compare=False, repr=False)

    @property
    def metadata(self) -> sa.MetaData:
        """Every table of the revision (building those not built yet)."""
        return self.tables.complete()

    def derived(self, key: str, build: Callable[[], T]) -> T:
        """What `build` makes from this revision, built once (by the first caller; others
        asking for the same key wait for it) and kept until the revision is replaced."""
        return cast(T, self._derived.get(key, build))


def build_runtime(revision: int, metamodel: Metamodel, registry: FieldTypeRegistry,
                  dialect: str | None = None) -> Runtime:
    """The runtime of a revision; cheap, since its tables are built on first use. `dialect`
    gives its indexes the columns they have in that database (tables.IndexSpec.columns_on)."""
    return Runtime(revision, metamodel, EntityTables(metamodel, registry, dialect))


class RuntimeHolder:
    """The current runtime of a process; `current()` is cheap and always recent."""

    def __init__(self, engine: sa.Engine, registry: FieldTypeRegistry, poll_interval: float = 0.5):
        self.engine = engine
        self.registry = registry
        self.poll_interval = poll_interval
        self._runtime: Runtime | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Check the head revision on the next call (after this process applied one)."""
        self._checked = 0.0

    def current(self, connection: Callable[[], sa.Connection] | None = None) -> Runtime:
        """The current runtime. When the head must be checked, it is read through
        `connection()` (a request's own connection, opened only if needed), else through
        a connection of its own."""
        runtime = self._runtime
        if runtime is not None and time.monotonic() - self._checked < self.poll_interval:
            return runtime
        with self._lock:
            if connection is not None:
                self._check(connection())
            else:
                with self.engine.connect() as conn:
                    self._check(conn)
            self._checked = time.monotonic()
            assert self._runtime is not None
            return self._runtime

    def _check(self, conn: sa.Connection) -> None:
        head = revision_store.head_id(conn)
        if self._runtime is None or self._runtime.revision != head:
            number, metamodel = revision_store.current_metamodel(conn)
            self._runtime = build_runtime(number, metamodel, self.registry, conn.dialect.name)
