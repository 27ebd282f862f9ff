"""Constraints a batch of records is checked against before it is written: references and
owners that exist, unique values and combinations; and a unique index's refusal in a race,
as errors on the fields it covers.

An entity's `unique: [[a, b]]` is a unique index over the fields' columns, and a field's
`unique: true` one over its column. The write path checks records before writing them
(`UniqueValues`, which names the other record, once per batch, and serves validate-on-change
too); two writers can still both pass that check, and the index then refuses the second:
`composite_unique_errors` turns that refusal into a 422 naming the fields of the combination
instead of a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from slatecrm.metamodel.model import CompositeKey

from ..storage.tables import composite_index_name
from .compiled import CompiledEntity, CompiledField

#: SQLite's message: "UNIQUE constraint failed: x_member.contact, x_member.campaign".
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<columns>.+)$", re.MULTILINE)


def composite_unique_errors(ce: CompiledEntity,
                            error: sa.exc.IntegrityError) -> dict[str, list[str]] | None:
    """The errors for a violation of one of `ce`'s composite unique constraints, keyed by
    each field of the combination, or None when `error` is about something else."""
    violated = _violated(ce, error)
    if violated is None:
        return None
    message = f"another {ce.entity.label} already has this combination of {_labels(ce, violated)}"
    return {name: [message] for name in violated.fields}


#: Values looked up by one statement: IN lists this long stay well inside SQLite's limit on
#: parameters (32,766); PostgreSQL gets them as one array parameter.
CHUNK = 5_000


def member_of(conn: sa.Connection, column: sa.ColumnElement[Any],
              values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """`column IN (values)`, with the values as one parameter where the database allows:
    psycopg caches no statement of over 50 parameters and takes a thousand-value IN list
    apart in Python each time it is sent, and SQLAlchemy renders and binds each value of
    an IN list one by one. PostgreSQL: `column = ANY(array)`; SQLite, for ids: `column IN
    (SELECT value FROM json_each(text))`; other values on SQLite: an IN list."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    if conn.dialect.name == "sqlite" and all(type(v) is int for v in values):
        listed = sa.func.json_each(sa.bindparam(None, json.dumps(list(values)), type_=sa.String()))
        return column.in_(sa.select(listed.table_valued("value").c.value).scalar_subquery())
    return column.in_(list(values))


def existing_ids(conn: sa.Connection, table: sa.Table, ids: Iterable[int]) -> set[int]:
    """Which of `ids` are ids of `table`'s rows (one query per CHUNK ids)."""
    wanted = sorted(set(ids))
    found: set[int] = set()
    for start in range(0, len(wanted), CHUNK):
        found.update(conn.execute(sa.select(table.c.id).where(
            member_of(conn, table.c.id, wanted[start:start + CHUNK]))).scalars())
    return found


#: The ids of the stored records that hold a value (or combination), by its stored form.
_Holders = dict[tuple[Any, ...], list[int]]


def _stored(conn: sa.Connection, table: sa.Table, columns: Sequence[sa.Column[Any]],
            keys: set[tuple[Any, ...]]) -> _Holders:
    """The ids of the rows holding each of `keys` (values of `columns`), by key."""
    out: _Holders = {}
    wanted = list(keys)
    size = max(1, CHUNK // len(columns))
    for start in range(0, len(wanted), size):
        chunk = wanted[start:start + size]
        if len(columns) == 1:
            condition = member_of(conn, columns[0], [key[0] for key in chunk])
        else:
            condition = sa.tuple_(*columns).in_(chunk)
        for row in conn.execute(sa.select(*columns, table.c.id).where(condition)):
            out.setdefault(tuple(row[:-1]), []).append(row[-1])
    return out


class UniqueValues:
    """Which records hold the unique values and combinations a batch writes: the stored
    ones, looked up once for the whole batch (one query per unique field or combination
    and CHUNK values, not one per record), and the batch's own, so that two records of one
    batch with the same value are refused by name like a clash with a stored record (the
    index would refuse the batch without naming either).

    `batch`: per record, the values as they will be saved and the names it changes (a
    value or combination is checked only when one of its fields changes). A blank value,
    or a blank in any field of a combination, never clashes, as in the index."""

    def __init__(self, conn: sa.Connection, ce: CompiledEntity,
                 batch: Sequence[tuple[Mapping[str, Any], Collection[str]]]):
        self.ce = ce
        table = ce.table
        self._fields: dict[str, _Holders] = {}
        for name, compiled in ce.fields.items():
            if compiled.field.unique:
                keys = {key for values, changed in batch if name in changed
                        and (key := _key([compiled], values)) is not None}
                self._fields[name] = _stored(conn, table, [table.c[compiled.column]], keys) if keys else {}
        self._combinations: list[tuple[CompositeKey, list[CompiledField], _Holders]] = []
        for composite in ce.entity.unique:
            fields = [ce.fields[name] for name in composite.fields if name in ce.fields]
            if len(fields) != len(composite.fields):
                continue
            keys = {key for values, changed in batch if set(composite.fields) & set(changed)
                    and (key := _key(fields, values, every_column=True)) is not None}
            columns = [table.c[column] for compiled in fields for _, column in compiled.columns]
            stored = _stored(conn, table, columns, keys) if keys else {}
            self._combinations.append((composite, fields, stored))
        #: (field or combination, key) → the index of the first record of the batch with it.
        self._first: dict[tuple[Any, tuple[Any, ...]], int] = {}

    def field_clash(self, index: int, record_id: int | None, name: str, value: Any) -> str | None:
        """Why the value of the unique field `name` of the batch's record `index` is refused,
        or None."""
        compiled = self.ce.fields[name]
        key = _key([compiled], {name: value})
        if key is None or name not in self._fields:
            return None
        others = [i for i in self._fields[name].get(key, ()) if i != (record_id or 0)]
        if others:
            return f"is already used by {self.ce.name} {min(others)}"
        first = self._first.setdefault((name, key), index)
        if first != index:
            return f"is already used by record [{first}] of this batch"
        return None

    def combination_clashes(self, index: int, record_id: int | None, values: Mapping[str, Any],
                            changed: Collection[str]) -> dict[str, list[str]]:
        """Errors, by field, for each unique combination of the batch's record `index` that
        another record holds (only combinations with a changed field)."""
        errors: dict[str, list[str]] = {}
        for composite, fields, stored in self._combinations:
            if not set(composite.fields) & set(changed):
                continue
            key = _key(fields, values, every_column=True)
            if key is None:
                continue
            others = [i for i in stored.get(key, ()) if i != (record_id or 0)]
            labels = _labels(self.ce, composite)
            message = None
            if others:
                message = f"{self.ce.name} {min(others)} already has this combination of {labels}"
            elif (first := self._first.setdefault((composite.fields, key), index)) != index:
                message = f"record [{first}] of this batch already has this combination of {labels}"
            if message is not None:
                for name in composite.fields:
                    errors.setdefault(name, []).append(message)
        return errors


def _key(fields: Sequence[CompiledField], values: Mapping[str, Any], *,
         every_column: bool = False) -> tuple[Any, ...] | None:
    """The stored form of the fields' values (their main columns; `every_column`: all of
    them), or None when any of it is blank."""
    key: list[Any] = []
    for compiled in fields:
        value = values.get(compiled.name)
        if value is None:
            return None
        row = compiled.to_row(value)
        key += row.values() if every_column else [row[compiled.column]]
    if any(part is None for part in key):
        return None
    return tuple(key)


def _labels(ce: CompiledEntity, composite: CompositeKey) -> str:
    labels = [ce.fields[name].field.label if name in ce.fields else name for name in composite.fields]
    return f"{', '.join(labels[:-1])} and {labels[-1]}"


def _violated(ce: CompiledEntity, error: sa.exc.IntegrityError) -> CompositeKey | None:
    table = ce.table.name
    diag = getattr(error.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None)  # PostgreSQL (psycopg)
    text = str(error.orig)
    match = _SQLITE_UNIQUE.search(text)
    failed = {c.strip() for c in match.group("columns").split(",")} if match else set()
    for composite in ce.entity.unique:
        if constraint is not None:
            if constraint == composite_index_name(table, composite.fields, unique=True):
                return composite
            continue
        columns = {f"{table}.{column}" for name in composite.fields if name in ce.fields
                   for _, column in ce.fields[name].columns}
        if failed and failed == columns:
            return composite
    return None
