"""List queries: sort on any fields, equality and range filters, text search, keyset pages.

Filters arrive as text (query parameters) and are read with each field type's own
`parse_text`, so `amount__gte=1,000` and `close_date__lt=2027-01-01` mean what a person
typing them would mean. Counts stop at a cap: no list runs an unbounded COUNT, and only a
first page counts at all: a first page with no next page is its own count, and a later
page answers the count its cursor carries (signed, with a digest of the query it was run
for; docs/decisions.md, "Counting a list once"). A first page's count runs within a time
budget (limits.COUNT_BUDGET_MS); past it the list is "not counted", and its cursor says so.
A query may ask for no count at all (`ListQuery.counted`, what an API list does unless it is
given `count=true`): then no COUNT and no estimate run, and its cursors carry no count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.digits import RECORD_ID_MAX, parse_digits
from slatecrm.metamodel.fieldtypes import CoercionError
from slatecrm.metamodel.model import SORTABLE_SYSTEM, unsortable
from slatecrm.metamodel.names import suggest

from ..kept import keep
from ..storage import fulltext
from . import searchwalk
from .alternatives import alternatives_of, reach_count, union_page
from .compiled import CompiledEntity, CompiledField
from .errors import BadQuery
from .keyset import (
    Cursor,
    InvalidCursor,
    SortKey,
    after,
    cursor_values,
    encode_cursor,
    ordering,
    read_cursor,
)
from .keyset import sort_keys as keyset_sort_keys
from .limits import DEFAULT, PAGE_SIZE_MAX, SEARCH_WORDS_MAX, Limits

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "blank")
#: What `field__blank=` takes ("" is `?field__blank`, asking for blanks); anything else is a
#: 400, not silently "has a value".
BLANK_ANSWERS = {"true": True, "1": True, "yes": True, "": True, "false": False, "0": False, "no": False}
#: The default page-size bound (limits.py); an app's own is `Limits.page_size_max`.
MAX_LIMIT = PAGE_SIZE_MAX
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
    #: Order a search without a `sort` by relevance (best first): one page, no next cursor
    #: (a rank is no keyset: it changes as other records are written). Reference pickers
    #: and the global search ask for it; API lists keep their sort (docs/api.md, "Search").
    rank: bool = False
    #: Count the matching records (a first page's capped count, within the budget). The API
    #: counts only when asked (`count=true`: the count was most of a list's cost); the pages
    #: people read ("1–50 of N"), boards and exports keep the default (docs/decisions.md,
    #: "The total of an API list is asked for").
    counted: bool = True


def chosen_sort(ce: CompiledEntity, query: ListQuery, limits: Limits = DEFAULT) -> tuple[str, ...]:
    """What the list sorts by: the request's `sort`; without one, the entity's `default_sort`
    read as if the request had given it (the same keys, cursors, blanks and indexes).
    A search that asks for relevance keeps it (a picker's best match first). Keys on
    fields the reader cannot see are left out: an order on them would leak their values."""
    order = ce.entity.default_sort
    if query.sort or order is None or (query.rank and query.search):
        return query.sort
    seen = [key for key, name in zip(order.keys, order.names, strict=True)
            if name in SORTABLE_SYSTEM or name in ce.fields]
    return tuple(seen[: limits.sort_keys_max])


#: The order of a board's cards and a record's related lists, for an entity without a default_sort.
RECENT_FIRST = ("-updated_at",)


def sort_or(ce: CompiledEntity, sort: tuple[str, ...], fallback: tuple[str, ...]) -> tuple[str, ...]:
    """The `sort` of a list whose caller has its own default order (a board's, a record's
    related lists: the latest changed first): `sort` if given, else nothing when the entity
    has a `default_sort` (chosen_sort then applies it), else `fallback`."""
    if sort or ce.entity.default_sort is not None:
        return sort
    return fallback


def sort_keys(ce: CompiledEntity, sort: Sequence[str], errors: dict[str, list[str]],
              limits: Limits = DEFAULT) -> list[SortKey]:
    keys: list[SortKey] = []
    if len(sort) > limits.sort_keys_max:
        errors.setdefault("sort", []).append(
            f"gives {len(sort)} sort keys; at most {limits.sort_keys_max} are allowed")
        return keys
    for item in sort:
        name = item.lstrip("-")
        field = ce.fields.get(name)
        if name in SORTABLE_SYSTEM:
            keys.append(SortKey(name, item.startswith("-")))
        elif field is None:
            errors.setdefault("sort", []).append(
                f"{ce.name} has no field {name!r}{suggest(name, [*ce.fields, *SORTABLE_SYSTEM])}")
        elif not field.type.sortable:
            errors.setdefault("sort", []).append(unsortable(name))
        else:
            # A type may order by several columns (an amount within its currency); its
            # companion columns sort ascending, so a descending sort stays grouped the same.
            for suffix in field.type.sort_columns(field.field):
                keys.append(SortKey(field.column_of(suffix), item.startswith("-")
                                    and field.type.sort_follows_direction(suffix, field.field)))
    return keys


def conditions(ce: CompiledEntity, filters: Sequence[Filter], search: str | None,
               errors: dict[str, list[str]], limits: Limits = DEFAULT) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = []
    table = ce.table
    for item in filters:
        key = item.field if item.op == "eq" else f"{item.field}__{item.op}"
        if item.op not in OPERATORS:
            errors.setdefault(key, []).append(f"{item.op!r} is not a filter; filters: {', '.join(OPERATORS)}")
            continue
        several: CompiledField | None = None  # a value kept in several columns
        if item.field == "id":
            column: sa.ColumnElement[Any] = table.c.id
            parse = _parse_id
        elif "." in item.field:  # a part of a composite value: `billing_address.city=Paris`
            part = _part_column(ce, item.field)
            if isinstance(part, str):
                errors.setdefault(key, []).append(part)
                continue
            column, parse = part
        elif item.field in ce.fields and ce.fields[item.field].type.filterable:
            compiled = ce.fields[item.field]
            column = table.c[compiled.column]
            parse = _field_parser(compiled)
            # Compared within its companions' values only when they keep values apart (an
            # amount per currency, a reference's entity); an all-day flag does not (a day is
            # its midnight).
            several = compiled if compiled.type.compared_companions(compiled.field) else None
        else:
            hint = suggest(item.field, ce.fields)
            errors.setdefault(key, []).append(f"{ce.name} has no field {item.field!r} to filter on{hint}")
            continue
        if item.op == "blank":
            wanted = item.values[-1].strip().lower() if item.values else "true"
            if wanted not in BLANK_ANSWERS:
                errors.setdefault(key, []).append(f"{item.values[-1][:40]!r} is not true or false")
                continue
            out.append(column.is_(None) if BLANK_ANSWERS[wanted] else column.isnot(None))
            continue
        try:
            values = [parse(v) for v in item.values]
        except CoercionError as error:
            errors.setdefault(key, []).append(str(error))
            continue
        if several is not None:
            out.append(_whole_values(table, several, item.op, item.values))
            continue
        if item.op == "eq":
            out.append(column.in_(values) if len(values) > 1 else column == values[0])
        elif item.op == "ne":
            out.append(sa.or_(column.not_in(values), column.is_(None)))
        else:
            compare = {"lt": column.__lt__, "lte": column.__le__, "gt": column.__gt__, "gte": column.__ge__}
            # A bound parameter, never the bare value: SQLAlchemy refuses `column < True`
            # (a yes/no field ordered by a range filter was a 500).
            out.append(compare[item.op](sa.literal(values[-1], column.type)))
    if search and len(search.strip()) > limits.search_text_max:
        errors.setdefault("q", []).append(
            f"is {len(search.strip())} characters long; a search is at most {limits.search_text_max}")
    elif search and "\x00" in search:
        errors.setdefault("q", []).append("contains a NUL character, which no text holds")
    elif search and search.strip():
        try:
            found = fulltext.words(search, SEARCH_WORDS_MAX)
        except fulltext.SearchTooLong as error:
            errors.setdefault("q", []).append(str(error))
            return out
        if not found:  # not blank, yet no word to look for ("@", "—"): nothing has it
            out.append(sa.false())
        else:
            out.append(fulltext.SearchMatch(ce.name, table, found)
                       if ce.searchable else sa.false())
    return out


def _part_column(ce: CompiledEntity, path: str) -> tuple[sa.ColumnElement[Any], Any] | str:
    """The column and text parser of `<field>.<part>` (a part of a composite value, kept in
    its own text column), or the problem with the path."""
    name, _, wanted = path.partition(".")
    compiled = ce.fields.get(name)
    if compiled is None:
        return f"{ce.name} has no field {name!r} to filter on{suggest(name, ce.fields)}"
    parts = {p.name: p for p in compiled.type.parts(compiled.field)}
    if not parts:
        return f"{name} is a {compiled.type.name} field, which has no parts"
    part = parts.get(wanted)
    if part is None:
        return f"{name} has no part {wanted!r}{suggest(wanted, parts)}; parts: {', '.join(parts)}"

    def parse(text: str) -> str:
        value = text.strip()
        if not value:
            raise CoercionError("give a value (or use __blank=true)")
        if "\x00" in value:
            raise CoercionError("contains a NUL character, which no text holds")
        return value
    return ce.table.c[compiled.column_of(part.suffix)], parse


def _parse_id(text: str) -> int:
    record_id = parse_digits(text, RECORD_ID_MAX)
    if record_id is None:
        raise CoercionError(f"{text.strip()!r} is not a record id")
    return record_id


def _field_parser(compiled: Any) -> Any:
    def parse(text: str) -> Any:
        value = compiled.type.parse_text(text, compiled.field)
        if value is None:
            raise CoercionError("give a value (or use __blank=true)")
        return compiled.to_row(value)[compiled.column]  # the main column's stored value
    return parse


def _whole_values(table: sa.Table, compiled: CompiledField, op: str,
                  texts: Sequence[str]) -> sa.ColumnElement[bool]:
    """A filter on a value kept in several columns (an amount and its currency) compares
    the main column only among records whose companion columns hold what the value given
    holds: `amount__gte=1000 EUR` never matches an amount in yen, and a bare number is in
    the field's default currency, as everywhere else (docs/decisions.md, "Money")."""
    main = table.c[compiled.column]
    compare = {"eq": main.__eq__, "ne": main.__eq__, "lt": main.__lt__, "lte": main.__le__,
               "gt": main.__gt__, "gte": main.__ge__}[op]
    matches = []
    for text in texts:
        row = compiled.to_row(compiled.type.parse_text(text, compiled.field))
        compared = compiled.type.compared_companions(compiled.field)
        same = [table.c[name] == row[name] for suffix, name in compiled.columns if suffix in compared]
        matches.append(sa.and_(compare(row[compiled.column]), *same))
    if op == "ne":
        return sa.or_(sa.not_(sa.or_(*matches)), main.is_(None))
    return sa.or_(*matches) if op == "eq" else matches[-1]


@dataclass(frozen=True)
class PageQuery:
    select: sa.Select[Any]
    count: sa.Select[Any]
    keys: list[SortKey]
    limit: int
    #: The database's cursor key: signs the next page's cursor.
    cursor_key: bytes | None = None
    #: The capped count a later page's cursor carried for this very query: no COUNT to run.
    known_count: int | None = None
    #: A digest of the query's conditions, kept with the count in the next cursor.
    digest: str = ""
    #: The cursor this page starts after; None on a first page.
    after: Cursor | None = None
    #: Ordered by relevance: the one page there is (no next cursor).
    ranked: bool = False
    #: The first page's count ran past its budget, as the cursor says: run no count again
    #: on each later page (it would run past it again), answer "not counted".
    uncounted: bool = False
    #: The matching rows without the cap (what a planner's estimate is asked about).
    matching: sa.Select[Any] | None = None
    #: The query asked for a count (ListQuery.counted). When not, `uncounted` is set and
    #: `matching` None, so no COUNT and no estimate run, and the next cursor holds no count.
    counting: bool = True
    #: PostgreSQL's search in id order (records/searchwalk.py): what the page runs instead of
    #: `select`, a walk of a bounded stretch of the primary key, and, when that finds no next
    #: page, `fallback` (every match from the GIN index, sorted), the exact page on its own.
    #: `select` stays the plain statement for the other readers (totals, stacked first pages).
    walk: sa.Select[Any] | None = None
    fallback: sa.Select[Any] | None = None

    @property
    def statement(self) -> sa.Select[Any]:
        """What a page runs first: the bounded walk, or `select`."""
        return self.select if self.walk is None else self.walk

    def fallback_for(self, rows: Sequence[Any]) -> sa.Select[Any] | None:
        """The statement to run instead when `rows` (what `statement` returned) may be short
        of the page (the walk found no next page), else None."""
        return self.fallback if len(rows) <= self.limit else None

    def counted(self, rows: Sequence[Any]) -> int | None:
        """The capped count without running `count`, when it is known: carried by the
        cursor, or a first page that holds every matching row. None: run `count` (unless
        `uncounted`), or, when the query asked for no count, not known."""
        if not self.counting:
            return None
        if self.known_count is not None:
            return self.known_count
        if self.first and len(rows) <= self.limit:
            return len(rows)
        return None

    @property
    def first(self) -> bool:
        return self.after is None


def build(ce: CompiledEntity, query: ListQuery, extra: Sequence[sa.ColumnElement[bool]] = (),
          cursor_key: bytes | None = None, *, base: sa.Select[Any] | None = None,
          limits: Limits = DEFAULT, nulls_largest: bool = True,
          dialect: sa.engine.Dialect | None = None, reach: sa.ColumnElement[bool] | None = None) -> PageQuery:
    """The page's SELECT and its capped COUNT, or BadQuery naming each bad part; `extra`
    conditions (a compiled rule filter, the read filter) are added to the query's own.
    `cursor_key` checks the query's cursor and signs the next one (storage/secrets.py).
    `base` is the SELECT to narrow (the read path's, with reference titles joined).
    `nulls_largest`: where the database's indexes keep blanks (keyset.nulls_largest_on).
    `dialect`: the database's, which renders the conditions for the count's digest (a plugin
    function may have SQL for some databases only).
    `reach`: the read filter, one of `extra`; when it is an OR of alternatives, the page reads
    each alternative's first rows and sorts their union (records/alternatives.py)."""
    errors: dict[str, list[str]] = {}
    keys = sort_keys(ce, chosen_sort(ce, query, limits), errors, limits)
    where = [*conditions(ce, query.filters, query.search, errors, limits), *extra]
    if not 1 <= query.limit <= limits.page_size_max:
        errors.setdefault("limit", []).append(f"must be between 1 and {limits.page_size_max}")
    last = None
    if query.after and not errors:
        try:
            last = read_cursor(query.after, ce.table, keys, _key(cursor_key))
        except InvalidCursor as error:
            errors.setdefault("after", []).append(str(error))
    if errors:
        raise BadQuery(errors)
    select = (ce.select if base is None else base).where(*where)
    if last is not None:
        select = select.where(after(ce.table, keys, last.values, nulls_largest=nulls_largest))
    rank = _rank(ce, query, dialect) if last is None and not keys else None
    ordered = keyset_sort_keys(keys)
    in_id_order = len(ordered) == 1  # sorted by the id alone (a list's default order)
    descending = ordered[0].descending
    index = _search_index(ce, query, dialect)
    first = index if rank is None and in_id_order else None
    walk: sa.Select[Any] | None = None
    fallback: sa.Select[Any] | None = None
    if rank is not None:  # the join selects the matches; no second look-up of the words
        select = (ce.select if base is None else base).where(
            *(c for c in where if not isinstance(c, fulltext.SearchMatch)))
        select = select.join(rank, rank.c.id == ce.table.c.id).order_by(rank.c.rank, ce.table.c.id)
    elif first is not None:  # the same rows and order, walked from the search index
        select = (ce.select if base is None else base).where(
            *(c for c in where if not isinstance(c, fulltext.SearchMatch)), first.match)
        if last is not None:
            bound = last.values[0]
            select = select.where(after(ce.table, keys, last.values, nulls_largest=nulls_largest),
                                  first.rowid < bound if descending else first.rowid > bound)
        select = select.join(first.table, first.rowid == ce.table.c.id).order_by(
            first.rowid.desc() if descending else first.rowid.asc())
    else:
        if (in_id_order and dialect is not None and dialect.name == "postgresql"
                and any(isinstance(c, fulltext.SearchMatch) for c in where)):
            # A bounded walk of the key; every match, sorted, if it falls short.
            walk, fallback = searchwalk.walk_then_sort(
                ce.table, select, descending=descending,
                start=None if last is None else last.values[0], rows=query.limit + 1)
        order = ordering(ce.table, keys, nulls_largest=nulls_largest)
        branches = alternatives_of(reach) if walk is None else ()
        if branches and reach is not None:  # limited already
            bounded = [c for c in where if c is not reach]
            if last is not None:
                bounded.append(after(ce.table, keys, last.values, nulls_largest=nulls_largest))
            select = union_page(ce.table, ce.select if base is None else base, bounded, reach, branches,
                                order, [ce.table.c[k.column] for k in ordered], (tuple(keys), nulls_largest),
                                query.limit + 1, dialect is not None and dialect.name == "postgresql")
        else:
            select = select.order_by(*order).limit(query.limit + 1)
    if rank is not None or first is not None:
        select = select.limit(query.limit + 1)
    matching = sa.select(sa.literal(1)).select_from(ce.table).where(*where)
    if index is not None:  # the capped count stops after COUNT_CAP matches of the index
        matching = (sa.select(sa.literal(1)).select_from(ce.table)
                    .join(index.table, index.rowid == ce.table.c.id).where(
                        *(c for c in where if not isinstance(c, fulltext.SearchMatch)), index.match))
    count = sa.select(sa.func.count()).select_from(matching.limit(COUNT_CAP + 1).subquery())
    if index is None and rank is None and reach is not None and (branches := alternatives_of(reach)):
        count = reach_count(ce.table, [c for c in where if c is not reach], reach, branches, COUNT_CAP + 1,
                            dialect is not None and dialect.name == "postgresql")
    if not query.counted:  # nothing to count: no digest either (only a count is tied to it)
        return PageQuery(select, count, keys, query.limit, cursor_key, None, "", last, rank is not None,
                         uncounted=True, matching=None, counting=False, walk=walk, fallback=fallback)
    digest = conditions_digest(ce, where, dialect)
    same = last is not None and last.query == digest
    known = last.count if last is not None and same else None
    return PageQuery(select, count, keys, query.limit, cursor_key, known, digest, last, rank is not None,
                     uncounted=same and known is None, matching=matching, walk=walk,
                     fallback=fallback)


def _rank(ce: CompiledEntity, query: ListQuery, dialect: sa.engine.Dialect | None) -> sa.Subquery | None:
    """The ranked matches (fulltext.ranked), for a first page without a sort that asks
    for relevance and searches words (already checked)."""
    if not (query.rank and query.search and ce.searchable and dialect is not None):
        return None
    found = fulltext.words(query.search, SEARCH_WORDS_MAX)
    return fulltext.ranked(ce.name, ce.table, found, dialect.name) if found else None


def _search_index(ce: CompiledEntity, query: ListQuery,
                  dialect: sa.engine.Dialect | None) -> fulltext.IndexFirst | None:
    """SQLite's search index to join and walk (fulltext.IndexFirst): for a page in id order
    (the default order) and for the capped count, which then stop after their rows."""
    if not (dialect is not None and dialect.name == "sqlite" and query.search and ce.searchable):
        return None
    found = fulltext.words(query.search, SEARCH_WORDS_MAX)
    return fulltext.index_first(ce.name, found) if found else None


def conditions_digest(ce: CompiledEntity, where: Sequence[sa.ColumnElement[bool]],
                      dialect: sa.engine.Dialect | None = None) -> str:
    """A digest of the rows a list selects (entity, conditions and their values, the read
    filter's included): a count carried in a cursor is used only for the query it counted.
    A cursor given to another query still pages; that query counts for itself."""
    # One condition (a user's read filter, the same object on each of their requests) keeps
    # its cache key once generated; an AND of several is new each time.
    clause = where[0] if len(where) == 1 else sa.and_(*where) if where else sa.true()
    key = clause._generate_cache_key()
    if key is None:  # a construct SQLAlchemy cannot cache: its SQL, compiled each time
        compiled = clause.compile(dialect=dialect)
        sql = compiled.string
        values: list[Any] = sorted((k, repr(v)) for k, v in compiled.params.items())
    else:  # the SQL of this shape of conditions once; the values in the order they appear
        shape = (dialect.name if dialect is not None else "", key.key)
        sql = _DIGEST_SQL.get(shape) or keep(_DIGEST_SQL, shape, clause.compile(dialect=dialect).string,
                                             _DIGEST_SHAPES)
        values = [repr(b.effective_value) for b in key.bindparams]
    text = f"{ce.name}\n{sql}\n{values}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


#: The SQL of the shapes of conditions digested lately (compiling it was a fifth of a
#: restricted list page's Python time).
_DIGEST_SQL: dict[tuple[str, Any], str] = {}
_DIGEST_SHAPES = 2_000



def next_cursor(rows: Sequence[Any], page: PageQuery, count: int | None) -> str | None:
    """The cursor of the page after `rows`, carrying the capped `count` (at most COUNT_CAP + 1),
    or None for "not counted" (the count ran past its budget). A page that asked for no count
    gives a cursor without one: a later page asked to count counts for itself."""
    if len(rows) <= page.limit or page.ranked:
        return None
    if not page.counting:
        return encode_cursor(cursor_values(rows[page.limit - 1], page.keys), _key(page.cursor_key))
    return encode_cursor(cursor_values(rows[page.limit - 1], page.keys), _key(page.cursor_key),
                         count=None if count is None else min(count, COUNT_CAP + 1), query=page.digest)


def _key(cursor_key: bytes | None) -> bytes:
    if not cursor_key:
        raise ValueError("a page with a cursor needs the database's cursor key (listing.build)")
    return cursor_key
