"""Regular expressions that cannot hang, and mean the same in Python and in SQL.

Python side: Google RE2 (linear time, no backtracking). PostgreSQL side: `~` (ARE).
SQLite side: a function registered on each connection that uses RE2 too. The checker
accepts only the part of the syntax RE2 and PostgreSQL read alike, and `.` matches any
character, a newline too, on all three (PostgreSQL's default, `(?s)` for RE2).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import re2

MAX_PATTERN = 200
#: Escapes that RE2 and PostgreSQL read differently (or only one of them reads).
_DIFFERENT = {"b": "word boundary", "B": "non-boundary", "A": "start", "z": "end", "Z": "end",
              "Q": "quoting", "E": "quoting", "C": "byte", "p": "Unicode class", "P": "Unicode class",
              "x": "hex escape", "0": "octal escape", "1": "back reference", "2": "back reference"}


def pattern_problem(pattern: str) -> tuple[str, int] | None:
    """Why `pattern` is refused, and the 0-based offset of the place; None if accepted."""
    if len(pattern) > MAX_PATTERN:
        return f"a regular expression has at most {MAX_PATTERN} characters", 0
    body = pattern[4:] if pattern.startswith("(?i)") else pattern
    offset = len(pattern) - len(body)
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            if following in _DIFFERENT:
                return (f"'\\{following}' ({_DIFFERENT[following]}) is not supported in rule "
                        "regular expressions", offset + index)
            index += 2
            continue
        if body.startswith("(?:", index):  # a non-capturing group: RE2 and PostgreSQL alike
            index += 3
            continue
        if body.startswith("(?", index):
            return ("only (?i) at the very start and non-capturing groups (?:…) are supported",
                    offset + index)
        index += 1
    try:
        re2.compile(pattern, _options())
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        return f"not a valid regular expression: {reason}", 0
    return None


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # refused patterns are reported to the author, not logged
    return options


@lru_cache(maxsize=512)
def compiled(pattern: str) -> Callable[[str], object]:
    flags = "(?si)" if pattern.startswith("(?i)") else "(?s)"
    body = pattern[4:] if pattern.startswith("(?i)") else pattern
    return re2.compile(flags + body, _options()).search  # type: ignore[no-any-return]


def lower(value: str | None) -> str | None:
    """SQLite's own lower() changes ASCII letters only; rules use Python's, as the closures do."""
    return None if value is None else value.lower()


def upper(value: str | None) -> str | None:
    return None if value is None else value.upper()


def search(pattern: str | None, value: str | None) -> bool | None:
    """Unknown (None) when either side is; the SQLite function and the Python closure."""
    if pattern is None or value is None:
        return None
    return compiled(pattern)(value) is not None
