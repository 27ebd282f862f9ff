"""Per-database secrets (the HMAC key of list cursors), made on first use and kept in
slate_secret, so every worker over the same database signs and checks alike without any
configuration, and a token from another database is refused.

A secret is read once per process and kept: it never changes once made.
"""

from __future__ import annotations

import datetime as dt
import secrets as random
import threading

import sqlalchemy as sa

from .system import secrets as secret_table

#: The name of the cursor-signing key.
CURSOR = "cursor"
SECRET_BYTES = 32


class DatabaseSecrets:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._known: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> bytes:
        """The secret `name`, made (once, for every process) if the database has none yet."""
        known = self._known.get(name)
        if known is None:
            with self._lock:
                known = self._known.get(name) or self._load_or_make(name)
                self._known[name] = known
        return known

    def cursor_key(self) -> bytes:
        return self.get(CURSOR)

    def _load_or_make(self, name: str) -> bytes:
        lost: Exception | None = None
        for _ in range(3):  # another process may make the table or the row at the same moment
            try:
                # SQLite: take the write lock at BEGIN, so a second process waits for the first
                # and then reads its row (a read lock upgraded after another process wrote is
                # refused at once, "database is locked", whatever the busy timeout).
                with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, \
                        conn.begin():
                    secret_table.create(conn, checkfirst=True)  # databases made before it existed
                    stored = conn.execute(sa.select(secret_table.c.value)
                                          .where(secret_table.c.name == name)).scalar()
                    if stored is not None:
                        return bytes.fromhex(stored)
                    made = random.token_bytes(SECRET_BYTES)
                    conn.execute(secret_table.insert().values(
                        name=name, value=made.hex(), created_at=dt.datetime.now(dt.UTC)))
                    return made
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError) as error:
                lost = error  # lost the race: read what the other process wrote
        assert lost is not None
        raise lost
