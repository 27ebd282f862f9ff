"""Roles: what a kind of user may do, as definitions (`kind: role` in a pack, or the
organisation's own), values like every other part of the metamodel.

A role grants, per entity, actions (create, read, update, delete, export), a record scope
(the records it reaches: the user's own, their teams', their own and their subordinates', or
all), sharing rules in the rule language (more records, read-only or editable) and field
access (hidden or read-only); and rights over the platform itself. A user's roles add up:
whatever one of them grants is granted (identity/access.py compiles them into one `Access`
per user and revision). Nothing is granted that no role names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as attribute

from .errors import Location

#: What a role may do with an entity's records.
ACTIONS = ("create", "read", "update", "delete", "export")
#: Which records a grant reaches, narrowest first (a wider one includes the narrower).
RECORD_SCOPES = ("own", "team", "subordinates", "all")
#: Field access narrower than the entity's: shown but not editable, or absent altogether.
FIELD_ACCESS = ("read_only", "hidden")
#: What a sharing rule gives on the records it selects.
SHARING_ACCESS = ("read", "edit")
#: Rights over the platform (identity/principal.py PLATFORM_RIGHTS).
PLATFORM_RIGHTS = ("manage_metamodel", "install_packs", "manage_users", "view_audit")
#: The entity name of a grant that covers every entity not granted by name in the same role.
EVERY_ENTITY = "*"
#: The built-in role: every action on every entity, every record, every right. Defined by
#: the platform, so no pack or organisation can redefine it or lock everyone out.
ADMINISTRATOR = "administrator"


@dataclass(frozen=True)
class SharingRule:
    """Records the condition (rule language, on the entity, may read `current_user`) selects
    are reached too, beyond the scope."""

    condition: str
    access: str = "read"
    source: Location = attribute(default_factory=Location, compare=False)


@dataclass(frozen=True)
class EntityGrant:
    entity: str
    actions: frozenset[str] = frozenset()
    scope: str = "own"
    sharing: tuple[SharingRule, ...] = ()
    #: field name → one of FIELD_ACCESS; fields not named are as the entity's actions say.
    fields: tuple[tuple[str, str], ...] = ()
    source: Location = attribute(default_factory=Location, compare=False)
    #: Where each field of `fields` is named, for the problem of a field the entity lacks.
    field_sources: Mapping[str, Location] = attribute(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Role:
    name: str
    label: str
    description: str = ""
    platform: frozenset[str] = frozenset()
    entities: tuple[EntityGrant, ...] = ()
    #: The pack that defines it ("organisation" for the organisation's own layer; "" if built in code).
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)

    def grant(self, entity: str) -> EntityGrant | None:
        """The grant for `entity`: its own, else the role's `*` grant, else none."""
        named = next((g for g in self.entities if g.entity == entity), None)
        if named is not None:
            return named
        return next((g for g in self.entities if g.entity == EVERY_ENTITY), None)
