"""Keyset (seek) pages: each page starts where the previous one ended, instead of at an OFFSET.

OFFSET makes the database read and throw away every earlier row, so page 10,000 costs ten
thousand pages. A condition on the last row's sort values lets an index scan start at that
row instead, and stays correct while rows are inserted or deleted between pages.

NULLs (blanks) sort where each database's indexes keep them, so that an index on the sort
column serves the page read forwards or backwards (docs/decisions.md, "Blanks in sorts"):
on PostgreSQL NULL is larger than every value (ascending: last, descending: first), on
SQLite smaller (ascending: first, descending: last). Forcing one order on both made SQLite
walk every blank row before the first value of a descending sort. `nulls_largest` says
which; `nulls_largest_on(dialect)` answers it for a database. One case per database has no
single index range: a nullable first key, walked towards its NULLs, after a non-null value,
where the rows after are "further, or NULL" (two ranges to a planner); there the database
filters index entries, and later pages cost more.

The sort is made total by `id` (ascending) as the last key: without a unique last key, rows
with equal sort values could be skipped or repeated at a page boundary.

A cursor is `<payload>.<signature>`: the payload is the last row's sort values as JSON, in
URL-safe base64 (a list; or, for a list page, `{"after": [values], "count": n, "query": q}`,
which also carries the capped count the first page ran and a digest of the query it was
counted for, so later pages run no COUNT), and the signature an HMAC-SHA256 of it (first 16 bytes) under the
database's cursor key (storage/secrets.py). A cursor someone changed, or one made by another
database, is refused before its values are read. The payload is readable, not secret.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

import sqlalchemy as sa

from ..storage.tables import TIEBREAK

TIE_BREAKER = TIEBREAK  # the one name, which storage gives PostgreSQL indexes too
INT64 = 2**63 - 1
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
#: Bytes of the HMAC kept in a cursor (128 bits), and what the HMAC is over besides the
#: payload, so a signature made for anything else under the same key never fits.
_SIGNATURE_BYTES = 16
_PURPOSE = b"slatecrm list cursor v1:"

# Values JSON has no type for travel as one-key objects, so a cursor is readable without
# the table, and a value of the wrong kind is noticed rather than silently converted.
_DECIMAL, _DATE, _DATETIME, _TIME = "d", "date", "dt", "time"


class InvalidCursor(ValueError):
    """A cursor that was not made for this list, or was altered: the person starts over.

    The message is for people; `reason` (what exactly was wrong) is for logs.
    """

    MESSAGE = "the cursor is not valid for this list; start from the first page"
    TAMPERED = ("the cursor was changed, or made by another database (its signature does not "
                "match); start from the first page")

    def __init__(self, reason: str = "", message: str = MESSAGE) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Cursor:
    """What a cursor holds: the last row's sort values and, for a list page, the capped
    count of the first page (None with a digest: "not counted", the count ran past its
    budget) and the digest of the query that count was run for."""

    values: list[Any]
    count: int | None = None
    query: str | None = None


@dataclass(frozen=True)
class SortKey:
    column: str
    descending: bool = False


TableLike = sa.Table | sa.TableClause


def sort_keys(sort: Sequence[SortKey]) -> list[SortKey]:
    """The keys the database really sorts by: `sort`, then `id` unless it already ends the sort.

    `id` runs in the direction of the last key: an index on a column holds its rows in
    (value, id) order, so `-close_date` sorted as (close_date DESC, id DESC) is that index
    read backwards and a page of 50 stops after 50 rows. With id ascending, SQLite sorts
    every matching row instead (200 ms instead of 3 ms at a million rows; docs/benchmarks.md).
    """
    keys = list(sort)
    if not keys or keys[-1].column != TIE_BREAKER:
        keys.append(SortKey(TIE_BREAKER, keys[-1].descending if keys else False))
    return keys


def nulls_largest_on(dialect: sa.Dialect) -> bool:
    """Whether the database's indexes keep NULL after every value (PostgreSQL) or before (SQLite)."""
    return dialect.name != "sqlite"


def ordering(table: TableLike, sort: Sequence[SortKey], *, nulls_largest: bool = True
             ) -> list[sa.ColumnElement[Any]]:
    """ORDER BY clauses. On SQLite (`nulls_largest=False`) no NULLS clause is written: its
    default is its index order, and any NULLS clause keeps its planner off the index."""
    clauses: list[sa.ColumnElement[Any]] = []
    for key in sort_keys(sort):
        column = table.c[key.column]
        if key.column == TIE_BREAKER or not nulls_largest:  # id is never NULL
            clauses.append(column.desc() if key.descending else column.asc())
        else:
            clauses.append(column.desc().nulls_first() if key.descending else column.asc().nulls_last())
    return clauses


def after(table: TableLike, sort: Sequence[SortKey], last: Sequence[Any], *,
          nulls_largest: bool = True) -> sa.ColumnElement[bool]:
    """Rows strictly after the row whose sort values (tie-breaker included) are `last`.

    Built from the last key outwards: after(k1..kn) = k1 greater OR (k1 equal AND after(k2..kn)),
    which is the lexicographic expansion with the common `k1 equal` factored out.
    """
    keys = sort_keys(sort)
    if len(last) != len(keys):
        raise ValueError(f"{len(last)} cursor values for {len(keys)} sort keys")
    condition: sa.ColumnElement[bool] | None = None  # None: no row is after (false)
    for key, value in reversed(list(zip(keys, last, strict=True))):
        column = table.c[key.column]
        tied = None if condition is None else sa.and_(_equal(column, value), condition)
        condition = _or(_greater(column, _nulls_at_end(key, nulls_largest), key.descending, value), tied)
    if condition is None:
        return sa.false()
    if len(keys) == 1:
        return condition
    first = keys[0]
    bound = _bound(table.c[first.column], _nulls_at_end(first, nulls_largest), first.descending, last[0])
    # Logically redundant, but a plain range on the first key is what lets the planner start
    # an index scan at the previous page's last row instead of filtering from the beginning.
    return condition if bound is None else sa.and_(bound, condition)


def cursor_values(row: Mapping[str, Any] | sa.RowMapping, sort: Sequence[SortKey]) -> list[Any]:
    # RowMapping is named too: its keys may be columns as well, so it is no Mapping[str, Any] to mypy.
    return [row[key.column] for key in sort_keys(sort)]


def encode_cursor(values: Sequence[Any], key: bytes, *, count: int | None = None,
                  query: str | None = None) -> str:
    """A signed cursor holding `values` (and a list's `count` for the `query` digest), under
    the database's cursor `key`: the signature covers the count too."""
    tagged: Any = [_tag(v) for v in values]
    if count is not None or query is not None:  # a list's: count None is "not counted"
        tagged = {"after": tagged, "count": count, "query": query or ""}
    text = json.dumps(tagged, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    payload = _b64(text.encode())
    return f"{payload}.{_b64(_signature(key, payload))}"


def decode_cursor(token: str, table: TableLike, sort: Sequence[SortKey], key: bytes) -> list[Any]:
    """The values `encode_cursor` was given, checked against the columns they will be compared with."""
    return read_cursor(token, table, sort, key).values


def read_cursor(token: str, table: TableLike, sort: Sequence[SortKey], key: bytes) -> Cursor:
    """What `encode_cursor` was given, the values checked against the columns they will be compared with.

    A token comes from the person's browser: one whose signature does not match `key` is
    refused first; then anything it holds that the database would refuse or misread (a
    string for a number, a too-large integer, a NUL character) is refused too, so a changed
    link gets a 400 and not a 500 or a wrong page.
    """
    columns = [table.c[key.column] for key in sort_keys(sort)]  # unknown columns: a bug, not the person's
    try:
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            _invalid("not <payload>.<signature> in URL-safe base64")
        payload, _, signature = token.partition(".")
        if not hmac.compare_digest(signature, _b64(_signature(key, payload))):
            raise InvalidCursor("signature does not match", InvalidCursor.TAMPERED)
        raw = base64.b64decode(payload + "=" * (-len(payload) % 4), altchars=b"-_", validate=True)
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        count, query = None, None
        if isinstance(data, dict):
            count, query, data = data.get("count"), data.get("query"), data.get("after")
            if (count is not None and (not isinstance(count, int) or isinstance(count, bool)
                                       or not 0 <= count <= INT64)) or not isinstance(query, str):
                _invalid("a count that is no count")
        if not isinstance(data, list):
            _invalid("not a JSON list")
        if len(data) != len(columns):
            _invalid(f"{len(data)} values for {len(columns)} sort keys")
        values = [_checked(column, _untag(item)) for column, item in zip(columns, data, strict=True)]
        return Cursor(values, count, query)
    except InvalidCursor:
        raise
    except (ValueError, RecursionError) as error:  # base64, UTF-8, JSON and ISO-format errors
        raise InvalidCursor(f"{type(error).__name__}: {error}") from error


# --- the seek condition ---------------------------------------------------------------------------

def _nullable(column: sa.ColumnElement[Any]) -> bool:
    return not isinstance(column, sa.Column) or bool(column.nullable)


def _value(column: sa.ColumnElement[Any], value: Any) -> sa.BindParameter[Any]:
    # Typed by the column, so the column's TypeDecorator converts it (decimals to SQLite's
    # scaled integers, datetimes to UTC) exactly as it converted the stored values.
    return sa.literal(value, type_=column.type)


def _nulls_at_end(key: SortKey, nulls_largest: bool) -> bool:
    """Whether NULLs come after every value in the order this key is walked."""
    return key.descending != nulls_largest


def _greater(column: sa.ColumnElement[Any], nulls_at_end: bool, descending: bool,
             value: Any) -> sa.ColumnElement[bool] | None:
    """Rows after `value` in this column alone; None when there are none."""
    if value is None:
        # NULLs at the end: nothing follows them; at the start: every value follows them.
        return None if nulls_at_end else column.is_not(None)
    further = column < _value(column, value) if descending else column > _value(column, value)
    if nulls_at_end and _nullable(column):
        return sa.or_(further, column.is_(None))
    return further


def _equal(column: sa.ColumnElement[Any], value: Any) -> sa.ColumnElement[bool]:
    return column.is_(None) if value is None else column == _value(column, value)


def _or(*conditions: sa.ColumnElement[bool] | None) -> sa.ColumnElement[bool] | None:
    present = [c for c in conditions if c is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else sa.or_(*present)


def _bound(column: sa.ColumnElement[Any], nulls_at_end: bool, descending: bool,
           value: Any) -> sa.ColumnElement[bool] | None:
    """An index-usable range on the first key that every later row satisfies, if there is one."""
    if value is None or (nulls_at_end and _nullable(column)):
        return None  # the rows after are "further OR NULL": no single range (or nothing to add)
    value_param = _value(column, value)
    return column <= value_param if descending else column >= value_param


# --- cursor values --------------------------------------------------------------------------------

def _tag(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str | float):
        return value
    if isinstance(value, Decimal):
        return {_DECIMAL: str(value)}
    if isinstance(value, dt.datetime):  # before date: a datetime is a date too
        return {_DATETIME: value.isoformat()}
    if isinstance(value, dt.date):
        return {_DATE: value.isoformat()}
    if isinstance(value, dt.time):  # a time of day (a `time` field's column)
        return {_TIME: value.isoformat()}
    raise TypeError(f"a {type(value).__name__} value cannot be kept in a cursor")


def _untag(item: Any) -> Any:
    if item is None or isinstance(item, bool | int | str | float):
        return item
    if isinstance(item, dict) and len(item) == 1:
        [(tag, text)] = item.items()
        if isinstance(text, str):
            if tag == _DECIMAL:
                try:
                    number = Decimal(text)
                except InvalidOperation:  # an ArithmeticError, not a ValueError
                    _invalid(f"decimal {text!r} is not a number")
                if not number.is_finite():
                    _invalid(f"decimal {text!r} is not finite")
                return number
            if tag == _DATETIME:
                return dt.datetime.fromisoformat(text)
            if tag == _DATE:
                return dt.date.fromisoformat(text)
            if tag == _TIME:
                return dt.time.fromisoformat(text)
    _invalid(f"unreadable value {item!r}")


def _checked(column: sa.ColumnElement[Any], value: Any) -> Any:
    """`value` if the column can be compared with it as the column's own values are."""
    if value is None:
        if not _nullable(column):
            _invalid(f"null for {column.name}, which is never null")
        return None
    if isinstance(value, str) and ("\x00" in value or not _encodable(value)):
        _invalid("a string no database stores")  # PostgreSQL refuses NUL; lone surrogates are not UTF-8
    if isinstance(value, int) and not isinstance(value, bool) and not -INT64 - 1 <= value <= INT64:
        _invalid(f"{value} does not fit a 64-bit integer")
    if isinstance(value, float) and not math.isfinite(value):
        _invalid(f"{value} is not a finite number")  # JSON's 1e999 is read as infinity
    expected = _python_type(column.type)
    if expected is None:  # untyped (sa.column("x")): the tags alone decide
        return value
    if expected is bool:
        fits = isinstance(value, bool)
    elif expected is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        fits = isinstance(value, int | float) and not isinstance(value, bool)
    elif expected is Decimal:
        fits = isinstance(value, Decimal) and _fits_numeric(column.type, value)
    elif expected is dt.datetime:
        fits = isinstance(value, dt.datetime) and _fits_datetime(column.type, value)
    elif expected is dt.date:
        fits = type(value) is dt.date
    else:
        fits = isinstance(value, expected)
    if not fits:
        _invalid(f"{value!r} is not a value of {column.name} ({column.type})")
    return value


def _python_type(sql_type: sa.types.TypeEngine[Any]) -> type[Any] | None:
    if isinstance(sql_type, sa.types.TypeDecorator):  # its python_type is `object`: ask what it stores
        return _python_type(sql_type.impl_instance)
    try:
        expected = sql_type.python_type
    except NotImplementedError:
        return None
    return None if expected is object else expected


def _fits_numeric(sql_type: sa.types.TypeEngine[Any], number: Decimal) -> bool:
    """Whether the column holds `number` exactly: SQLite's scaled integers would round it, or overflow."""
    if not isinstance(sql_type, sa.Numeric) or sql_type.scale is None or sql_type.precision is None:
        return True
    if not number:
        return True
    exponent = number.as_tuple().exponent
    digits = number.as_tuple().digits
    assert isinstance(exponent, int)  # finite, checked when the tag was read
    dropped = -sql_type.scale - exponent
    if dropped > 0 and any(digits[-dropped:]):
        return False  # more decimal places than the column keeps
    return number.adjusted() < sql_type.precision - sql_type.scale


def _fits_datetime(sql_type: sa.types.TypeEngine[Any], moment: dt.datetime) -> bool:
    impl = sql_type.impl_instance if isinstance(sql_type, sa.types.TypeDecorator) else sql_type
    timezone = getattr(impl, "timezone", None)
    if moment.tzinfo is None:
        return timezone is not True  # a naive time would be read in the session's time zone
    if timezone is False:
        return False
    try:
        moment.astimezone(dt.UTC)  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
    except OverflowError:
        return False
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _signature(key: bytes, payload: str) -> bytes:
    return hmac.new(key, _PURPOSE + payload.encode("ascii"), hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def _no_constant(name: str) -> NoReturn:
    _invalid(f"JSON constant {name}")


def _invalid(reason: str) -> NoReturn:
    raise InvalidCursor(reason)

