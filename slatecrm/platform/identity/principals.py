"""A signed-in user's `Principal`: their roles, teams, the members of those teams and
everyone below them in the manager hierarchy, read in one round of queries when a request
is authenticated, so the permission checks after it read no user table."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..storage import system
from .principal import SCOPES, Principal, Via


def load(conn: sa.Connection, user_id: int, via: Via, *, session_id: int | None = None,
         token_id: int | None = None, scopes: frozenset[str] = frozenset(SCOPES)) -> Principal | None:
    """The principal of an active user, None for a disabled or deleted one."""
    users, members, roles = system.users, system.team_members, system.user_roles
    user = conn.execute(sa.select(users.c.id, users.c.display_name, users.c.email, users.c.active,
                                  users.c.manager_id, users.c.time_zone, users.c.locale)
                        .where(users.c.id == user_id)).first()
    if user is None or not user.active:
        return None
    role_names = conn.execute(sa.select(roles.c.role).where(roles.c.user_id == user_id)).scalars().all()
    teams = conn.execute(sa.select(members.c.team_id).where(members.c.user_id == user_id)).scalars().all()
    mates: list[Any] = []
    if teams:
        mates = list(conn.execute(sa.select(members.c.user_id).distinct()
                                  .where(members.c.team_id.in_(teams))).scalars())
    below = sa.select(users.c.id).where(users.c.manager_id == user_id).cte("below", recursive=True)
    below = below.union(sa.select(users.c.id).where(users.c.manager_id == below.c.id))
    subordinates = conn.execute(sa.select(below.c.id)).scalars().all()
    return Principal(
        user_id=int(user.id), name=user.display_name, via=via, email=user.email or "",
        roles=frozenset(role_names), teams=frozenset(int(t) for t in teams),
        team_members=frozenset(int(m) for m in mates) | {int(user.id)},
        subordinates=frozenset(int(s) for s in subordinates) - {int(user.id)},
        manager_id=user.manager_id, time_zone=user.time_zone, locale=user.locale,
        session_id=session_id, token_id=token_id, scopes=scopes)
