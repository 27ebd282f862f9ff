"""The runtime of one metamodel revision: its SQLAlchemy tables, built once and swapped in
atomically.

Only the tables are built here. The records service compiles its entities and rules per
revision itself (records/compiled.py, records/rules.py) and the web layer its OpenAPI
document (web/api.py), each keyed on this runtime's revision number. A process notices a
revision applied by another process by polling the head revision number, one indexed query
at most every `poll_interval` seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import Metamodel

from . import revisions as revision_store
from .tables import build_metadata


@dataclass(frozen=True)
class Runtime:
    revision: int
    metamodel: Metamodel
    metadata: sa.MetaData
    tables: dict[str, sa.Table]


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

    def current(self) -> Runtime:
        runtime = self._runtime
        if runtime is not None and time.monotonic() - self._checked < self.poll_interval:
            return runtime
        with self._lock:
            with self.engine.connect() as conn:
                head = revision_store.head_id(conn)
                if self._runtime is None or self._runtime.revision != head:
                    number, metamodel = revision_store.current_metamodel(conn)
                    self._runtime = build_runtime(number, metamodel, self.registry)
            self._checked = time.monotonic()
            return self._runtime
