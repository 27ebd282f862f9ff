"""A signed-in user's Principal: what the record scopes (team, subordinates) and the rules'
`current_user` read, loaded in one statement besides the user's row."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from slatecrm.platform import installer
from slatecrm.platform.identity import principals
from slatecrm.platform.storage import system


def test_roles_teams_members_and_everyone_below_at_any_depth(engine: sa.Engine) -> None:
    installer.create_system_tables(engine)
    now = dt.datetime.now(dt.UTC)
    # 1 manages 2, 2 manages 3 and 4, 4 manages 5; 6 is nobody's; 7 is disabled
    managers = {1: None, 2: 1, 3: 2, 4: 2, 5: 4, 6: None, 7: None}
    with engine.begin() as conn:
        for uid, manager in managers.items():
            conn.execute(system.users.insert().values(
                id=uid, username=f"u{uid}", display_name=f"User {uid}", created_at=now, manager_id=manager,
                email=f"u{uid}@example.com", email_key=f"u{uid}@example.com", active=uid != 7))
        conn.execute(system.teams.insert(), [{"id": 1, "name": "East", "created_at": now},
                                             {"id": 2, "name": "West", "created_at": now}])
        conn.execute(system.team_members.insert(), [{"team_id": team, "user_id": user}
                                                    for team, user in ((1, 2), (1, 6), (2, 2), (2, 5))])
        conn.execute(system.user_roles.insert(), [{"user_id": 2, "role": "sales_manager"},
                                                  {"user_id": 2, "role": "auditor"}])
    with engine.connect() as conn:
        two = principals.load(conn, 2, "session", session_id=9)
        six = principals.load(conn, 6, "token", token_id=3, scopes=frozenset({"read"}))
        assert principals.load(conn, 7, "session") is None  # disabled
        assert principals.load(conn, 99, "session") is None  # gone
    assert two is not None and six is not None
    assert two.roles == {"sales_manager", "auditor"}
    assert two.teams == {1, 2}
    assert two.team_members == {2, 5, 6}
    assert two.subordinates == {3, 4, 5}
    assert (two.manager_id, two.session_id, two.via) == (1, 9, "session")
    assert six.roles == frozenset() and six.subordinates == frozenset()
    assert six.team_members == {2, 6}
    assert (six.token_id, six.scopes, six.allows("write")) == (3, {"read"}, False)
