"""The platform's users: add, list, change, disable, enable, set or reset a password.

Every function takes the engine and does its work in one transaction; a refused change
raises an `IdentityError` subclass whose message names what was wrong (the e-mail that is
taken, the user that does not exist, why the password is weak) and changes nothing.

A user is found by e-mail, whatever its case: `email_key`, the e-mail lower-cased, is what
the unique index (`ux_slate_user_email_key`) and every look-up compare. E-mail addresses are
ASCII (the e-mail field type's pattern), so lower-casing them is unambiguous.

An administrator is an active user holding the built-in `administrator` role (memberships.py):
`init --admin-email` and `make demo` make one, with the role, only when there is none.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes.base import CoercionError
from slatecrm.metamodel.fieldtypes.builtin import Email

from ..storage import system
from ..storage.revisions import NotInitialised
from .errors import IdentityError
from .passwords import Passwords

users = system.users

#: A language tag as locales are named: a language, an optional script and region (en, fr-CA,
#: pt_BR, zh-Hant-TW). Pages will pick their translations and formats from it.
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z]{4})?(?:[-_](?:[A-Za-z]{2}|[0-9]{3}))?$")

#: Characters of a user's name.
NAME_MAX = 200


class DuplicateEmail(IdentityError):
    pass


class UnknownUser(IdentityError):
    pass


class InvalidUser(IdentityError):
    """A value a user cannot have (an e-mail, a time zone, a locale, a manager)."""


@dataclass(frozen=True)
class User:
    id: int
    email: str | None
    name: str
    active: bool
    time_zone: str
    locale: str
    manager_id: int | None
    manager_email: str | None
    has_password: bool
    created_at: dt.datetime
    updated_at: dt.datetime | None
    password_changed_at: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (`user list --json`, later the admin API); never the hash."""
        return {"id": self.id, "email": self.email, "name": self.name, "active": self.active,
                "time_zone": self.time_zone, "locale": self.locale, "manager": self.manager_email,
                "has_password": self.has_password, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat() if self.updated_at else None,
                "password_changed_at": (self.password_changed_at.isoformat()
                                        if self.password_changed_at else None)}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- values -------------------------------------------------------------------------------
def valid_email(text: str) -> str:
    """The address as stored: trimmed, its domain lower-cased (the local part keeps its case
    for display; look-ups ignore it)."""
    try:
        return Email().normalise(text)
    except CoercionError:
        raise InvalidUser(f"{text.strip()!r} is not an e-mail address") from None


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def valid_time_zone(name: str) -> str:
    """An IANA name zoneinfo knows ("Europe/Paris", "UTC"); the list is read, not a path
    opened, so no file name gets near the file system."""
    name = name.strip()
    if name != "UTC" and name not in _time_zones():
        raise InvalidUser(f"{name!r} is not a time zone: give an IANA name such as Europe/Paris or UTC")
    return name


def valid_locale(tag: str) -> str:
    tag = tag.strip()
    if not _LOCALE.match(tag):
        raise InvalidUser(f"{tag!r} is not a locale: give a language tag such as en, fr or pt-BR")
    return tag


def valid_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidUser("a user needs a name")
    if len(name) > NAME_MAX:
        raise InvalidUser(f"a name has at most {NAME_MAX} characters")
    return name


def _context(email: str, name: str) -> list[str]:
    """Words a user's password must not be."""
    return [email, email.rsplit("@", 1)[0], name, name.replace(" ", "")]


# --- reading ------------------------------------------------------------------------------
def _check_schema(conn: sa.Connection) -> None:
    if not system.is_initialised(conn):
        raise NotInitialised("the database is not initialised: run `slatecrm init`")
    if not system.user_table_is_current(conn):
        raise NotInitialised("the database was made by an older SlateCRM: run `slatecrm init` to "
                             "bring its tables up to date")


def _select() -> sa.Select[Any]:
    manager = users.alias("manager")
    return (sa.select(users, manager.c.email.label("manager_email"))
            .select_from(users.outerjoin(manager, users.c.manager_id == manager.c.id)))


def _user(row: sa.Row[Any]) -> User:
    return User(id=row.id, email=row.email, name=row.display_name, active=bool(row.active),
                time_zone=row.time_zone, locale=row.locale, manager_id=row.manager_id,
                manager_email=row.manager_email, has_password=row.password_hash is not None,
                created_at=row.created_at, updated_at=row.updated_at,
                password_changed_at=row.password_changed_at)


def _email_is(email: str) -> sa.ColumnElement[bool]:
    return users.c.email_key == email.strip().lower()


def _find(conn: sa.Connection, email: str, *, lock: bool = False) -> sa.Row[Any]:
    query = sa.select(users).where(_email_is(email))
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise UnknownUser(f"there is no user with the e-mail {email.strip()!r}")
    return row


def get(engine: sa.Engine, email: str) -> User:
    with engine.connect() as conn:
        _check_schema(conn)
        row = conn.execute(_select().where(_email_is(email))).first()
    if row is None:
        raise UnknownUser(f"there is no user with the e-mail {email.strip()!r}")
    return _user(row)


def list_users(engine: sa.Engine) -> list[User]:
    """Every user, by name: the ones without an e-mail too (made before identity existed)."""
    with engine.connect() as conn:
        _check_schema(conn)
        rows = conn.execute(_select().order_by(users.c.display_name, users.c.id)).all()
    return [_user(row) for row in rows]


def administrators(engine: sa.Engine) -> list[str]:
    """The e-mails of the active users holding the built-in administrator role."""
    from .memberships import active_administrators

    with engine.connect() as conn:
        _check_schema(conn)
        ids = active_administrators(conn)
        if not ids:
            return []
        return list(conn.execute(sa.select(users.c.email)
                                 .where(users.c.id.in_(ids), users.c.email.is_not(None))
                                 .order_by(users.c.id)).scalars())


# --- changing -----------------------------------------------------------------------------
def _manager_id(conn: sa.Connection, manager: str | None, user: sa.Row[Any] | None) -> int | None:
    """The manager's id; refuses a manager that would close a cycle (the user itself, or
    anyone the user manages, directly or not)."""
    if manager is None:
        return None
    row = _find(conn, manager)
    if user is None:
        return int(row.id)
    if row.id == user.id:
        raise InvalidUser(f"{row.email} cannot be their own manager")
    seen: set[int] = set()
    current: int | None = int(row.id)
    while current is not None and current not in seen:
        if current == user.id:
            raise InvalidUser(f"{row.email} cannot be the manager of {user.email}: {user.email} manages "
                              f"{row.email}, directly or through others, and the chain would be a circle")
        seen.add(current)
        current = conn.execute(sa.select(users.c.manager_id).where(users.c.id == current)).scalar()
    return int(row.id)


def _insert(conn: sa.Connection, values: dict[str, Any]) -> None:
    email = values["email"]
    if conn.execute(sa.select(users.c.id).where(_email_is(email))).first() is not None:
        raise DuplicateEmail(f"a user with the e-mail {email!r} exists already")
    if conn.execute(sa.select(users.c.id).where(users.c.username == values["username"])).first():
        raise DuplicateEmail(f"a user with the user name {values['username']!r} exists already")
    try:
        with conn.begin_nested():
            conn.execute(users.insert().values(**values))
    except sa.exc.IntegrityError:
        # Added by someone else between the check and the insert.
        raise DuplicateEmail(f"a user with the e-mail {email!r} exists already") from None


def add(engine: sa.Engine, email: str, name: str, *, time_zone: str = "UTC", locale: str = "en",
        manager: str | None = None, password: str | None = None,
        passwords: Passwords | None = None) -> User:
    """A new user; without a password it cannot sign in until one is set."""
    email, name = valid_email(email), valid_name(name)
    time_zone, locale = valid_time_zone(time_zone), valid_locale(locale)
    password_hash = None
    if password is not None:
        password_hash = (passwords or Passwords.from_environment()).hash(
            password, context=_context(email, name))
    now = _now()
    with engine.begin() as conn:
        _check_schema(conn)
        manager_id = _manager_id(conn, manager, None)
        _insert(conn, {"username": email.lower(), "display_name": name, "email": email,
                       "email_key": email.lower(),
                       "active": True, "time_zone": time_zone, "locale": locale,
                       "manager_id": manager_id, "password_hash": password_hash,
                       "password_changed_at": now if password_hash else None,
                       "created_at": now, "updated_at": now})
    return get(engine, email)


_UNCHANGED: Any = object()


def update(engine: sa.Engine, email: str, *, name: str | None = None, time_zone: str | None = None,
           locale: str | None = None, manager: str | None = _UNCHANGED) -> User:
    """Change a user's name, time zone, locale or manager (`manager=None`: no manager)."""
    values: dict[str, Any] = {}
    if name is not None:
        values["display_name"] = valid_name(name)
    if time_zone is not None:
        values["time_zone"] = valid_time_zone(time_zone)
    if locale is not None:
        values["locale"] = valid_locale(locale)
    with engine.begin() as conn:
        _check_schema(conn)
        row = _find(conn, email, lock=True)
        if manager is not _UNCHANGED:
            values["manager_id"] = _manager_id(conn, manager, row)
        if values:
            conn.execute(users.update().where(users.c.id == row.id).values(**values, updated_at=_now()))
    return get(engine, email)


def _set(engine: sa.Engine, email: str, **values: Any) -> User:
    with engine.begin() as conn:
        _check_schema(conn)
        row = _find(conn, email, lock=True)
        conn.execute(users.update().where(users.c.id == row.id).values(**values, updated_at=_now()))
    return get(engine, email)


def disable(engine: sa.Engine, email: str) -> User:
    """The user keeps its records, history and name (owners stay who they were) and will
    not be able to sign in. The last active administrator cannot be disabled."""
    from .memberships import refuse_last_administrator

    with engine.begin() as conn:
        _check_schema(conn)
        row = _find(conn, email, lock=True)
        refuse_last_administrator(conn, int(row.id), "disabling them")
        conn.execute(users.update().where(users.c.id == row.id).values(active=False, updated_at=_now()))
    return get(engine, email)


def enable(engine: sa.Engine, email: str) -> User:
    return _set(engine, email, active=True)


def set_password(engine: sa.Engine, email: str, password: str, *,
                 passwords: Passwords | None = None) -> User:
    """Set a password the policy accepts. What was granted before (sessions, later) is
    revoked: `password_changed_at` moves to now."""
    user = get(engine, email)
    password_hash = (passwords or Passwords.from_environment()).hash(
        password, context=_context(user.email or email, user.name))
    return _set(engine, email, password_hash=password_hash, password_changed_at=_now())


def reset(engine: sa.Engine, email: str) -> User:
    """Clear the password: the user cannot sign in until someone sets a new one, and what
    was granted before (sessions, later) is revoked, as `password_changed_at` moves to now."""
    return _set(engine, email, password_hash=None, password_changed_at=_now())


def check_password(engine: sa.Engine, email: str, password: str, *,
                   passwords: Passwords | None = None) -> User | None:
    """The active user with this e-mail and password, or None (unknown, disabled, no
    password, wrong password: the same answer, in about the same time). A hash made with
    parameters other than the current ones is replaced by a current one."""
    passwords = passwords or Passwords.from_environment()
    with engine.connect() as conn:
        _check_schema(conn)
        row = conn.execute(sa.select(users).where(_email_is(email))).first()
    if row is None or row.password_hash is None or not row.active:
        passwords.waste_time(password)
        return None
    verified = passwords.verify(row.password_hash, password)
    if not verified.ok:
        return None
    if verified.rehashed is not None:
        with engine.begin() as conn:
            # Only if it is still the hash just checked (a new password set meanwhile wins).
            conn.execute(users.update().where(users.c.id == row.id,
                                              users.c.password_hash == row.password_hash)
                         .values(password_hash=verified.rehashed))
    return get(engine, email)


@dataclass(frozen=True)
class FirstAdmin:
    created: User | None
    #: when none was created: the administrators that exist
    existing: Sequence[str] = ()


def first_admin(engine: sa.Engine, email: str, name: str, password: str, *,
                passwords: Passwords | None = None) -> FirstAdmin:
    """The first administrator, made only when there is none (so `init --admin-email` and
    `make demo` can run again)."""
    existing = administrators(engine)
    if existing:
        return FirstAdmin(None, existing)
    try:
        made = add(engine, email, name, password=password, passwords=passwords)
    except DuplicateEmail:
        # A database from before roles: its first user becomes the administrator it was.
        made = set_password(engine, email, password, passwords=passwords)
    roles = system.user_roles
    with engine.begin() as conn:
        held = conn.execute(sa.select(roles.c.role).where(roles.c.user_id == made.id,
                                                          roles.c.role == "administrator")).first()
        if held is None:
            conn.execute(roles.insert().values(user_id=made.id, role="administrator"))
        conn.execute(users.update().where(users.c.id == made.id).values(active=True))
    return FirstAdmin(get(engine, email))
