"""Principals of the tokens and sessions a server process saw lately, so that a request
whose token or session is cached is authenticated with one indexed read (the identity
generation, storage/identity_generation.py) instead of three queries and a transaction.

An entry is used only while the database's generation is the one it was read at: every
change to a user, their roles, teams or manager, or to a token or session (revoked,
ended, its scopes) raises the generation in the changing transaction, whichever process
or path made it, so the next request of every process reads the principal afresh. The
entry was read after the generation (the generation first, then the rows), so it is never
older than the generation it is filed under. What changes with time alone (a token's
expiry, a session's absolute end and idle timeout) is checked on every use against the
times the entry holds. Keys are the stored hashes of the secrets, never the secrets.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, replace

from .principal import Principal

#: Entries a process keeps (a few hundred bytes each); the oldest is dropped past it.
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Cached:
    """A valid token's or session's principal, as read at `generation`."""

    generation: int
    principal: Principal
    #: When it ends whatever happens (a token's expiry, None for none; a session's lifetime).
    ends_at: dt.datetime | None
    #: Its last use noted in the database, as far as this process knows (the database's may be
    #: later, never earlier: an idle timeout counted from here is never missed).
    noted_at: dt.datetime | None

    def live(self, now: dt.datetime, idle: dt.timedelta | None = None) -> bool:
        """Not ended by time alone (a session also not idle for `idle`): when False, the
        database decides (another process may have noted a later use)."""
        if self.ends_at is not None and now >= self.ends_at:
            return False
        return idle is None or self.noted_at is None or now - self.noted_at < idle


class PrincipalCache:
    """Per process and database (one per app); safe across the thread pool's threads."""

    def __init__(self, size: int = MAX_ENTRIES) -> None:
        self.size = size
        self._entries: dict[str, Cached] = {}
        self._lock = threading.Lock()

    def get(self, key: str, generation: int | None) -> Cached | None:
        """The entry of `key` if it was read at `generation` (None: the database has no
        generation, so nothing is served from the cache)."""
        entry = self._entries.get(key)
        if entry is None or generation is None or entry.generation != generation:
            return None
        return entry

    def put(self, key: str, entry: Cached) -> None:
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= self.size:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = entry

    def noted(self, key: str, entry: Cached, at: dt.datetime) -> None:
        """The entry's use was noted in the database `at` (by this process or another)."""
        with self._lock:
            if self._entries.get(key) is entry:
                self._entries[key] = replace(entry, noted_at=at)

    def __len__(self) -> int:
        return len(self._entries)
