"""How close an entity's table comes to what its database takes: columns, and on PostgreSQL
the width of a row. The schema planner (plan.py) warns from 80% of a limit on, and refuses
a change that would go beyond one, before any DDL runs (docs/packs.md, "Limits of an
entity's table").

- Columns: PostgreSQL takes 1,600 per table, and a column dropped (a retype's old column,
  a purged field, a search column) keeps its place among them until the table is made
  again; SQLite takes 2,000 (SQLITE_MAX_COLUMN, a compile-time setting). Counted are the
  real columns: the system columns, each field's columns (a currency's companion code
  column too), retired fields' columns (kept with their data until purged), PostgreSQL's
  stored search vector, and PostgreSQL's dropped columns.
- Row width (PostgreSQL): a row must fit in an 8 KB page (8,160 bytes). A long text value
  moves out of the row, leaving an 18-byte pointer; a fixed-width value (a whole number,
  a date, a moment, a true/false, a reference) cannot. The widest row (every fixed-width
  column filled, every other one holding a long value) is estimated: past the page, a
  record with every field filled may be refused (a warning); fixed-width columns alone past
  the page are refused, since such a record could never be stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

#: Columns a table takes (PostgreSQL: MaxHeapAttributeNumber; SQLite: SQLITE_MAX_COLUMN).
MAX_COLUMNS = {"postgresql": 1600, "sqlite": 2000}
#: The largest row PostgreSQL stores in an 8 KB page (MaxHeapTupleSize, aligned).
PG_MAX_ROW = 8160
#: A row's header, before its null bitmap (PostgreSQL's HeapTupleHeader, aligned).
PG_ROW_HEADER = 24
#: What a value moved out of the row (TOAST) leaves in it.
TOAST_POINTER = 18
#: The share of a limit from which the plan warns.
WARN_AT = 0.8

#: Bytes of PostgreSQL's fixed-width types, most specific first (BigInteger before Integer).
FIXED_WIDTH: tuple[tuple[type[Any], int], ...] = (
    (sa.BigInteger, 8), (sa.SmallInteger, 2), (sa.Integer, 4), (sa.Boolean, 1), (sa.DateTime, 8),
    (sa.Date, 4), (sa.Time, 8), (sa.Interval, 16), (sa.Float, 8), (sa.Uuid, 16),
)


def fixed_width(column_type: sa.types.TypeEngine[Any]) -> int | None:
    """The bytes a value of `column_type` takes in a PostgreSQL row, None if variable."""
    if isinstance(column_type, sa.types.TypeDecorator):
        column_type = column_type.impl_instance
    for kind, width in FIXED_WIDTH:
        if isinstance(column_type, kind):
            return width
    return None


@dataclass(frozen=True)
class TableSize:
    """The columns of a table after a plan, by what they are."""

    system: int
    fields: int
    #: A field's columns besides its main one (a currency's code).
    companions: int
    #: Retired fields' columns, kept with their data.
    retired: int
    #: Columns of the platform's own (PostgreSQL's search vector).
    platform: int
    #: Dropped columns PostgreSQL still counts.
    dropped: int
    #: Bytes of the fixed-width columns, and of the widest row (PostgreSQL).
    fixed_bytes: int
    widest_row: int

    @property
    def columns(self) -> int:
        return self.system + self.fields + self.companions + self.retired + self.platform + self.dropped

    def breakdown(self) -> str:
        parts = [f"{self.fields:,} for fields", f"{self.companions:,} companion",
                 f"{self.retired:,} of retired fields", f"{self.system} system"]
        if self.platform:
            parts.append(f"{self.platform} for search")
        if self.dropped:
            parts.append(f"{self.dropped:,} dropped but still counted by PostgreSQL")
        return ", ".join(parts)


def row_bytes(columns: Iterable[sa.Column[Any]], extra_variable: int = 0) -> tuple[int, int]:
    """(fixed-width bytes, widest row) of PostgreSQL rows with `columns` (and
    `extra_variable` more variable-width columns)."""
    listed = list(columns)
    fixed = 0
    variable = extra_variable
    for column in listed:
        width = fixed_width(column.type)
        if width is None:
            variable += 1
        else:
            fixed += width
    bitmap = (len(listed) + extra_variable + 7) // 8
    header = PG_ROW_HEADER + ((bitmap + 7) // 8) * 8
    return fixed, header + fixed + variable * TOAST_POINTER


def problems(entity: str, table: str, size: TableSize, dialect: str) -> list[tuple[str, bool]]:
    """(message, refused) for each limit `size` comes close to or goes beyond."""
    found: list[tuple[str, bool]] = []
    limit = MAX_COLUMNS.get(dialect, MAX_COLUMNS["postgresql"])
    database = "PostgreSQL" if dialect == "postgresql" else "SQLite"
    count = size.columns
    if count > limit:
        found.append((f"{entity}: table {table} would have {count:,} columns ({size.breakdown()}), more "
                      f"than the {limit:,} a {database} table takes; move fields to a related entity"
                      + (" (on PostgreSQL a dropped or purged column still counts until the table is "
                         "made again)" if dialect == "postgresql" else ""), True))
    elif count >= limit * WARN_AT:
        found.append((f"{entity}: table {table} will have {count:,} columns ({size.breakdown()}), "
                      f"{count / limit:.0%} of the {limit:,} a {database} table takes", False))
    if dialect != "postgresql":
        return found
    if size.fixed_bytes > PG_MAX_ROW:
        found.append((f"{entity}: the fixed-width columns of table {table} (whole numbers, dates, "
                      f"moments, true/false, references) take {size.fixed_bytes:,} bytes, more than "
                      f"the {PG_MAX_ROW:,} bytes of a PostgreSQL row: a record with them all filled "
                      "could never be stored; move fields to a related entity", True))
    elif size.widest_row > PG_MAX_ROW:
        found.append((f"{entity}: a record of table {table} with every field filled with long values "
                      f"would take up to {size.widest_row:,} bytes, more than the {PG_MAX_ROW:,} bytes "
                      "of a PostgreSQL row, and be refused; most records fill few fields", False))
    elif size.widest_row >= PG_MAX_ROW * WARN_AT:
        found.append((f"{entity}: a record of table {table} with every field filled would take up to "
                      f"{size.widest_row:,} bytes, {size.widest_row / PG_MAX_ROW:.0%} of the "
                      f"{PG_MAX_ROW:,} bytes of a PostgreSQL row", False))
    return found
