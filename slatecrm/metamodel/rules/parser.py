"""Reading rule text into a syntax tree (lark, LALR), within fixed bounds.

Bounds keep every later step cheap and safe: the text's length, the tree's depth (checked
on the parse tree without recursion before anything recursive sees it) and its size.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, TypedDict

import lark
from lark import Lark, Token, Transformer, Tree, v_args

from .ast import Any as AnyOf
from .ast import Binary, Blank, Call, InList, Literal, Logic, Name, Node, Unary
from .errors import RuleError

MAX_LENGTH = 4000
MAX_DEPTH = 40
MAX_NODES = 400

#: How the parser's terminals are named in messages.
_WORDS = {
    "NAME": "a field or function name", "NUMBER": "a number", "STRING": "a text in quotes",
    "DATE": "a date (@2024-01-31)", "DATETIME": "a date and time (@2024-01-31T09:00:00Z)",
    "TIME": "a time of day (@14:30)",
    "$END": "the end of the expression",
}
_COMPARISON_TOKENS = ("=", "==", "!=", "<>", "<", "<=", ">", ">=", "in", "is", "contains",
                      "starts_with", "matches")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


@cache
def _parser() -> Lark:
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def parse(text: str) -> Node:
    """The tree of `text`, or RuleError with the position of the first problem."""
    try:
        return _parse(text)
    except RuleError as error:
        raise error.with_text(text) from None


def _parse(text: str) -> Node:
    if not isinstance(text, str):
        raise RuleError("an expression must be text", 1, 1)
    if len(text) > MAX_LENGTH:
        raise RuleError(f"the expression is longer than {MAX_LENGTH} characters", 1, 1)
    if not text.strip():
        raise RuleError("the expression is empty", 1, 1)
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedCharacters as error:
        raise RuleError(_unexpected_character(text, error), error.line, error.column) from None
    except lark.exceptions.UnexpectedToken as error:
        raise _unexpected_token(text, error) from None
    except lark.exceptions.UnexpectedEOF as error:
        line, column = _end(text)
        raise RuleError(f"the expression ends too early; expected {_expected(error.expected)}",
                        line, column) from None
    _check_bounds(tree)
    try:
        node: Node = _Build().transform(tree) if isinstance(tree, Tree) else _Build().token(tree)
    except lark.exceptions.VisitError as error:  # a callback refused a token (a bad date)
        if isinstance(error.orig_exc, RuleError):
            raise error.orig_exc from None
        raise
    return node


def _end(text: str) -> tuple[int, int]:
    stripped = text.rstrip()
    lines = stripped.split("\n")
    return len(lines), len(lines[-1]) + 1


def _describe(name: str) -> str:
    if name in _WORDS:
        return _WORDS[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"'{pattern.value}'" if isinstance(pattern, lark.lexer.PatternStr) else name.lower()


def _expected(names: Any) -> str:
    words = sorted({_describe(n) for n in names})
    if len(words) > 8:
        return "an operator, a value or a closing parenthesis"
    return " or ".join(words) if len(words) <= 2 else ", ".join(words[:-1]) + " or " + words[-1]


def _unexpected_character(text: str, error: lark.exceptions.UnexpectedCharacters) -> str:
    position = error.pos_in_stream or 0
    char = text[position] if position < len(text) else ""
    if char in "\"'":
        return "a text is not closed: add the closing quote on the same line"
    if char == "@":
        return ("a date is written @YYYY-MM-DD, a date and time @YYYY-MM-DDTHH:MM:SSZ, "
                "a time of day @HH:MM")
    if char == "&":
        return "unexpected '&': write 'and'"
    if char == "|":
        return "unexpected '|': write 'or'"
    if char == "!":
        return "unexpected '!': write 'not', or '!=' for 'not equal'"
    return f"unexpected character {char!r}"


def _unexpected_token(text: str, error: lark.exceptions.UnexpectedToken) -> RuleError:
    token = error.token
    if token.type == "$END":
        line, column = _end(text)
        return RuleError(f"the expression ends too early; expected {_expected(error.expected)}", line, column)
    line, column = token.line or 1, token.column or 1
    value = str(token)
    if value in ("AND", "OR", "NOT", "IN", "IS", "TRUE", "FALSE", "NULL"):
        return RuleError(f"unexpected {value!r}: words of the language are lower case ({value.lower()!r})",
                         line, column)
    if value in _COMPARISON_TOKENS and "EQUAL" not in error.expected:
        return RuleError(f"unexpected {value!r}: comparisons cannot be chained (a < b < c); join "
                         "them with 'and'", line, column)
    return RuleError(f"unexpected {value!r}; expected {_expected(error.expected)}", line, column)


def _check_bounds(tree: Tree[Token] | Token) -> None:
    """Depth and size, measured without recursion (the text may nest deeply)."""
    stack: list[tuple[Any, int]] = [(tree, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, Tree):
            continue
        nodes += 1
        if depth > MAX_DEPTH:
            meta = item.meta
            raise RuleError(f"the expression nests deeper than {MAX_DEPTH} levels",
                            getattr(meta, "line", 1), getattr(meta, "column", 1))
        if nodes > MAX_NODES:
            meta = item.meta
            raise RuleError(f"the expression has more than {MAX_NODES} parts; split it up",
                            getattr(meta, "line", 1), getattr(meta, "column", 1))
        stack.extend((child, depth + 1) for child in item.children)


def _text(token: Token) -> str:
    raw = str(token)[1:-1]
    out: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\":
            following = raw[index + 1]
            # Other escapes stay as written, so a regular expression reads "\d+" naturally.
            out.append(_ESCAPES.get(following, "\\" + following))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _pos(meta: Any) -> _Position:
    return {"line": getattr(meta, "line", 1), "column": getattr(meta, "column", 1)}


class _Position(TypedDict):
    line: int
    column: int


def _token_pos(token: Token) -> _Position:
    return {"line": token.line or 1, "column": token.column or 1}


@v_args(meta=True)
class _Build(Transformer[Token, Node]):
    """Parse tree → syntax tree."""

    def token(self, token: Token) -> Node:  # a bare atom at the top
        node: Node = getattr(self, token.type.lower())(None, [token])
        return node

    def number(self, meta: Any, children: list[Token]) -> Node:
        text = str(children[0])
        value: int | Decimal = Decimal(text) if "." in text else int(text)
        if len(text.replace(".", "")) > 18:
            raise RuleError("a number has at most 18 digits", **_token_pos(children[0]))
        return Literal("number", value, **_token_pos(children[0]))

    def string(self, meta: Any, children: list[Token]) -> Node:
        return Literal("text", _text(children[0]), **_token_pos(children[0]))

    def date(self, meta: Any, children: list[Token]) -> Node:
        try:
            value = dt.date.fromisoformat(str(children[0])[1:])
        except ValueError:
            raise RuleError(f"{str(children[0])[1:]!r} is not a date", **_token_pos(children[0])) from None
        return Literal("date", value, **_token_pos(children[0]))

    def time(self, meta: Any, children: list[Token]) -> Node:
        text = str(children[0])[1:]
        try:
            value = dt.time.fromisoformat(text)
        except ValueError:
            raise RuleError(f"{text!r} is not a time of day (00:00 to 23:59:59)",
                            **_token_pos(children[0])) from None
        return Literal("time", value, **_token_pos(children[0]))

    def datetime(self, meta: Any, children: list[Token]) -> Node:
        text = str(children[0])[1:]
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RuleError(f"{text!r} is not a date and time", **_token_pos(children[0])) from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return Literal("datetime", value.astimezone(dt.UTC), **_token_pos(children[0]))

    def true(self, meta: Any, children: list[Any]) -> Node:
        return Literal("boolean", True, **_pos(meta))

    def false(self, meta: Any, children: list[Any]) -> Node:
        return Literal("boolean", False, **_pos(meta))

    def null(self, meta: Any, children: list[Any]) -> Node:
        return Literal("null", None, **_pos(meta))

    def name(self, meta: Any, children: list[Token]) -> Node:
        return Name(tuple(str(c) for c in children), **_token_pos(children[0]))

    def any_(self, meta: Any, children: list[Any]) -> Node:
        return AnyOf(str(children[0]), str(children[1]), children[2], **_pos(meta))

    def call(self, meta: Any, children: list[Any]) -> Node:
        args = tuple(children[1]) if children[1] is not None else ()
        return Call(str(children[0]), args, **_token_pos(children[0]))

    def items(self, meta: Any, children: list[Node]) -> list[Node]:
        return children

    def list_name(self, meta: Any, children: list[Token]) -> list[Node]:
        """`x in current_user.teams` reads as `x in (current_user.teams)`: one item, a list."""
        return [self.name(meta, children)]

    def or_expr(self, meta: Any, children: list[Node]) -> Node:
        return Logic("or", tuple(children), **_pos(meta))

    def and_expr(self, meta: Any, children: list[Node]) -> Node:
        return Logic("and", tuple(children), **_pos(meta))

    def not_(self, meta: Any, children: list[Node]) -> Node:
        return Unary("not", children[0], **_pos(meta))

    def neg(self, meta: Any, children: list[Node]) -> Node:
        operand = children[0]
        if isinstance(operand, Literal) and operand.kind == "number" and operand.value:
            # -5 is a number, as the printer writes it; "- 0" stays an operation
            return Literal("number", -operand.value, **_pos(meta))  # type: ignore[operator]
        return Unary("-", operand, **_pos(meta))

    def in_(self, meta: Any, children: list[Any]) -> Node:
        return InList(children[0], tuple(children[1]), False, **_pos(meta))

    def not_in(self, meta: Any, children: list[Any]) -> Node:
        return InList(children[0], tuple(children[1]), True, **_pos(meta))

    def is_blank(self, meta: Any, children: list[Node]) -> Node:
        return Blank(children[0], False, **_pos(meta))

    def is_not_blank(self, meta: Any, children: list[Node]) -> Node:
        return Blank(children[0], True, **_pos(meta))


def _binary(op: str) -> Any:
    def build(self: _Build, meta: Any, children: list[Node]) -> Node:
        return Binary(op, children[0], children[1], **_pos(meta))
    return build


for _rule, _op in {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "add": "+",
                   "sub": "-", "mul": "*", "div": "/", "contains": "contains",
                   "starts_with": "starts_with", "matches": "matches"}.items():
    setattr(_Build, _rule, v_args(meta=True)(_binary(_op)))
