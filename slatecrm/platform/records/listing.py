"""List queries: sort on any fields, equality and range filters, text search, keyset pages.

Filters arrive as text (query parameters) and are read with each field type's own
`parse_text`, so `amount__gte=1,000` and `close_date__lt=2027-01-01` mean what a person
typing them would mean. Counts stop at a cap: no list runs an unbounded COUNT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import CoercionError
from slatecrm.metamodel.names import suggest

from .compiled import CompiledEntity
from .errors import BadQuery
from .keyset import InvalidCursor, SortKey, after, cursor_values, decode_cursor, encode_cursor, ordering

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "blank")
SORTABLE_SYSTEM = ("id", "created_at", "updated_at", "owner", "version")
MAX_LIMIT = 500
COUNT_CAP = 2_000


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    values: tuple[str, ...]

    @classmethod
    def parse(cls, key: str, values: Sequence[str]) -> Filter:
        """`field`, or `field__op` (field names never contain `__`)."""
        name, _, op = key.partition("__")
        return cls(name, op or "eq", tuple(values))


@dataclass(frozen=True)
class ListQuery:
    sort: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    search: str | None = None
    after: str | None = None
    limit: int = 50
    #: A rule-language filter (docs/rules.md), applied with the filters above.
    expression: str | None = None


def sort_keys(ce: CompiledEntity, sort: Sequence[str], errors: dict[str, list[str]]) -> list[SortKey]:
    keys = []
    for item in sort:
        name = item.lstrip("-")
        field = ce.fields.get(name)
        if name in SORTABLE_SYSTEM:
            keys.append(SortKey(name, item.startswith("-")))
        elif field is None:
            errors.setdefault("sort", []).append(
                f"{ce.name} has no field {name!r}{suggest(name, [*ce.fields, *SORTABLE_SYSTEM])}")
        elif field.field.type == "multi_choice":
            errors.setdefault("sort", []).append(f"{name!r} holds several options and cannot be sorted on")
        else:
            keys.append(SortKey(field.column, item.startswith("-")))
    return keys


def conditions(ce: CompiledEntity, filters: Sequence[Filter], search: str | None,
               errors: dict[str, list[str]]) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = []
    table = ce.table
    for item in filters:
        key = item.field if item.op == "eq" else f"{item.field}__{item.op}"
        if item.op not in OPERATORS:
            errors.setdefault(key, []).append(f"{item.op!r} is not a filter; filters: {', '.join(OPERATORS)}")
            continue
        if item.field == "id":
            column: sa.ColumnElement[Any] = table.c.id
            parse = _parse_id
        elif item.field in ce.fields and ce.fields[item.field].field.type != "multi_choice":
            compiled = ce.fields[item.field]
            column = table.c[compiled.column]
            parse = _field_parser(compiled)
        else:
            hint = suggest(item.field, ce.fields)
            errors.setdefault(key, []).append(f"{ce.name} has no field {item.field!r} to filter on{hint}")
            continue
        if item.op == "blank":
            wanted = item.values[-1].strip().lower() if item.values else "true"
            out.append(column.is_(None) if wanted in ("true", "1", "yes", "") else column.isnot(None))
            continue
        try:
            values = [parse(v) for v in item.values]
        except CoercionError as error:
            errors.setdefault(key, []).append(str(error))
            continue
        if item.op == "eq":
            out.append(column.in_(values) if len(values) > 1 else column == values[0])
        elif item.op == "ne":
            out.append(sa.or_(column.not_in(values), column.is_(None)))
        else:
            compare = {"lt": column.__lt__, "lte": column.__le__, "gt": column.__gt__, "gte": column.__ge__}
            out.append(compare[item.op](values[-1]))
    if search and "\x00" in search:
        errors.setdefault("q", []).append("contains a NUL character, which no text holds")
    elif search and search.strip():
        term = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        columns = [table.c[c] for c in ce.searchable]
        out.append(sa.or_(*[c.ilike(f"%{term}%", escape="\\") for c in columns]) if columns else sa.false())
    return out


def _parse_id(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise CoercionError(f"{text!r} is not a record id")
    return int(text)


def _field_parser(compiled: Any) -> Any:
    def parse(text: str) -> Any:
        value = compiled.type.parse_text(text, compiled.field)
        if value is None:
            raise CoercionError("give a value (or use __blank=true)")
        return compiled.to_row(value)[compiled.column]  # the main column's stored value
    return parse


@dataclass(frozen=True)
class PageQuery:
    select: sa.Select[Any]
    count: sa.Select[Any]
    keys: list[SortKey]
    limit: int


def build(ce: CompiledEntity, query: ListQuery, extra: Sequence[sa.ColumnElement[bool]] = (), *,
          base: sa.Select[Any] | None = None) -> PageQuery:
    """The page's SELECT and its capped COUNT, or BadQuery naming each bad part; `extra`
    conditions (a compiled rule filter, the read filter) are added to the query's own.
    `base` is the SELECT to narrow (the read path's, with reference titles joined)."""
    errors: dict[str, list[str]] = {}
    keys = sort_keys(ce, query.sort, errors)
    where = [*conditions(ce, query.filters, query.search, errors), *extra]
    if not 1 <= query.limit <= MAX_LIMIT:
        errors.setdefault("limit", []).append(f"must be between 1 and {MAX_LIMIT}")
    last = None
    if query.after and not errors:
        try:
            last = decode_cursor(query.after, ce.table, keys)
        except InvalidCursor as error:
            errors.setdefault("after", []).append(str(error))
    if errors:
        raise BadQuery(errors)
    select = (ce.select if base is None else base).where(*where)
    if last is not None:
        select = select.where(after(ce.table, keys, last))
    select = select.order_by(*ordering(ce.table, keys)).limit(query.limit + 1)
    capped = sa.select(sa.literal(1)).select_from(ce.table).where(*where).limit(COUNT_CAP + 1).subquery()
    count = sa.select(sa.func.count()).select_from(capped)
    return PageQuery(select, count, keys, query.limit)


def next_cursor(rows: Sequence[Any], page: PageQuery) -> str | None:
    if len(rows) <= page.limit:
        return None
    return encode_cursor(cursor_values(rows[page.limit - 1], page.keys))
