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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes.base import CoercionError
from slatecrm.metamodel.fieldtypes.builtin import Email

from ..storage import system
from ..storage.revisions import NotInitialised
from . import audit
from .errors import IdentityError
from .passwords import Passwords
from .principal import SYSTEM, Principal
from .writes import writing

users = system.users

#: A language tag as locales are named: a language, an optional script and region (en, fr-CA,
#: pt_BR, zh-Hant-TW). Pages will pick their translations and formats from it.
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z]{4})?(?:[-_](?:[A-Za-z]{2}|[0-9]{3}))?$")

#: Characters of a user's name.
NAME_MAX = 200
#: The locale pattern, for the API's schemas.
LOCALE_PATTERN = _LOCALE.pattern


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


def time_zones() -> list[str]:
    """Every time zone a user may have, sorted (the API's schemas and forms list them)."""
    return sorted(_time_zones() | {"UTC"})


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


def get_by_id(engine: sa.Engine, user_id: int) -> User:
    """The user with this id (the admin API's addresses name users by id)."""
    with engine.connect() as conn:
        _check_schema(conn)
        row = conn.execute(_select().where(users.c.id == user_id)).first()
    if row is None:
        raise UnknownUser(f"there is no user {user_id}")
    return _user(row)


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


def _audit(conn: sa.Connection, action: str, row_id: int, email: str | None, actor: Principal,
           detail: dict[str, Any]) -> None:
    """One user change in the audit log, in the change's own transaction: who made it and
    what changed (before and after per field); a password only as "set" or "cleared"."""
    audit.record(conn, action, principal=actor, object_kind="user", object_id=row_id,
                 detail={"email": email, **detail})


#: The audit log's names of the columns a change touches.
#: More of a change, made in its transaction once the user row is written (the admin API sets
#: roles and teams with the user's other values: all or nothing), given the user's id.
Then = Callable[[sa.Connection, int], object]


def steps(*thens: Then | None) -> Then | None:
    """Several `then`s of one user change, run in order in its transaction (None: none given)."""
    given = [then for then in thens if then is not None]
    if not given:
        return None

    def run(conn: sa.Connection, user_id: int) -> None:
        for then in given:
            then(conn, user_id)
    return run

_AUDITED = {"display_name": "name", "time_zone": "time_zone", "locale": "locale",
            "manager_id": "manager_id", "active": "active"}


def _changes(row: sa.Row[Any], values: dict[str, Any]) -> dict[str, list[Any]]:
    return {_AUDITED[column]: [getattr(row, column), value] for column, value in values.items()
            if column in _AUDITED and getattr(row, column) != value}


def add(engine: sa.Engine, email: str, name: str, *, time_zone: str = "UTC", locale: str = "en",
        manager: str | None = None, password: str | None = None,
        passwords: Passwords | None = None, actor: Principal = SYSTEM, then: Then | None = None) -> User:
    """A new user; without a password it cannot sign in until one is set. Audited as
    `user.add` by `actor` (the CLI: the system); `then` runs in the same transaction."""
    email, name = valid_email(email), valid_name(name)
    time_zone, locale = valid_time_zone(time_zone), valid_locale(locale)
    password_hash = None
    if password is not None:
        password_hash = (passwords or Passwords.from_environment()).hash(
            password, context=_context(email, name))
    now = _now()
    with writing(engine) as conn:
        _check_schema(conn)
        manager_id = _manager_id(conn, manager, None)
        _insert(conn, {"username": email.lower(), "display_name": name, "email": email,
                       "email_key": email.lower(),
                       "active": True, "time_zone": time_zone, "locale": locale,
                       "manager_id": manager_id, "password_hash": password_hash,
                       "password_changed_at": now if password_hash else None,
                       "created_at": now, "updated_at": now})
        made = _find(conn, email)
        _audit(conn, "user.add", int(made.id), email, actor,
               {"after": {"name": name, "time_zone": time_zone, "locale": locale,
                          "manager_id": manager_id, "active": True,
                          "password": "set" if password_hash else None}})
        if then is not None:
            then(conn, int(made.id))
    return get(engine, email)


_UNCHANGED: Any = object()


def update(engine: sa.Engine, email: str, *, name: str | None = None, time_zone: str | None = None,
           locale: str | None = None, manager: str | None = _UNCHANGED, active: bool | None = None,
           actor: Principal = SYSTEM, then: Then | None = None) -> User:
    """Change a user's name, time zone, locale, manager (`manager=None`: no manager) or
    active flag in one transaction. Audited by `actor`: `user.update` with each changed
    field's before and after, and `user.disable` / `user.enable` when the flag changes;
    `then` runs in the same transaction."""
    values: dict[str, Any] = {}
    if name is not None:
        values["display_name"] = valid_name(name)
    if time_zone is not None:
        values["time_zone"] = valid_time_zone(time_zone)
    if locale is not None:
        values["locale"] = valid_locale(locale)
    with writing(engine) as conn:
        _check_schema(conn)
        row = _find(conn, email, lock=True)
        if manager is not _UNCHANGED:
            values["manager_id"] = _manager_id(conn, manager, row)
        flag = {} if active is None or active == bool(row.active) else {"active": active}
        changes = _changes(row, values)
        if values:
            conn.execute(users.update().where(users.c.id == row.id).values(**values, updated_at=_now()))
        if changes:
            _audit(conn, "user.update", int(row.id), row.email, actor, {"changes": changes})
        if flag:
            _set_on(conn, row, actor, **flag)
        if then is not None:
            then(conn, int(row.id))
    return get(engine, email)


def _action(values: dict[str, Any]) -> str:
    if "active" in values:
        return "user.enable" if values["active"] else "user.disable"
    return "user.password_reset" if values.get("password_hash") is None else "user.password_set"


def _set_on(conn: sa.Connection, row: sa.Row[Any], actor: Principal, **values: Any) -> None:
    if values.get("active") is False:
        from .memberships import refuse_last_administrator

        refuse_last_administrator(conn, int(row.id), "disabling them", "active")
    conn.execute(users.update().where(users.c.id == row.id).values(**values, updated_at=_now()))
    detail: dict[str, Any] = {"changes": _changes(row, values)}
    if "password_changed_at" in values:
        detail = {"password": "cleared" if values.get("password_hash") is None else "set"}
        # Sessions end with the password they were opened with (API tokens made before it
        # stop working too: identity/tokens.py compares their creation with this moment).
        sessions = system.sessions
        conn.execute(sessions.update().where(sessions.c.user_id == row.id, sessions.c.revoked_at.is_(None))
                     .values(revoked_at=values["password_changed_at"]))
    _audit(conn, _action(values), int(row.id), row.email, actor, detail)


def _set(engine: sa.Engine, email: str, actor: Principal = SYSTEM, **values: Any) -> User:
    with writing(engine) as conn:
        _check_schema(conn)
        row = _find(conn, email, lock=True)
        _set_on(conn, row, actor, **values)
    return get(engine, email)


def disable(engine: sa.Engine, email: str, *, actor: Principal = SYSTEM) -> User:
    """The user keeps its records, history and name (owners stay who they were) and will
    not be able to sign in. The last active administrator cannot be disabled."""
    return _set(engine, email, actor, active=False)


def enable(engine: sa.Engine, email: str, *, actor: Principal = SYSTEM) -> User:
    return _set(engine, email, actor, active=True)


def set_password(engine: sa.Engine, email: str, password: str, *,
                 passwords: Passwords | None = None, actor: Principal = SYSTEM) -> User:
    """Set a password the policy accepts. What was granted before (sessions, API tokens) is
    revoked: `password_changed_at` moves to now."""
    user = get(engine, email)
    password_hash = (passwords or Passwords.from_environment()).hash(
        password, context=_context(user.email or email, user.name))
    return _set(engine, email, actor, password_hash=password_hash, password_changed_at=_now())


def reset(engine: sa.Engine, email: str, *, actor: Principal = SYSTEM) -> User:
    """Clear the password: the user cannot sign in until someone sets a new one, and what
    was granted before (sessions, API tokens) is revoked, as `password_changed_at` moves to
    now."""
    return _set(engine, email, actor, password_hash=None, password_changed_at=_now())


def roles_and_teams(engine: sa.Engine, user_id: int) -> tuple[list[str], list[str]]:
    """The names of a user's roles and teams, sorted (what "me" and the admin pages show)."""
    return access_of(engine, [user_id])[user_id]


def access_of(engine: sa.Engine, user_ids: Sequence[int]) -> dict[int, tuple[list[str], list[str]]]:
    """Each user's role and team names, sorted, in two queries whatever the number of users
    (a list of users is not a query per user)."""
    found: dict[int, tuple[list[str], list[str]]] = {u: ([], []) for u in user_ids}
    if not found:
        return found
    roles, teams, members = system.user_roles, system.teams, system.team_members
    with engine.connect() as conn:
        for user_id, role in conn.execute(sa.select(roles.c.user_id, roles.c.role)
                                          .where(roles.c.user_id.in_(found)).order_by(roles.c.role)):
            found[int(user_id)][0].append(role)
        for user_id, team in conn.execute(sa.select(members.c.user_id, teams.c.name)
                                          .join(teams, members.c.team_id == teams.c.id)
                                          .where(members.c.user_id.in_(found)).order_by(teams.c.name)):
            found[int(user_id)][1].append(team)
    return found


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
        with writing(engine) as conn:
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
