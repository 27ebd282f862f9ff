"""Rules wired into the records service: validation rules, computed fields, defaults by
expression, stage entry conditions and list filters. Built once per metamodel revision.

The entry point for later users (record-level permission conditions, workflow
conditions, report filters) is `RevisionRules.condition(entity, text, changes=...)`: it
checks the text against the metamodel (RuleError with line and column) and gives a
`Condition` that tests one record in Python (`holds`) and filters a table in SQL
(`where`), with the same meaning, null included.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import CoercionError, FieldTypeRegistry
from slatecrm.metamodel.model import Metamodel, Stage, Validation
from slatecrm.metamodel.rules import (
    BOOLEAN,
    Checked,
    Closure,
    RuleContext,
    RuleError,
    Type,
    check,
    compile_python,
)
from slatecrm.metamodel.rules.definitions import formula_order
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions
from slatecrm.metamodel.rules.types import field_type

from ..identity.principal import Principal
from ..storage.once import Once
from .compiled import SYSTEM_FIELDS, CompiledEntity
from .errors import BadQuery
from .formlogic import NO_LOGIC, EntityLogic, compile_logic
from .rulesql import SqlCompiler

FILTER_CACHE = 256


@dataclass(frozen=True)
class Condition:
    """A checked boolean rule, compiled both ways."""

    text: str
    entity: str
    closure: Closure
    sql: Callable[[RuleContext], sa.ColumnElement[bool]] | None

    def holds(self, record: Mapping[str, Any], context: RuleContext) -> bool:
        """True only when the rule is true; unknown (null) is not true."""
        return self.closure(record, context) is True

    def fails(self, record: Mapping[str, Any], context: RuleContext) -> bool:
        """False only: what a validation rule refuses (unknown passes, like SQL CHECK)."""
        return self.closure(record, context) is False

    def where(self, context: RuleContext) -> sa.ColumnElement[bool]:
        if self.sql is None:
            raise ValueError(f"{self.text!r} reads a change and cannot run in SQL")
        return self.sql(context)


@dataclass(frozen=True)
class EntityRules:
    validations: tuple[tuple[Validation, Condition], ...]
    #: Computed fields in dependency order.
    formulas: tuple[tuple[str, Closure], ...]
    defaults: tuple[tuple[str, Closure], ...]
    #: (stage field, stage key) → the stage and its entry condition.
    stage_conditions: Mapping[tuple[str, str], tuple[Stage, Condition]]
    #: The fields' form logic (records/formlogic.py).
    logic: EntityLogic = NO_LOGIC


class RevisionRules:
    def __init__(self, metamodel: Metamodel, tables: Mapping[str, sa.Table], dialect: str,
                 registry: FieldTypeRegistry, functions: RuleFunctions = NO_FUNCTIONS,
                 code_point_text: bool | None = None):
        self.metamodel = metamodel
        self.functions = functions
        self.registry = registry
        self.sql = SqlCompiler(tables, dialect, registry, code_point_text)
        # Request threads share a revision's rules: each entity's are compiled by the first
        # thread that needs them (the others wait for that result), and the filter cache is
        # trimmed under a lock (two threads trimming at once could pop from an empty cache).
        self._entities: Once[str, EntityRules] = Once()
        self._filters: OrderedDict[tuple[str, str], Condition] = OrderedDict()
        self._filters_lock = threading.Lock()

    # --- the entry point ---------------------------------------------------------------------
    def condition(self, entity: str, text: str, *, changes: bool = False) -> Condition:
        """`text` checked on `entity` and compiled; `changes` allows is_new(), changed() and
        previous() (validation and workflow contexts), which have no SQL form."""
        checked = self.checked(entity, text, changes)
        sql = None if _reads_changes(checked.typed) else self.sql.condition(checked.typed, entity)
        return Condition(text, entity, compile_python(checked.typed), sql)

    def checked(self, entity: str, text: str, changes: bool) -> Checked:
        """`text` checked on `entity` (a restricted snapshot's rules also refuse paths into
        records the reader may not see: records/restricted.py)."""
        return check(text, self.metamodel, entity, expect=BOOLEAN, changes=changes, functions=self.functions,
                     registry=self.registry)

    def filter(self, entity: str, text: str, context: RuleContext) -> sa.ColumnElement[bool]:
        """A list filter; BadQuery naming the position when the text is not a valid rule."""
        key = (entity, text)
        condition = self._filters.get(key)
        if condition is None:
            try:
                condition = self.condition(entity, text)
            except RuleError as error:
                refused = BadQuery({"filter": [str(error)]})
                refused.position = (error.line, error.column)  # type: ignore[attr-defined]
                raise refused from None
            with self._filters_lock:
                self._filters[key] = condition
                while len(self._filters) > FILTER_CACHE:
                    self._filters.popitem(last=False)
        return condition.where(context)

    # --- per entity ----------------------------------------------------------------------------
    def entity(self, name: str) -> EntityRules:
        return self._entities.get(name, lambda: self._compile_entity(name))

    def _compile_entity(self, name: str) -> EntityRules:
        entity = self.metamodel.entity(name)
        assert entity is not None
        validations = tuple((v, self.condition(name, v.condition, changes=True)) for v in entity.validations)
        formulas = {}
        defaults = []
        for field in entity.active_fields:
            wanted = field_type(field, self.registry)
            if field.formula is not None and wanted is not None:
                formula = check(field.formula, self.metamodel, name, expect=Type(wanted.kind),
                                functions=self.functions, registry=self.registry)
                formulas[field.name] = formula.typed
            if field.default_expression is not None and wanted is not None:
                checked = check(field.default_expression, self.metamodel, name, expect=Type(wanted.kind),
                                functions=self.functions, registry=self.registry)
                defaults.append((field.name, compile_python(checked.typed)))
        ordered = tuple((f, compile_python(formulas[f])) for f in formula_order(formulas))
        stages = {
            (pipeline.field, stage.key): (stage, self.condition(name, stage.condition, changes=True))
            for pipeline in entity.pipelines for stage in pipeline.stages if stage.condition is not None
        }
        return EntityRules(validations, ordered, tuple(defaults), stages, compile_logic(self, entity))


def _reads_changes(node: Any) -> bool:
    from slatecrm.metamodel.rules import typed

    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, typed.Change):
            return True
        stack.extend(item.children())
    return False


# --- what the records service calls -------------------------------------------------------------
def user_values(principal: Principal | None, user: int | None = None) -> dict[str, Any]:
    """What rules read as `current_user` (id, roles, teams, manager, attributes), from the request's
    Principal. `user` is the id a write is made as: when it is not the principal's (a
    command writing for someone), only the id is known."""
    if principal is None or (user is not None and principal.user_id != user):
        return {"user_id": user}
    return {"user_id": principal.user_id if user is None else user,
            "user_roles": tuple(sorted(principal.roles)),
            "user_teams": tuple(sorted(principal.teams)),
            "user_manager": principal.manager_id,
            "user_attributes": principal.attribute_values}


def principal_context(principal: Principal, **values: Any) -> RuleContext:
    """A rule context for `principal` without record lookups: list filters and the
    record-level sharing rules of the read path."""
    return RuleContext(**user_values(principal), **values)


def context_for(conn: sa.Connection, compiled: Mapping[str, CompiledEntity], user: int | None,
                previous: Mapping[str, Any] | None, principal: Principal | None = None) -> RuleContext:
    """A rule context whose paths read other records through `conn` (each at most once);
    `current_user` is `principal` when given (else only its id, `user`, is known)."""
    seen: dict[tuple[str, int], Mapping[str, Any] | None] = {}

    def lookup(entity: str, key: int) -> Mapping[str, Any] | None:
        if (entity, key) not in seen:
            ce = compiled.get(entity)
            query = None if ce is None else ce.select.where(ce.table.c.id == key)
            row = None if query is None else conn.execute(query).mappings().first()
            seen[(entity, key)] = None if row is None or ce is None else {
                **{k: row[k] for k in SYSTEM_FIELDS}, **{n: f.from_row(row) for n, f in ce.fields.items()}}
        return seen[(entity, key)]

    return RuleContext(**user_values(principal, user), previous=previous, lookup=lookup)


def apply_defaults(rules: EntityRules, ce: CompiledEntity, values: dict[str, Any], given: Mapping[str, Any],
                   context: RuleContext, errors: dict[str, list[str]]) -> None:
    """Fields left out of a new record get their default expression's value."""
    for name, closure in rules.defaults:
        if name in given and given[name] not in (None, ""):
            continue
        _store(ce, name, closure(values, context), values, errors, "its default")


def compute(rules: EntityRules, ce: CompiledEntity, values: dict[str, Any], context: RuleContext,
            errors: dict[str, list[str]]) -> None:
    """Every computed field, recomputed from the record as it will be saved."""
    for name, closure in rules.formulas:
        _store(ce, name, closure(values, context), values, errors, "its formula")


def _store(ce: CompiledEntity, name: str, value: Any, values: dict[str, Any], errors: dict[str, list[str]],
           what: str) -> None:
    compiled = ce.fields[name]
    field = compiled.field
    value = compiled.type.from_rule_value(value, field)
    try:
        values[name] = compiled.type.coerce(value, field)
    except CoercionError as error:
        values[name] = None
        errors.setdefault(name, []).append(f"{what} gives {value!r}: {error}")


def validate(rules: EntityRules, ce: CompiledEntity, record: Mapping[str, Any], changed: set[str],
             context: RuleContext, errors: dict[str, list[str]]) -> None:
    """Validation rules (false refuses, unknown passes) and the entry conditions of the
    stages the record enters (only true lets it in)."""
    for validation, condition in rules.validations:
        if condition.fails(record, context):
            errors.setdefault(validation.field or "", []).append(validation.message)
    for (field_name, key), (stage, condition) in rules.stage_conditions.items():
        if field_name in changed and record.get(field_name) == key and not condition.holds(record, context):
            message = stage.condition_message or f"the record does not meet its condition: {stage.condition}"
            errors.setdefault(field_name, []).append(f"cannot enter stage {stage.label!r}: {message}")
