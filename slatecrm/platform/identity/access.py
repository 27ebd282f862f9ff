"""What a principal may do: a user's roles compiled into one `Access`, the only thing the read
path (records/reading.py `Reader.visible`, through the service's restricted snapshot) and the
write pipeline (records/pipeline.py `authorise` and the reach check) ask.

Roles add up, like permission sets: an action is allowed when any role allows it; the records
reached are the union of every granting role's scope and sharing rules; a field is hidden only
when every role granting read hides it, read-only only when every role able to update makes it
read-only or hidden. Role names that no definition has grant nothing; the built-in
`administrator` cannot be redefined by a pack. A field defined `read_only` (or
`read_only_after_create`, once the record exists) is read-only for every role, the
administrator's too: only the system, which has no `Access`, sets it.

The part that depends on the roles only (`RoleAccess`: grants, compiled sharing rules) is
built once per revision and set of role names; the part that depends on the user (their id,
team members, subordinates) is bound per request as parameters of the same SQL, so the
statements a restricted list runs have one shape for every user of the same roles.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.roles import ACTIONS, PLATFORM_RIGHTS, EntityGrant, Role
from slatecrm.metamodel.rules import RuleContext, RuleError

from ..kept import keep
from ..records.rules import Condition, RevisionRules, principal_context, user_values
from .principal import Principal

log = logging.getLogger(__name__)

#: The role every installation has: every action on every entity, every record, every field,
#: every platform right. Platform-defined; a pack's role of the same name is ignored.
ADMINISTRATOR = "administrator"
ADMINISTRATOR_ROLE = Role(
    name=ADMINISTRATOR, label="Administrator", description="Everything, on every entity.",
    platform=frozenset(PLATFORM_RIGHTS),
    entities=(EntityGrant("*", frozenset(ACTIONS), "all"),))

#: What a token scope must allow for each action (identity/principal.py SCOPES).
_SCOPE_OF = {"read": None, "export": None, "create": "write", "update": "write", "delete": "write"}
#: Read filters kept per set of roles and revision (`RoleAccess.reach`): a user's few
#: entities and purposes, for thousands of active users.
REACH_CACHED = 20_000
#: Why a sharing rule is read: "read" rules reach for reading, "edit" rules for updating too.
Purpose = str  # "read" | "update" | "delete"


@dataclass(frozen=True)
class EntityAccess:
    """One entity as a set of roles grants it (no user in it yet)."""

    entity: str
    actions: frozenset[str]
    #: The record scopes granted, by purpose ("read", "update", "delete"): empty = none.
    scopes: Mapping[str, frozenset[str]]
    #: Sharing rules reaching records for reading, and for updating (`access: edit`).
    read_sharing: tuple[Condition, ...]
    edit_sharing: tuple[Condition, ...]
    hidden: frozenset[str]
    #: Fields seen but not set on a new record: the roles' read-only and hidden fields, and
    #: those the entity defines `read_only`.
    read_only: frozenset[str]
    #: Fields seen but not changed on a stored record: `read_only`, and those the entity
    #: defines `read_only_after_create`.
    read_only_on_update: frozenset[str]

    def read_only_for(self, *, new_record: bool) -> frozenset[str]:
        """The fields a write may not set on a new record, or change on a stored one."""
        return self.read_only if new_record else self.read_only_on_update

    def may(self, action: str) -> bool:
        if action == "update":
            return "update" in self.actions or bool(self.edit_sharing)
        return action in self.actions

    def everything(self, purpose: Purpose) -> bool:
        """Whether every record is reached for `purpose` (no record-level condition at all)."""
        return "all" in self.scopes.get(purpose, frozenset())

    def sharing(self, purpose: Purpose) -> tuple[Condition, ...]:
        if purpose == "read":
            return self.read_sharing + self.edit_sharing
        if purpose == "update":
            return self.edit_sharing
        return ()


NOTHING = EntityAccess("", frozenset(), {}, (), (), frozenset(), frozenset(), frozenset())


class RoleAccess:
    """A set of roles compiled against one revision: shared by every user holding exactly
    those roles (identity's cache key is the revision and the sorted role names)."""

    def __init__(self, roles: Iterable[Role], rules: RevisionRules):
        self.roles = tuple(roles)
        self.rules = rules
        self.administrator = any(r is ADMINISTRATOR_ROLE for r in self.roles)
        self.rights = frozenset(right for r in self.roles for right in r.platform)
        self._entities: dict[str, EntityAccess] = {}
        self._lock = threading.Lock()
        #: Each user's read filters, by entity, purpose and what the filter reads of the
        #: user (`Access.reach_key`): built once, not per request, so that a restricted
        #: read costs what an unrestricted one does in Python (and SQLAlchemy finds the
        #: statements built on them in its cache without rebuilding their keys); the read
        #: path keeps what it builds on them here too (records/reading.py `UserFilter`).
        self.reach: dict[Any, Any] = {}

    def entity(self, name: str) -> EntityAccess:
        found = self._entities.get(name)
        if found is None:
            found = self._compile(name)
            with self._lock:
                self._entities.setdefault(name, found)
        return found

    def _compile(self, name: str) -> EntityAccess:
        grants = [(role, g) for role in self.roles if (g := role.grant(name)) is not None]
        reading = [g for _, g in grants if "read" in g.actions]
        if not reading:
            return NOTHING
        actions = frozenset(a for g in reading for a in g.actions)
        scopes = {purpose: frozenset(g.scope for g in reading if purpose in g.actions)
                  for purpose in ("read", "update", "delete")}
        read_sharing = tuple(c for g in reading for c in self._sharing(name, g, "read"))
        edit_sharing = tuple(c for g in reading for c in self._sharing(name, g, "edit"))
        hidden = frozenset.intersection(*[_names(g, ("hidden",)) for g in reading])
        updating = [g for g in reading if "update" in g.actions or any(s.access == "edit" for s in g.sharing)]
        read_only = (frozenset.intersection(*[_names(g, ("hidden", "read_only")) for g in updating])
                     if updating else frozenset()) | hidden
        defined_read_only, fixed_after_create = self._read_only_by_definition(name)
        read_only |= defined_read_only
        return EntityAccess(name, actions, scopes, read_sharing, edit_sharing, hidden, read_only,
                            read_only | fixed_after_create)

    def _read_only_by_definition(self, name: str) -> tuple[frozenset[str], frozenset[str]]:
        """The fields of entity `name` defined `read_only`, and those defined
        `read_only_after_create`: read-only whatever the roles say, so that the roles'
        read-only fields and these are refused by the same checks (records/pipeline.py)."""
        entity = self.rules.metamodel.entity(name)
        if entity is None:
            return frozenset(), frozenset()
        fields = entity.active_fields
        return (frozenset(f.name for f in fields if f.read_only),
                frozenset(f.name for f in fields if f.read_only_after_create))

    def _sharing(self, entity: str, grant: EntityGrant, access: str) -> list[Condition]:
        out = []
        for rule in grant.sharing:
            if rule.access != access:
                continue
            try:
                out.append(self.rules.condition(entity, rule.condition))
            except (RuleError, DefinitionError, KeyError) as error:
                # A pack's roles are checked when installed; a rule the revision can no longer
                # compile (a field removed since) grants nothing rather than breaking reads.
                log.warning("sharing rule %r of %s on %s grants nothing: %s", rule.condition,
                            grant.source, entity, error)
        return out


def _names(grant: EntityGrant, kinds: tuple[str, ...]) -> frozenset[str]:
    return frozenset(name for name, kind in grant.fields if kind in kinds)


def read_only_fields(access: Access | None, entity: str, *, new_record: bool) -> frozenset[str]:
    """The fields of `entity` a form for a new record (or for a stored one) shows but does not
    send for the principal of `access` (None: the system, which may change every field)."""
    return frozenset() if access is None else access.read_only(entity, new_record=new_record)


def roles_of(defined: Iterable[Role], names: Iterable[str]) -> list[Role]:
    """The roles a user's role names give: the built-in administrator, and the defined roles
    of those names (a name no role has grants nothing)."""
    wanted = set(names)
    out = [ADMINISTRATOR_ROLE] if ADMINISTRATOR in wanted else []
    out += [r for r in defined if r.name in wanted and r.name != ADMINISTRATOR]
    return out


class Access:
    """One principal's access on one revision: `RoleAccess` bound to the user's ids."""

    def __init__(self, principal: Principal, roles: RoleAccess, dialect: str):
        self.principal = principal
        self.roles = roles
        self.dialect = dialect
        me = principal.user_id
        mine = frozenset() if me is None else frozenset({me})
        #: Owner ids each scope reaches.
        self._owners = {"own": mine, "team": mine | principal.team_members,
                        "subordinates": mine | principal.subordinates}
        self._reach_key: tuple[Any, ...] | None = None

    @property
    def reads_everything(self) -> bool:
        """An administrator (session or token): no entity, field or record is narrowed for
        reading (a read-only token's writes are still refused by `may`)."""
        return self.roles.administrator and bool(self.principal.scopes)

    # --- object level ------------------------------------------------------------------------
    def entity(self, name: str) -> EntityAccess:
        if not self.principal.scopes:
            return NOTHING
        return self.roles.entity(name)

    def readable(self, name: str) -> bool:
        return self.entity(name).may("read")

    def may(self, entity: str, action: str) -> bool:
        scope = _SCOPE_OF.get(action)
        if scope is not None and not self.principal.allows(scope):
            return False
        return self.entity(entity).may(action)

    def holds_right(self, right: str) -> bool:
        return self.principal.allows("admin") and right in self.roles.rights

    # --- field level ---------------------------------------------------------------------------
    def read_only(self, entity: str, *, new_record: bool) -> frozenset[str]:
        """The fields of `entity` the principal sees but may not set on a new record, or
        change on a stored one (the write pipeline refuses them; forms show them as text)."""
        return self.entity(entity).read_only_for(new_record=new_record)

    # --- record level ------------------------------------------------------------------------
    def owners(self, entity: EntityAccess, purpose: Purpose) -> frozenset[int]:
        ids: set[int] = set()
        for scope in entity.scopes.get(purpose, frozenset()):
            ids |= self._owners.get(scope, frozenset())
        return frozenset(ids)

    def context(self, lookup: Any = None) -> RuleContext:
        return principal_context(self.principal, lookup=lookup)

    @property
    def reach_key(self) -> tuple[Any, ...]:
        """Everything of the principal a read filter is built from: its owners and what
        sharing rules read as `current_user`."""
        key = self._reach_key
        if key is None:
            principal = self.principal
            key = self._reach_key = (principal.user_id, bool(principal.scopes), principal.team_members,
                                     principal.subordinates, repr(sorted(user_values(principal).items())))
        return key

    def where(self, entity: str, table: sa.FromClause, purpose: Purpose = "read"
              ) -> sa.ColumnElement[bool] | None:
        """The SQL condition of the records of `entity` reached for `purpose` (on the
        entity's own table: the read path adapts it to aliases), None for every record.
        The same object for every request of the same user on the same revision."""
        key = (entity, purpose, table, self.reach_key)
        cache = self.roles.reach
        if key in cache:
            found: sa.ColumnElement[bool] | None = cache[key]
            return found
        condition: sa.ColumnElement[bool] | None = self._where(entity, table, purpose)
        return keep(cache, key, condition, REACH_CACHED)

    def _where(self, entity: str, table: sa.FromClause, purpose: Purpose) -> sa.ColumnElement[bool] | None:
        grant = self.entity(entity)
        if purpose != "read" and not self.may(entity, purpose):
            return sa.false()
        if grant.everything(purpose):
            return None
        parts: list[sa.ColumnElement[bool]] = []
        owners = sorted(self.owners(grant, purpose))
        if len(owners) == 1:
            parts.append(table.c.owner == owners[0])
        elif owners:
            parts.append(self._member(table.c.owner, owners))
        if sharing := grant.sharing(purpose):
            context = self.context()
            parts += [condition.where(context) for condition in sharing]
        if not parts:
            return sa.false()
        return parts[0] if len(parts) == 1 else sa.or_(*parts)

    def _member(self, column: sa.ColumnElement[Any], ids: list[int]) -> sa.ColumnElement[bool]:
        """`column IN ids` as one parameter (records/constraints.py `member_of`, without a
        connection at hand): the statement's text does not change with the team's size."""
        if self.dialect == "postgresql":
            return column == sa.any_(sa.bindparam(None, ids, type_=postgresql.ARRAY(sa.BigInteger())))
        if self.dialect == "sqlite":
            listed = sa.func.json_each(sa.bindparam(None, json.dumps(ids), type_=sa.String()))
            return column.in_(sa.select(listed.table_valued("value").c.value).scalar_subquery())
        return column.in_(ids)

    def within(self, entity: str, record: Mapping[str, Any], purpose: Purpose, lookup: Any = None) -> bool:
        """The Python form of `where`: whether `record` (field values, `owner`, `id` and the
        other system fields) is reached for `purpose`. Same meaning as the SQL, null included
        (a sharing rule's `holds` is the rule's own Python compilation)."""
        grant = self.entity(entity)
        if purpose != "read" and not self.may(entity, purpose):
            return False
        if grant.everything(purpose):
            return True
        if record.get("owner") in self.owners(grant, purpose):
            return True
        context = self.context(lookup)
        return any(condition.holds(record, context) for condition in grant.sharing(purpose))


def role_access(defined: Iterable[Role], names: Iterable[str], rules: RevisionRules) -> RoleAccess:
    return RoleAccess(roles_of(defined, names), rules)


def role_key(defined: Iterable[Role], names: Iterable[str]) -> str:
    """The cache key of a set of role names on a revision: only names that grant something
    (so a user cannot grow the cache with names no role has)."""
    return ",".join(sorted(r.name for r in roles_of(defined, names)))
