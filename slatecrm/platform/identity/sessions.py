"""Server-side sessions: the browser holds a random token, the database only its hash.

A login always starts a new session (and ends the one the browser came with), so a token
planted before login is worthless after it (no session fixation). A session dies when it
has been idle too long, when its absolute lifetime is over, when it is ended (log out, log
out everywhere), when its user is disabled, and when the user's password is changed or
reset after it started. Each check reads one row joined to its user and writes nothing;
`last_seen_at` is written (`touch`, in a transaction of its own) at most once a
`LAST_SEEN_RESOLUTION`, not on every request: on SQLite a read transaction that turns into
a write while another worker writes fails at once ("database is locked").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from ..storage import system
from .principal import AUTHENTICATING
from .secrettokens import new_secret, stored_hash

sessions = system.sessions
#: What every session token starts with (recognisable in a leak, never confused with an API token).
SESSION_PREFIX = "sls_"
IDLE_VARIABLE = "SLATECRM_SESSION_IDLE_MINUTES"
MAX_VARIABLE = "SLATECRM_SESSION_MAX_HOURS"
#: An hour without a request ends a session: long enough for a meeting, short enough that
#: a forgotten browser is not signed in the next morning.
DEFAULT_IDLE = dt.timedelta(minutes=60)
#: A working day and a half, whatever the use: the user signs in again at least once a day.
DEFAULT_MAX = dt.timedelta(hours=12)
#: `last_seen_at` (which the idle timeout reads) is written at most this often per session.
LAST_SEEN_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Lifetimes:
    idle: dt.timedelta = DEFAULT_IDLE
    absolute: dt.timedelta = DEFAULT_MAX

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Lifetimes:
        """The settings; a value that is not a positive number is refused by name."""
        minutes, hours = dt.timedelta(minutes=1), dt.timedelta(hours=1)
        return cls(idle=minutes * _positive(env, IDLE_VARIABLE, DEFAULT_IDLE / minutes),
                   absolute=hours * _positive(env, MAX_VARIABLE, DEFAULT_MAX / hours))


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError(f"{name}={text!r}: give a positive number")
    return value


@dataclass(frozen=True)
class Started:
    session_id: int
    #: what the cookie holds; not stored, not shown again
    token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Live:
    """A presented session token that is valid now."""

    session_id: int
    user_id: int
    #: `last_seen_at` is older than LAST_SEEN_RESOLUTION: `touch` it
    stale: bool = False
    #: Its absolute end and its last noted use (what the idle timeout counts from): what a
    #: cached session is checked against on later requests (web/authentication.py).
    expires_at: dt.datetime | None = None
    last_seen_at: dt.datetime | None = None


def start(conn: sa.Connection, user_id: int, now: dt.datetime, lifetimes: Lifetimes, *,
          replacing: str | None = None, address: str | None = None,
          user_agent: str | None = None) -> Started:
    """A new session of the user. `replacing`: the session token the browser came with,
    ended here whoever it belonged to, so a login never keeps a token it did not make."""
    if replacing:
        end(conn, replacing, now)
    token = new_secret(SESSION_PREFIX)
    expires_at = now + lifetimes.absolute
    session_id = conn.execute(sessions.insert().values(
        user_id=user_id, token_hash=stored_hash(token), created_at=now, last_seen_at=now,
        expires_at=expires_at, address=address, user_agent=(user_agent or "")[:300] or None)
        .returning(sessions.c.id)).scalar_one()
    return Started(int(session_id), token, expires_at)


#: A session by its token's hash, with what decides whether it is live (built once: every
#: request with a session cookie runs it).
FIND = (sa.select(sessions.c.id, sessions.c.user_id, sessions.c.created_at, sessions.c.last_seen_at,
                  sessions.c.expires_at, sessions.c.revoked_at, system.users.c.active,
                  system.users.c.password_changed_at)
        .join(system.users, system.users.c.id == sessions.c.user_id)
        .where(sessions.c.token_hash == sa.bindparam("token_hash"))
        .execution_options(**AUTHENTICATING))


def find(conn: sa.Connection, token: str, now: dt.datetime, lifetimes: Lifetimes) -> Live | None:
    """The live session of `token`, None if there is none (unknown, ended, idle too long,
    past its lifetime, its user disabled, or its user's password changed since it began)."""
    row = conn.execute(FIND, {"token_hash": stored_hash(token)}).first()
    if row is None or row.revoked_at is not None or not row.active:
        return None
    if now >= row.expires_at or now - row.last_seen_at >= lifetimes.idle:
        return None
    if row.password_changed_at is not None and row.created_at < row.password_changed_at:
        return None
    return Live(int(row.id), int(row.user_id), stale=now - row.last_seen_at >= LAST_SEEN_RESOLUTION,
                expires_at=row.expires_at, last_seen_at=row.last_seen_at)


def touch(conn: sa.Connection, session_id: int, now: dt.datetime) -> None:
    """Note the session's use (what the idle timeout counts from)."""
    conn.execute(sessions.update().where(sessions.c.id == session_id, sessions.c.last_seen_at < now)
                 .values(last_seen_at=now))


def end(conn: sa.Connection, token: str, now: dt.datetime) -> bool:
    """Log out: True if the token's session was live and is now ended."""
    done = conn.execute(sessions.update().where(sessions.c.token_hash == stored_hash(token),
                                                sessions.c.revoked_at.is_(None)).values(revoked_at=now))
    return bool(done.rowcount)


def end_all(conn: sa.Connection, user_id: int, now: dt.datetime) -> int:
    """Log out everywhere: every live session of the user ended; how many there were."""
    done = conn.execute(sessions.update().where(sessions.c.user_id == user_id,
                                                sessions.c.revoked_at.is_(None)).values(revoked_at=now))
    return int(done.rowcount)
