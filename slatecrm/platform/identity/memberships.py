"""Who holds which role and who is in which team: the rows a Principal is loaded from.

Roles are named by their definitions (`kind: role` in a pack or the organisation's layer,
kept in the head revision's metamodel) plus the built-in `administrator`; a name no role
defines is refused with the known ones, so a typo cannot grant nothing silently. Teams are
platform data (slate_team), made and removed here. The last active administrator cannot
be disabled or lose the role: someone must always be able to manage users.

Every function does its work in one transaction and raises an IdentityError subclass,
changing nothing, when it refuses. Every change is in the audit log, in the same
transaction: `user.roles` and `user.teams` (a user's roles or teams: before, after, added,
removed), `team.add`, `team.update` and `team.remove`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.names import suggest
from slatecrm.metamodel.roles import ADMINISTRATOR

from ..storage import revisions, system
from . import audit
from .errors import IdentityError
from .principal import SYSTEM, Principal

users, teams, members, user_roles = system.users, system.teams, system.team_members, system.user_roles

#: Characters of a team's name.
TEAM_NAME_MAX = 100


class UnknownRole(IdentityError):
    pass


class UnknownTeam(IdentityError):
    pass


class DuplicateTeam(IdentityError):
    pass


class LastAdministrator(IdentityError):
    """The change would leave no active administrator; `field` is what it changed (`roles`,
    or `active` for a disable), for an answer that names it."""

    def __init__(self, message: str, field: str = "roles") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Team:
    id: int
    name: str
    description: str
    members: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description,
                "members": list(self.members)}


@dataclass(frozen=True)
class Memberships:
    """A user's roles and teams (by name), sorted."""

    roles: tuple[str, ...]
    teams: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"roles": list(self.roles), "teams": list(self.teams)}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- roles -------------------------------------------------------------------------------------
def known_roles(conn: sa.Connection) -> list[str]:
    """The roles a user may be given: the built-in administrator and every defined role."""
    _, metamodel = revisions.current_metamodel(conn)
    return [ADMINISTRATOR, *sorted(r.name for r in metamodel.roles)]


def _check_roles(conn: sa.Connection, names: Iterable[str]) -> None:
    names = list(names)
    if not names:  # the metamodel is not read for nothing
        return
    known = known_roles(conn)
    for name in names:
        if name not in known:
            raise UnknownRole(f"there is no role named {name!r}{suggest(name, known)}; "
                              f"roles: {', '.join(known)}")


def check_names(engine: sa.Engine, roles: Iterable[str], team_names: Iterable[str]) -> None:
    """UnknownRole or UnknownTeam for a name that names nothing, before anything is changed."""
    with engine.connect() as conn:
        _check_roles(conn, roles)
        _team_ids(conn, team_names)


def _user_id(conn: sa.Connection, email: str, *, lock: bool = False) -> int:
    query = sa.select(users.c.id).where(users.c.email_key == email.strip().lower())
    if lock:
        query = query.with_for_update()
    found = conn.execute(query).scalar()
    if found is None:
        raise IdentityError(f"there is no user with the e-mail {email.strip()!r}")
    return int(found)


def active_administrators(conn: sa.Connection, *, lock: bool = False) -> list[int]:
    """The ids of the active users holding the administrator role (locked with `lock`, so
    that two changes at once cannot both remove "the other" administrator)."""
    query = (sa.select(users.c.id).join(user_roles, user_roles.c.user_id == users.c.id)
             .where(user_roles.c.role == ADMINISTRATOR, users.c.active.is_(True)).order_by(users.c.id))
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(of=users)
    return [int(i) for i in conn.execute(query).scalars()]


def refuse_last_administrator(conn: sa.Connection, user_id: int, what: str, field: str = "roles") -> None:
    """LastAdministrator if `user_id` is the only active administrator (`what` the change,
    `field` what it changes)."""
    admins = active_administrators(conn, lock=True)
    if admins == [user_id]:
        email = conn.execute(sa.select(users.c.email).where(users.c.id == user_id)).scalar()
        raise LastAdministrator(f"{email} is the last active administrator: {what} would leave no one "
                                "able to manage users; give another user the administrator role first",
                                field)


def change(engine: sa.Engine, email: str, *, add_roles: Sequence[str] = (), remove_roles: Sequence[str] = (),
           add_teams: Sequence[str] = (), remove_teams: Sequence[str] = (),
           actor: Principal = SYSTEM) -> Memberships:
    """Give or take roles and team memberships; all of them or none. Audited by `actor`
    (the CLI: the system)."""
    with engine.begin() as conn:
        return change_on(conn, _user_id(conn, email, lock=True), add_roles=add_roles,
                         remove_roles=remove_roles, add_teams=add_teams, remove_teams=remove_teams,
                         actor=actor)


def change_on(conn: sa.Connection, user_id: int, *, add_roles: Sequence[str] = (),
              remove_roles: Sequence[str] = (), add_teams: Sequence[str] = (),
              remove_teams: Sequence[str] = (), actor: Principal = SYSTEM) -> Memberships:
    """`change` in the caller's transaction (a user change's, users.py `Then`)."""
    before = _memberships(conn, user_id)
    _check_roles(conn, add_roles)
    if ADMINISTRATOR in remove_roles and ADMINISTRATOR not in add_roles:
        refuse_last_administrator(conn, user_id, "taking the administrator role away")
    held = set(conn.execute(sa.select(user_roles.c.role)
                            .where(user_roles.c.user_id == user_id)).scalars())
    for name in remove_roles:
        if name not in add_roles:
            conn.execute(user_roles.delete().where(user_roles.c.user_id == user_id,
                                                   user_roles.c.role == name))
    for name in dict.fromkeys(add_roles):
        if name not in held:
            conn.execute(user_roles.insert().values(user_id=user_id, role=name))
    team_ids = _team_ids(conn, [*add_teams, *remove_teams])
    for name in remove_teams:
        conn.execute(members.delete().where(members.c.team_id == team_ids[name],
                                            members.c.user_id == user_id))
    current = set(conn.execute(sa.select(members.c.team_id)
                               .where(members.c.user_id == user_id)).scalars())
    for name in dict.fromkeys(add_teams):
        if team_ids[name] not in current:
            conn.execute(members.insert().values(team_id=team_ids[name], user_id=user_id))
    after = _memberships(conn, user_id)
    audit_changes(conn, user_id, before, after, actor)
    return after


def set_on(conn: sa.Connection, user_id: int, *, roles: Sequence[str] | None = None,
           team_names: Sequence[str] | None = None, actor: Principal = SYSTEM) -> Memberships:
    """Make a user's roles and teams exactly these (None: unchanged), in the caller's
    transaction (the admin API changes them with the user's other values, all or nothing).

    A role must be known, unless the user holds it already (a role whose definition was
    removed may stay where it is: it grants nothing). Taking the administrator role from
    the last active administrator is refused. Audited by `actor`."""
    before = _memberships(conn, user_id)
    if roles is not None:
        wanted = list(dict.fromkeys(roles))
        _check_roles(conn, [r for r in wanted if r not in before.roles])
        if ADMINISTRATOR in before.roles and ADMINISTRATOR not in wanted:
            refuse_last_administrator(conn, user_id, "taking the administrator role away")
        for name in set(before.roles) - set(wanted):
            conn.execute(user_roles.delete().where(user_roles.c.user_id == user_id,
                                                   user_roles.c.role == name))
        for name in wanted:
            if name not in before.roles:
                conn.execute(user_roles.insert().values(user_id=user_id, role=name))
    if team_names is not None:
        team_ids = _team_ids(conn, team_names)
        held = set(conn.execute(sa.select(members.c.team_id).where(members.c.user_id == user_id)).scalars())
        gone = held - set(team_ids.values())
        if gone:
            conn.execute(members.delete().where(members.c.user_id == user_id, members.c.team_id.in_(gone)))
        for team_id in dict.fromkeys(team_ids.values()):
            if team_id not in held:
                conn.execute(members.insert().values(team_id=team_id, user_id=user_id))
    after = _memberships(conn, user_id)
    audit_changes(conn, user_id, before, after, actor)
    return after


def audit_changes(conn: sa.Connection, user_id: int, before: Memberships, after: Memberships,
                  actor: Principal) -> None:
    """`user.roles` and `user.teams` events for what changed (nothing changed: no event)."""
    email = conn.execute(sa.select(users.c.email).where(users.c.id == user_id)).scalar()
    for action, old, new in (("user.roles", before.roles, after.roles),
                             ("user.teams", before.teams, after.teams)):
        if old != new:
            audit.record(conn, action, principal=actor, object_kind="user", object_id=user_id,
                         detail={"email": email, "before": list(old), "after": list(new),
                                 "added": [n for n in new if n not in old],
                                 "removed": [n for n in old if n not in new]})


def of_user(conn: sa.Connection, user_id: int) -> Memberships:
    return _memberships(conn, user_id)


def _memberships(conn: sa.Connection, user_id: int) -> Memberships:
    roles = conn.execute(sa.select(user_roles.c.role).where(user_roles.c.user_id == user_id)
                         .order_by(user_roles.c.role)).scalars().all()
    names = conn.execute(sa.select(teams.c.name).join(members, members.c.team_id == teams.c.id)
                         .where(members.c.user_id == user_id).order_by(teams.c.name)).scalars().all()
    return Memberships(tuple(roles), tuple(names))


def all_memberships(engine: sa.Engine) -> dict[int, Memberships]:
    """Every user's roles and teams, by user id (for `user list`), in two queries."""
    with engine.connect() as conn:
        roles: dict[int, list[str]] = {}
        for user_id, role in conn.execute(sa.select(user_roles.c.user_id, user_roles.c.role)
                                          .order_by(user_roles.c.role)):
            roles.setdefault(int(user_id), []).append(role)
        names: dict[int, list[str]] = {}
        for user_id, name in conn.execute(sa.select(members.c.user_id, teams.c.name)
                                          .join(teams, teams.c.id == members.c.team_id)
                                          .order_by(teams.c.name)):
            names.setdefault(int(user_id), []).append(name)
    return {i: Memberships(tuple(roles.get(i, ())), tuple(names.get(i, ()))) for i in {*roles, *names}}


# --- teams -------------------------------------------------------------------------------------
def valid_team_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise IdentityError("a team needs a name")
    if len(cleaned) > TEAM_NAME_MAX:
        raise IdentityError(f"a team's name has at most {TEAM_NAME_MAX} characters")
    return cleaned


def _team_ids(conn: sa.Connection, names: Iterable[str]) -> dict[str, int]:
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    found = {row.name: int(row.id) for row in
             conn.execute(sa.select(teams.c.id, teams.c.name).where(teams.c.name.in_(wanted)))}
    for name in wanted:
        if name not in found:
            known = list(conn.execute(sa.select(teams.c.name).order_by(teams.c.name)).scalars())
            raise UnknownTeam(f"there is no team {name!r}{suggest(name, known)}; teams: "
                              f"{', '.join(known) or 'none yet (slatecrm team add NAME)'}")
    return found


def add_team(engine: sa.Engine, name: str, description: str = "", *, actor: Principal = SYSTEM) -> Team:
    """A new team without members (identity/teams.py `create`), audited as `team.add`."""
    from .teams import create

    return create(engine, name, description, actor=actor)


def update_team(engine: sa.Engine, name: str, *, new_name: str | None = None, description: str | None = None,
                actor: Principal = SYSTEM) -> Team:
    """Rename or describe the team `name` (None: unchanged; identity/teams.py `update`, audited
    as `team.update` with each value's before and after)."""
    from .teams import update

    return update(engine, team(engine, name).id, name=new_name, description=description, actor=actor)


def remove_team(engine: sa.Engine, name: str, *, actor: Principal = SYSTEM) -> Team:
    """Remove a team; its members stay users, they just are no longer in it (identity/teams.py
    `remove`, audited as `team.remove` with the members it had)."""
    from .teams import remove

    return remove(engine, team(engine, name).id, actor=actor)


def team(engine: sa.Engine, name: str) -> Team:
    with engine.connect() as conn:
        team_id = _team_ids(conn, [name])[name]
        row = conn.execute(sa.select(teams).where(teams.c.id == team_id)).one()
        emails = conn.execute(sa.select(sa.func.coalesce(users.c.email, users.c.display_name))
                              .join(members, members.c.user_id == users.c.id)
                              .where(members.c.team_id == team_id).order_by(users.c.email)).scalars().all()
    return Team(int(row.id), row.name, row.description, tuple(emails))


def list_teams(engine: sa.Engine) -> list[Team]:
    """Every team by name, with its members (identity/teams.py `every_team`: two queries)."""
    from .teams import every_team

    return every_team(engine)
