"""Roles merged across packs and checked against the effective metamodel.

A role's names are only known to be right once every pack is merged: the entities it
grants (which must be its own pack's or those of a pack it requires, so that removing a
pack it does not know cannot break it), their fields, and its sharing conditions, which are
rules on the entity. Every problem points at the place in the role's file. A sharing condition
reads as `current_user.<name>` only the user attributes of its own pack and of the packs it
requires, for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from .byname import ORGANISATION_LAYER, merged_by_name
from .errors import Problem
from .fieldtypes import FieldTypeRegistry
from .model import Metamodel, renamed_note
from .names import suggest
from .roles import EVERY_ENTITY, EntityGrant, Role
from .rules import BOOLEAN, RuleError, check, typed
from .rules.definitions import rule_problem
from .rules.functions import NO_FUNCTIONS, RuleFunctions


def merge_roles(packs: Sequence[tuple[str, str, Sequence[Role]]], metamodel: Metamodel,
                may_name: Callable[[str, str], bool], registry: FieldTypeRegistry,
                functions: RuleFunctions = NO_FUNCTIONS) -> tuple[tuple[Role, ...], list[Problem]]:
    """The roles of `packs` ((pack, origin, roles), in dependency order) and their problems.

    `may_name(pack, other)` says whether a role of `pack` may grant an entity of `other`.
    """
    merged: dict[str, Role] = {}
    problems: list[Problem] = []
    for _pack, origin, role in merged_by_name(packs, "role", problems):
        merged[role.name] = role
        problems.extend(_check_role(role, origin, metamodel, may_name, registry, functions))
    return tuple(merged.values()), problems


def _check_role(role: Role, origin: str, metamodel: Metamodel, may_name: Callable[[str, str], bool],
                registry: FieldTypeRegistry, functions: RuleFunctions) -> Iterator[Problem]:
    # The organisation's definitions are readable by every pack's rules: they replace a pack's
    # (the same name, what its rules were written for), and a change that would leave a rule
    # without one is refused when it is planned.
    foreign = {a.name: a.pack for a in metamodel.user_attributes
               if a.pack != ORGANISATION_LAYER and not may_name(role.pack, a.pack)}
    known = [e.name for e in metamodel.active_entities]
    named = {g.entity for g in role.entities}
    for grant in role.entities:
        if grant.entity == EVERY_ENTITY:
            if grant.fields:
                yield Problem("fields: field access needs a named entity, not *", grant.source, origin)
            others = [e for e in known if e not in named]
            yield from _check_sharing(role, grant, others, origin, metamodel, foreign, registry, functions)
            continue
        entity = metamodel.entity(grant.entity)
        if entity is None:
            hint = renamed_note(grant.entity, metamodel.active_entities) or suggest(grant.entity, known)
            yield Problem(f"role {role.name!r} grants entity {grant.entity!r}, which no pack given, "
                          f"installed or required defines{hint}",
                          grant.source, origin)
            continue
        if not may_name(role.pack, entity.pack):
            yield Problem(f"entity {grant.entity!r} is defined by pack {entity.pack!r}, which pack "
                          f"{role.pack!r} does not require: add it to requires in pack.yaml",
                          grant.source, origin)
            continue
        fields = [f.name for f in entity.active_fields]
        for name, _access in grant.fields:
            if name not in fields:
                yield Problem(f"{grant.entity!r} has no field {name!r}{suggest(name, fields)}",
                              grant.field_sources.get(name, grant.source), origin)
        yield from _check_sharing(role, grant, [grant.entity], origin, metamodel, foreign, registry,
                                  functions)


def _check_sharing(role: Role, grant: EntityGrant, entities: list[str], origin: str, metamodel: Metamodel,
                   foreign: dict[str, str], registry: FieldTypeRegistry,
                   functions: RuleFunctions) -> Iterator[Problem]:
    """A sharing condition is a rule on the entity (on each entity `*` covers), without
    is_new()/changed()/previous(): it selects stored records, in SQL. It may read the user
    attributes of the role's own pack and the packs it requires, not those in `foreign`
    (name → pack)."""
    for rule in grant.sharing:
        for entity in entities:
            try:
                checked = check(rule.condition, metamodel, entity, expect=BOOLEAN, functions=functions,
                                registry=registry)
            except RuleError as error:
                what = "sharing condition" + (f" (on {entity!r})" if grant.entity == EVERY_ENTITY else "")
                yield rule_problem(error, what, rule.source, origin)
                break
            unrequired = [n for n in dict.fromkeys(_attributes_read(checked.typed)) if n in foreign]
            for name in unrequired:
                yield Problem(f"sharing condition reads current_user.{name}, a user attribute of "
                              f"pack {foreign[name]!r}, which pack {role.pack!r} does not require: "
                              "add it to requires in pack.yaml", rule.source, origin)
            if unrequired:  # said once, not again for each entity `*` covers
                break


def _attributes_read(node: typed.T) -> Iterator[str]:
    """The user attributes (`current_user.<name>`) a checked rule reads."""
    if isinstance(node, typed.UserAttr):
        yield node.name
    for child in node.children():
        yield from _attributes_read(child)
