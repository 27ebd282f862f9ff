"""A composite unique constraint the database enforced, as errors on the fields it covers.

An entity's `unique: [[a, b]]` is a unique index over the fields' columns. Two writers can
both pass any check made before the write; the index then refuses the second, and this
turns that refusal into a 422 naming the fields of the combination instead of a 500.
"""

from __future__ import annotations

import re

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
    fields = [ce.fields[name].field.label if name in ce.fields else name for name in violated.fields]
    message = (f"another {ce.entity.label} already has this combination of "
               f"{', '.join(fields[:-1])} and {fields[-1]}")
    return {name: [message] for name in violated.fields}


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
