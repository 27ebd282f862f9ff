"""Typing a rule against the metamodel: every name resolved, every operand checked.

The checker is where a rule earns the right to run. It refuses unknown fields (with a
suggestion), paths through fields that are not references, operands of the wrong type,
wrong function arguments, stage and choice keys that do not exist, comparisons with null
(which are never true), regular expressions outside the portable subset, and change
functions where there is no change (list filters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from ..model import Entity, Field, Metamodel
from ..names import suggest
from . import ast, regexes
from . import typed as t
from .errors import RuleError
from .functions import NO_FUNCTIONS, RuleFunctions
from .parser import parse

if TYPE_CHECKING:
    from ..fieldtypes.base import FieldTypeRegistry
from .types import (
    BOOLEAN,
    DATE,
    DATETIME,
    ID_LIST,
    NULL,
    NUMBER,
    SYSTEM_FIELDS,
    TEXT,
    TEXT_LIST,
    TIME,
    Type,
    comparable,
    field_parts,
    field_type,
    rule_parts,
    rule_reader,
    stored_reader,
)

MAX_HOPS = 3
FUNCTIONS = ("today", "now", "days_between", "add_days", "year", "month", "len", "lower", "upper", "trim",
             "concat", "coalesce", "if", "round", "abs", "min", "max", "is_new", "changed", "previous")
CHANGE_FUNCTIONS = ("is_new", "changed", "previous")


@dataclass(frozen=True)
class Checked:
    """A rule that passed the checker: its text, syntax tree and typed tree."""

    text: str
    tree: ast.Node
    typed: t.T
    entity: str

    @property
    def type(self) -> Type:
        return self.typed.type


def check(text: str, metamodel: Metamodel, entity: str, *, expect: Type | None = BOOLEAN,
          changes: bool = False, functions: RuleFunctions = NO_FUNCTIONS,
          registry: FieldTypeRegistry | None = None) -> Checked:
    """Parse and type `text` on `entity`; `expect` is the type the result must have
    (BOOLEAN for conditions), `changes` allows is_new(), changed() and previous(),
    `functions` are the plugins' functions the rule may call."""
    tree = parse(text)
    try:
        typed = _Checker(metamodel, entity, changes, functions, registry).check(tree)
        if expect is not None and not _fits(typed.type, expect):
            what = "a condition must be true or false" if expect == BOOLEAN else f"it must give a {expect}"
            raise RuleError(f"{what}; this expression gives a {typed.type}", tree.line, tree.column)
    except RuleError as error:
        raise error.with_text(text) from None
    return Checked(text, tree, typed, entity)


def _fits(got: Type, wanted: Type) -> bool:
    return got.kind == "null" or got.kind == wanted.kind or (
        wanted.kind == "number" and got.kind == "reference")


class _Position(TypedDict):
    line: int
    column: int


def _at(node: ast.Node) -> _Position:
    return {"line": node.line, "column": node.column}


#: What a rule may read of the current user (records/rules.py fills them from the request's
#: Principal): `teams` is the ids of the user's teams, `manager` the user id of their manager.
USER_ATTRIBUTES: dict[str, Type] = {"id": NUMBER, "roles": TEXT_LIST, "teams": ID_LIST, "manager": NUMBER}


class _Checker:
    def __init__(self, metamodel: Metamodel, entity: str, changes: bool, functions: RuleFunctions,
                 registry: FieldTypeRegistry | None = None):
        self.metamodel = metamodel
        self.functions = functions
        self.registry = registry
        found = metamodel.entity(entity)
        if found is None:
            raise RuleError(f"there is no entity {entity!r}", 1, 1)
        self.entity: Entity = found
        self.changes = changes
        #: Inside `any(x in links: …)`: the variable naming the linked record (its fields are
        #: `x.<field>`), and the entity the `any` is on (for messages).
        self.variable: str | None = None

    def check(self, node: ast.Node) -> t.T:
        method: Callable[[ast.Node], t.T] = getattr(self, f"_{type(node).__name__.lower()}")
        return method(node)

    # --- leaves ----------------------------------------------------------------------
    def _literal(self, node: ast.Node) -> t.T:
        assert isinstance(node, ast.Literal)
        kinds = {"number": NUMBER, "text": TEXT, "boolean": BOOLEAN, "date": DATE, "datetime": DATETIME,
                 "time": TIME, "null": NULL}
        return t.Const(kinds[node.kind], node.value)

    def _name(self, node: ast.Node, links: bool = False) -> t.T:
        """A field or a path; `links`: the caller takes a many-to-many field's links (any
        other place refuses them: a list of links is no value to compare)."""
        assert isinstance(node, ast.Name)
        parts = node.parts
        if parts[0] == "current_user":
            return self._current_user(node)
        column = node.column
        if self.variable is not None:
            if parts[0] != self.variable or len(parts) == 1:
                raise RuleError(f"inside any(), name the linked record's fields as {self.variable}.<field> "
                                f"(a {self.entity.name}); {node.dotted!r} is not one", node.line, column)
            parts = parts[1:]
            column += len(self.variable) + 1
        entity = self.entity
        hops: list[t.Hop] = []
        for index, part in enumerate(parts):
            field = entity.field(part) or SYSTEM_FIELDS.get(part)
            if field is None:
                alone = index == 0 and len(parts) == 1
                raise RuleError(self._unknown(entity, part, alone), node.line, column)
            composite = field_parts(field, self.registry)
            if composite and index == len(parts) - 2:
                wanted = parts[index + 1]
                if wanted not in composite:
                    raise RuleError(f"{part!r} has no part {wanted!r}{suggest(wanted, list(composite))}; "
                                    f"parts: {', '.join(composite)}", node.line, column + len(part) + 1)
                part_type, suffix, reader = composite[wanted]
                return t.FieldRef(part_type, entity.name, field, tuple(hops), reader, part=suffix)
            kind = field_type(field, self.registry)
            if kind is None:
                hint = f"; read one of its parts: {', '.join(f'{part}.{p}' for p in composite)}" \
                    if composite else ""
                raise RuleError(f"field {part!r} is a {field.type} field, which rules cannot read{hint}",
                                node.line, column)
            if kind.kind == "links" and not (links and index == 0 and len(parts) == 1):
                raise RuleError(f"{part!r} is a list of links to {kind.target}: use 'x in {part}', "
                                f"'count({part})', 'any(x in {part}: x.<field> …)' or '{part} is blank'",
                                node.line, column)
            if index == len(parts) - 1:
                return t.FieldRef(kind, entity.name, field, tuple(hops), rule_reader(field, self.registry))
            if kind.kind == "polymorphic":
                return self._polymorphic(node, entity, field, bool(hops), index, column + len(part) + 1)
            if kind.kind != "reference":
                raise RuleError(f"{part!r} is a {kind} field, not a reference: it has no field "
                                f"{parts[index + 1]!r}", node.line, column + len(part))
            if len(hops) == MAX_HOPS:
                raise RuleError(f"a path goes through at most {MAX_HOPS} references", node.line, column)
            target = self.metamodel.entity(field.target or "")
            if target is None:
                raise RuleError(f"{part!r} refers to {field.target!r}, which is not an entity", node.line,
                                column)
            hops.append(t.Hop(entity.name, field))
            entity = target
            column += len(part) + 1
        raise AssertionError("unreachable")

    def _polymorphic(self, node: ast.Name, entity: Entity, field: Field, after_hops: bool, index: int,
                     column: int) -> t.T:
        """`<reference>.entity` (which entity a polymorphic reference points to) or
        `<reference>.<field>`: a field every target has, with one type (docs/rules.md)."""
        parts = node.parts
        name = parts[index + 1]
        if after_hops:
            raise RuleError(f"{field.name!r} points to one of several entities: a path may go through it "
                            "only from the record itself", node.line, column)
        companions = rule_parts(field, self.registry)
        if name in companions and len(parts) == index + 2:
            return t.PartRef(companions[name], entity.name, field, name)
        if len(parts) > index + 2:
            raise RuleError(f"a path through {field.name!r}, which points to one of several entities, "
                            "ends at a field of its target", node.line, column + len(name) + 1)
        found: list[tuple[str, Field, Callable[[Any], Any] | None]] = []
        kinds: list[Type] = []
        for target_name in field.targets:
            target = self.metamodel.entity(target_name)
            reached = (target.field(name) if target is not None else None) or SYSTEM_FIELDS.get(name)
            if target is None or reached is None:
                raise RuleError(f"{field.name}.{name}: {target_name} has no field {name!r} (a path through "
                                f"{field.name!r} reads a field every one of {', '.join(field.targets)} has, "
                                f"or {field.name}.entity)", node.line, column)
            kind = field_type(reached, self.registry)
            if kind is None or kind.kind in ("reference", "polymorphic", "list"):
                raise RuleError(f"{field.name}.{name}: {target_name}'s {name!r} is a {reached.type} field, "
                                "which a path through several entities cannot read", node.line, column)
            found.append((target_name, reached, rule_reader(reached, self.registry)))
            kinds.append(kind.plain)
        if any(k != kinds[0] for k in kinds):
            shown = ", ".join(f"{target}'s is {k}" for (target, _, _), k in zip(found, kinds, strict=True))
            raise RuleError(f"{field.name}.{name}: the targets' {name!r} fields differ in type ({shown})",
                            node.line, column)
        return t.AnyPath(kinds[0], entity.name, field, tuple(found))

    def _current_user(self, node: ast.Name) -> t.T:
        """`current_user.id` (roles, teams, manager) or one of the user attributes the
        metamodel defines (metamodel/userattributes.py), typed as its field type says."""
        parts = node.parts
        name = parts[1] if len(parts) > 1 else ""
        if len(parts) == 2 and name in USER_ATTRIBUTES:
            return t.UserRef(USER_ATTRIBUTES[name], name)
        defined = self.metamodel.user_attribute(name) if len(parts) == 2 else None
        if defined is not None:
            field = defined.field
            kind = field_type(field, self.registry)
            if kind is not None:
                return t.UserAttr(kind, name, stored_reader(field, self.registry))
        known = [*USER_ATTRIBUTES, *(a.name for a in self.metamodel.user_attributes)]
        what = f"current_user has no {'.'.join(parts[1:])!r}" if name else "current_user needs an attribute"
        raise RuleError(f"{what}{suggest(name, known)}; it has {', '.join(known)}", **_at(node))

    def _unknown(self, entity: Entity, name: str, alone: bool) -> str:
        if alone and (name in FUNCTIONS or name in self.functions):
            return f"{name!r} is a function: write {name}(…)"
        if name.lower() in ("and", "or", "not", "in", "is", "true", "false", "null", "blank"):
            return f"unexpected {name!r}: words of the language are lower case ({name.lower()!r})"
        names = [f.name for f in entity.active_fields] + list(SYSTEM_FIELDS)
        return f"unknown field {name!r} on {entity.name}{suggest(name, names)}"

    # --- operators ---------------------------------------------------------------------
    def _unary(self, node: ast.Node) -> t.T:
        assert isinstance(node, ast.Unary)
        operand = self.check(node.operand)
        if node.op == "not":
            self._want(node.operand, operand, "boolean", "'not' needs a condition")
            return t.Not(BOOLEAN, operand)
        self._want(node.operand, operand, "number", "'-' needs a number")
        return t.Neg(NUMBER, operand)

    def _want(self, node: ast.Node, typed: t.T, kind: str, what: str) -> None:
        got = typed.type
        if got.kind == kind or got.kind == "null" or (kind == "number" and got.kind == "reference"):
            return
        raise RuleError(f"{what}, got a {got}", **_at(node))

    def _logic(self, node: ast.Node) -> t.T:
        assert isinstance(node, ast.Logic)
        items = []
        for item in node.items:
            typed = self.check(item)
            self._want(item, typed, "boolean", f"'{node.op}' joins conditions")
            items.append(typed)
        return t.Logic(BOOLEAN, node.op, tuple(items))

    def _binary(self, node: ast.Node) -> t.T:
        assert isinstance(node, ast.Binary)
        left, right = self.check(node.left), self.check(node.right)
        if node.op in ast.ARITHMETIC:
            if node.op == "+" and TEXT.kind in (left.type.kind, right.type.kind):
                raise RuleError("'+' adds numbers; join texts with concat(a, b)", **_at(node))
            if "time" in (left.type.kind, right.type.kind):
                raise RuleError(f"'{node.op}' works on numbers, not on times of day", **_at(node))
            if "date" in (left.type.kind, right.type.kind):
                raise RuleError(f"'{node.op}' works on numbers; for dates use add_days(date, n) and "
                                "days_between(a, b)", **_at(node))
            self._want(node.left, left, "number", f"'{node.op}' works on numbers")
            self._want(node.right, right, "number", f"'{node.op}' works on numbers")
            return t.Arith(NUMBER, node.op, left, right)
        if node.op in ast.COMPARISONS:
            return self._compare(node, left, right)
        return self._text_test(node, left, right)

    def _compare(self, node: ast.Binary, left: t.T, right: t.T) -> t.T:
        for side, typed in ((node.left, left), (node.right, right)):
            if typed.type.kind == "null":
                raise RuleError("a comparison with null is never true: write 'x is blank' or "
                                "'x is not blank'", **_at(side))
        if not comparable(left.type, right.type):
            hint = ""
            if {left.type.kind, right.type.kind} == {"date", "datetime"}:
                hint = "; compare dates with today() and dates and times with now()"
            raise RuleError(f"cannot compare a {left.type} with a {right.type}{hint}", **_at(node))
        self._known_options(node.left, left, node.right, right)
        order = None
        if node.op not in ("=", "!="):
            kinds = {left.type.kind, right.type.kind}
            if kinds & {"boolean", "list"}:
                raise RuleError(f"'{node.op}' needs values with an order, not a {left.type}", **_at(node))
            stages = left.type if left.type.ordered else right.type if right.type.ordered else None
            if stages is not None:
                for side, typed in ((node.left, left), (node.right, right)):
                    if not typed.type.ordered and not isinstance(typed, t.Const):
                        raise RuleError("a stage compares by order only with a stage key in quotes or "
                                        "a field of the same pipeline", **_at(side))
                    if typed.type.ordered and typed.type.options != stages.options:
                        raise RuleError("these stage fields belong to different pipelines", **_at(side))
                order = stages.options
            elif left.type.options is not None or right.type.options is not None:
                raise RuleError(f"choices have no order: use = or in (…) (only stages compare with "
                                f"'{node.op}')", **_at(node))
        return t.Compare(BOOLEAN, node.op, left, right, order)

    def _known_options(self, node_a: ast.Node, a: t.T, node_b: ast.Node, b: t.T) -> None:
        """A choice or stage compared with a literal: the literal must be one of its keys."""
        for options_side, (other_node, other) in ((a, (node_b, b)), (b, (node_a, a))):
            options = options_side.type.options
            if options is not None and isinstance(other, t.Const) and isinstance(other.value, str) \
                    and other.value not in options:
                what = "stage" if options_side.type.ordered else "option"
                article = "a stage" if what == "stage" else "an option"
                hint = suggest(other.value, options)
                raise RuleError(f"{other.value!r} is not {article} of this field{hint}"
                                f"; {what}s: {', '.join(options)}", **_at(other_node))

    def _text_test(self, node: ast.Binary, left: t.T, right: t.T) -> t.T:
        if node.op == "matches":
            self._want(node.left, left, "text", "'matches' tests a text")
            if not isinstance(node.right, ast.Literal) or node.right.kind != "text":
                raise RuleError("the regular expression after 'matches' must be a text in quotes",
                                **_at(node.right))
            pattern = str(node.right.value)
            problem = regexes.pattern_problem(pattern)
            if problem is not None:
                raise RuleError(problem[0], node.right.line, node.right.column + 1 + problem[1])
            return t.Matches(BOOLEAN, left, pattern)
        if node.op == "contains" and left.type.kind == "list":
            self._want(node.right, right, "text", "a list of options contains an option key")
            self._no_null(node.right, right)
            self._known_options(node.left, t.T(Type("text", left.type.options)), node.right, right)
            return t.TextTest(BOOLEAN, "list_contains", left, right)
        self._want(node.left, left, "text", f"'{node.op}' tests a text")
        self._want(node.right, right, "text", f"'{node.op}' needs a text to look for")
        self._no_null(node.right, right)
        return t.TextTest(BOOLEAN, node.op, left, right)

    def _no_null(self, node: ast.Node, typed: t.T) -> None:
        if typed.type.kind == "null":
            raise RuleError("null never matches: write 'x is blank'", **_at(node))

    def _inlist(self, node: ast.Node) -> t.T:
        assert isinstance(node, ast.InList)
        operand = self.check(node.operand)
        if operand.type.kind in ("list", "boolean"):
            raise RuleError(f"'in' compares one value with a list of values, not a {operand.type}"
                            + ("; use 'contains' for a multi-choice" if operand.type.kind == "list" else ""),
                            **_at(node.operand))
        if len(node.items) == 1:
            links = self._links(node.items[0])
            if links is not None:
                if operand.type.kind not in ("number", "reference", "null") or (
                        operand.type.kind == "reference" and operand.type.target != links.type.target):
                    raise RuleError(f"cannot look for a {operand.type} among links to {links.type.target} "
                                    "(record ids)", **_at(node.operand))
                return self._links_node(links, "has", BOOLEAN, operand=operand, negated=node.negated)
            whole = self.check(node.items[0])
            if whole.type.kind in ("list", "ids"):
                return self._in_list_value(node, operand, whole)
        items = []
        for item in node.items:
            typed = self.check(item)
            if typed.type.kind == "null":
                raise RuleError("null in a list never matches: write 'x is blank'", **_at(item))
            if not comparable(operand.type, typed.type):
                raise RuleError(f"cannot compare a {operand.type} with a {typed.type}", **_at(item))
            self._known_options(node.operand, operand, item, typed)
            items.append(typed)
        return t.In(BOOLEAN, operand, tuple(items), node.negated)

    def _in_list_value(self, node: ast.InList, operand: t.T, whole: t.T) -> t.T:
        """`x in current_user.teams` (ids) or `"sales" in current_user.roles` (texts): one
        list standing for the items, read from the current user, never from a record; or
        `"ada@example.com" in emails`, a list of values of the record: `emails contains …`."""
        if isinstance(whole, t.FieldRef) and whole.type.item_key is not None:
            self._want(node.operand, operand, "text", f"'in' looks for a text in a {whole.type}")
            self._no_null(node.operand, operand)
            found = t.TextTest(BOOLEAN, "list_contains", whole, operand)
            return t.Not(BOOLEAN, found) if node.negated else found
        if not isinstance(whole, t.UserRef):
            raise RuleError("'in' takes a list of values in parentheses, or current_user.teams or "
                            "current_user.roles; use 'contains' for a multi-choice", **_at(node.items[0]))
        element = NUMBER if whole.type.kind == "ids" else TEXT
        if not comparable(operand.type, element):
            raise RuleError(f"cannot look for a {operand.type} in current_user.{whole.attribute}, "
                            f"a list of {'ids' if element is NUMBER else 'texts'}", **_at(node.operand))
        return t.In(BOOLEAN, operand, (whole,), node.negated)

    def _blank(self, node: ast.Node) -> t.T:
        assert isinstance(node, ast.Blank)
        links = self._links(node.operand)
        if links is not None:  # no links: a count of 0
            counted = self._links_node(links, "count", NUMBER)
            return t.Compare(BOOLEAN, "!=" if node.negated else "=", counted, t.Const(NUMBER, 0))
        return t.IsBlank(BOOLEAN, self.check(node.operand), node.negated)

    # --- many-to-many links ------------------------------------------------------------------
    def _links(self, node: ast.Node) -> t.FieldRef | None:
        """The many-to-many field `node` names (`people`, or `x.people` inside any()), or None
        when it names something else."""
        if not isinstance(node, ast.Name) or node.parts[0] == "current_user":
            return None
        parts = node.parts[1:] if self.variable is not None and node.parts[0] == self.variable \
            else node.parts
        field = self.entity.field(parts[0]) if len(parts) == 1 else None
        kind = field_type(field, self.registry) if field is not None else None
        if kind is None or kind.kind != "links":
            return None
        ref = self._name(node, links=True)
        assert isinstance(ref, t.FieldRef)
        return ref

    def _links_node(self, ref: t.FieldRef, kind: str, result: Type, **more: Any) -> t.Links:
        from ..fieldtypes.base import FieldTypeRegistry
        from ..fieldtypes.builtin import BUILTIN_TYPES

        registry = self.registry or FieldTypeRegistry(BUILTIN_TYPES)
        relation = registry[ref.field.type].apart_related(ref.field, ref.entity)
        assert relation is not None
        return t.Links(result, kind, ref.entity, ref.field, relation.target, relation.table,
                       relation.source_column, relation.target_column, **more)

    def _any(self, node: ast.Node) -> t.T:
        assert isinstance(node, ast.Any)
        if self.variable is not None:
            raise RuleError("any() cannot be nested in another any()", **_at(node))
        links = self._links(ast.Name((node.collection,), line=node.line, column=node.column))
        if links is None:
            raise RuleError(f"any() goes through a many-to-many field of {self.entity.name}; "
                            f"{node.collection!r} is not one", **_at(node))
        inner = _Checker(self.metamodel, links.type.target or "", self.changes and False, self.functions,
                         self.registry)
        inner.variable = node.variable
        condition = inner.check(node.condition)
        self._want(node.condition, condition, "boolean", "any() needs a condition")
        return self._links_node(links, "any", BOOLEAN, condition=condition)

    # --- functions -------------------------------------------------------------------------
    def _call(self, node: ast.Node) -> t.T:
        assert isinstance(node, ast.Call)
        name = node.function
        if name in self.functions:
            return self._plugin_call(node)
        if name == "count":
            self._arity(node, 1, 1)
            links = self._links(node.args[0])
            if links is None:
                raise RuleError("count() counts the links of a many-to-many field", **_at(node.args[0]))
            return self._links_node(links, "count", NUMBER)
        if name not in FUNCTIONS:
            known = [*FUNCTIONS, *self.functions]
            raise RuleError(f"unknown function {name!r}{suggest(name, known)}", **_at(node))
        if name in CHANGE_FUNCTIONS:
            return self._change(node)
        args = [self.check(a) for a in node.args]
        spec = _SIGNATURES.get(name)
        if spec is not None:
            kinds, result = spec
            self._arity(node, len(kinds), len(kinds))
            for arg_node, arg, kind in zip(node.args, args, kinds, strict=True):
                self._want(arg_node, arg, kind, f"{name}() needs a {kind}")
            return t.Func(result, name, tuple(args))
        if name in ("year", "month"):
            self._arity(node, 1, 1)
            if args[0].type.kind not in ("date", "datetime", "null"):
                raise RuleError(f"{name}() needs a date or a date and time, got a {args[0].type}",
                                **_at(node.args[0]))
            return t.Func(NUMBER, name, tuple(args))
        if name == "len":
            self._arity(node, 1, 1)
            if args[0].type.kind not in ("text", "list", "null"):
                raise RuleError(f"len() needs a text or a multi-choice, got a {args[0].type}",
                                **_at(node.args[0]))
            return t.Func(NUMBER, name, tuple(args))
        if name == "concat":
            self._arity(node, 1, 20)
            for arg_node, arg in zip(node.args, args, strict=True):
                self._want(arg_node, arg, "text", "concat() joins texts")
            return t.Func(TEXT, name, tuple(args))
        if name == "round":
            self._arity(node, 1, 2)
            self._want(node.args[0], args[0], "number", "round() needs a number")
            digits = 0
            if len(node.args) == 2:
                given = node.args[1]
                if not (isinstance(given, ast.Literal) and isinstance(given.value, int)
                        and not isinstance(given.value, bool) and 0 <= given.value <= 6):
                    raise RuleError("round()'s places must be a whole number from 0 to 6", **_at(given))
                digits = given.value
            return t.Func(NUMBER, name, (args[0],), digits)
        if name == "abs":
            self._arity(node, 1, 1)
            self._want(node.args[0], args[0], "number", "abs() needs a number")
            return t.Func(NUMBER, name, tuple(args))
        if name in ("min", "max"):
            self._arity(node, 2, 20)
            for arg_node, arg in zip(node.args, args, strict=True):
                self._want(arg_node, arg, "number", f"{name}() compares numbers")
            return t.Func(NUMBER, name, tuple(args))
        if name == "coalesce":
            self._arity(node, 2, 20)
            return t.Func(self._same(node.args, args, "coalesce()"), name, tuple(args))
        # if(condition, then, else)
        self._arity(node, 3, 3)
        self._want(node.args[0], args[0], "boolean", "if() needs a condition first")
        result = self._same(node.args[1:], args[1:], "if()")
        return t.Func(result, name, tuple(args))

    def _plugin_call(self, node: ast.Call) -> t.T:
        function = self.functions[node.function]
        count = len(function.parameters)
        self._arity(node, count, count)
        args = [self.check(a) for a in node.args]
        for arg_node, arg, kind in zip(node.args, args, function.parameters, strict=True):
            self._want(arg_node, arg, kind, f"{function.name}() needs a {kind}")
        return t.Func(Type(function.returns), function.name, tuple(args), plugin=function)

    def _same(self, nodes: Sequence[ast.Node], args: Sequence[t.T], what: str) -> Type:
        """The one type of `args` (nulls aside); choices and stages count as texts."""
        found: Type | None = None
        for node, arg in zip(nodes, args, strict=True):
            if arg.type.kind == "null":
                continue
            if found is not None and not comparable(found, arg.type):
                raise RuleError(f"{what} needs values of one type: a {found} and a {arg.type}", **_at(node))
            if arg.type.kind == "list":
                raise RuleError(f"{what} cannot take a list of options", **_at(node))
            found = found or arg.type.plain
        return Type(found.kind) if found is not None and found.kind != "reference" else (found or NULL)

    def _arity(self, node: ast.Call, low: int, high: int) -> None:
        count = len(node.args)
        if low <= count <= high:
            return
        wanted = (f"{low}" if low == high else f"{low} to {high}") if high < 20 else f"at least {low}"
        noun = "argument" if wanted == "1" else "arguments"
        raise RuleError(f"{node.function}() takes {wanted} {noun}, got {count}", **_at(node))

    def _change(self, node: ast.Call) -> t.T:
        name = node.function
        if not self.changes:
            raise RuleError(f"{name}() works in validation rules and workflow conditions, where there "
                            "is a change; not here", **_at(node))
        if name == "is_new":
            self._arity(node, 0, 0)
            return t.Change(BOOLEAN, name, None)
        self._arity(node, 1, 1)
        arg = node.args[0]
        if not isinstance(arg, ast.Name) or len(arg.parts) != 1 or arg.parts[0] == "current_user":
            raise RuleError(f"{name}() takes a field of this record", **_at(arg))
        ref = self.check(arg)
        assert isinstance(ref, t.FieldRef)
        return t.Change(BOOLEAN if name == "changed" else ref.type, name, ref.field, ref.value_of)


_SIGNATURES: dict[str, tuple[tuple[str, ...], Type]] = {
    "today": ((), DATE),
    "now": ((), DATETIME),
    "days_between": (("date", "date"), NUMBER),
    "add_days": (("date", "number"), DATE),
    "lower": (("text",), TEXT),
    "upper": (("text",), TEXT),
    "trim": (("text",), TEXT),
}


