"""Step 10 for new records: their ids, and one bulk write per table (the records, their
history rows, their stage visits) in the write's transaction.

A batch of a thousand records spent most of its time in per-row machinery, not in the
database: SQLAlchemy builds a parameter dictionary per row and, for INSERT … RETURNING,
one statement of thousands of parameters, which psycopg then takes apart in Python. So:

- ids are taken before the write: on SQLite the next ids after the largest (the write
  lock, taken at BEGIN IMMEDIATE, keeps every other writer out until the commit; the
  table has no AUTOINCREMENT, so these are the ids SQLite would give); on PostgreSQL
  `nextval` of the table's own sequence, for the whole batch in one query;
- rows are tuples in a fixed column order, each value put in the database's form by the
  column type's own bind processor (what SQLAlchemy would apply), then written by
  executemany of the INSERT SQLAlchemy compiled (SQLite) or by COPY (PostgreSQL).

A writer is made once per table, column list and dialect, and kept with the revision.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldType

from ..storage import system
from ..storage.engine import timeout_named
from .compiled import CompiledEntity

Encoder = Callable[[Any], Any]
#: Rows from which PostgreSQL gets them by COPY (fewer: an executemany INSERT).
COPY_FROM = 10
#: Parameters one SQLite statement may take at the least (SQLITE_MAX_VARIABLE_NUMBER before 3.32).
SQLITE_VARIABLES = 999


class TableWriter:
    """Rows of `columns` (sequences in that order) into `table`, by the bulk path of the
    dialect. `write` takes rows of Python values; `write_encoded` rows already in the
    database's form (`encoders`: by column, for the columns whose type has one)."""

    def __init__(self, table: sa.Table, columns: Sequence[str], dialect: sa.Dialect):
        self.table = table
        self.columns = tuple(columns)
        self.copy = dialect.name == "postgresql"
        self.encoders: dict[str, Encoder] = {}
        for name in self.columns:
            if (encoder := _encoder(table.c[name], dialect)) is not None:
                self.encoders[name] = encoder
        self._positions = [(i, self.encoders[name]) for i, name in enumerate(self.columns)
                           if name in self.encoders]
        compiled = table.insert().compile(dialect=dialect, column_keys=list(self.columns))
        if set(compiled.positiontup or compiled.binds) - set(self.columns):
            raise ValueError(f"{table.name}: the compiled INSERT takes more than {self.columns}")
        #: The compiled INSERT, for executemany; its parameters by position or by name.
        self._insert = str(compiled)
        order = [self.columns.index(name) for name in compiled.positiontup or ()]
        self._positional = bool(compiled.positional)
        self._in_order = order == list(range(len(self.columns)))
        self._reorder: Callable[[Sequence[Any]], tuple[Any, ...]] = (
            operator.itemgetter(*order) if len(order) > 1 else lambda row: tuple(row[i] for i in order))
        #: SQLite: INSERT … VALUES (…), (…) of `_rows_per_statement` rows: a full-text index's
        #: trigger writes its pending words at the end of each statement, so one statement per
        #: row (executemany) made a segment per row: measured, 19,000 rows/s against 44,000.
        self._many_values: str | None = None
        self._rows_per_statement = max(1, min(50, SQLITE_VARIABLES // max(1, len(self.columns))))
        head, values = self._insert.rsplit(" VALUES ", 1)
        if not self.copy and self._positional and values.startswith("(") and values.endswith(")"):
            self._many_values = head + " VALUES " + ", ".join([values] * self._rows_per_statement)
            self._values_group = values
            self._head = head
        if self.copy:
            from psycopg import sql

            target = [table.schema, table.name] if table.schema else [table.name]
            self._copy_statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(*target), sql.SQL(", ").join(sql.Identifier(c) for c in self.columns))

    def write(self, conn: sa.Connection, rows: Sequence[Sequence[Any]]) -> None:
        self.write_encoded(conn, self.encode(rows))

    def encode(self, rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
        out: list[Sequence[Any]] = []
        for row in rows:
            values = list(row)
            for i, encode in self._positions:
                value = values[i]
                if value is not None:
                    values[i] = encode(value)
            out.append(values)
        return out

    def write_encoded(self, conn: sa.Connection, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.copy and len(rows) >= COPY_FROM:  # fewer rows: a COPY costs more round trips
            self._copy(conn, rows)
        elif self._positional:
            # The driver wants tuples (SQLAlchemy passes them on as they are).
            ordered = [tuple(row) for row in rows] if self._in_order else [self._reorder(row) for row in rows]
            if self._many_values is None or len(ordered) == 1:
                conn.exec_driver_sql(self._insert, ordered)
                return
            self._write_many_values(conn, ordered)
        else:
            conn.exec_driver_sql(self._insert, [dict(zip(self.columns, row, strict=True)) for row in rows])

    def _write_many_values(self, conn: sa.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        step = self._rows_per_statement
        full = len(rows) - len(rows) % step
        if full:
            assert self._many_values is not None
            conn.exec_driver_sql(self._many_values, [
                tuple(v for row in rows[i:i + step] for v in row) for i in range(0, full, step)])
        if rest := rows[full:]:
            statement = self._head + " VALUES " + ", ".join([self._values_group] * len(rest))
            conn.exec_driver_sql(statement, tuple(v for row in rest for v in row))

    def _copy(self, conn: sa.Connection, rows: Sequence[Sequence[Any]]) -> None:
        """COPY … FROM STDIN on the connection's own transaction. The driver's errors are
        raised as SQLAlchemy's (a unique or foreign-key refusal as IntegrityError), like
        those of any other statement of the write, and a COPY the statement timeout stopped
        as StatementTimedOut, as the engine names any other statement's (its listener does
        not see this driver call), so the API answers 503, not 500."""
        import psycopg

        driver: Any = conn.connection.driver_connection
        try:
            with driver.cursor() as cursor, cursor.copy(self._copy_statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as error:
            named = timeout_named(error, conn.get_execution_options())
            if named is not None:
                raise named from error
            statement = self._copy_statement.as_string(driver)
            raise sa.exc.DBAPIError.instance(statement, None, error, psycopg.Error) from None


def _encoder(column: sa.Column[Any], dialect: sa.Dialect) -> Encoder | None:
    encoder: Encoder | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    return encoder


def new_ids(conn: sa.Connection, table: sa.Table, count: int) -> list[int]:
    """`count` ids for new rows of `table`, ascending (see the module's doc)."""
    if conn.dialect.name == "postgresql":
        sequence = sa.func.pg_get_serial_sequence(conn.dialect.identifier_preparer.format_table(table), "id")
        numbers = sa.select(sa.func.nextval(sequence)).select_from(sa.func.generate_series(1, count))
        return sorted(int(i) for i in conn.execute(numbers).scalars())
    if conn.dialect.name != "sqlite":
        raise NotImplementedError(f"new ids on {conn.dialect.name}")
    largest = conn.execute(sa.select(sa.func.max(table.c.id))).scalar()
    first = (largest or 0) + 1
    return list(range(first, first + count))


#: The system columns of an entity's table, as a new record's row starts.
SYSTEM_COLUMNS = ("id", "created_at", "updated_at", "created_by", "updated_by", "owner", "version")
HISTORY_COLUMNS = ("entity", "record_id", "version", "action", "changed_at", "changed_by", "changes",
                   "token_id")
VISIT_COLUMNS = ("entity", "record_id", "field", "stage", "entered_at", "entered_by")


class EntityInsert:
    """How one entity's new records become rows of its table, of the history and of the
    stage history (made once per entity and revision)."""

    def __init__(self, ce: CompiledEntity, dialect: sa.Dialect):
        self.ce = ce
        #: (field, compiled, whether its value is its one column's value as it is)
        self._fields = [(name, compiled, len(compiled.columns) == 1 and compiled.columns[0][0] == ""
                         and type(compiled.type).to_columns is FieldType.to_columns)
                        for name, compiled in ce.fields.items()]
        columns = [*SYSTEM_COLUMNS, *(column for f in ce.fields.values() for _, column in f.columns)]
        self.records = TableWriter(ce.table, columns, dialect)
        self.history = TableWriter(system.history, HISTORY_COLUMNS, dialect)
        self.visits = TableWriter(system.stage_history, VISIT_COLUMNS, dialect)

    def write(self, conn: sa.Connection, prepared: Sequence[Mapping[str, Any]], user: int | None,
              now: dt.datetime, token_id: int | None = None) -> tuple[list[int], list[dict[str, Any]]]:
        """Insert the records (`prepared`: each one's values, numbered), their history rows and
        stage visits; the new ids, in the order of `prepared`, and the history rows.
        `token_id`: the API token the write came through, which the history names."""
        ce = self.ce
        ids = new_ids(conn, ce.table, len(prepared))
        encoders = self.records.encoders
        moment = encoders["created_at"](now) if "created_at" in encoders else now
        plan = [(name, compiled, direct, encoders.get(compiled.column) if direct else None)
                for name, compiled, direct in self._fields]
        rows = []
        history: list[dict[str, Any]] = []
        visits = []
        fields = ce.fields
        for record_id, values in zip(ids, prepared, strict=True):
            row: list[Any] = [record_id, moment, moment, user, user, values.get("owner", user), 1]
            for name, compiled, direct, encode in plan:
                value = values.get(name)
                if not direct:
                    row.extend(self._encoded(compiled.to_row(value)))
                elif encode is None or value is None:
                    row.append(value)
                else:
                    row.append(encode(value))
            rows.append(row)
            history.append({"entity": ce.name, "record_id": record_id, "version": 1, "action": "create",
                            "changed_at": now, "changed_by": user, "token_id": token_id,
                            "changes": {n: [None, fields[n].to_json(v)] for n, v in values.items()
                                        if v is not None and n in fields}})
            visits += [(ce.name, record_id, f, values[f], now, user)
                       for f in ce.pipelines if values.get(f) is not None]
        self.records.write_encoded(conn, rows)
        self._write_history(conn, history)
        self.visits.write(conn, visits)
        return ids, history

    def _encoded(self, columns: Mapping[str, Any]) -> list[Any]:
        encoders = self.records.encoders
        return [value if value is None or column not in encoders else encoders[column](value)
                for column, value in columns.items()]

    def _write_history(self, conn: sa.Connection, history: Sequence[Mapping[str, Any]]) -> None:
        encoders = self.history.encoders
        changes = encoders.get("changes")
        at = encoders["changed_at"](history[0]["changed_at"]) if "changed_at" in encoders else None
        self.history.write_encoded(conn, [
            (h["entity"], h["record_id"], h["version"], h["action"], h["changed_at"] if at is None else at,
             h["changed_by"], h["changes"] if changes is None else changes(h["changes"]), h["token_id"])
            for h in history])
