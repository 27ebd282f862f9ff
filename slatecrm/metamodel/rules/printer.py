"""Printing a syntax tree back to rule text: canonical spacing, parentheses only where needed.

`parse(pretty(tree)) == tree` for every tree the parser makes (a property test checks it),
so stored rules can be reformatted, and trees built by tools can be saved as text.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from .ast import Any as AnyOf
from .ast import Binary, Blank, Call, InList, Literal, Logic, Name, Node, Unary

_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)
_BINARY_LEVEL = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT}


def pretty(node: Node) -> str:
    return _print(node)


def _level(node: Node) -> int:
    if isinstance(node, Logic):
        return _OR if node.op == "or" else _AND
    if isinstance(node, Unary):
        return _NOT if node.op == "not" else _UNARY
    if isinstance(node, Binary):
        return _BINARY_LEVEL.get(node.op, _COMPARE)
    if isinstance(node, InList | Blank):
        return _COMPARE
    if isinstance(node, Literal) and node.kind == "number" and node.value is not None \
            and node.value < 0:  # type: ignore[operator]
        return _UNARY
    return _ATOM


def _wrap(node: Node, minimum: int) -> str:
    text = _print(node)
    return f"({text})" if _level(node) < minimum else text


def _string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _literal(node: Literal) -> str:
    value = node.value
    if node.kind == "null":
        return "null"
    if node.kind == "boolean":
        return "true" if value else "false"
    if node.kind == "text":
        return _string(str(value))
    if node.kind == "datetime":
        assert isinstance(value, dt.datetime)
        return "@" + value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if node.kind == "time":
        assert isinstance(value, dt.time)
        return "@" + value.strftime("%H:%M:%S" if value.second else "%H:%M")
    if node.kind == "date":
        assert isinstance(value, dt.date)
        return "@" + value.isoformat()
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _print(node: Node) -> str:
    if isinstance(node, Literal):
        return _literal(node)
    if isinstance(node, Name):
        return node.dotted
    if isinstance(node, Call):
        return f"{node.function}({', '.join(_print(a) for a in node.args)})"
    if isinstance(node, AnyOf):
        return f"any({node.variable} in {node.collection}: {_print(node.condition)})"
    if isinstance(node, Unary):
        if node.op == "not":
            return f"not {_wrap(node.operand, _NOT)}"
        return f"-{_wrap(node.operand, _UNARY)}" if not _starts_with_minus(node.operand) \
            else f"- {_wrap(node.operand, _UNARY)}"
    if isinstance(node, Logic):
        level = _level(node)
        return f" {node.op} ".join(_wrap(item, level + 1) for item in node.items)
    if isinstance(node, Binary):
        level = _level(node)
        if level == _COMPARE:
            return f"{_wrap(node.left, _SUM)} {node.op} {_wrap(node.right, _SUM)}"
        return f"{_wrap(node.left, level)} {node.op} {_wrap(node.right, level + 1)}"
    if isinstance(node, InList):
        keyword = "not in" if node.negated else "in"
        return f"{_wrap(node.operand, _SUM)} {keyword} ({', '.join(_print(i) for i in node.items)})"
    if isinstance(node, Blank):
        return f"{_wrap(node.operand, _SUM)} is {'not ' if node.negated else ''}blank"
    raise TypeError(f"not a rule node: {node!r}")


def _starts_with_minus(node: Node) -> bool:
    return _print(node).startswith("-")
