"""An entity's composite unique constraints, as errors on the fields they cover.

An entity's `unique: [[a, b]]` is a unique index over the fields' columns. The write path
checks a record before writing it (`composite_unique_conflicts`, which names the other
record, and serves validate-on-change too); two writers can still both pass that check, and
the index then refuses the second: `composite_unique_errors` turns that refusal into a 422
naming the fields of the combination instead of a 500.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.model import CompositeKey

from ..storage.tables import composite_index_name
from .compiled import CompiledEntity

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


def composite_unique_conflicts(conn: sa.Connection, ce: CompiledEntity, values: Mapping[str, Any],
                               record_id: int | None, changed: Collection[str]) -> dict[str, list[str]]:
    """Errors for each composite unique of `ce` whose combination `values` (the record as it
    would be saved) shares with another record, for combinations with a changed field. A
    blank value in any field of a combination never conflicts, as in the index."""
    errors: dict[str, list[str]] = {}
    for composite in ce.entity.unique:
        fields = [ce.fields[name] for name in composite.fields if name in ce.fields]
        if not set(composite.fields) & set(changed) or len(fields) != len(composite.fields):
            continue
        if any(values.get(compiled.name) is None for compiled in fields):
            continue
        stored: dict[str, Any] = {}
        for compiled in fields:
            stored.update(compiled.to_row(values[compiled.name]))
        if any(value is None for value in stored.values()):
            continue
        other = conn.execute(sa.select(ce.table.c.id).where(
            *(ce.table.c[column] == value for column, value in stored.items()),
            ce.table.c.id != (record_id or 0)).limit(1)).scalar()
        if other is not None:
            message = f"{ce.name} {other} already has this combination of {_labels(ce, composite)}"
            for name in composite.fields:
                errors.setdefault(name, []).append(message)
    return errors


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
