"""The syntax tree of a rule, as the parser gives it and the printer prints it.

Positions (1-based line and column in the expression) do not take part in equality, so
`parse(pretty(tree)) == tree` compares meaning, not layout.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import field as attribute
from decimal import Decimal


@dataclass(frozen=True)
class Node:
    line: int = attribute(default=1, compare=False, kw_only=True)
    column: int = attribute(default=1, compare=False, kw_only=True)

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True)
class Literal(Node):
    """number (int or Decimal), text, boolean, date, datetime, time or null (value None)."""

    kind: str
    value: int | Decimal | str | bool | dt.date | dt.datetime | dt.time | None


@dataclass(frozen=True)
class Name(Node):
    """A field, a path through references (`account.industry`) or `current_user.id`."""

    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Call(Node):
    function: str
    args: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True)
class Unary(Node):
    """`not x` or `-x`."""

    op: str
    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Binary(Node):
    """Arithmetic (+ - * /), comparisons (= != < <= > >=) and text tests
    (contains, starts_with, matches)."""

    op: str
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Logic(Node):
    """`and` / `or` over two or more operands, kept flat."""

    op: str
    items: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.items


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    items: tuple[Node, ...]
    negated: bool = False

    def children(self) -> tuple[Node, ...]:
        return (self.operand, *self.items)


@dataclass(frozen=True)
class Blank(Node):
    """`x is blank` / `x is not blank`: never unknown."""

    operand: Node
    negated: bool = False

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Any(Node):
    """`any(x in links: condition)`: whether some record a many-to-many field links holds
    the condition, in which `x.<field>` names the linked record's fields."""

    variable: str
    collection: str
    condition: Node

    def children(self) -> tuple[Node, ...]:
        return (self.condition,)


ARITHMETIC = ("+", "-", "*", "/")
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
