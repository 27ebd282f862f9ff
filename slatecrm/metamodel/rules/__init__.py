"""The rule language: one typed expression language for conditions, formulas and filters.

`check(text, metamodel, entity)` parses and types a rule (RuleError on any problem, with
its line and column); `compile_python(checked.typed)` makes the closure that evaluates it.
The SQL compiler lives with the tables, in slatecrm.platform.records.rules.
"""

from __future__ import annotations

from .checker import Checked, check
from .errors import RuleError
from .parser import parse
from .printer import pretty
from .python import Closure, RuleContext, compile_python
from .types import BOOLEAN, Type

__all__ = ["BOOLEAN", "Checked", "Closure", "RuleContext", "RuleError", "Type", "check", "compile_python",
           "parse", "pretty"]
