"""Personal API tokens: created by a user, with a name, scopes and an expiry; shown once,
stored hashed (identity/secrettokens.py), revocable, with the time they were last used.
A request presents one as `Authorization: Bearer slc_…` (web/authentication.py)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from ..storage import system
from . import audit
from .errors import IdentityError
from .principal import AUTHENTICATING, SCOPES, SYSTEM, Principal
from .secrettokens import new_secret, stored_hash

tokens = system.api_tokens
#: What every token starts with.
TOKEN_PREFIX = "slc_"
#: Characters of a token shown in lists, so its owner can tell them apart.
SHOWN_PREFIX = 12
#: `last_used_at` is written at most this often per token (not a write per request).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
#: Live tokens a user may hold at once: a leaked script making tokens in a loop stops here,
#: and a list of them stays one page long.
LIVE_MAX = 50
#: How long a token lives when no expiry is given; `never` must be asked for explicitly.
DEFAULT_LIFETIME = dt.timedelta(days=90)
#: Characters of a token's name.
NAME_MAX = 100
#: A lifetime as typed: `30d`, `12h`, `8w`.
_LIFETIME = re.compile(r"^([1-9][0-9]{0,4})([hdw])$")
_UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}

#: Where a token stands: usable, past its expiry, revoked, or made before its user's last
#: password change or reset (which ends every token made before it).
State = Literal["active", "expired", "revoked", "superseded"]


class InvalidToken(IdentityError):
    """A token that cannot be made as asked (no scope, an unknown scope, an expiry in the past)."""


class DuplicateName(InvalidToken):
    """A live token of the user has this name already."""


class TooManyTokens(InvalidToken):
    """The user holds LIVE_MAX live tokens already."""


@dataclass(frozen=True)
class TokenMatch:
    """A presented token that is valid now: whose it is and what it allows."""

    token_id: int
    user_id: int
    scopes: frozenset[str]
    #: Its last use was noted more than LAST_USED_RESOLUTION ago (or never): `touch` it.
    stale: bool = False
    #: When it stops being valid, whatever else happens (None: never); its last noted use.
    #: What a cached match is checked against on later requests (web/authentication.py).
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None


def valid_scopes(scopes: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(scopes)
    unknown = sorted(chosen - set(SCOPES))
    if unknown:
        raise InvalidToken(f"unknown scope {', '.join(unknown)}; scopes: {', '.join(SCOPES)}")
    if not chosen:
        raise InvalidToken(f"give a token at least one scope ({', '.join(SCOPES)})")
    return chosen


def valid_name(name: str) -> str:
    name = " ".join(name.split())
    if "\x00" in name:
        raise InvalidToken("a token's name cannot hold the NUL character")
    if not name:
        raise InvalidToken("give the token a name (what it is for: \"nightly export\")")
    if len(name) > NAME_MAX:
        raise InvalidToken(f"a token's name has at most {NAME_MAX} characters")
    return name


def parse_expiry(text: str | None, now: dt.datetime) -> dt.datetime | None:
    """When a token given `text` expires: None (no text) is the default lifetime, `never`
    is no expiry, `30d` / `12h` / `8w` a lifetime from now, `2027-01-31` the start of that
    day (UTC) and a full ISO date-time that moment."""
    if text is None:
        return now + DEFAULT_LIFETIME
    text = text.strip()
    if text.lower() == "never":
        return None
    if match := _LIFETIME.match(text.lower()):
        return now + int(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = (dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC) if len(text) == 10
                  else dt.datetime.fromisoformat(text))
    except ValueError:
        raise InvalidToken(f"{text[:40]!r} is not an expiry: give a lifetime (30d, 12h, 8w), a date "
                           "(2027-01-31), a date-time with its offset, or never") from None
    if moment.tzinfo is None:
        raise InvalidToken(f"{text[:40]!r} has no time zone offset: add one (Z or +02:00)")
    if moment <= now:
        raise InvalidToken("the expiry is in the past")
    return moment.astimezone(dt.UTC)


def _live(now: dt.datetime) -> sa.ColumnElement[bool]:
    """Tokens that are neither revoked nor expired (a password change is checked apart)."""
    return sa.and_(tokens.c.revoked_at.is_(None),
                   sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > now))


def create(conn: sa.Connection, user_id: int, name: str, scopes: Iterable[str], *,
           expires_at: dt.datetime | None, now: dt.datetime,
           actor: Principal = SYSTEM, address: str | None = None) -> tuple[int, str]:
    """A new token of the user: its id and the token itself, which is not stored and cannot
    be shown again. Refused past LIVE_MAX live tokens, or with the name of a live one (a
    list where two tokens look alike is a list where the wrong one gets revoked). Audited
    as `token.create` by `actor`, in the caller's transaction; the secret is never logged."""
    chosen = valid_scopes(scopes)
    name = valid_name(name)
    if expires_at is not None and expires_at <= now:
        raise InvalidToken("the expiry is in the past")
    users = system.users
    # One token made at a time per user, so the count and the name check hold (PostgreSQL
    # locks the row; SQLite has one writer anyway).
    owner = conn.execute(sa.select(users.c.id, users.c.password_changed_at).where(users.c.id == user_id)
                         .with_for_update()).first()
    if owner is None:
        raise InvalidToken(f"there is no user {user_id}")
    live = _live(now)
    if owner.password_changed_at is not None:
        live = sa.and_(live, tokens.c.created_at >= owner.password_changed_at)
    names = conn.execute(sa.select(tokens.c.name).where(tokens.c.user_id == user_id, live)).scalars().all()
    if name in names:
        raise DuplicateName(f"the name {name!r} is already used by a live token of this user: choose "
                            "another, or revoke that one first")
    if len(names) >= LIVE_MAX:
        raise TooManyTokens(f"a user holds at most {LIVE_MAX} live tokens: revoke one first")
    secret = new_secret(TOKEN_PREFIX)
    token_id = int(conn.execute(tokens.insert().values(
        user_id=user_id, name=name, token_hash=stored_hash(secret), prefix=secret[:SHOWN_PREFIX],
        scopes=sorted(chosen), created_at=now, expires_at=expires_at).returning(tokens.c.id)).scalar_one())
    audit.record(conn, "token.create", principal=actor, address=address, object_kind="token",
                 object_id=token_id, at=now,
                 detail={"owner": user_id, "name": name, "scopes": sorted(chosen),
                         "expires_at": expires_at.isoformat() if expires_at else None})
    return token_id, secret


#: A token by its hash, with what decides whether it is live (built once: every API request runs it).
FIND = (sa.select(tokens.c.id, tokens.c.user_id, tokens.c.scopes, tokens.c.created_at, tokens.c.last_used_at,
                  tokens.c.expires_at, tokens.c.revoked_at, system.users.c.active,
                  system.users.c.password_changed_at)
        .join(system.users, system.users.c.id == tokens.c.user_id)
        .where(tokens.c.token_hash == sa.bindparam("token_hash"))
        .execution_options(**AUTHENTICATING))


def find(conn: sa.Connection, secret: str, now: dt.datetime) -> TokenMatch | None:
    """The token `secret` if it is valid now: not revoked, not expired, made after its user's
    last password change or reset, of an active user. Reads only (a request's check must not
    take SQLite's write lock): `touch` notes the use when `stale` says it is due."""
    row = conn.execute(FIND, {"token_hash": stored_hash(secret)}).first()
    if row is None or row.revoked_at is not None or not row.active:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.password_changed_at is not None and row.created_at < row.password_changed_at:
        return None
    return TokenMatch(int(row.id), int(row.user_id), frozenset(row.scopes), due(row.last_used_at, now),
                      row.expires_at, row.last_used_at)


def due(last_used_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a use at `now` is to be noted, the last one noted being `last_used_at`."""
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


def touch(conn: sa.Connection, token_id: int, now: dt.datetime) -> bool:
    """Note the token's use, at most once a LAST_USED_RESOLUTION: True if this call noted
    it, False if a use was noted less than that ago (by another worker or process, which
    may have known of a later use than the caller did)."""
    recent = now - LAST_USED_RESOLUTION
    done = conn.execute(tokens.update().where(
        tokens.c.id == token_id, sa.or_(tokens.c.last_used_at.is_(None), tokens.c.last_used_at <= recent))
        .values(last_used_at=now))
    return bool(done.rowcount)


def authenticate(conn: sa.Connection, secret: str, now: dt.datetime) -> TokenMatch | None:
    """`find`, then `touch` when due, on one connection (scripts and tests)."""
    match = find(conn, secret, now)
    if match is not None and match.stale:
        touch(conn, match.token_id, now)
    return match


def revoke(conn: sa.Connection, token_id: int, now: dt.datetime, *, owner: int | None = None,
           actor: Principal = SYSTEM, address: str | None = None) -> bool:
    """True if the token was live and is now revoked (audited as `token.revoke`). With
    `owner`, only a token of that user is revoked: another user's is left as it is."""
    where = [tokens.c.id == token_id, tokens.c.revoked_at.is_(None)]
    if owner is not None:
        where.append(tokens.c.user_id == owner)
    done = conn.execute(tokens.update().where(*where).values(revoked_at=now))
    if not done.rowcount:
        return False
    audit.record(conn, "token.revoke", principal=actor, address=address, object_kind="token",
                 object_id=token_id, at=now)
    return True


@dataclass(frozen=True)
class TokenInfo:
    """A token as its lists show it: never its secret nor its hash."""

    id: int
    user_id: int
    user_email: str | None
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    state: State

    def as_dict(self) -> dict[str, Any]:
        def moment(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {"id": self.id, "user_id": self.user_id, "user": self.user_email, "name": self.name,
                "prefix": self.prefix, "scopes": list(self.scopes),
                "created_at": self.created_at.isoformat(), "expires_at": moment(self.expires_at),
                "last_used_at": moment(self.last_used_at), "revoked_at": moment(self.revoked_at),
                "state": self.state}


def _state(row: Any, now: dt.datetime) -> State:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    if row.password_changed_at is not None and row.created_at < row.password_changed_at:
        return "superseded"
    return "active"


def listed(conn: sa.Connection, now: dt.datetime, *, user_id: int | None = None,
           token_id: int | None = None) -> list[TokenInfo]:
    """Tokens, newest first: one user's (`user_id`), one token (`token_id`) or every one."""
    users = system.users
    query = (sa.select(tokens.c.id, tokens.c.user_id, users.c.email, tokens.c.name, tokens.c.prefix,
                       tokens.c.scopes, tokens.c.created_at, tokens.c.expires_at, tokens.c.last_used_at,
                       tokens.c.revoked_at, users.c.password_changed_at)
             .join(users, users.c.id == tokens.c.user_id)
             .order_by(tokens.c.created_at.desc(), tokens.c.id.desc()))
    if user_id is not None:
        query = query.where(tokens.c.user_id == user_id)
    if token_id is not None:
        query = query.where(tokens.c.id == token_id)
    return [TokenInfo(id=int(r.id), user_id=int(r.user_id), user_email=r.email, name=r.name, prefix=r.prefix,
                      scopes=tuple(r.scopes), created_at=r.created_at, expires_at=r.expires_at,
                      last_used_at=r.last_used_at, revoked_at=r.revoked_at, state=_state(r, now))
            for r in conn.execute(query)]
