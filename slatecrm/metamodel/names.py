"""API names: the one identifier an entity or field has in packs, the API, rules and the database.

A name is also a column or table name, so it must be safe in SQL on every supported
database and must not collide with what the engine itself needs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS as _PG_RESERVED
from sqlalchemy.sql.compiler import RESERVED_WORDS as _SQL_RESERVED

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_NAME_RE = re.compile(NAME_PATTERN)
MAX_IDENTIFIER = 63  # PostgreSQL's limit; the strictest database we support

#: Columns every entity table has; no field may take these names.
SYSTEM_COLUMNS = ("id", "created_at", "updated_at", "created_by", "updated_by", "owner", "version")

#: Words of the rule language (later issue) that cannot double as field names.
RULE_WORDS = frozenset(
    {"and", "or", "not", "in", "is", "blank", "true", "false", "null", "contains",
     "starts_with", "matches", "current_user", "today", "now", "record", "previous"}
)

#: Path segments of the web and API routes that an entity name would shadow.
ROUTE_WORDS = frozenset(
    {"api", "meta", "openapi", "admin", "static", "search", "login", "logout", "settings",
     "health", "docs", "assets", "me", "workflows"}
)

SQL_KEYWORDS = frozenset(w.lower() for w in (_SQL_RESERVED | _PG_RESERVED))


def name_problem(name: str, what: str) -> str | None:
    """Why `name` cannot be the API name of a `what` ("field", "entity"), or None."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        return (
            f"{name!r} is not a valid {what} name: use lower-case letters, digits and _, "
            "starting with a letter, at most 63 characters"
        )
    if "__" in name:
        return f"{name!r} is not a valid {what} name: '__' is reserved for columns the engine adds"
    if name in SQL_KEYWORDS:
        return f"{name!r} is an SQL keyword and cannot be a {what} name"
    if name in RULE_WORDS:
        return f"{name!r} is a word of the rule language and cannot be a {what} name"
    if what == "field" and name in SYSTEM_COLUMNS:
        return f"{name!r} is a system column every record has and cannot be a field name"
    if what == "entity" and name in ROUTE_WORDS:
        return f"{name!r} is reserved for a route of the web interface and cannot be an entity name"
    if what == "entity" and name.startswith("slate"):
        return f"{name!r} is reserved: names starting with 'slate' belong to the platform"
    return None


def suggest(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a candidate is close, else ''."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
