"""Metamodel revisions: every applied change, numbered, with its plan, source and time."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator
from contextlib import contextmanager
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


@dataclass(frozen=True)
class Entry:
    """A revision as a history lists it: who, when, what, without its metamodel (which a
    list of many revisions would fetch and decode for nothing)."""

    id: int
    created_at: dt.datetime
    source: str
    author: str
    summary: str


def entries(conn: sa.Connection, *, before: int | None = None, limit: int = 50) -> list[Entry]:
    """Revisions newest first, `limit` of them, below `before` when given."""
    query = sa.select(revisions.c.id, revisions.c.created_at, revisions.c.source, revisions.c.author,
                      revisions.c.summary).order_by(revisions.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(revisions.c.id < before)
    return [Entry(r.id, r.created_at, r.source, r.author, r.summary) for r in conn.execute(query)]


def applied_plan(conn: sa.Connection, number: int) -> tuple[Entry, dict[str, Any]] | None:
    """Revision `number` with the plan that was applied to make it (None: no such revision)."""
    c = revisions.c
    row = conn.execute(sa.select(c.id, c.created_at, c.source, c.author, c.summary, c.plan)
                       .where(c.id == number)).first()
    if row is None:
        return None
    return Entry(row.id, row.created_at, row.source, row.author, row.summary), dict(row.plan)


def _revision(row: Any) -> Revision:
    return Revision(row.id, row.created_at, row.source, row.author, row.summary,
                    row.platform_version, row.plan, _metamodel(row))


def _metamodel(row: Any) -> Metamodel:
    try:
        return Metamodel.from_dict(row.metamodel)
    except MetamodelFormatError as error:
        raise MetamodelFormatError(f"revision {row.id} (stored by SlateCRM {row.platform_version}): "
                                   f"{error}") from None


def current_metamodel(conn: sa.Connection) -> tuple[int, Metamodel]:
    """The head revision's number and metamodel: what every process reads at start-up and
    when the head moves, so without the revision's plan (for a large install, another
    tenth of the metamodel's size to fetch and decode)."""
    if not is_initialised(conn):
        raise NotInitialised("this database has no SlateCRM tables yet: run `slatecrm init`")
    with _cycle_collection_paused():
        row = conn.execute(sa.select(revisions.c.id, revisions.c.platform_version, revisions.c.metamodel)
                           .order_by(revisions.c.id.desc()).limit(1)).first()
        return (row.id, _metamodel(row)) if row else (0, Metamodel())


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """Python's cycle collector paused while a stored metamodel is decoded and parsed.

    Both make tens of thousands of objects that all stay alive (no garbage, no cycles),
    and each batch of new objects sets off a collection that walks them again: half the
    CPU time of reading a 200-entity revision went there. Reference counting still frees
    what is dropped meanwhile. The collector is switched back on only if it was on, so
    two threads reading at once leave it on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
