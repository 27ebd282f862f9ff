"""One request's hold on the records: one pinned snapshot and one connection.

The snapshot is pinned on first use and kept to the end of the request, so a request
that starts on revision N finishes on N. The connection is opened on first use (a
request that reads nothing opens none) and closed by `close()` at the end of the
request. For a request, both are refused on the event loop's thread: database work belongs in the
thread pool, and a call from the loop is a bug to be found by the tests, not a stall
to be found in production.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from ..storage.engine import connect_for_reading, text_in_code_point_order
from ..storage.runtime import RuntimeHolder
from .snapshot import Snapshot, snapshot_of


class OnEventLoop(RuntimeError):
    """A database call from the event loop's thread."""


def off_event_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise OnEventLoop(f"{what} on the event loop's thread: run it in the thread pool (run_in_threadpool)")


class ReadScope:
    """`guard`: refuse database work on an event loop's thread (a request's scope; a
    script or test driving the service from its own loop, as Playwright's sync API
    does, makes unguarded scopes). `connection`: the request's read connection, when
    authentication opened it (one connection, one pool checkout per request)."""

    def __init__(self, engine: sa.Engine, holder: RuntimeHolder, registry: FieldTypeRegistry, *,
                 functions: RuleFunctions = NO_FUNCTIONS, guard: bool = False,
                 connection: sa.Connection | None = None):
        self.engine = engine
        self.holder = holder
        self.registry = registry
        self.functions = functions
        self.guard = guard
        self._snapshot: Snapshot | None = None
        #: A read connection (`connect_for_reading`) the request opened already, to authenticate
        #: it (web/authentication.py): used instead of a second one, and closed here.
        self._conn: sa.Connection | None = connection
        self._closed = False

    def snapshot(self) -> Snapshot:
        """The snapshot pinned by the first call (the head poll, when due, runs on this
        scope's connection)."""
        if self._snapshot is None:
            if self.guard:
                off_event_loop("pinning the metamodel revision")
            runtime = self.holder.current(self.connection)
            self._snapshot = snapshot_of(runtime, self.registry, self.engine.dialect.name, self.functions,
                                         text_in_code_point_order(self.engine))
        return self._snapshot

    def connection(self) -> sa.Connection:
        if self.guard:
            off_event_loop("reading records")
        if self._conn is None:
            if self._closed:
                raise RuntimeError("the request's read scope is closed")
            self._conn = connect_for_reading(self.engine)
        return self._conn

    @property
    def opened(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def __enter__(self) -> ReadScope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
