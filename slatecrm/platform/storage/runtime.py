"""The runtime of one metamodel revision: its SQLAlchemy tables, built once and swapped in
atomically.

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
from .tables import build_metadata

T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    revision: int
    metamodel: Metamodel
    metadata: sa.MetaData
    tables: dict[str, sa.Table]
    _derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def derived(self, key: str, build: Callable[[], T]) -> T:
        """What `build` makes from this revision, built once (by the first caller, the
        others wait for it) and kept until the revision is replaced."""
        try:
            return cast(T, self._derived[key])
        except KeyError:
            pass
        with self._lock:
            if key not in self._derived:
                self._derived[key] = build()
            return cast(T, self._derived[key])


def build_runtime(revision: int, metamodel: Metamodel, registry: FieldTypeRegistry) -> Runtime:
    metadata, tables = build_metadata(metamodel, registry)
    return Runtime(revision, metamodel, metadata, tables)


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
            self._runtime = build_runtime(number, metamodel, self.registry)
