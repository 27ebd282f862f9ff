"""The people records belong to, as pages show them: display names by user id.

Users live in the platform's own table (`slate_user`); records name them in their `owner`,
`created_by` and `updated_by` columns and history in `changed_by`.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..storage import system
from .service import RecordsService

#: Users offered in an owner select.
MAX_LISTED = 500


def everyone(records: RecordsService) -> list[tuple[int, str]]:
    users = system.users
    with records.reading() as reader:
        rows = reader.conn.execute(sa.select(users.c.id, users.c.display_name)
                            .order_by(users.c.display_name, users.c.id).limit(MAX_LISTED)).all()
    return [(row.id, row.display_name) for row in rows]
