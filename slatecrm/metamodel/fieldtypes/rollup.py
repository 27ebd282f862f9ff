"""Roll-ups: a parent's count / sum / min / max / avg of a field of its child records.

A roll-up is stored on the parent as a real column and kept exact by the write pipeline
(platform/records/rollups.py): every write of a child record recomputes the aggregate of the
parents it touches, from the children, in the write's transaction.

Its value is a value of another type (the *result*): a count is a whole number, the sum of
amounts an amount, the latest of dates a date. Which one depends on the child field, so the
effective metamodel completes each roll-up's settings with `result` (`complete`): the
result's type and settings. Every layer (column, JSON, display, rules, OpenAPI) then asks the
result's type.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from .base import Aggregate, ColumnSpec, FieldType, FormInputs
from .builtin import Currency, Date, DateTime, DecimalType, Integer, Percent, Rating

if TYPE_CHECKING:
    from ..model import Entity, Field, Metamodel
    from ..rules.types import Type
    from .base import FieldTypeRegistry

FUNCTIONS = ("count", "sum", "min", "max", "avg")

#: The types a roll-up can aggregate (and give as its result), by name: numbers for every
#: function, dates and moments for min and max.
_NUMBERS: dict[str, FieldType] = {"integer": Integer(), "decimal": DecimalType(), "percent": Percent(),
                                   "currency": Currency(), "rating": Rating()}
_MOMENTS: dict[str, FieldType] = {"date": Date(), "datetime": DateTime()}
_RESULT_TYPES: dict[str, FieldType] = {**_NUMBERS, **_MOMENTS}
#: Settings that narrow a child's values (a sum or an average may leave them).
_RANGE = ("min", "max")
#: The decimal places of an average of whole numbers.
AVERAGE_PLACES = 2
#: The digits of a sum or an average of decimals (a sum may outgrow its children's digits).
RESULT_PRECISION = 18


def parse_over(over: Any) -> tuple[str, str] | None:
    """`child_entity.reference_field` → (entity, field), or None when not of that form."""
    if not isinstance(over, str) or over.count(".") != 1:
        return None
    child, via = over.split(".")
    return (child, via) if child and via else None


class Rollup(FieldType):
    """`type: rollup` with `function`, `over: <child>.<reference to this entity>`, `field`
    (the child field; not for count) and an optional `filter` (a rule over the child)."""

    name = "rollup"
    label = "Roll-up"
    settings_schema: ClassVar[Mapping[str, Any]] = {
        "function": {"enum": list(FUNCTIONS),
                     "description": "count, sum, min, max or avg of the children"},
        "over": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$",
                 "description": "<child entity>.<its reference field pointing to this entity>"},
        "field": {"type": "string", "description": "the child field aggregated (not for count)"},
        "filter": {"type": "string", "description": "a rule over the child: only the children it holds for"},
    }
    required_settings = ("function", "over")
    writable = False
    computable = False
    sortable = True
    filterable = True
    list_rank: ClassVar[int | None] = None

    # --- the result's type ------------------------------------------------------------------
    def result(self, field: Field) -> tuple[FieldType, Field]:
        """The type and the field definition of the values (count: a whole number; an
        unresolved definition, which pack checks refuse, too)."""
        from ..model import Field as FieldClass

        resolved = field.settings.get("result") or {}
        kind = _RESULT_TYPES.get(str(resolved.get("type")), _NUMBERS["integer"])
        return kind, FieldClass(name=field.name, type=kind.name, label=field.label,
                                settings=dict(resolved.get("settings") or {}), pack=field.pack)

    def complete(self, field: Field, entity: Entity, metamodel: Metamodel) -> Field:
        settings = dict(field.settings)
        settings.pop("result", None)
        result = result_definition(field, entity, metamodel)
        if result is not None:
            settings["result"] = result
        return replace(field, settings=settings)

    def aggregates(self, field: Field) -> Aggregate | None:
        over = parse_over(field.settings.get("over"))
        function = field.settings.get("function")
        if over is None or function not in FUNCTIONS:
            return None
        of, text = field.settings.get("field"), field.settings.get("filter")
        return Aggregate(over[0], over[1], str(function), str(of) if of else None,
                         str(text) if text else None)

    def check_in(self, field: Field, entity: Entity, metamodel: Metamodel,
                 registry: FieldTypeRegistry) -> Iterator[str]:
        yield from rollup_problems(field, entity, metamodel, registry)

    # --- storage: one column, the result's main column ----------------------------------------
    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        kind, inner = self.result(field)
        return kind.columns(inner)[0].type

    def columns(self, field: Field) -> list[ColumnSpec]:
        return [ColumnSpec("", self.sql_type(field))]

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        kind, inner = self.result(field)
        return {"": kind.to_columns(value, inner).get("")}

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        kind, inner = self.result(field)
        return kind.from_columns({"": values.get("")}, inner)

    # --- values: the result's ------------------------------------------------------------------
    def coerce(self, value: Any, field: Field) -> Any:
        kind, inner = self.result(field)
        return kind.coerce(value, inner)

    def convert(self, value: Any, field: Field) -> Any:
        kind, inner = self.result(field)
        return kind.convert(value, inner)

    def parse_text(self, text: str, field: Field) -> Any:
        kind, inner = self.result(field)
        return kind.parse_text(text, inner)

    def to_json(self, value: Any, field: Field) -> Any:
        kind, inner = self.result(field)
        return kind.to_json(value, inner)

    def display(self, value: Any, field: Field) -> str:
        kind, inner = self.result(field)
        return kind.display(value, inner)

    def value_schema(self, field: Field) -> dict[str, Any]:
        kind, inner = self.result(field)
        return kind.output_schema(inner)

    def output_schema(self, field: Field) -> dict[str, Any]:
        return self.value_schema(field)

    def filter_schema(self, field: Field) -> dict[str, Any]:
        kind, inner = self.result(field)
        return kind.filter_schema(inner)

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        kind, inner = self.result(field)
        return kind.form_inputs(value, inner)

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        return None  # never set by a form

    def rule_type(self, field: Field) -> Type | None:
        kind, inner = self.result(field)
        return kind.rule_type(inner)

    def rule_value(self, value: Any, field: Field) -> Any:
        kind, inner = self.result(field)
        return kind.rule_value(value, inner)

    def stored_scale(self, field: Field) -> int | None:
        kind, inner = self.result(field)
        return kind.stored_scale(inner)

    def display_total(self, value: Any, field: Field) -> str:
        return self.display(value, field)


# --- the definition against the metamodel ------------------------------------------------------
def _child(field: Field, entity: Entity, metamodel: Metamodel) -> tuple[Entity, Field, Field | None] | None:
    """(child entity, its reference field, the aggregated field or None), when they exist and
    the reference points to `entity`."""
    over = parse_over(field.settings.get("over"))
    if over is None:
        return None
    child = metamodel.entity(over[0])
    if child is None:
        return None
    via = child.field(over[1])
    if via is None or via.target != entity.name:
        return None
    name = field.settings.get("field")
    of = child.field(str(name)) if name is not None else None
    return child, via, of


def _without_range(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in _RANGE}


def result_definition(field: Field, entity: Entity, metamodel: Metamodel) -> dict[str, Any] | None:
    """The result's {type, settings}, or None when the definition is not sound."""
    function = field.settings.get("function")
    if function == "count":
        return {"type": "integer", "settings": {}}
    found = _child(field, entity, metamodel)
    if found is None or found[2] is None:
        return None
    of = found[2]
    kind = _RESULT_TYPES.get(of.type)
    if kind is None:
        return None
    if function in ("min", "max"):
        return {"type": of.type, "settings": dict(of.settings)}
    if of.type not in _NUMBERS:
        return None
    scale = kind.stored_scale(of)
    precision = max(int(of.settings.get("precision", RESULT_PRECISION)), RESULT_PRECISION)
    if function == "sum":
        if not scale:
            return {"type": "integer", "settings": {}}
        return {"type": of.type, "settings": {**_without_range(of.settings), "precision": precision}}
    if function == "avg":
        places = max(scale or 0, AVERAGE_PLACES)
        shown = of.type if scale else "decimal"
        return {"type": shown, "settings": {**(_without_range(of.settings) if scale else {}),
                                            "precision": precision, "scale": places}}
    return None


def rollup_problems(field: Field, entity: Entity, metamodel: Metamodel,
                    registry: FieldTypeRegistry) -> Iterator[str]:
    """What is wrong with a roll-up's definition, each message naming the setting."""
    settings = field.settings
    function = settings.get("function")
    over = parse_over(settings.get("over"))
    if over is None:
        yield f"over: {settings.get('over')!r} is not <child entity>.<its reference field>"
        return
    child = metamodel.entity(over[0])
    if child is None:
        from ..names import suggest

        yield (f"over: {over[0]!r} is not an entity"
               f"{suggest(over[0], [e.name for e in metamodel.active_entities])}")
        return
    via = child.field(over[1])
    if via is None:
        from ..names import suggest

        yield (f"over: {child.name!r} has no field {over[1]!r}"
               f"{suggest(over[1], [f.name for f in child.active_fields])}")
        return
    if via.target != entity.name:
        yield (f"over: {child.name}.{via.name} does not point to {entity.name} "
               f"(it is a {via.type} field{' to ' + via.target if via.target else ''})")
        return
    name = settings.get("field")
    if function == "count":
        if name is not None:
            yield "field: a count counts the children; leave field out"
    elif name is None:
        yield f"field: {function} needs the child field it aggregates"
    else:
        of = child.field(str(name))
        if of is None:
            from ..names import suggest

            known = [f.name for f in child.active_fields]
            yield f"field: {child.name!r} has no field {name!r}{suggest(str(name), known)}"
        elif of.type == "rollup":
            yield f"field: {child.name}.{of.name} is a roll-up itself; a roll-up cannot aggregate a roll-up"
        elif function in ("sum", "avg") and of.type not in _NUMBERS:
            yield (f"field: {function} needs a number field, and {child.name}.{of.name} is a {of.type} field "
                   f"(numbers: {', '.join(_NUMBERS)})")
        elif of.type not in _RESULT_TYPES:
            yield (f"field: {function} of a {of.type} field is not supported "
                   f"(numbers: {', '.join(_NUMBERS)}; for min and max dates and date-times too)")
        elif of.type == "currency" and len(of.settings.get("currencies") or []) != 1:
            yield (f"field: {child.name}.{of.name} allows several currencies, and amounts in different "
                   "currencies cannot be added or compared: restrict it to one "
                   "(currencies: [EUR]) or aggregate a number field")
    text = settings.get("filter")
    if text is not None:
        yield from _filter_problems(str(text), child, metamodel, registry)


def _filter_problems(text: str, child: Entity, metamodel: Metamodel,
                     registry: FieldTypeRegistry) -> Iterator[str]:
    """The filter must be a valid rule over the child, reading only the child's own fields
    (not through references, not the user, today or now): then a write of a child is all
    that can change which children it holds for, and the roll-up stays exact."""
    from ..rules import typed as t
    from ..rules.checker import check
    from ..rules.errors import RuleError
    from ..rules.types import BOOLEAN

    try:
        checked = check(text, metamodel, child.name, expect=BOOLEAN, registry=registry)
    except RuleError as error:
        yield (f"filter: {error.message} (line {error.line}, column {error.column} of the expression)\n"
               + "\n".join("    " + line for line in error.caret().splitlines()))
        return
    stack: list[t.T] = [checked.typed]
    while stack:
        node = stack.pop()
        if isinstance(node, t.FieldRef) and node.hops:
            yield (f"filter: {text!r} reads a field through a reference; a roll-up's filter reads "
                   f"only the {child.name} record's own fields")
            return
        if isinstance(node, t.FieldRef) and node.field.type == "rollup":
            yield f"filter: {text!r} reads a roll-up of {child.name}; a roll-up's filter cannot"
            return
        if isinstance(node, t.UserRef | t.UserAttr | t.Change) or (
                isinstance(node, t.Func) and (node.name in ("today", "now") or node.plugin is not None)):
            yield (f"filter: {text!r} depends on who reads it or when; a roll-up's filter reads only "
                   f"the {child.name} record's own fields")
            return
        stack.extend(node.children())


def filter_fields(text: str, child: str, metamodel: Metamodel, registry: FieldTypeRegistry) -> set[str]:
    """The child fields a (valid) filter reads."""
    from ..rules import typed as t
    from ..rules.checker import check
    from ..rules.types import BOOLEAN

    checked = check(text, metamodel, child, expect=BOOLEAN, registry=registry)
    found: set[str] = set()
    stack: list[t.T] = [checked.typed]
    while stack:
        node = stack.pop()
        if isinstance(node, t.FieldRef):
            found.add(node.hops[0].field.name if node.hops else node.field.name)
        stack.extend(node.children())
    return found
