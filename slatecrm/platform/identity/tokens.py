"""Personal API tokens: created by a user, with a name, scopes and an expiry; shown once,
stored hashed (identity/secrettokens.py), revocable, with the time they were last used.
A request presents one as `Authorization: Bearer slc_…` (web/authentication.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from ..storage import system
from .errors import IdentityError
from .principal import SCOPES
from .secrettokens import new_secret, stored_hash

tokens = system.api_tokens
#: What every token starts with.
TOKEN_PREFIX = "slc_"
#: Characters of a token shown in lists, so its owner can tell them apart.
SHOWN_PREFIX = 12
#: `last_used_at` is written at most this often per token (not a write per request).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class InvalidToken(IdentityError):
    """A token that cannot be made as asked (no scope, an unknown scope, an expiry in the past)."""


@dataclass(frozen=True)
class TokenMatch:
    """A presented token that is valid now: whose it is and what it allows."""

    token_id: int
    user_id: int
    scopes: frozenset[str]


def valid_scopes(scopes: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(scopes)
    unknown = sorted(chosen - set(SCOPES))
    if unknown:
        raise InvalidToken(f"unknown scope {', '.join(unknown)}; scopes: {', '.join(SCOPES)}")
    if not chosen:
        raise InvalidToken(f"give a token at least one scope ({', '.join(SCOPES)})")
    return chosen


def create(conn: sa.Connection, user_id: int, name: str, scopes: Iterable[str], *,
           expires_at: dt.datetime | None, now: dt.datetime) -> tuple[int, str]:
    """A new token of the user: its id and the token itself, which is not stored and cannot
    be shown again."""
    chosen = valid_scopes(scopes)
    if expires_at is not None and expires_at <= now:
        raise InvalidToken("the expiry is in the past")
    secret = new_secret(TOKEN_PREFIX)
    token_id = conn.execute(tokens.insert().values(
        user_id=user_id, name=name, token_hash=stored_hash(secret), prefix=secret[:SHOWN_PREFIX],
        scopes=sorted(chosen), created_at=now, expires_at=expires_at).returning(tokens.c.id)).scalar_one()
    return int(token_id), secret


def authenticate(conn: sa.Connection, secret: str, now: dt.datetime) -> TokenMatch | None:
    """The token `secret` if it is valid now: not revoked, not expired, made after its user's
    last password change or reset, of an active user. Notes when it was used."""
    users = system.users
    row = conn.execute(
        sa.select(tokens.c.id, tokens.c.user_id, tokens.c.scopes, tokens.c.created_at, tokens.c.last_used_at,
                  tokens.c.expires_at, tokens.c.revoked_at, users.c.active, users.c.password_changed_at)
        .join(users, users.c.id == tokens.c.user_id)
        .where(tokens.c.token_hash == stored_hash(secret))).first()
    if row is None or row.revoked_at is not None or not row.active:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.password_changed_at is not None and row.created_at < row.password_changed_at:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        conn.execute(tokens.update().where(tokens.c.id == row.id).values(last_used_at=now))
    return TokenMatch(int(row.id), int(row.user_id), frozenset(row.scopes))


def revoke(conn: sa.Connection, token_id: int, now: dt.datetime) -> bool:
    """True if the token was live and is now revoked."""
    done = conn.execute(tokens.update().where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                        .values(revoked_at=now))
    return bool(done.rowcount)
