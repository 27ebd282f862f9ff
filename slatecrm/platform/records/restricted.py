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

from slatecrm.metamodel.layouts import Layout
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
    an entity the reader cannot list); their layouts without the hidden fields."""
    entities = []
    for entity in metamodel.active_entities:
        grant = roles.entity(entity.name)
        if grant.may("read"):
            entities.append(restrict_entity(entity, grant.hidden))
    readable = {e.name for e in entities}
    hidden = {name: roles.entity(name).hidden for name in readable}
    return replace(metamodel, entities=tuple(entities), roles=(),
                   views=tuple(v for v in metamodel.views if v.entity in readable),
                   layouts=tuple(restrict_layout(layout, hidden) for layout in metamodel.layouts
                                 if layout.entity in readable))


def restrict_layout(layout: Layout, hidden: Mapping[str, frozenset[str]]) -> Layout:
    """`layout` as a reader sees it (`hidden`: the fields each readable entity hides from
    them): no hidden field placed, in the compact form or as a related list's column or sort
    key, and no related list of an entity they cannot read or through a field hidden from
    them; the places of the names in the file are left out (their keys name fields)."""
    own = hidden[layout.entity]

    def shown(names: tuple[str, ...], entity: str) -> tuple[str, ...]:
        return tuple(n for n in names if n.lstrip("-") not in hidden[entity])

    tabs = tuple(replace(tab, sections=tuple(replace(section, fields=shown(section.fields, layout.entity))
                                             for section in tab.sections)) for tab in layout.tabs)
    related = None if layout.related_lists is None else tuple(
        replace(r, columns=shown(r.columns, r.entity), sort=shown(r.sort, r.entity))
        for r in layout.related_lists if r.entity in hidden and r.field not in hidden[r.entity])
    return replace(layout, tabs=tabs, related_lists=related,
                   compact=tuple(n for n in layout.compact if n not in own), locations={})


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
