"""Compiling a checked rule to a Python closure `f(record, context) -> value`.

No eval, no exec: the closure is a tree of small functions made once per metamodel
revision. Null follows SQL's three-valued logic so that the closure and the SQL filter
always agree (a property test runs both on generated records):

- a comparison, arithmetic, text test or function with a null operand gives null
  (except `is blank`, `coalesce`, `concat` and `if`);
- `and` is false if any side is false, else null if any is null; `or` is true if any
  side is true, else null if any is null; `not null` is null;
- `x in (…)` is true on a match, else null if x or an item is null, else false;
- a condition that ends null does not hold: a filter leaves the record out, a stage
  condition refuses the move; a validation rule, like an SQL CHECK, passes.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as attribute
from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal
from typing import Any

from . import regexes
from . import typed as t

Number = int | Decimal
_DECIMALS = Context(prec=60)
#: Division keeps this many decimal places, truncated (as the SQL side does).
DIVISION_PLACES = 6
#: add_days() beyond this many days gives null (on both sides).
MAX_DAYS = 1_000_000


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class RuleContext:
    """What a rule may know besides the record.

    `previous` is the record before the change (None for a new record); `lookup(entity,
    id)` gives another record's values, for paths through references.
    """

    now: dt.datetime = attribute(default_factory=_utcnow)
    today: dt.date | None = None
    user_id: int | None = None
    user_roles: tuple[str, ...] = ()
    #: The ids of the user's teams (`current_user.teams`).
    user_teams: tuple[int, ...] = ()
    #: The user id of the user's manager (`current_user.manager`).
    user_manager: int | None = None
    #: The user's attribute values, by name, as stored (`current_user.<attribute>`).
    user_attributes: Mapping[str, Any] = attribute(default_factory=dict)
    previous: Mapping[str, Any] | None = None
    lookup: Callable[[str, int], Mapping[str, Any] | None] | None = None

    def __post_init__(self) -> None:
        if self.today is None:
            self.today = self.now.astimezone(dt.UTC).date()


Closure = Callable[[Mapping[str, Any], RuleContext], Any]


def compile_python(node: t.T) -> Closure:
    root = _compile(node)

    def rule(record: Mapping[str, Any], context: RuleContext) -> Any:
        try:
            return root(record, context)
        except (ArithmeticError, ValueError):  # a date or number beyond every range: unknown
            return None
    return rule


def _compile(node: t.T) -> Closure:
    compiler: Callable[[Any], Closure] = _COMPILERS[type(node)]
    return compiler(node)


# --- values --------------------------------------------------------------------------------
def _const(node: t.Const) -> Closure:
    value = node.value

    def const(record: Mapping[str, Any], context: RuleContext) -> Any:
        return value
    return const


def _reader(name: str, value_of: Callable[[Any], Any] | None) -> Callable[[Mapping[str, Any]], Any]:
    """A field's value as rules see it: as stored, or through its type's `rule_value`
    (a currency's amount, an empty list of options as null)."""
    if value_of is not None:
        def converted(values: Mapping[str, Any]) -> Any:
            return value_of(values.get(name))
        return converted
    getter: Callable[[Mapping[str, Any]], Any] = lambda values: values.get(name)  # noqa: E731
    return getter


def _plain_field(node: t.T) -> str | None:
    """The name of a field read as it is stored (most fields): such reads are inlined."""
    if isinstance(node, t.FieldRef) and not node.hops and node.value_of is None:
        return node.field.name
    return None


def _field(node: t.FieldRef) -> Closure:
    read = _reader(node.field.name, node.value_of)
    plain = _plain_field(node)
    if plain is not None:
        def stored(record: Mapping[str, Any], context: RuleContext) -> Any:
            return record.get(plain)
        return stored
    if not node.hops:
        def field(record: Mapping[str, Any], context: RuleContext) -> Any:
            return read(record)
        return field
    first = node.hops[0].field.name
    hops = tuple((hop.field.name, hop.field.target or "") for hop in node.hops)

    def path(record: Mapping[str, Any], context: RuleContext) -> Any:
        values: Mapping[str, Any] | None = record
        for index, (name, target) in enumerate(hops):
            key = values.get(name if index else first) if values is not None else None
            if key is None or context.lookup is None:
                return None
            values = context.lookup(target, key)
        return read(values) if values is not None else None
    return path


def _part(node: t.PartRef) -> Closure:
    """A part of a value (a polymorphic reference's entity): its key in the value."""
    name, part = node.field.name, node.part

    def part_of(record: Mapping[str, Any], context: RuleContext) -> Any:
        value = record.get(name)
        return value.get(part) if isinstance(value, Mapping) else None
    return part_of


def _any_path(node: t.AnyPath) -> Closure:
    """A field of the record a polymorphic reference points to, read through the lookup."""
    name = node.field.name
    readers = {entity: _reader(field.name, value_of) for entity, field, value_of in node.targets}

    def through(record: Mapping[str, Any], context: RuleContext) -> Any:
        value = record.get(name)
        if not isinstance(value, Mapping) or context.lookup is None or value.get("entity") not in readers:
            return None
        values = context.lookup(value["entity"], value["id"])
        return readers[value["entity"]](values) if values is not None else None
    return through


def _user(node: t.UserRef) -> Closure:
    if node.attribute == "id":
        return lambda record, context: context.user_id
    if node.attribute == "manager":
        return lambda record, context: context.user_manager
    if node.attribute == "teams":
        return lambda record, context: list(context.user_teams)
    return lambda record, context: list(context.user_roles) or None


def _user_attr(node: t.UserAttr) -> Closure:
    """The user's value of an attribute; null when they have none (records/rulesql.py binds
    the same value as a parameter)."""
    name, value_of = node.name, node.value_of

    def value(record: Mapping[str, Any], context: RuleContext) -> Any:
        return value_of(context.user_attributes.get(name))
    return value


def _in_list_value(node: t.In) -> Closure:
    """`x in current_user.teams`: null when x is, else whether the list holds x (an empty
    list holds nothing), as records/rulesql.py says in SQL."""
    operand = _compile(node.operand)
    whole = _compile(node.items[0])
    negated = node.negated

    def member(record: Mapping[str, Any], context: RuleContext) -> Any:
        value = operand(record, context)
        if value is None:
            return None
        return (value in (whole(record, context) or ())) is not negated
    return member


def _change(node: t.Change) -> Closure:
    if node.kind == "is_new":
        return lambda record, context: context.previous is None
    assert node.field is not None
    read = _reader(node.field.name, node.value_of)
    if node.kind == "previous":
        return lambda record, context: None if context.previous is None else read(context.previous)

    def changed(record: Mapping[str, Any], context: RuleContext) -> bool:
        now = read(record)
        if context.previous is None:
            return now is not None
        return bool(now != read(context.previous))
    return changed


# --- logic -----------------------------------------------------------------------------------
def _not(node: t.Not) -> Closure:
    name = _plain_field(node.operand)
    if name is not None:
        def not_field(record: Mapping[str, Any], context: RuleContext) -> Any:
            value = record.get(name)
            return None if value is None else not value
        return not_field
    inner = _compile(node.operand)

    def negate(record: Mapping[str, Any], context: RuleContext) -> Any:
        value = inner(record, context)
        return None if value is None else not value
    return negate


def _logic(node: t.Logic) -> Closure:
    """Kleene's `and` / `or`: a deciding value (false for and, true for or) wins over
    unknown; otherwise any unknown makes the whole unknown."""
    items = tuple(_compile(i) for i in node.items)
    deciding = node.op == "or"

    def kleene(record: Mapping[str, Any], context: RuleContext) -> Any:
        unknown = False
        for item in items:
            value = item(record, context)
            if value is deciding:
                return deciding
            if value is None:
                unknown = True
        return None if unknown else not deciding
    return kleene


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def _ordered(node: t.T, order: tuple[str, ...] | None) -> Closure:
    """Stage keys become their positions in the pipeline."""
    inner = _compile(node)
    if order is None:
        return inner
    positions = {key: index for index, key in enumerate(order)}
    if isinstance(node, t.Const):
        constant = positions.get(node.value)
        return lambda record, context: constant

    def position(record: Mapping[str, Any], context: RuleContext) -> Any:
        value = inner(record, context)
        return None if value is None else positions.get(value)
    return position


def _compare(node: t.Compare) -> Closure:
    test = _COMPARE[node.op]
    left, right = _ordered(node.left, node.order), _ordered(node.right, node.order)
    if isinstance(node.right, t.Const):  # the common case, one call less
        constant = right(None, None)  # type: ignore[arg-type]
        name = _plain_field(node.left) if node.order is None else None
        if name is not None and constant is not None:
            def field_against_constant(record: Mapping[str, Any], context: RuleContext) -> Any:
                value = record.get(name)
                return None if value is None else test(value, constant)
            return field_against_constant

        def against_constant(record: Mapping[str, Any], context: RuleContext) -> Any:
            value = left(record, context)
            return None if value is None or constant is None else test(value, constant)
        return against_constant

    return _null_propagating(left, right, test)


def _null_propagating(left: Closure, right: Closure, operation: Callable[[Any, Any], Any]) -> Closure:
    """`left op right`, null when either side is (SQL's rule); the right side is not
    evaluated when the left one is already null."""
    def apply(record: Mapping[str, Any], context: RuleContext) -> Any:
        a = left(record, context)
        if a is None:
            return None
        b = right(record, context)
        return None if b is None else operation(a, b)
    return apply


def _in(node: t.In) -> Closure:
    if len(node.items) == 1 and node.items[0].type.kind in ("list", "ids"):
        return _in_list_value(node)
    name = _plain_field(node.operand)
    if name is not None and all(isinstance(i, t.Const) for i in node.items):
        # the checker refuses null items, so a plain set answers
        members = frozenset(i.value for i in node.items)  # type: ignore[attr-defined]
        negated = node.negated

        def field_in_constants(record: Mapping[str, Any], context: RuleContext) -> Any:
            value = record.get(name)
            return None if value is None else (value in members) is not negated
        return field_in_constants
    operand = _compile(node.operand)
    items = tuple(_compile(i) for i in node.items)
    negated = node.negated

    def member(record: Mapping[str, Any], context: RuleContext) -> Any:
        value = operand(record, context)
        if value is None:
            return None
        unknown = False
        for item in items:
            candidate = item(record, context)
            if candidate is None:
                unknown = True
            elif candidate == value:
                return not negated
        return None if unknown else negated
    return member


def blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def _is_blank(node: t.IsBlank) -> Closure:
    inner = _compile(node.operand)
    if node.negated:
        return lambda record, context: not blank(inner(record, context))
    return lambda record, context: blank(inner(record, context))


def _text_test(node: t.TextTest) -> Closure:
    name = _plain_field(node.left)
    if name is not None and node.op == "starts_with" and isinstance(node.right, t.Const):
        prefix = node.right.value

        def field_starts_with(record: Mapping[str, Any], context: RuleContext) -> Any:
            value = record.get(name)
            return None if value is None else value.startswith(prefix)
        return field_starts_with
    left, right = _compile(node.left), _compile(node.right)
    tests: dict[str, Callable[[Any, Any], bool]] = {
        "contains": lambda a, b: b in a,
        "starts_with": lambda a, b: bool(a.startswith(b)),
        "list_contains": lambda a, b: b in a,
    }
    test = tests[node.op]

    def text_test(record: Mapping[str, Any], context: RuleContext) -> Any:
        a, b = left(record, context), right(record, context)
        if node.op == "list_contains" and a is None and b is not None:
            return None
        return None if a is None or b is None else test(a, b)
    return text_test


def _matches(node: t.Matches) -> Closure:
    operand = _compile(node.operand)
    search = regexes.compiled(node.pattern)

    def matches(record: Mapping[str, Any], context: RuleContext) -> Any:
        value = operand(record, context)
        return None if value is None else search(value) is not None
    return matches


# --- arithmetic and functions ----------------------------------------------------------------
def _decimal(value: Number) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def add(a: Number, b: Number) -> Number:
    return a + b if isinstance(a, int) and isinstance(b, int) else _DECIMALS.add(_decimal(a), _decimal(b))


def subtract(a: Number, b: Number) -> Number:
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    return _DECIMALS.subtract(_decimal(a), _decimal(b))


def multiply(a: Number, b: Number) -> Number:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    return _DECIMALS.multiply(_decimal(a), _decimal(b))


def divide(a: Number, b: Number) -> Number | None:
    """a / b truncated to DIVISION_PLACES places (toward zero); null when b is 0."""
    if b == 0:
        return None
    quotient = _DECIMALS.divide_int(_decimal(a).scaleb(DIVISION_PLACES), _decimal(b))
    return quotient.scaleb(-DIVISION_PLACES)


def round_half_up(value: Number, digits: int) -> Number:
    if isinstance(value, int):
        return value
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP, context=_DECIMALS)


_ARITHMETIC: dict[str, Callable[[Number, Number], Number | None]] = {
    "+": add, "-": subtract, "*": multiply, "/": divide}


def _arith(node: t.Arith) -> Closure:
    left, right = _compile(node.left), _compile(node.right)
    return _null_propagating(left, right, _ARITHMETIC[node.op])


def _neg(node: t.Neg) -> Closure:
    inner = _compile(node.operand)

    def negative(record: Mapping[str, Any], context: RuleContext) -> Any:
        value = inner(record, context)
        return None if value is None else -value
    return negative


def _strict(function: Callable[..., Any]) -> Callable[..., Any]:
    """Null in, null out."""
    def call(*args: Any) -> Any:
        return None if any(a is None for a in args) else function(*args)
    return call


def _add_days(day: dt.date, days: Number) -> dt.date | None:
    if not -MAX_DAYS <= days <= MAX_DAYS:
        return None
    return day + dt.timedelta(days=int(days))


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "days_between": _strict(lambda a, b: (b - a).days),
    "add_days": _strict(_add_days),
    "year": _strict(lambda d: d.year if not isinstance(d, dt.datetime) else d.astimezone(dt.UTC).year),
    "month": _strict(lambda d: d.month if not isinstance(d, dt.datetime) else d.astimezone(dt.UTC).month),
    "len": _strict(len),
    "lower": _strict(str.lower),
    "upper": _strict(str.upper),
    "trim": _strict(lambda s: s.strip(" ")),
    "abs": _strict(abs),
    "min": _strict(min),
    "max": _strict(max),
    "concat": lambda *args: "".join(a for a in args if a is not None),
    "coalesce": lambda *args: next((a for a in args if a is not None), None),
}


def _func(node: t.Func) -> Closure:
    name = node.name
    if node.plugin is not None:
        plugin = _strict(node.plugin.python)
        inputs = tuple(_compile(a) for a in node.args)
        return lambda record, context: plugin(*(a(record, context) for a in inputs))
    if name == "today":
        return lambda record, context: context.today
    if name == "now":
        return lambda record, context: context.now
    args = tuple(_compile(a) for a in node.args)
    if name == "if":
        condition, then, otherwise = args

        def choose(record: Mapping[str, Any], context: RuleContext) -> Any:
            return then(record, context) if condition(record, context) is True else otherwise(record, context)
        return choose
    if name == "round":
        inner, digits = args[0], node.digits

        def rounded(record: Mapping[str, Any], context: RuleContext) -> Any:
            value = inner(record, context)
            return None if value is None else round_half_up(value, digits)
        return rounded
    function = _FUNCTIONS[name]
    if len(args) == 1:
        only = args[0]
        return lambda record, context: function(only(record, context))
    return lambda record, context: function(*(a(record, context) for a in args))


def _links(node: t.Links) -> Closure:
    """Questions about a many-to-many field's links (the record's value: the linked ids).
    `any` reads each linked record through `context.lookup`, true when one holds the
    condition, else false (never null, as SQL's EXISTS); `x in links` is null when x is."""
    name = node.field.name
    if node.kind == "count":
        return lambda record, context: len(record.get(name) or ())
    if node.kind == "has":
        assert node.operand is not None
        operand = _compile(node.operand)
        negated = node.negated

        def has(record: Mapping[str, Any], context: RuleContext) -> Any:
            value = operand(record, context)
            if value is None:
                return None
            return (value in (record.get(name) or ())) is not negated
        return has
    assert node.condition is not None
    condition = _compile(node.condition)
    target = node.target

    def any_of(record: Mapping[str, Any], context: RuleContext) -> bool:
        if context.lookup is None:
            return False
        for linked in record.get(name) or ():
            values = context.lookup(target, linked)
            if values is not None and condition(values, context) is True:
                return True
        return False
    return any_of


_COMPILERS: dict[type, Callable[[Any], Closure]] = {
    t.Const: _const, t.FieldRef: _field, t.PartRef: _part, t.AnyPath: _any_path, t.UserRef: _user,
    t.UserAttr: _user_attr, t.Change: _change,
    t.Not: _not,
    t.Logic: _logic, t.Compare: _compare, t.In: _in, t.IsBlank: _is_blank, t.TextTest: _text_test,
    t.Matches: _matches, t.Arith: _arith, t.Neg: _neg, t.Func: _func, t.Links: _links,
}

__all__ = ["DIVISION_PLACES", "ROUND_DOWN", "Closure", "RuleContext", "compile_python"]
