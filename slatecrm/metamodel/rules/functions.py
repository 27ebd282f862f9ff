"""Functions plugins add to the rule language (hook `slatecrm_rule_functions`).

A plugin function has a fixed signature (one type per argument, one result type) and two
implementations with the same meaning: `python`, which evaluates it on one record
(validation rules, formulas, defaults), and `sql`, which builds the SQLAlchemy expression
that evaluates it in a query (list filters, and later permission filters). Both are
strict, like most built-in functions: when any argument is null the result is null and
the function is not called, in Python and in SQL alike (the SQL side is wrapped in a
CASE), so the two can never disagree on null.

The built-in functions (`lower`, `round`, `if`, …) are not RuleFunctions: several of
them take any number of arguments or several types, and their SQL differs per database
in ways a fixed signature cannot say; they belong to the language (docs/rules.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: The argument and result types a plugin function may declare.
KINDS = ("text", "number", "boolean", "date", "datetime")

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
#: Names the language itself uses (built-in functions and words): a plugin cannot take them.
RESERVED = ("today", "now", "days_between", "add_days", "year", "month", "len", "lower", "upper", "trim",
            "concat", "coalesce", "if", "round", "abs", "min", "max", "is_new", "changed", "previous",
            "and", "or", "not", "in", "is", "true", "false", "null", "blank", "matches", "contains",
            "starts_with", "ends_with", "current_user")


@dataclass(frozen=True)
class RuleFunction:
    """One function of the rule language, added by a plugin.

    `python(*args)` gets Python values (str, Decimal or int, bool, date, aware datetime)
    and returns one of the `returns` kind. `sql(args, dialect)` gets one SQLAlchemy
    expression per argument and the dialect name ("sqlite" or "postgresql") and returns
    an expression; it may use `sqlalchemy.func`, or a `FunctionElement` subclass with a
    `@compiles` rule per dialect when the databases need different SQL. On SQLite a number
    argument reaches `sql` as a REAL expression.
    """

    name: str
    parameters: tuple[str, ...]
    returns: str
    python: Callable[..., Any]
    sql: Callable[[list[Any], str], Any]
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"rule function {self.name!r}: a name is lower-case letters, digits and _")
        if self.name in RESERVED:
            raise ValueError(f"rule function {self.name!r}: the rule language already uses this name")
        for kind in (*self.parameters, self.returns):
            if kind not in KINDS:
                raise ValueError(f"rule function {self.name!r}: {kind!r} is not a type; "
                                 f"types are {', '.join(KINDS)}")

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.parameters)}) → {self.returns}"


class RuleFunctions(Mapping[str, RuleFunction]):
    """The plugin functions known to a process, by name; each name once."""

    def __init__(self, functions: Iterable[RuleFunction] = ()) -> None:
        self._by_name: dict[str, RuleFunction] = {}
        for function in functions:
            self.register(function)

    def register(self, function: RuleFunction) -> None:
        if function.name in self._by_name:
            raise ValueError(f"rule function {function.name!r} is registered twice")
        self._by_name[function.name] = function

    def __getitem__(self, name: str) -> RuleFunction:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


#: No plugin functions: what a caller that was given none checks rules against.
NO_FUNCTIONS = RuleFunctions()
