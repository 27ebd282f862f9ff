"""The one way identity changes open a write transaction: on SQLite it takes the write lock
at BEGIN (`BEGIN IMMEDIATE`), so a transaction that reads before it writes (is the e-mail
taken? how many live tokens?) waits for another writer instead of failing at once with
"database is locked" when its read lock cannot be upgraded (records/service.py does the
same for record writes). On PostgreSQL it is a plain transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


@contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a write transaction, committed when the block ends without error."""
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        yield conn
