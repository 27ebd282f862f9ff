"""Auto-number sequences (`slate_sequence`): one row per numbered field, holding the next
number to give.

Numbers are taken in the write's transaction, so a rolled-back create gives its numbers
back, and concurrent creates queue on the row's lock. The first create of a field must
not race on creating the row: when the UPDATE … RETURNING that takes the numbers finds no
row, the row is inserted unless present (ON CONFLICT DO NOTHING, on both databases; on
PostgreSQL it waits for a concurrent insert of it to commit) and the UPDATE runs again.
Without that, two first creates on PostgreSQL both found no row and both inserted it,
and one failed with a 500 (`UniqueViolation pk_slate_sequence`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .system import sequences


def take(conn: sa.Connection, entity: str, field: str, start: int, count: int) -> int:
    """The first of `count` consecutive numbers for `entity.field` (`start` when the
    sequence is new), taken in `conn`'s transaction."""
    key = (sequences.c.entity == entity) & (sequences.c.field == field)
    advance = sequences.update().where(key).values(next_value=sequences.c.next_value + count) \
        .returning(sequences.c.next_value)
    taken = conn.execute(advance).scalar()
    if taken is None:  # the field's first record: create the row unless another write just did
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(sequences).values(entity=entity, field=field, next_value=start)
                     .on_conflict_do_nothing(index_elements=[sequences.c.entity, sequences.c.field]))
        taken = conn.execute(advance).scalar_one()
    return int(taken) - count
