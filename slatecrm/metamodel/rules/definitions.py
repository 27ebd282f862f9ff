"""Checking every rule of a metamodel when it is saved or installed.

Each problem points at the rule inside its pack file (file:line of the rule's value) and
tells where in the expression, with a caret under the place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ..errors import Location, Problem
from ..model import Entity, Field, Metamodel

if TYPE_CHECKING:
    from ..fieldtypes.base import FieldTypeRegistry
from ..names import suggest
from . import typed as t
from .checker import Checked, check
from .errors import RuleError
from .functions import NO_FUNCTIONS, RuleFunctions
from .types import BOOLEAN, WRITABLE_SYSTEM_FIELDS, Type, computable, field_type

#: Field types a formula or a default expression cannot fill.


def rule_problem(error: RuleError, what: str, location: Location, origin: str) -> Problem:
    lines = error.caret().splitlines()
    shown = "\n".join("    " + line for line in lines)
    return Problem(f"{what}: {error.message} (line {error.line}, column {error.column} of the "
                   f"expression)\n{shown}", location, origin)


def check_rules(metamodel: Metamodel, origins: Mapping[str, str],
                functions: RuleFunctions = NO_FUNCTIONS,
                registry: FieldTypeRegistry | None = None) -> list[Problem]:
    """`functions` are the plugins' rule functions the rules may call; `registry` the field
    types, which say their type in the rule language."""
    problems: list[Problem] = []
    for entity in metamodel.active_entities:
        problems.extend(_entity_rules(metamodel, entity, origins, functions, registry))
    return problems


def _entity_rules(metamodel: Metamodel, entity: Entity, origins: Mapping[str, str],
                  functions: RuleFunctions, registry: FieldTypeRegistry | None) -> Iterator[Problem]:
    def origin(pack: str) -> str:
        return origins.get(pack, pack)

    names = [f.name for f in entity.active_fields]
    for rule in entity.validations:
        try:
            check(rule.condition, metamodel, entity.name, expect=BOOLEAN, changes=True, functions=functions,
                  registry=registry)
        except RuleError as error:
            yield rule_problem(error, f"validation {rule.name!r}", rule.source, origin(rule.pack))
        shown_on = [*names, *WRITABLE_SYSTEM_FIELDS]
        if rule.field is not None and rule.field not in shown_on:
            yield Problem(f"validation {rule.name!r}: {entity.name!r} has no field {rule.field!r}"
                          f"{suggest(rule.field, shown_on)}", rule.field_source, origin(rule.pack))
    formulas: dict[str, Checked] = {}
    for field in entity.active_fields:
        for key in ("formula", "default_expression"):
            text = getattr(field, key)
            if text is None:
                continue
            where = field.rule_sources.get(key, field.source)
            wanted = field_type(field, registry)
            if wanted is None or not computable(field, registry):
                yield Problem(f"{key}: a {field.type} field cannot get its value from a rule", where,
                              origin(field.pack))
                continue
            if key == "formula" and (field.default is not None or field.default_expression is not None):
                yield Problem("formula: a computed field has no default (its formula gives its value)",
                              where, origin(field.pack))
            try:
                checked = check(text, metamodel, entity.name, expect=Type(wanted.kind), functions=functions,
                                registry=registry)
            except RuleError as error:
                yield rule_problem(error, key, where, origin(field.pack))
                continue
            if key == "formula":
                formulas[field.name] = checked
    yield from _cycles(entity, formulas, origin)
    for field in entity.active_fields:
        if field.has_logic:
            from .formlogic import check_logic  # it reads this module's helpers

            yield from check_logic(metamodel, entity, field, origin, functions, registry)
    for pipeline in entity.pipelines:
        for stage in pipeline.stages:
            if stage.condition is None:
                continue
            try:
                check(stage.condition, metamodel, entity.name, expect=BOOLEAN, changes=True,
                      functions=functions, registry=registry)
            except RuleError as error:
                yield rule_problem(error, f"stage {stage.key!r} condition", stage.condition_source,
                                   origin(stage.pack))


def formula_inputs(checked: t.T) -> set[str]:
    """The fields of the record itself that a rule reads (paths count by their first hop)."""
    found: set[str] = set()
    stack = [checked]
    while stack:
        node = stack.pop()
        if isinstance(node, t.FieldRef):
            found.add(node.hops[0].field.name if node.hops else node.field.name)
        if isinstance(node, t.PartRef | t.AnyPath):
            found.add(node.field.name)
        if isinstance(node, t.Change) and node.field is not None:
            found.add(node.field.name)
        stack.extend(node.children())
    return found


def formula_order(formulas: Mapping[str, t.T]) -> list[str]:
    """Computed fields in an order where each comes after the computed fields it reads."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        if state.get(name) == "done":
            return
        state[name] = "visiting"
        for other in sorted(formula_inputs(formulas[name]) & set(formulas)):
            if state.get(other) != "visiting":
                visit(other)
        state[name] = "done"
        order.append(name)

    for name in formulas:
        visit(name)
    return order


def _cycles(entity: Entity, formulas: Mapping[str, Checked], origin: object) -> Iterator[Problem]:
    graph = {name: formula_inputs(c.typed) & set(formulas) for name, c in formulas.items()}
    reported: set[str] = set()
    for start in graph:
        trail = [start]
        stack = [(start, iter(sorted(graph[start])))]
        while stack:
            _, following = stack[-1]
            nxt = next(following, None)
            if nxt is None:
                stack.pop()
                trail.pop()
                continue
            if nxt == start and start not in reported:
                field: Field = entity.field(start)  # type: ignore[assignment]
                cycle = " → ".join([*trail, start])
                reported.update(trail)
                yield Problem(f"formula: computed fields depend on each other in a circle ({cycle})",
                              field.rule_sources.get("formula", field.source),
                              origin(field.pack))  # type: ignore[operator]
                break
            if nxt not in trail:
                trail.append(nxt)
                stack.append((nxt, iter(sorted(graph[nxt]))))
