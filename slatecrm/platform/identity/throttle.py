"""Login throttling: after a few wrong passwords for one account, or from one client
address, further attempts are refused without checking the password, for a time that
doubles with each failure after that.

Counters live in slate_login_throttle, so every worker (and every server over the same
database) sees the same ones. An account's key is the e-mail as typed, lower-cased,
whether or not such a user exists: an unknown e-mail is throttled exactly like a known one,
so the answers never tell which addresses have accounts. A successful login clears the
account's counter; the address's counter is left to expire, so one right password does not
reopen an address that is trying many accounts (password spraying).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from ..storage import system

table = system.login_throttle


@dataclass(frozen=True)
class Policy:
    #: failures for an account before its logins are held back
    account_failures: int = 5
    #: failures from one address (several people behind one office NAT share it, so more)
    address_failures: int = 20
    #: the first hold; each further failure doubles it
    first_delay: dt.timedelta = dt.timedelta(seconds=30)
    longest_delay: dt.timedelta = dt.timedelta(hours=1)
    #: failures older than this (since the last one) are forgotten
    forget_after: dt.timedelta = dt.timedelta(hours=1)


DEFAULT = Policy()


def account_key(email: str) -> str:
    return "account:" + email.strip().lower()


def address_key(address: str | None) -> str | None:
    return f"address:{address}" if address else None


def blocked_until(conn: sa.Connection, keys: list[str], now: dt.datetime) -> dt.datetime | None:
    """The latest time any of `keys` is held back until, if that is still to come."""
    until = conn.execute(sa.select(sa.func.max(table.c.blocked_until))
                         .where(table.c.key.in_(keys), table.c.blocked_until > now)).scalar()
    return until if isinstance(until, dt.datetime) else None


def _threshold(key: str, policy: Policy) -> int:
    return policy.address_failures if key.startswith("address:") else policy.account_failures


def failed(conn: sa.Connection, keys: list[str], now: dt.datetime, policy: Policy = DEFAULT) -> None:
    """Count one failure against each key; from the threshold on, hold the key back for
    `first_delay`, doubled for each failure past it (up to `longest_delay`)."""
    for key in keys:
        row = conn.execute(sa.select(table).where(table.c.key == key).with_for_update()).first()
        failures = 1
        if row is not None and now - row.last_failure_at < policy.forget_after:
            failures = int(row.failures) + 1
        over = failures - _threshold(key, policy)
        until = None
        if over >= 0:
            until = now + min(policy.first_delay * (2 ** min(over, 20)), policy.longest_delay)
        values = {"failures": failures, "last_failure_at": now, "blocked_until": until}
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(table.insert().values(key=key, **values))
                continue
            except sa.exc.IntegrityError:  # another worker counted the same key first
                pass
        conn.execute(table.update().where(table.c.key == key).values(**values))


def succeeded(conn: sa.Connection, email: str) -> None:
    """A right password: the account's counter starts again."""
    conn.execute(table.delete().where(table.c.key == account_key(email)))
