"""Teams as the admin API and pages edit them: found by id, their name, description and
members (by e-mail) set together, all or nothing, each change in the audit log in the same
transaction (`team.add`, `team.update` with what changed, `team.remove`).

`slatecrm team …` (cli_teams.py) makes and removes teams by name through memberships.py,
which makes them here too; a user's own teams are set with its other memberships there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.names import suggest

from ..storage import system
from . import audit
from .errors import IdentityError
from .memberships import DuplicateTeam, Team, UnknownTeam, valid_team_name
from .principal import SYSTEM, Principal
from .writes import writing

teams, members, users = system.teams, system.team_members, system.users

#: Characters of a team's description.
DESCRIPTION_MAX = 1000


class UnknownMember(IdentityError):
    """A member named by an e-mail no user has."""


def valid_description(text: str) -> str:
    text = text.strip()
    if len(text) > DESCRIPTION_MAX:
        raise IdentityError(f"a team's description has at most {DESCRIPTION_MAX} characters")
    return text


def _row(conn: sa.Connection, team_id: int, *, lock: bool = False) -> sa.Row[Any]:
    query = sa.select(teams).where(teams.c.id == team_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise UnknownTeam(f"there is no team {team_id}")
    return row


def _members(conn: sa.Connection, team_id: int) -> tuple[str, ...]:
    return tuple(conn.execute(sa.select(sa.func.coalesce(users.c.email, users.c.display_name))
                              .join(members, members.c.user_id == users.c.id)
                              .where(members.c.team_id == team_id).order_by(users.c.email)).scalars())


def _team(conn: sa.Connection, team_id: int) -> Team:
    row = _row(conn, team_id)
    return Team(int(row.id), row.name, row.description, _members(conn, team_id))


def every_team(engine: sa.Engine) -> list[Team]:
    """Every team by name with its members' e-mails, in two queries whatever their number."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(teams).order_by(teams.c.name)).all()
        found: dict[int, list[str]] = {int(r.id): [] for r in rows}
        for team_id, email in conn.execute(
                sa.select(members.c.team_id, sa.func.coalesce(users.c.email, users.c.display_name))
                .join(users, members.c.user_id == users.c.id).order_by(users.c.email)):
            found[int(team_id)].append(email)
    return [Team(int(r.id), r.name, r.description, tuple(found[int(r.id)])) for r in rows]


def by_id(engine: sa.Engine, team_id: int) -> Team:
    with engine.connect() as conn:
        return _team(conn, team_id)


def _member_ids(conn: sa.Connection, emails: Sequence[str]) -> dict[str, int]:
    """The user id of each e-mail (any case); UnknownMember naming every e-mail no user has."""
    keys = {e: e.strip().lower() for e in dict.fromkeys(emails)}
    found = {str(k): int(i) for k, i in conn.execute(sa.select(users.c.email_key, users.c.id)
                                                       .where(users.c.email_key.in_(set(keys.values()))))}
    missing = [e for e, k in keys.items() if k not in found]
    if missing:
        known = list(conn.execute(sa.select(users.c.email).where(users.c.email.is_not(None))
                                  .order_by(users.c.email)).scalars())
        raise UnknownMember("; ".join(f"there is no user with the e-mail {e.strip()!r}{suggest(e, known)}"
                                      for e in missing))
    return {e: found[k] for e, k in keys.items()}


def _name_free(conn: sa.Connection, name: str, team_id: int | None = None) -> None:
    taken = conn.execute(sa.select(teams.c.id).where(teams.c.name == name)).scalar()
    if taken is not None and taken != team_id:
        raise DuplicateTeam(f"a team named {name!r} exists already")


def create(engine: sa.Engine, name: str, description: str = "", member_emails: Sequence[str] = (), *,
           actor: Principal = SYSTEM) -> Team:
    """A new team with these members; `team.add` by `actor`."""
    name, description = valid_team_name(name), valid_description(description)
    with writing(engine) as conn:
        _name_free(conn, name)
        ids = _member_ids(conn, member_emails)
        try:
            with conn.begin_nested():
                made = int(conn.execute(teams.insert().values(
                    name=name, description=description, created_at=dt.datetime.now(dt.UTC))
                    .returning(teams.c.id)).scalar_one())
        except sa.exc.IntegrityError:  # made by someone else between the check and the insert
            raise DuplicateTeam(f"a team named {name!r} exists already") from None
        for user_id in dict.fromkeys(ids.values()):
            conn.execute(members.insert().values(team_id=made, user_id=user_id))
        team = _team(conn, made)
        audit.record(conn, "team.add", principal=actor, object_kind="team", object_id=made,
                     detail={"name": name, "description": description, "members": list(team.members)})
    return team


def update(engine: sa.Engine, team_id: int, *, name: str | None = None, description: str | None = None,
           member_emails: Sequence[str] | None = None, actor: Principal = SYSTEM) -> Team:
    """Rename, describe, or set the members of a team (None: unchanged); `team.update` by
    `actor` with each changed value's before and after (members: added and removed)."""
    name = None if name is None else valid_team_name(name)
    description = None if description is None else valid_description(description)
    with writing(engine) as conn:
        row = _row(conn, team_id, lock=True)
        before = _team(conn, team_id)
        values: dict[str, Any] = {}
        if name is not None and name != row.name:
            _name_free(conn, name, team_id)
            values["name"] = name
        if description is not None and description != row.description:
            values["description"] = description
        if values:
            try:
                with conn.begin_nested():
                    conn.execute(teams.update().where(teams.c.id == team_id).values(**values))
            except sa.exc.IntegrityError:
                raise DuplicateTeam(f"a team named {name!r} exists already") from None
        if member_emails is not None:
            wanted = set(_member_ids(conn, member_emails).values())
            held = set(conn.execute(sa.select(members.c.user_id)
                                    .where(members.c.team_id == team_id)).scalars())
            if held - wanted:
                conn.execute(members.delete().where(members.c.team_id == team_id,
                                                    members.c.user_id.in_(held - wanted)))
            for user_id in sorted(wanted - held):
                conn.execute(members.insert().values(team_id=team_id, user_id=user_id))
        after = _team(conn, team_id)
        changes: dict[str, Any] = {k: [getattr(before, k), v] for k, v in values.items()}
        if after.members != before.members:
            changes["members"] = {"added": [m for m in after.members if m not in before.members],
                                  "removed": [m for m in before.members if m not in after.members]}
        if changes:
            audit.record(conn, "team.update", principal=actor, object_kind="team", object_id=team_id,
                         detail={"name": after.name, "changes": changes})
    return after


def remove(engine: sa.Engine, team_id: int, *, actor: Principal = SYSTEM) -> Team:
    """Remove a team; its members stay users, outside it. `team.remove` by `actor`, with the
    members it had."""
    with writing(engine) as conn:
        removed = _team(conn, team_id)
        conn.execute(members.delete().where(members.c.team_id == team_id))
        conn.execute(teams.delete().where(teams.c.id == team_id))
        audit.record(conn, "team.remove", principal=actor, object_kind="team", object_id=team_id,
                     detail={"name": removed.name, "members": list(removed.members)})
    return removed
