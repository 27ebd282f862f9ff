"""Compiling a checked rule to a SQLAlchemy condition, for list filters (and, later,
permission and report filters).

Built once per metamodel revision: the result is a function of the rule context (today,
now, the user) that returns the WHERE clause; values are always bound parameters and the
only identifiers are the metamodel's tables and columns. Paths through references become
correlated scalar subqueries. Null follows SQL, which the Python closure copies (see
slatecrm.metamodel.rules.python); property tests check that both select the same records.

SQLite keeps decimals as integers scaled by 10^scale (docs/decisions.md), so on SQLite
every number is compiled as (integer expression, scale) and aligned before arithmetic and
comparison: exact, like PostgreSQL's NUMERIC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import Grouping

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.fieldtypes.sqltypes import UTCDateTime
from slatecrm.metamodel.model import Field
from slatecrm.metamodel.rules import typed as t
from slatecrm.metamodel.rules.functions import RuleFunction
from slatecrm.metamodel.rules.python import DIVISION_PLACES, MAX_DAYS, RuleContext, compile_python
from slatecrm.metamodel.userattributes import NUMBER_SCALE

Expr = sa.ColumnElement[Any]


def _op(left: Expr, symbol: str, right: Expr, return_type: Any = None) -> Expr:
    """`(left) symbol (right)`: custom operators carry no precedence, so group both sides."""
    result: Expr = Grouping(left).op(symbol, return_type=return_type)(Grouping(right))
    return Grouping(result)


@dataclass(frozen=True)
class Sql:
    expr: Expr
    #: SQLite numbers: the expression holds value × 10^scale as an integer.
    scale: int = 0


Builder = Callable[[RuleContext], Sql]
Condition = Callable[[RuleContext], sa.ColumnElement[bool]]

#: The SQL type a plugin function's result is read as, by its rule type.
_SQL_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "text": sa.String(), "number": sa.Numeric(), "boolean": sa.Boolean(), "date": sa.Date(),
    "datetime": UTCDateTime(),
}


#: The SQL type of a null of a rule type (a folded value that turned out null).
_NULL_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "number": sa.Numeric(), "reference": sa.BigInteger(), "text": sa.String(), "date": sa.Date(),
    "datetime": sa.DateTime(), "time": sa.Time(),
}


def _reads_user_attributes(node: t.T) -> bool:
    """Whether a part reads a user attribute: such a part is compiled, not folded to one
    value, so that its statement has the same text for every user (only parameters differ)."""
    return isinstance(node, t.UserAttr) or any(_reads_user_attributes(c) for c in node.children())


#: The SQL type of a user attribute's parameter, by rule type (numbers apart: SQLite's scale).
_BOUND_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "text": sa.String(), "boolean": sa.Boolean(), "date": sa.Date(), "time": sa.Time(),
}


class SqlCompiler:
    def __init__(self, tables: Mapping[str, sa.Table], dialect: str, registry: FieldTypeRegistry,
                 code_point_text: bool | None = None):
        """`code_point_text`: the database compares text by code point (storage/engine.py,
        `text_in_code_point_order`); unknown (None) means yes on SQLite, no elsewhere."""
        self.tables = tables
        self.sqlite = dialect == "sqlite"
        self.registry = registry
        self.code_point_text = self.sqlite if code_point_text is None else code_point_text

    def condition(self, node: t.T, entity: str) -> Condition:
        """The WHERE clause builder of a boolean rule on `entity`'s table."""
        builder = self._selecting(node, self.tables[entity])

        def where(context: RuleContext) -> sa.ColumnElement[bool]:
            expr = builder(context).expr
            return expr  # a boolean expression; null means "not selected", as in WHERE
        return where

    def _selecting(self, node: t.T, base: sa.Table) -> Builder:
        """A condition whose value only selects rows or not (the top of a WHERE, and the items
        of AND / OR under it, never under NOT): there, a comparison of a field reached through
        one reference with a value (`<reference>.owner = current_user.id`, a sharing rule's usual
        shape) becomes a semi-join, `<reference> IN (SELECT id FROM <target> WHERE owner = :me)`,
        which indexes serve, instead of a correlated subquery run for every row. It is true in
        exactly the rows the subquery form is true in (a missing or blank target: not true in
        either), which is all a WHERE asks."""
        if isinstance(node, t.Logic) and not node.record_free:
            items = [self._selecting(i, base) for i in node.items]
            join = sa.and_ if node.op == "and" else sa.or_
            return lambda context: Sql(join(*(i(context).expr for i in items)))
        if isinstance(node, t.Compare) and node.order is None and node.op in ("=", "!="):
            for path, value in ((node.left, node.right), (node.right, node.left)):
                if isinstance(path, t.FieldRef) and len(path.hops) == 1 and path.value_of is None \
                        and value.record_free and path.type.kind != "list":
                    return self._semi_join(path, node.op, self._compile(value, base), base)
        return self._compile(node, base)

    def _semi_join(self, path: t.FieldRef, op: str, value: Builder, base: sa.Table) -> Builder:
        target = self.tables[path.entity].alias()
        column = self._column(target, path.field)
        key = base.c[path.hops[0].field.name]

        def semi(context: RuleContext) -> Sql:
            (a, b), _ = self._align(column, value(context))
            return Sql(key.in_(sa.select(target.c.id).where(_COMPARE[op](a, b))))
        return semi

    # --- dispatch --------------------------------------------------------------------------
    def _compile(self, node: t.T, base: sa.Table) -> Builder:
        if isinstance(node, t.UserAttr):
            return self._user_attr(node)
        if node.record_free and not _reads_user_attributes(node):
            return self._folded(node)
        method: Callable[[Any, sa.Table], Builder] = getattr(self, f"_{type(node).__name__.lower()}")
        return method(node, base)

    def _folded(self, node: t.T) -> Builder:
        """A part without fields has one value for every record: computed in Python, bound."""
        closure = compile_python(node)
        kind = node.type.kind

        def constant(context: RuleContext) -> Sql:
            return self.literal(closure({}, context), kind)
        return constant

    def _user_attr(self, node: t.UserAttr) -> Builder:
        """`current_user.<attribute>`: always one bound parameter of the attribute's type, null
        included, and a number always at the same scale, so the statement's text is the same
        for every user (the compiled-statement cache serves all of them) and only the
        parameter's value differs."""
        read = compile_python(node)
        kind = node.type.kind

        def bound(context: RuleContext) -> Sql:
            value = read({}, context)
            if kind == "number":
                if self.sqlite:
                    scaled = None if value is None else int(Decimal(value).scaleb(NUMBER_SCALE))
                    return Sql(sa.literal(scaled, sa.BigInteger), NUMBER_SCALE)
                return Sql(sa.cast(sa.literal(value, sa.Numeric(asdecimal=True)), sa.Numeric(asdecimal=True)))
            typed = _BOUND_TYPES[kind]
            # PostgreSQL must know a parameter's type even when it is null (`? IS NULL`).
            return Sql(sa.literal(value, typed) if self.sqlite else sa.cast(sa.literal(value, typed), typed))
        return bound

    def literal(self, value: Any, kind: str) -> Sql:
        if kind == "boolean" or isinstance(value, bool):
            if value is None:
                return Sql(sa.cast(sa.null(), sa.Boolean))
            return Sql(sa.true() if value else sa.false())
        if value is None:
            # Typed, so that `x = <a null value>` stays a comparison (null) rather than
            # becoming SQLAlchemy's `x IS NULL`.
            typed = _NULL_TYPES.get(kind)
            return Sql(sa.null() if typed is None else sa.cast(sa.null(), typed))
        if kind == "number" or (kind in ("reference", "null") and isinstance(value, int | Decimal)):
            if self.sqlite:
                number = Decimal(value)
                scale = max(0, -int(number.as_tuple().exponent))
                return Sql(sa.literal(int(number.scaleb(scale)), sa.BigInteger), scale)
            if isinstance(value, int):
                return Sql(sa.literal(value, sa.BigInteger))
            return Sql(sa.literal(value, sa.Numeric(asdecimal=True)))
        if isinstance(value, dt.datetime):
            return Sql(sa.literal(value, UTCDateTime()))
        if isinstance(value, dt.date):
            return Sql(sa.literal(value, sa.Date))
        if isinstance(value, dt.time):
            return Sql(sa.literal(value, sa.Time))
        return Sql(sa.literal(str(value), sa.String))

    # --- values ------------------------------------------------------------------------------
    def _column(self, table: sa.FromClause, field: Field, part: str | None = None) -> Sql:
        if part is not None:  # a part of a composite value: a text column of its own
            return Sql(table.c[f"{field.name}__{part}" if part else field.name])
        column: Expr = table.c[field.name]
        rule_type = self.registry[field.type].rule_type(field)
        if rule_type is not None and rule_type.kind == "list":
            # An empty multi-choice is stored as JSON null, which is not SQL NULL.
            if self.sqlite:
                return Sql(sa.func.nullif(sa.type_coerce(column, sa.String), sa.literal("null", sa.String)))
            return Sql(sa.func.nullif(column, sa.cast(sa.literal("null", sa.String), JSONB), type_=JSONB))
        scale = self.registry[field.type].stored_scale(field)
        if self.sqlite and scale is not None:
            return Sql(sa.type_coerce(column, sa.BigInteger), scale)
        return Sql(column)

    def _links(self, node: t.Links, base: sa.Table) -> Builder:
        """A many-to-many field's links, through its junction table: `count` a correlated
        COUNT, `has` an EXISTS (null when the id looked for is), `any` an EXISTS joining the
        linked records, with the condition compiled on them."""
        junction = sa.table(node.table, sa.column(node.source_column), sa.column(node.target_column))
        mine = sa.and_(junction.c[node.source_column] == base.c.id,
                       junction.c[node.target_column].isnot(None))
        if node.kind == "count":
            counted = Sql(sa.select(sa.func.count()).select_from(junction).where(mine)
                          .correlate(base).scalar_subquery())
            return lambda context: counted
        if node.kind == "has":
            assert node.operand is not None
            operand = self._compile(node.operand, base)
            negated = node.negated

            def has(context: RuleContext) -> Sql:
                value = operand(context)
                (key,), _ = self._align(value)
                found = sa.exists().where(mine, junction.c[node.target_column] == self._plain(value)
                                          ).correlate(base)
                test = sa.not_(found) if negated else found
                return Sql(sa.case((key.is_(None), sa.null()), else_=test))
            return has
        assert node.condition is not None
        linked = self.tables[node.target].alias()
        condition = self._compile(node.condition, linked)  # type: ignore[arg-type]

        def any_of(context: RuleContext) -> Sql:
            return Sql(sa.exists().where(mine, linked.c.id == junction.c[node.target_column],
                                         condition(context).expr).correlate(base))
        return any_of

    def _fieldref(self, node: t.FieldRef, base: sa.Table) -> Builder:
        if not node.hops:
            value = self._column(base, node.field, node.part)
            return lambda context: value
        key: Expr = base.c[node.hops[0].field.name]
        for hop in node.hops[1:]:
            alias = self.tables[hop.entity].alias()
            step = sa.select(alias.c[hop.field.name]).where(alias.c.id == key)
            key = step.correlate(base).scalar_subquery()
        final = self.tables[node.entity].alias()
        column = self._column(final, node.field, node.part)
        value = Sql(sa.select(column.expr).where(final.c.id == key).correlate(base).scalar_subquery(),
                    column.scale)
        return lambda context: value

    def _partref(self, node: t.PartRef, base: sa.Table) -> Builder:
        """A companion column (`<field>__<part>`): a polymorphic reference's entity."""
        field = node.field
        spec = next(s for s in self.registry[field.type].columns(field) if s.suffix == node.part)
        value = Sql(base.c[spec.column_name(field.name)])
        return lambda context: value

    def _anypath(self, node: t.AnyPath, base: sa.Table) -> Builder:
        """COALESCE((SELECT f FROM x_a WHERE <the reference points to it>), …): the field of
        the record the reference points to, whichever of its targets it is (only the
        subquery of that target finds a row)."""
        reference = node.field
        compiled = self.registry[reference.type]
        stored = {s.suffix: base.c[s.column_name(reference.name)] for s in compiled.columns(reference)}
        reads = []
        for entity, field, _ in node.targets:
            final = self.tables[entity].alias()
            column = self._column(final, field)
            pointing = compiled.refers_to(stored, entity, [final.c.id], node.field)
            reads.append(Sql(sa.select(column.expr).where(pointing).correlate(base).scalar_subquery(),
                             column.scale))
        aligned, scale = self._align(*reads)
        value = Sql(sa.func.coalesce(*aligned, type_=aligned[0].type), scale)
        return lambda context: value

    # --- numbers on SQLite ------------------------------------------------------------------------
    def _align(self, *values: Sql) -> tuple[list[Expr], int]:
        if not self.sqlite:
            return [v.expr for v in values], 0
        scale = max(v.scale for v in values)
        return [v.expr if v.scale == scale
                else _op(v.expr, "*", sa.literal(10 ** (scale - v.scale), sa.BigInteger))
                for v in values], scale

    # --- logic -----------------------------------------------------------------------------------
    def _not(self, node: t.Not, base: sa.Table) -> Builder:
        inner = self._compile(node.operand, base)
        return lambda context: Sql(sa.not_(inner(context).expr))

    def _logic(self, node: t.Logic, base: sa.Table) -> Builder:
        items = [self._compile(i, base) for i in node.items]
        join = sa.and_ if node.op == "and" else sa.or_
        return lambda context: Sql(join(*(i(context).expr for i in items)))

    def _ordered(self, node: t.T, base: sa.Table, order: tuple[str, ...] | None) -> Builder:
        inner = self._compile(node, base)
        if order is None:
            return inner
        positions = {key: index for index, key in enumerate(order)}

        def position(context: RuleContext) -> Sql:
            value = inner(context).expr
            return Sql(sa.case(positions, value=value, else_=sa.null()))
        return position

    def _compare(self, node: t.Compare, base: sa.Table) -> Builder:
        left = self._ordered(node.left, base, node.order)
        right = self._ordered(node.right, base, node.order)
        if node.order is not None and isinstance(node.right, t.Const):
            index = node.order.index(node.right.value)
            right = lambda context: self.literal(index, "number")  # noqa: E731
        op = node.op
        text_order = node.left.type.kind == "text" and node.order is None and op not in ("=", "!=")
        collate = text_order and not self.sqlite

        def compare(context: RuleContext) -> Sql:
            (a, b), _ = self._align(left(context), right(context))
            if collate:
                a = a.collate("C")
            return Sql(_COMPARE[op](a, b))
        return compare

    def _in(self, node: t.In, base: sa.Table) -> Builder:
        if len(node.items) == 1 and node.items[0].type.kind in ("list", "ids"):
            return self._in_list_value(node, base)
        operand = self._compile(node.operand, base)
        items = [self._compile(i, base) for i in node.items]

        def member(context: RuleContext) -> Sql:
            value = operand(context)
            tests = []
            for item in items:
                (a, b), _ = self._align(value, item(context))
                tests.append(a == b)
            found = sa.or_(*tests)
            return Sql(sa.not_(found) if node.negated else found)
        return member

    def _in_list_value(self, node: t.In, base: sa.Table) -> Builder:
        """`x in current_user.teams`: the list is the user's (one value for every record),
        so its members become bound literals; an empty list holds nothing, and `x <> x`
        says so with SQL's null for a null x (as the Python side does)."""
        operand = self._compile(node.operand, base)
        whole = compile_python(node.items[0])
        element = "number" if node.items[0].type.kind == "ids" else "text"

        def member(context: RuleContext) -> Sql:
            value = operand(context)
            members = whole({}, context) or []
            if not members:
                nothing = value.expr != value.expr
                return Sql(sa.not_(nothing) if node.negated else nothing)
            tests = []
            for item in members:
                (a, b), _ = self._align(value, self.literal(item, element))
                tests.append(a == b)
            found = sa.or_(*tests)
            return Sql(sa.not_(found) if node.negated else found)
        return member

    def _isblank(self, node: t.IsBlank, base: sa.Table) -> Builder:
        inner = self._compile(node.operand, base)
        kind = node.operand.type.kind

        def blank(context: RuleContext) -> Sql:
            value = inner(context).expr
            test: sa.ColumnElement[bool]
            if kind == "text":
                test = sa.or_(value.is_(None), value == sa.literal("", sa.String))
            elif kind == "list":
                test = sa.or_(value.is_(None), self._list_length(value) == 0)
            else:
                test = value.is_(None)
            return Sql(sa.not_(test) if node.negated else test)
        return blank

    def _list_length(self, value: Expr) -> Expr:
        if self.sqlite:
            return sa.func.json_array_length(value)
        return sa.func.jsonb_array_length(sa.type_coerce(value, JSONB))

    def _texttest(self, node: t.TextTest, base: sa.Table) -> Builder:
        left, right = self._compile(node.left, base), self._compile(node.right, base)
        op = node.op

        def test(context: RuleContext) -> Sql:
            a, b = left(context).expr, right(context).expr
            if op == "contains":
                position = sa.func.instr(a, b) if self.sqlite else sa.func.strpos(a, b)
                return Sql(position > 0)
            if op == "starts_with":
                exact = sa.func.substr(a, 1, sa.func.length(b)) == b
                return Sql(sa.and_(*self._prefix_range(node, a), exact))
            key = node.left.type.item_key  # a list of objects: their `key` member (emails)
            if self.sqlite:
                items = sa.func.json_each(a).table_valued("value")
                member: Expr = items.c.value if key is None else \
                    sa.func.json_extract(items.c.value, sa.literal(f"$.{key}", sa.String))
                found: Expr = sa.exists().where(member == b)
            else:
                wanted: Expr = b if key is None else sa.func.jsonb_build_object(sa.literal(key, sa.String), b)
                found = sa.type_coerce(a, JSONB).contains(sa.func.jsonb_build_array(wanted))
            return Sql(sa.case((sa.or_(a.is_(None), b.is_(None)), sa.cast(sa.null(), sa.Boolean)),
                               else_=found))
        return test

    def _prefix_range(self, node: t.TextTest, a: Expr) -> list[sa.ColumnElement[bool]]:
        """`field starts_with "Abc"` also as `field >= 'Abc' AND field < 'Abd'`, which the
        planner answers from the field's index (a scan of the matching stretch, and a list
        sorted by the field stops after its page); the exact test stays beside it, so the
        meaning (case-sensitive) is unchanged. The range is exact only where text compares
        by code point: SQLite (BINARY), and PostgreSQL when the database's collation is C
        or C.UTF-8 (`code_point_text`). Under a language's collation ('en_US.UTF-8',
        ICU) such a range would leave out true matches ('Abc' < 'abd' < 'Abd'), so there
        the exact test is kept alone (docs/api.md, "Limits")."""
        prefix = node.right.value if isinstance(node.right, t.Const) else None
        if not (self.code_point_text and isinstance(node.left, t.FieldRef) and isinstance(prefix, str)
                and prefix):
            return []
        bound = prefix.rstrip(chr(0x10FFFF))
        if not bound:
            return [a >= prefix]
        following = ord(bound[-1]) + 1
        following = 0xE000 if 0xD800 <= following < 0xE000 else following  # no surrogates
        return [a >= prefix, a < bound[:-1] + chr(following)]

    def _matches(self, node: t.Matches, base: sa.Table) -> Builder:
        operand = self._compile(node.operand, base)
        pattern = node.pattern

        def matches(context: RuleContext) -> Sql:
            value = operand(context).expr
            if self.sqlite:  # registered on every connection (slatecrm.platform.storage.engine)
                return Sql(sa.func.slate_regexp(sa.literal(pattern, sa.String), value, type_=sa.Boolean))
            return Sql(value.regexp_match(sa.literal(pattern, sa.String)))
        return matches

    # --- arithmetic and functions -----------------------------------------------------------------
    def _neg(self, node: t.Neg, base: sa.Table) -> Builder:
        inner = self._compile(node.operand, base)

        def negative(context: RuleContext) -> Sql:
            value = inner(context)
            return Sql(-value.expr, value.scale)
        return negative

    def _arith(self, node: t.Arith, base: sa.Table) -> Builder:
        left, right = self._compile(node.left, base), self._compile(node.right, base)
        op = node.op

        def arith(context: RuleContext) -> Sql:
            a, b = left(context), right(context)
            if op == "*":
                if not self.sqlite:
                    return Sql(_op(sa.cast(a.expr, sa.Numeric), "*", sa.cast(b.expr, sa.Numeric)))
                return Sql(_op(a.expr, "*", b.expr), a.scale + b.scale)
            if op == "/":
                return self._divide(a, b)
            (x, y), scale = self._align(a, b)
            if not self.sqlite:  # NUMERIC: no bigint overflow, as exact as Python's decimals
                x, y = sa.cast(x, sa.Numeric), sa.cast(y, sa.Numeric)
            return Sql(_op(x, op, y), scale)
        return arith

    def _divide(self, a: Sql, b: Sql) -> Sql:
        """a / b truncated to DIVISION_PLACES places toward zero; null when b is 0."""
        if self.sqlite:
            numerator = _op(a.expr, "*", sa.literal(10 ** (DIVISION_PLACES + b.scale), sa.BigInteger))
            denominator = _op(b.expr, "*", sa.literal(10 ** a.scale, sa.BigInteger))
            return Sql(_op(numerator, "/", sa.func.nullif(denominator, 0)), DIVISION_PLACES)
        numerator = _op(sa.cast(a.expr, sa.Numeric), "*", sa.literal(10 ** DIVISION_PLACES, sa.BigInteger))
        quotient = sa.func.div(numerator, sa.func.nullif(sa.cast(b.expr, sa.Numeric), 0), type_=sa.Numeric)
        return Sql(_op(quotient, "/", sa.literal(10 ** DIVISION_PLACES, sa.Numeric)))

    def _func(self, node: t.Func, base: sa.Table) -> Builder:
        args = [self._compile(a, base) for a in node.args]
        if node.plugin is not None:
            return self._plugin(node.plugin, args)
        if node.name == "round":
            digits = node.digits
            return lambda context: self._round(args[0](context), digits)
        build: Callable[[list[Sql]], Sql] = getattr(self, f"_f_{node.name}")
        if node.name in ("year", "month", "len"):
            kind = node.args[0].type.kind
            return lambda context: build([args[0](context), Sql(sa.literal(kind))])
        return lambda context: build([a(context) for a in args])

    def _plugin(self, function: RuleFunction, args: list[Builder]) -> Builder:
        """A plugin's function: its own SQL over plain values, null when any argument is
        null (as its Python form, which is never called with a null)."""
        dialect = "sqlite" if self.sqlite else "postgresql"
        result_type = _SQL_TYPES[function.returns]

        def call(context: RuleContext) -> Sql:
            values = [self._plain(a(context)) for a in args]
            expr: Expr = sa.type_coerce(function.sql(values, dialect), result_type)
            if values:
                expr = sa.case((sa.or_(*(v.is_(None) for v in values)), sa.null()), else_=expr)
            return Sql(expr)
        return call

    def _plain(self, value: Sql) -> Expr:
        """A value as the plugin sees it: SQLite numbers unscaled (REAL)."""
        if self.sqlite and value.scale:
            return _op(sa.cast(value.expr, sa.Float), "/", sa.literal(10 ** value.scale, sa.Float))
        return value.expr

    def _f_days_between(self, args: list[Sql]) -> Sql:
        a, b = args[0].expr, args[1].expr
        if self.sqlite:
            return Sql(sa.cast(sa.func.julianday(b) - sa.func.julianday(a), sa.BigInteger))
        return Sql(_op(b, "-", a, sa.Integer))

    def _f_add_days(self, args: list[Sql]) -> Sql:
        day, days = args
        limit = self.literal(MAX_DAYS, "number")
        (bounded, top), _ = self._align(days, limit)
        out_of_range = sa.func.abs(bounded) > top
        result = self._add_days(day, days)
        return Sql(sa.case((out_of_range, sa.null()), else_=result.expr))

    def _add_days(self, day: Sql, days: Sql) -> Sql:
        if self.sqlite:
            whole = days.expr
            if days.scale:
                whole = _op(days.expr, "/", sa.literal(10 ** days.scale, sa.BigInteger))
            modifier = _op(sa.cast(whole, sa.String), "||", sa.literal(" days"))
            return Sql(sa.func.date(day.expr, modifier, type_=sa.Date))
        whole = sa.cast(sa.func.trunc(sa.cast(days.expr, sa.Numeric)), sa.Integer)
        return Sql(_op(day.expr, "+", whole, sa.Date))

    def _part(self, args: list[Sql], part: str) -> Sql:
        value, kind = args[0].expr, args[1].expr.value
        if self.sqlite:
            pattern = "%Y" if part == "year" else "%m"
            return Sql(sa.cast(sa.func.strftime(pattern, value), sa.BigInteger))
        if kind == "datetime":
            value = sa.func.timezone("UTC", value)
        return Sql(sa.cast(sa.extract(part, value), sa.BigInteger))

    def _f_year(self, args: list[Sql]) -> Sql:
        return self._part(args, "year")

    def _f_month(self, args: list[Sql]) -> Sql:
        return self._part(args, "month")

    def _f_len(self, args: list[Sql]) -> Sql:
        value, kind = args[0].expr, args[1].expr.value
        if kind == "list":
            return Sql(self._list_length(value))
        return Sql(sa.func.length(value) if self.sqlite else sa.func.char_length(value))

    def _f_lower(self, args: list[Sql]) -> Sql:
        if self.sqlite:  # registered on every connection: Python's lower(), not ASCII-only
            return Sql(sa.func.slate_lower(args[0].expr, type_=sa.String))
        return Sql(sa.func.lower(args[0].expr))

    def _f_upper(self, args: list[Sql]) -> Sql:
        if self.sqlite:
            return Sql(sa.func.slate_upper(args[0].expr, type_=sa.String))
        return Sql(sa.func.upper(args[0].expr))

    def _f_trim(self, args: list[Sql]) -> Sql:
        space = sa.literal(" ", sa.String)
        return Sql(sa.func.trim(args[0].expr, space) if self.sqlite else sa.func.btrim(args[0].expr, space))

    def _f_concat(self, args: list[Sql]) -> Sql:
        parts = [sa.func.coalesce(a.expr, sa.literal("", sa.String)) for a in args]
        joined: Expr = parts[0]
        for part in parts[1:]:
            joined = _op(joined, "||", part, sa.String)
        return Sql(joined)

    def _f_coalesce(self, args: list[Sql]) -> Sql:
        values, scale = self._align(*args)
        return Sql(sa.func.coalesce(*values), scale)

    def _f_if(self, args: list[Sql]) -> Sql:
        (then, otherwise), scale = self._align(args[1], args[2])
        return Sql(sa.case((args[0].expr, then), else_=otherwise), scale)

    def _f_abs(self, args: list[Sql]) -> Sql:
        return Sql(sa.func.abs(args[0].expr), args[0].scale)

    def _extreme(self, args: list[Sql], sqlite: str, postgres: str) -> Sql:
        values, scale = self._align(*args)
        if self.sqlite:  # SQLite's many-argument min/max are null when any argument is
            return Sql(getattr(sa.func, sqlite)(*values), scale)
        any_null = sa.or_(*(v.is_(None) for v in values))
        return Sql(sa.case((any_null, sa.null()), else_=getattr(sa.func, postgres)(*values)), scale)

    def _f_min(self, args: list[Sql]) -> Sql:
        return self._extreme(args, "min", "least")

    def _f_max(self, args: list[Sql]) -> Sql:
        return self._extreme(args, "max", "greatest")

    def _round(self, value: Sql, digits: int) -> Sql:
        if not self.sqlite:
            return Sql(sa.func.round(sa.cast(value.expr, sa.Numeric), digits))
        if digits >= value.scale:
            return value
        unit = 10 ** (value.scale - digits)
        half = sa.case((value.expr < 0, -(unit // 2)), else_=unit // 2)
        return Sql(_op(_op(value.expr, "+", half), "/", sa.literal(unit, sa.BigInteger)), digits)


_COMPARE: dict[str, Callable[[Expr, Expr], sa.ColumnElement[bool]]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
