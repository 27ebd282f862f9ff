"""Keyset pages on SQLite and PostgreSQL: every row exactly once, in the unpaged order, NULLs included."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects.sqlite.base import SQLiteDialect

from slatecrm.metamodel.fieldtypes.sqltypes import UTCDateTime, exact_decimal, record_id
from slatecrm.platform.records.keyset import (
    InvalidCursor,
    SortKey,
    after,
    cursor_values,
    decode_cursor,
    encode_cursor,
    nulls_largest_on,
    ordering,
    read_cursor,
)
from slatecrm.platform.storage import revisions
from slatecrm.platform.storage.runtime import build_runtime

from .defaults import field_types
from .packs import install, write_pack

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MESSAGE = "the cursor is not valid for this list; start from the first page"
TAMPERED_MESSAGE = ("the cursor was changed, or made by another database (its signature does not "
                    "match); start from the first page")
KEY = bytes(range(32))


# --- the reference order, computed without the database ------------------------------------------------

def python_order(rows: Sequence[dict[str, Any]], sort: Sequence[SortKey], nulls_largest: bool = True
                 ) -> list[int]:
    """The order `ordering` promises, NULL larger (PostgreSQL) or smaller (SQLite) than every
    value, by stable sorts from the last key."""
    tie = SortKey("id", sort[-1].descending if sort else False)  # id follows the last key's direction
    keys = [*sort, tie] if not sort or sort[-1].column != "id" else list(sort)
    ordered = list(rows)
    for key in reversed(keys):
        def null_last(row: dict[str, Any], column: str = key.column) -> tuple[bool, Any]:
            return (row[column] is None) == nulls_largest, row[column]

        # (True, None) sorts after every (False, value), and (False, None) before every
        # (True, value); None is never compared with a value. reverse=True keeps ties in order.
        ordered.sort(key=null_last, reverse=key.descending)
    return [r["id"] for r in ordered]


def paged_ids(conn: sa.Connection, table: sa.Table, sort: Sequence[SortKey], size: int) -> list[int]:
    """Every page, each started from the decoded cursor of the previous one, as a client would."""
    largest = nulls_largest_on(conn.dialect)
    select = sa.select(table).order_by(*ordering(table, sort, nulls_largest=largest)).limit(size)
    ids: list[int] = []
    token: str | None = None
    while True:
        page = select if token is None else \
            select.where(after(table, sort, decode_cursor(token, table, sort, KEY), nulls_largest=largest))
        rows = conn.execute(page).mappings().all()
        ids += [r["id"] for r in rows]
        if len(rows) < size:
            return ids
        token = encode_cursor(cursor_values(rows[-1], sort), KEY)


def unpaged_ids(conn: sa.Connection, table: sa.Table, sort: Sequence[SortKey]) -> list[int]:
    order = ordering(table, sort, nulls_largest=nulls_largest_on(conn.dialect))
    return list(conn.execute(sa.select(table.c.id).order_by(*order)).scalars())


# --- a big table: 20,000 records in `make test`, 200,000 in CI ----------------------------------------

SORTED_COLUMNS = ("title", "qty", "amount", "due", "seen_at")


def _item(i: int) -> dict[str, Any]:
    """Row i of the big table: duplicates everywhere, NULLs in every nullable sort column."""
    return {
        "title": None if i % 13 == 0 else f"t{(i * 7919) % 5_000:04d}",
        "qty": None if i % 17 == 0 else (i * 31) % 1_000 - 500,
        "amount": None if i % 29 == 0 else Decimal((i * 104_729) % 2_000_000 - 1_000_000).scaleb(-2),
        "due": dt.date(2020, 1, 1) + dt.timedelta(days=(i * 37) % 2_000),
        "seen_at": None if i % 11 == 0 else NOW - dt.timedelta(seconds=(i * 7_919) % 50_000_000,
                                                               microseconds=(i * 13) % 1_000_000),
        "created_at": NOW,
        "updated_at": NOW,
    }


def fill(engine: sa.Engine, tmp_path: Path, rows: int) -> sa.Table:
    registry = field_types()
    install(engine, registry, write_pack(tmp_path, "stock", "1.0.0", {"item": {
        "title_field": "title",
        "fields": {
            "title": {"type": "text", "indexed": True},
            "qty": {"type": "integer", "indexed": True},
            "amount": {"type": "decimal", "precision": 12, "scale": 2, "indexed": True},
            "due": {"type": "date", "indexed": True},
            "seen_at": {"type": "datetime", "indexed": True},
        },
    }}))
    with engine.begin() as conn:
        table = build_runtime(*revisions.current_metamodel(conn), registry).tables["item"]
        for start in range(0, rows, 10_000):
            conn.execute(table.insert(), [_item(i) for i in range(start, min(start + 10_000, rows))])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {table.name}")
    return table


SORTS = {
    "title": [SortKey("title")],
    "qty desc, due": [SortKey("qty", descending=True), SortKey("due")],
    "amount desc": [SortKey("amount", descending=True)],
    "seen_at desc, id desc": [SortKey("seen_at", descending=True), SortKey("id", descending=True)],
}


# The same property at two sizes. 20,000 rows in pages of 200 cross a hundred page boundaries
# per sort, most of them inside runs of equal values and NULLs (each title is there about
# four times, each quantity about twenty): what the paging logic must get right. 200,000 rows in pages
# of 1,000 add the scale at which the planners choose index scans and the data outgrows
# caches; that takes minutes, so it is `slow`, run by `.ci/run` and not by `make test`.
@pytest.mark.parametrize(("rows", "page"), [
    pytest.param(20_000, 200, id="20000"),
    pytest.param(200_000, 1_000, id="200000", marks=pytest.mark.slow),
])
def test_paging_a_big_table_sees_each_record_once_in_the_unpaged_order(
        engine: sa.Engine, tmp_path: Path, subtests: pytest.Subtests, rows: int, page: int) -> None:
    """One test per database and size, the sorts as subtests: filling the table is the slow part."""
    table = fill(engine, tmp_path, rows)
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == 1 + 12_345)).mappings().one()
        nulls, titles = conn.execute(sa.select(
            sa.func.count().filter(table.c.title.is_(None)), sa.func.count(table.c.title.distinct()))).one()
    # The data is what the sorts need: NULLs and duplicates, every type read back as written.
    assert {k: row[k] for k in SORTED_COLUMNS} == {k: _item(12_345)[k] for k in SORTED_COLUMNS}
    assert (nulls, titles) == (len(range(0, rows, 13)), 5_000)
    for name, sort in SORTS.items():
        with subtests.test(sort=name), engine.connect() as conn:
            paged = paged_ids(conn, table, sort, page)
            unpaged = unpaged_ids(conn, table, sort)
            columns = ["id", *(k.column for k in sort if k.column != "id")]
            stored = [dict(r) for r in conn.execute(sa.select(*[table.c[c] for c in columns])).mappings()]
            assert len(paged) == len(set(paged)) == rows
            assert paged == unpaged
            # NULLs and directions where they belong, on this database
            assert unpaged == python_order(stored, sort, nulls_largest_on(engine.dialect))
            if len(sort) == 1 or sort[-1].column == "id":  # one column's index serves the sort
                assert not sorts_in_the_plan(conn, table, sort, page), name


def sorts_in_the_plan(conn: sa.Connection, table: sa.Table, sort: Sequence[SortKey], size: int) -> str:
    """The plan, when the database sorts all of a page's rows itself rather than reading an index in
    order (on PostgreSQL with sequential scans made unattractive: the table is small for it)."""
    select = sa.select(table.c.id).order_by(
        *ordering(table, sort, nulls_largest=nulls_largest_on(conn.dialect))).limit(size)
    text = str(select.compile(conn, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {text}"))
        return plan if "TEMP B-TREE" in plan else ""
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    nodes = [r[0].strip().removeprefix("->").strip() for r in conn.exec_driver_sql(f"EXPLAIN {text}")]
    conn.rollback()  # ends the SET LOCAL
    # An Incremental Sort over an index on the first key only orders the ties by id: a
    # sort of the rows one value at a time, not of the whole table.
    return "\n".join(nodes) if any(node.startswith("Sort  (") for node in nodes) else ""


# --- small tables, any sort, any page size --------------------------------------------------------------

small_metadata = sa.MetaData()
small = sa.Table(
    "keyset_small", small_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=False),
    sa.Column("title", sa.String),
    sa.Column("qty", sa.BigInteger),
    sa.Column("amount", exact_decimal(12, 2)),
    sa.Column("due", sa.Date),
    sa.Column("seen_at", UTCDateTime()),
    sa.Column("flag", sa.Boolean),
)
SMALL_COLUMNS = ["title", "qty", "amount", "due", "seen_at", "flag"]


@pytest.fixture
def small_engine(engine: sa.Engine) -> sa.Engine:
    small_metadata.create_all(engine)
    return engine


def _nullable(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | values


# Few distinct values, so that ties (and ties of ties) are the rule; lowercase letters sort
# the same in every collation, so Python's order is a fair reference on PostgreSQL too.
small_row = st.fixed_dictionaries({
    "title": _nullable(st.sampled_from(["", "a", "ab", "b", "ba"])),
    "qty": _nullable(st.integers(-2, 2)),
    "amount": _nullable(st.sampled_from([Decimal(v) for v in ("-1.50", "0.00", "0.01", "2.50")])),
    "due": _nullable(st.sampled_from([dt.date(1999, 12, 31), dt.date(2026, 1, 1), dt.date(2026, 1, 2)])),
    "seen_at": _nullable(st.sampled_from([NOW, NOW + dt.timedelta(microseconds=1), NOW + dt.timedelta(1)])),
    "flag": _nullable(st.booleans()),
})
sort_key = st.builds(SortKey, st.sampled_from([*SMALL_COLUMNS, "id"]), st.booleans())


# The database outlives the examples (HealthCheck.function_scoped_fixture): each one empties the table first.
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.lists(small_row, max_size=30),
       sort=st.lists(sort_key, max_size=3, unique_by=lambda k: k.column),
       size=st.integers(1, 8))
def test_pages_of_small_tables_equal_the_unpaged_order(
        small_engine: sa.Engine, values: list[dict[str, Any]], sort: list[SortKey], size: int) -> None:
    rows = [{"id": i, **v} for i, v in enumerate(values, start=1)]
    with small_engine.begin() as conn:
        conn.execute(small.delete())
        if rows:
            conn.execute(small.insert(), rows)
        paged = paged_ids(conn, small, sort, size)
        unpaged = unpaged_ids(conn, small, sort)
    assert paged == unpaged == python_order(rows, sort, nulls_largest_on(small_engine.dialect))


# --- ordering and the seek condition ------------------------------------------------------------------

def test_id_breaks_ties_unless_it_already_ends_the_sort() -> None:
    def sql(sort: list[SortKey]) -> str:
        return str(sa.select(small.c.id).order_by(*ordering(small, sort)).compile()).split("ORDER BY ")[1]

    assert sql([]) == "keyset_small.id ASC"
    assert sql([SortKey("title", descending=True)]) == \
        "keyset_small.title DESC NULLS FIRST, keyset_small.id DESC"
    assert sql([SortKey("title", descending=True), SortKey("qty")]) == \
        "keyset_small.title DESC NULLS FIRST, keyset_small.qty ASC NULLS LAST, keyset_small.id ASC"
    assert sql([SortKey("title"), SortKey("id", descending=True)]) == \
        "keyset_small.title ASC NULLS LAST, keyset_small.id DESC"


def test_on_sqlite_blanks_sort_as_its_indexes_keep_them_with_no_nulls_clause() -> None:
    def sql(sort: list[SortKey]) -> str:
        order = ordering(small, sort, nulls_largest=False)
        return str(sa.select(small.c.id).order_by(*order).compile()).split("ORDER BY ")[1]

    assert sql([SortKey("title", descending=True)]) == "keyset_small.title DESC, keyset_small.id DESC"
    assert sql([SortKey("title")]) == "keyset_small.title ASC, keyset_small.id ASC"

    def seek(sort: list[SortKey], last: list[Any]) -> str:
        condition = after(small, sort, last, nulls_largest=False)
        return str(condition.compile(compile_kwargs={"literal_binds": True}))

    # Descending walks towards the blanks (last on SQLite): "smaller, or blank", no single range.
    assert seek([SortKey("qty", descending=True)], [5, 7]) == (
        "keyset_small.qty < 5 OR keyset_small.qty IS NULL OR keyset_small.qty = 5 AND keyset_small.id < 7")
    # Ascending starts with the blanks: after one, every value; after a value, a plain range.
    assert seek([SortKey("qty")], [None, 7]) == (
        "keyset_small.qty IS NOT NULL OR keyset_small.qty IS NULL AND keyset_small.id > 7")
    assert seek([SortKey("qty")], [5, 7]) == (
        "keyset_small.qty >= 5 AND (keyset_small.qty > 5 OR keyset_small.qty = 5 AND keyset_small.id > 7)")
    assert seek([SortKey("qty", descending=True)], [None, 7]) == (
        "keyset_small.qty IS NULL AND keyset_small.id < 7")


def test_after_compares_with_parameters_typed_by_the_column() -> None:
    condition = after(small, [SortKey("amount")], [Decimal("2.50"), 7])
    binds = [b for b in sa.sql.visitors.iterate(condition) if isinstance(b, sa.BindParameter)]
    assert [b.type for b in binds] == [small.c.amount.type, small.c.amount.type, small.c.id.type]

    def sql(dialect: sa.Dialect) -> str:
        return str(condition.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    # On SQLite the decimal is compared as the scaled integer the column stores.
    shape = "keyset_small.amount > {0} OR keyset_small.amount IS NULL OR keyset_small.amount = {0} AND {1}"
    assert sql(SQLiteDialect()) == shape.format(250, "keyset_small.id > 7")
    postgres = sa.create_engine("postgresql+psycopg://").dialect
    assert sql(postgres) == shape.format("2.50", "keyset_small.id > 7")


def test_after_starts_with_a_range_on_the_first_key_when_there_is_one() -> None:
    """The redundant range is what lets an index scan start at the previous page's last row."""
    def sql(sort: list[SortKey], last: list[Any]) -> str:
        return str(after(small, sort, last).compile(compile_kwargs={"literal_binds": True}))

    assert sql([SortKey("qty", descending=True)], [5, 7]) == (
        "keyset_small.qty <= 5 AND (keyset_small.qty < 5 OR keyset_small.qty = 5 AND keyset_small.id < 7)")
    assert sql([], [7]) == "keyset_small.id > 7"  # already a range
    assert sql([SortKey("qty")], [None, 7]) == "keyset_small.qty IS NULL AND keyset_small.id > 7"
    assert sql([SortKey("qty", descending=True)], [None, 7]) == (
        "keyset_small.qty IS NOT NULL OR keyset_small.qty IS NULL AND keyset_small.id < 7")


def test_after_the_last_row_is_nothing() -> None:
    assert str(after(small, [SortKey("title")], [None, None]).compile()) == "false"


def test_after_needs_one_value_per_sort_key() -> None:
    with pytest.raises(ValueError, match="1 cursor values for 2 sort keys"):
        after(small, [SortKey("title")], ["a"])


# --- cursors ---------------------------------------------------------------------------------------------

EVERY_TYPE = [
    (SortKey("title"), "Zoë \"quoted\" ☃"),
    (SortKey("qty", descending=True), -(2**63)),
    (SortKey("amount"), Decimal("-1234567890.05")),
    (SortKey("due"), dt.date(2026, 2, 28)),
    (SortKey("seen_at", descending=True), dt.datetime(2026, 3, 1, 12, 30, 5, 123_456, tzinfo=dt.UTC)),
    (SortKey("flag"), False),
]


def test_cursors_round_trip_every_type() -> None:
    sort = [key for key, _ in EVERY_TYPE]
    values = [value for _, value in EVERY_TYPE] + [42]
    token = encode_cursor(values, KEY)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    decoded = decode_cursor(token, small, sort, KEY)
    assert decoded == values
    assert [type(v) for v in decoded] == [type(v) for v in values]
    nulls = [None] * len(EVERY_TYPE) + [1]
    assert decode_cursor(encode_cursor(nulls, KEY), small, sort, KEY) == nulls


def test_cursors_round_trip_without_column_types() -> None:
    untyped = sa.table("t", *[sa.column(c) for c in ("id", "a", "b", "c", "d", "e")])
    sort = [SortKey(c) for c in "abcde"]
    values = [Decimal("0.10"), dt.date(2026, 1, 1), NOW, True, None, 3]
    assert decode_cursor(encode_cursor(values, KEY), untyped, sort, KEY) == values


def test_cursors_hold_exact_decimals_and_time_zones() -> None:
    moment = dt.datetime(2026, 1, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    values = decode_cursor(encode_cursor([moment, 1], KEY), small, [SortKey("seen_at")], KEY)
    assert values[0] == moment and values[0].utcoffset() == dt.timedelta(hours=2)
    [amount, _] = decode_cursor(encode_cursor([Decimal("10.50"), 1], KEY), small, [SortKey("amount")], KEY)
    assert str(amount) == "10.50"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _signed(payload: str, key: bytes = KEY) -> str:
    """`payload` with the signature the cursor format defines: HMAC-SHA256 (first 16 bytes)
    of a purpose prefix and the payload, so that what the payload holds is what is tested."""
    mac = hmac.new(key, b"slatecrm list cursor v1:" + payload.encode(), hashlib.sha256).digest()[:16]
    return f"{payload}.{_b64(mac)}"


def _raw(data: bytes) -> str:
    return _signed(_b64(data))


def _token(data: Any) -> str:
    return _raw(json.dumps(data).encode())


TITLE_SORT = [SortKey("title")]
TAMPERED = {
    "empty": "",
    "not base64": "a!b",
    "padding": _token(["a", 1]) + "=",
    "truncated base64": _signed(_b64(json.dumps(["a", 1]).encode())[:-1]),
    "unsigned (before cursors were signed)": _b64(json.dumps(["a", 1]).encode()),
    "not UTF-8": _raw(b"\xff\xfe"),
    "not JSON": _raw(b"[1,"),
    "not a list": _token({"title": "a", "id": 1}),
    "too few values": _token(["a"]),
    "too many values": _token(["a", 1, 2]),
    "number for text": _token([5, 1]),
    "text for id": _token(["a", "1"]),
    "bool for id": _token(["a", True]),
    "float for id": _token(["a", 1.0]),
    "null id": _token(["a", None]),
    "huge id": _token(["a", 2**64]),
    "NaN": _raw(b'["a",NaN]'),
    "infinite float": _raw(b'["a",1e999]'),
    "NUL in text": _token(["a\x00b", 1]),
    "lone surrogate": _raw(b'["\\ud800",1]'),
    "unknown tag": _token([{"x": "1"}, 1]),
    "tag with two keys": _token([{"d": "1", "date": "2026-01-01"}, 1]),
    "deep nesting": _raw(b"[" * 100_000 + b"]" * 100_000),
}
TAMPERED_TYPED = {
    "decimal for integer": ([SortKey("qty")], [{"d": "1"}, 1]),
    "integer for decimal": ([SortKey("amount")], [1, 1]),
    "bad decimal": ([SortKey("amount")], [{"d": "1,5"}, 1]),
    "infinite decimal": ([SortKey("amount")], [{"d": "Infinity"}, 1]),
    "too many decimal places": ([SortKey("amount")], [{"d": "1.005"}, 1]),
    "too many digits": ([SortKey("amount")], [{"d": "1e10"}, 1]),
    "datetime for date": ([SortKey("due")], [{"dt": "2026-01-01T00:00:00+00:00"}, 1]),
    "impossible date": ([SortKey("due")], [{"date": "2026-02-30"}, 1]),
    "date for datetime": ([SortKey("seen_at")], [{"date": "2026-01-01"}, 1]),
    "naive datetime": ([SortKey("seen_at")], [{"dt": "2026-01-01T00:00:00"}, 1]),
    "datetime before year 1 in UTC": ([SortKey("seen_at")], [{"dt": "0001-01-01T00:00:00+01:00"}, 1]),
    "text for boolean": ([SortKey("flag")], ["yes", 1]),
    "number for boolean": ([SortKey("flag")], [1, 1]),
}


@pytest.mark.parametrize("token", TAMPERED.values(), ids=TAMPERED.keys())
def test_tampered_cursors_are_refused_with_a_message_for_people(token: str) -> None:
    with pytest.raises(InvalidCursor) as refused:
        decode_cursor(token, small, TITLE_SORT, KEY)
    assert str(refused.value) == MESSAGE
    assert isinstance(refused.value, ValueError) and refused.value.reason


@pytest.mark.parametrize(("sort", "data"), TAMPERED_TYPED.values(), ids=TAMPERED_TYPED.keys())
def test_cursor_values_must_suit_their_columns(sort: list[SortKey], data: list[Any]) -> None:
    with pytest.raises(InvalidCursor) as refused:
        decode_cursor(_token(data), small, sort, KEY)
    assert str(refused.value) == MESSAGE


def test_a_cursor_of_another_sort_is_refused() -> None:
    row = {"id": 3, "title": "a", "qty": 1}
    token = encode_cursor(cursor_values(row, [SortKey("title"), SortKey("qty")]), KEY)
    with pytest.raises(InvalidCursor):
        decode_cursor(token, small, [SortKey("title")], KEY)
    with pytest.raises(InvalidCursor):
        decode_cursor(token, small, [SortKey("amount"), SortKey("qty")], KEY)


def test_a_changed_or_foreign_cursor_is_refused_by_its_signature() -> None:
    token = encode_cursor(["a", 1], KEY)
    assert token == _signed(_b64(b'["a",1]'))  # the format, pinned
    payload, signature = token.split(".")
    forged = _b64(json.dumps(["b", 1], separators=(",", ":")).encode())
    for changed in (f"{forged}.{signature}",  # other values under the old signature
                    _signed(payload, key=b"another database's key"),
                    f"{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"):
        with pytest.raises(InvalidCursor) as refused:
            decode_cursor(changed, small, TITLE_SORT, KEY)
        assert str(refused.value) == TAMPERED_MESSAGE
    assert decode_cursor(_signed(forged), small, TITLE_SORT, KEY) == ["b", 1]


def test_values_a_cursor_cannot_hold_are_a_programming_error() -> None:
    with pytest.raises(TypeError, match="a timedelta value cannot be kept in a cursor"):
        encode_cursor([dt.timedelta(hours=12), 1], KEY)  # a time of day can (a `time` field's)


def test_a_page_cursor_carries_its_count_and_query_and_refuses_a_count_that_is_none() -> None:
    token = encode_cursor(["a", 1], KEY, count=2_001, query="q1")
    cursor = read_cursor(token, small, TITLE_SORT, KEY)
    assert (cursor.values, cursor.count, cursor.query) == (["a", 1], 2_001, "q1")
    assert read_cursor(encode_cursor(["a", 1], KEY), small, TITLE_SORT, KEY).count is None
    # "Not counted" (the count ran past its budget): a null count, for its query.
    uncounted = read_cursor(encode_cursor(["a", 1], KEY, query="q1"), small, TITLE_SORT, KEY)
    assert (uncounted.count, uncounted.query) == (None, "q1")
    for bad in (-1, "3", True, 1.5):
        signed = _token({"after": ["a", 1], "count": bad, "query": "q1"})  # correctly signed
        with pytest.raises(InvalidCursor, match="not valid for this list"):
            read_cursor(signed, small, TITLE_SORT, KEY)
