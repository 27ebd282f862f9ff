"""Whether a database was made by an older SlateCRM and needs `slatecrm init` before it is
served: a server over it would fail on the first request that touches the old part (a
PostgreSQL search over an index in the earlier layout is a 500), so it refuses to start
instead, naming what is old and the command that upgrades it.

`slatecrm init` is the upgrade: it creates the system tables a newer SlateCRM added, and its
plan rebuilds a search index in an earlier layout (storage/plan.py), inside the revision
lock. It also re-creates PostgreSQL indexes made before non-unique ones ended with the id
(tables.outdated_indexes); those are not named here, since they still serve, only slower,
and a server over them must start. Upgrading at start-up was not chosen: several workers
start at once, and a rebuild at a million rows takes seconds to minutes, which belongs in a
command someone runs on purpose, not in a server's start.
"""

from __future__ import annotations

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from . import fulltext, identity_generation
from .revisions import NotInitialised, current_metamodel
from .system import is_initialised, system_metadata


class OutdatedDatabase(NotInitialised):
    """The database needs `slatecrm init` first; the message says why, for people."""


def outdated_parts(conn: sa.Connection, registry: FieldTypeRegistry) -> list[str]:
    """What an older SlateCRM left in an earlier shape: system tables or their columns that
    are missing, and search indexes in an earlier layout. Empty for a current database
    (or one not initialised at all: that has its own message)."""
    if not is_initialised(conn):
        return []
    tables = system_metadata.sorted_tables
    # One query on PostgreSQL (an app starts per test, per worker).
    columns = sa.inspect(conn).get_multi_columns(filter_names=[t.name for t in tables])
    held = {name: {c["name"] for c in found} for (_, name), found in columns.items()}
    found: list[str] = []
    for table in tables:
        if table.name not in held:
            found.append(f"table {table.name} is missing")
            continue
        missing = [c.name for c in table.columns if c.name not in held[table.name]]
        if missing:
            found.append(f"table {table.name} lacks {', '.join(missing)}")
    found += [f"the identity generation's trigger {name} is missing"
              for name in identity_generation.missing(conn)]
    _, metamodel = current_metamodel(conn)
    old = fulltext.outdated(conn, fulltext.wanted_search_indexes(metamodel, registry).values())
    found += [f"the search index of {entity} is in an earlier layout" for entity in sorted(old)]
    return found


def check_current(conn: sa.Connection, registry: FieldTypeRegistry) -> None:
    """OutdatedDatabase when `outdated_parts` finds anything."""
    parts = outdated_parts(conn, registry)
    if parts:
        url = conn.engine.url.render_as_string(hide_password=True)
        raise OutdatedDatabase(f"this database was made by an older SlateCRM ({'; '.join(parts)}); "
                               f"run `slatecrm init --database {url}` to upgrade it")
