"""A snapshot as one set of roles sees it: the entities they cannot read are absent, and so
are the fields they hide, from the metamodel, the compiled entities and the rules that check
a user's list filter.

The read path, the pages and the API all work from the request's snapshot, so everything
built from it (record JSON, list columns, CSV export, search, board cards and totals,
filters and sorts, titles, the OpenAPI document, the metamodel the API shows, error
messages) lacks what is hidden without any handler knowing about permissions: a filter on a
hidden field is "no field x", which confirms nothing. Built once per revision and set of
roles and kept with the revision.

The write pipeline works on the full snapshot (defaults and formulas still fill hidden
fields) and checks what the user gave against `EntityAccess.read_only` (a new record) and
`EntityAccess.read_only_on_update` (a stored one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar

import sqlalchemy as sa

from slatecrm.metamodel.model import Entity, Metamodel
from slatecrm.metamodel.rules import Checked, RuleError
from slatecrm.metamodel.rules import typed as t
from slatecrm.metamodel.titles import template_fields

from ..identity.access import RoleAccess
from .compiled import CompiledEntities
from .rules import RevisionRules
from .snapshot import Snapshot

T = TypeVar("T")


def restricted_snapshot(full: Snapshot, roles: RoleAccess, key: str) -> Snapshot:
    """The one restricted snapshot of `full`'s revision for the roles `key` names."""
    return full.derived(f"records.restricted:{key}", lambda: RestrictedSnapshot(full, roles, key))


class RestrictedSnapshot(Snapshot):
    """Shares the full snapshot's runtime and tables; does not call Snapshot.__init__ (its
    entities and rules are the restricted metamodel's)."""

    restricted = True

    def __init__(self, full: Snapshot, roles: RoleAccess, key: str):
        self.full = full
        self.runtime = full.runtime
        self.registry, self.dialect = full.registry, full.dialect
        self.functions, self.code_point_text = full.functions, full.code_point_text
        self.key = key
        self.role_access = roles
        self._metamodel = restrict_metamodel(full.metamodel, roles)
        self.entities = CompiledEntities(self._metamodel.entities, full.tables, full.registry)
        #: Entities whose every record the roles read: a user's filter may follow a reference
        #: into these only (a path into others would test values of records it cannot see).
        open_entities = frozenset(e.name for e in self._metamodel.entities
                                  if roles.entity(e.name).everything("read"))
        self.rules = RestrictedRules(self._metamodel, full.tables, full.dialect, full.registry,
                                     full.functions, full.code_point_text, open_entities)

    @property
    def metamodel(self) -> Metamodel:
        return self._metamodel

    def hides_searchable(self, entity: str) -> bool:
        return entity in self.entities and \
            self.entities[entity].searchable != self.full.entities[entity].searchable

    def derived(self, key: str, build: Any) -> Any:
        return self.runtime.derived(f"restricted[{self.key}]:{key}", build)


class RestrictedRules(RevisionRules):
    def __init__(self, metamodel: Metamodel, tables: Mapping[str, sa.Table], dialect: str, registry: Any,
                 functions: Any, code_point_text: bool | None, open_entities: frozenset[str]):
        super().__init__(metamodel, tables, dialect, registry, functions, code_point_text)
        self.open_entities = open_entities

    def checked(self, entity: str, text: str, changes: bool) -> Checked:
        checked = super().checked(entity, text, changes)
        stack: list[t.T] = [checked.typed]
        while stack:
            node = stack.pop()
            if isinstance(node, t.FieldRef):
                for hop in node.hops:
                    target = hop.field.target or ""
                    if target not in self.open_entities:
                        raise RuleError(f"a filter of yours cannot follow {hop.field.name!r} into {target} "
                                        "records (some of them are not yours to see); filter on the "
                                        "reference itself", 1, 1)
            if isinstance(node, t.Links) and node.condition is not None:
                if node.target not in self.open_entities:
                    raise RuleError(f"a filter of yours cannot look into the {node.target} records "
                                    f"{node.field.name!r} links (some of them are not yours to see); "
                                    f"ask 'x in {node.field.name}' or count({node.field.name})", 1, 1)
                stack.append(node.condition)
            if isinstance(node, t.AnyPath):
                for target, _, _ in node.targets:
                    if target not in self.open_entities:
                        raise RuleError(f"a filter of yours cannot follow {node.field.name!r} into {target} "
                                        "records (some of them are not yours to see); filter on "
                                        f"{node.field.name}.entity or the reference itself", 1, 1)
            stack.extend(node.children())
        return checked


def restrict_metamodel(metamodel: Metamodel, roles: RoleAccess) -> Metamodel:
    """The readable active entities, each without its hidden fields; no role definitions; the
    views of the readable entities only (a view's filter names fields: /meta shows no view of
    an entity the reader cannot list)."""
    entities = []
    for entity in metamodel.active_entities:
        grant = roles.entity(entity.name)
        if grant.may("read"):
            entities.append(restrict_entity(entity, grant.hidden))
    readable = {e.name for e in entities}
    return replace(metamodel, entities=tuple(entities), roles=(),
                   views=tuple(v for v in metamodel.views if v.entity in readable))


def restrict_entity(entity: Entity, hidden: frozenset[str]) -> Entity:
    """`entity` without the `hidden` fields, nor what is built on them and would read them
    for the user: pipelines on them, stage requirements and close dates naming them, keys
    over them, the title made of them. (Rule texts that name a hidden field are kept: they
    show its name, never a value.)"""
    if not hidden:
        return entity
    pipelines = tuple(
        replace(p, close_date_field=None if p.close_date_field in hidden else p.close_date_field,
                stages=tuple(replace(s, requires=tuple(r for r in s.requires if r not in hidden))
                             for s in p.stages))
        for p in entity.pipelines if p.field not in hidden)
    template = entity.title_template
    if template and hidden.intersection(template_fields(template)):
        template = None
    return replace(
        entity, fields=tuple(f for f in entity.fields if f.name not in hidden), pipelines=pipelines,
        title_field=None if entity.title_field in hidden else entity.title_field, title_template=template,
        validations=tuple(v for v in entity.validations if v.field not in hidden),
        unique=tuple(k for k in entity.unique if not hidden.intersection(k.fields)),
        indexes=tuple(k for k in entity.indexes if not hidden.intersection(k.fields)))
