"""A signed-in user's `Principal`: their roles, teams, the members of those teams and
everyone below them in the manager hierarchy, read in one round of queries when a request
is authenticated, so the permission checks after it read no user table."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from ..storage import system
from .principal import AUTHENTICATING, SCOPES, Principal, Via


def _user_statement() -> sa.Select[Any]:
    users = system.users
    return (sa.select(users.c.id, users.c.display_name, users.c.email, users.c.active, users.c.manager_id,
                      users.c.time_zone, users.c.locale).where(users.c.id == sa.bindparam("user_id")))


def _memberships_statement() -> sa.Select[Any]:
    """Roles, teams, team members and everyone below, as (kind, name, number) rows."""
    users, members, roles = system.users, system.team_members, system.user_roles
    user_id: sa.BindParameter[int] = sa.bindparam("user_id")
    below = sa.select(users.c.id).where(users.c.manager_id == user_id).cte("below", recursive=True)
    below = below.union(sa.select(users.c.id).where(users.c.manager_id == below.c.id))
    mate = members.alias("mate")
    parts = sa.union_all(
        sa.select(sa.literal("role").label("kind"), roles.c.role.label("name"),
                  sa.cast(sa.null(), sa.BigInteger).label("number")).where(roles.c.user_id == user_id),
        sa.select(sa.literal("team"), sa.cast(sa.null(), sa.String), members.c.team_id)
        .where(members.c.user_id == user_id),
        sa.select(sa.literal("mate"), sa.cast(sa.null(), sa.String), mate.c.user_id)
        .join(members, members.c.team_id == mate.c.team_id).where(members.c.user_id == user_id),
        sa.select(sa.literal("below"), sa.cast(sa.null(), sa.String), below.c.id),
        _attributes_part(user_id),
    ).subquery()
    return sa.select(parts.c.kind, parts.c.name, parts.c.number)


def _attributes_part(user_id: sa.BindParameter[int]) -> sa.Select[Any]:
    """The user's attribute values as ("attribute", "<name>=<JSON value>", null) rows: the
    name and value in the one text column, so they come in the same round trip (a name
    never holds "=": metamodel/names.py)."""
    attributes = system.user_attributes
    return (sa.select(sa.literal("attribute"), attributes.c.name + "=" + attributes.c.value,
                      sa.cast(sa.null(), sa.BigInteger)).where(attributes.c.user_id == user_id))


def _attribute_pairs(texts: list[str]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((name, json.loads(value)) for name, _, value in (t.partition("=") for t in texts)))


# Built once, run with the user's id as a parameter: every request is authenticated with them,
# and building them (and their cache keys) cost more than running them.
USER = _user_statement().execution_options(**AUTHENTICATING)
MEMBERSHIPS = _memberships_statement().execution_options(**AUTHENTICATING)


def load(conn: sa.Connection, user_id: int, via: Via, *, session_id: int | None = None,
         token_id: int | None = None, scopes: frozenset[str] = frozenset(SCOPES)) -> Principal | None:
    """The principal of an active user, None for a disabled or deleted one."""
    user = conn.execute(USER, {"user_id": user_id}).first()
    if user is None or not user.active:
        return None
    found = _rows(conn, user_id)
    roles, teams, mates, subordinates = found["role"], found["team"], found["mate"], found["below"]
    return Principal(
        user_id=int(user.id), name=user.display_name, via=via, email=user.email or "",
        roles=frozenset(roles), teams=frozenset(teams), team_members=frozenset(mates) | {int(user.id)},
        subordinates=frozenset(subordinates) - {int(user.id)},
        manager_id=user.manager_id, time_zone=user.time_zone, locale=user.locale,
        attributes=_attribute_pairs(found["attribute"]),
        session_id=session_id, token_id=token_id, scopes=scopes)


def memberships(conn: sa.Connection, user_id: int) -> tuple[list[str], list[int], list[int], list[int]]:
    """The user's role names, team ids, the ids of their teams' members and of everyone below
    them in the manager hierarchy: one statement (a request is authenticated with three)."""
    found = _rows(conn, user_id)
    return found["role"], found["team"], found["mate"], found["below"]


def _rows(conn: sa.Connection, user_id: int) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {"role": [], "team": [], "mate": [], "below": [], "attribute": []}
    for row in conn.execute(MEMBERSHIPS, {"user_id": user_id}):
        found[row.kind].append(row.name if row.kind in ("role", "attribute") else int(row.number))
    return found
