"""Metamodel revisions: every applied change, numbered, with its plan, source and time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.model import Metamodel, MetamodelFormatError

from .system import is_initialised, revisions


@dataclass(frozen=True)
class Revision:
    id: int
    created_at: dt.datetime
    source: str
    author: str
    summary: str
    platform_version: str
    plan: dict[str, Any]
    metamodel: Metamodel


class NotInitialised(Exception):
    """The database has no SlateCRM tables yet (run `slatecrm init`)."""


def head_id(conn: sa.Connection) -> int:
    """The number of the current revision (0 before the first). One cheap query."""
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(revisions.c.id), 0))).scalar_one())


def current(conn: sa.Connection) -> Revision | None:
    if not is_initialised(conn):
        raise NotInitialised("this database has no SlateCRM tables yet: run `slatecrm init`")
    row = conn.execute(sa.select(revisions).order_by(revisions.c.id.desc()).limit(1)).first()
    return _revision(row) if row else None


def get(conn: sa.Connection, number: int) -> Revision | None:
    """Revision `number`, or None if there is no such revision."""
    if not is_initialised(conn):
        raise NotInitialised("this database has no SlateCRM tables yet: run `slatecrm init`")
    row = conn.execute(sa.select(revisions).where(revisions.c.id == number)).first()
    return _revision(row) if row else None


def history(conn: sa.Connection) -> list[Revision]:
    if not is_initialised(conn):
        raise NotInitialised("this database has no SlateCRM tables yet: run `slatecrm init`")
    rows = conn.execute(sa.select(revisions).order_by(revisions.c.id)).all()
    return [_revision(r) for r in rows]


def _revision(row: Any) -> Revision:
    try:
        metamodel = Metamodel.from_dict(row.metamodel)
    except MetamodelFormatError as error:
        raise MetamodelFormatError(f"revision {row.id} (stored by SlateCRM {row.platform_version}): "
                                   f"{error}") from None
    return Revision(row.id, row.created_at, row.source, row.author, row.summary,
                    row.platform_version, row.plan, metamodel)


def current_metamodel(conn: sa.Connection) -> tuple[int, Metamodel]:
    revision = current(conn)
    return (revision.id, revision.metamodel) if revision else (0, Metamodel())
