"""Who a request or a command acts as: the one value every permission check reads.

The web's authentication (a session cookie or an API token) makes one per request and the
pinned records service carries it (records/service.py `pinned`), so the read path and the
write pipeline, the only places permissions are enforced, get it without any handler
passing it along. The CLI and sample data act as `SYSTEM`, which no permission narrows:
whoever can run a command on the server already holds the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: What a personal API token may do. A session holds all three, as far as its roles allow.
SCOPES = ("read", "write", "admin")
#: Rights over the platform itself, granted by roles (`platform:` in a role file).
PLATFORM_RIGHTS = ("manage_metamodel", "install_packs", "manage_users", "view_audit")

#: The execution option tagging the statements that authenticate a request (statement counts of
#: the read path, tests/test_read_path.py, count them apart).
WORK_OPTION = "slatecrm_work"
AUTHENTICATING = {WORK_OPTION: "authentication"}

Via = Literal["session", "token", "system", "anonymous"]


@dataclass(frozen=True)
class Principal:
    """A signed-in user (with roles, teams and the people they manage), the system, or
    nobody. Frozen: built once per request, after the session or token was checked."""

    user_id: int | None
    name: str
    via: Via
    email: str = ""
    #: Role names (the `name` of `kind: role` definitions), from slate_user_role.
    roles: frozenset[str] = frozenset()
    #: Ids of the teams the user is a member of.
    teams: frozenset[int] = frozenset()
    #: Ids of the users sharing at least one team with the user (the user included).
    team_members: frozenset[int] = frozenset()
    #: Ids of the users below the user in the manager hierarchy, at any depth (not the user).
    subordinates: frozenset[int] = frozenset()
    manager_id: int | None = None
    #: The user's attribute values (`kind: user_attribute`), as stored (JSON), sorted by
    #: name; pairs rather than a dict so that the principal stays hashable.
    attributes: tuple[tuple[str, Any], ...] = ()
    time_zone: str = "UTC"
    locale: str = "en"
    #: The session row the request came with (via == "session").
    session_id: int | None = None
    #: The API token the request came with (via == "token"): history and the audit log name it.
    token_id: int | None = None
    #: What the token allows (SCOPES); a session and the system hold all of them.
    scopes: frozenset[str] = field(default=frozenset(SCOPES))

    @property
    def authenticated(self) -> bool:
        return self.via in ("session", "token")

    @property
    def unrestricted(self) -> bool:
        """The system: the CLI, sample data, installs run on the server."""
        return self.via == "system"

    @property
    def attribute_values(self) -> dict[str, Any]:
        """The user's attribute values by name (rules read them as current_user.<name>)."""
        return dict(self.attributes)

    def allows(self, scope: str) -> bool:
        """Whether the token (or session) scope allows `scope` (SCOPES)."""
        return scope in self.scopes


#: The CLI, sample data and other work run on the server by whoever holds the database.
SYSTEM = Principal(user_id=None, name="system", via="system")
#: A request that presented no valid session or token.
ANONYMOUS = Principal(user_id=None, name="anonymous", via="anonymous", scopes=frozenset())
