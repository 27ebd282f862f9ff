"""Fields stored apart (FieldType.stored_apart): where the read path and the write pipeline
call their types' hooks.

Such a field has no column on its entity's table (a many-to-many's junction table, child
records saved with their parent). The read path loads the values of a whole page of
records with one `load_apart` call per field (never one per record), after the records'
own statement; the write pipeline merges a client's value with the stored one
(`merge_apart`), checks the batch (`check_apart`) in its validate step and saves each
changed value (`save_apart`) in the write's transaction, after the record's row exists.
Nothing here knows a type: the types do the work, through a `Store` (the contract's
`ApartStore`) over the request's connection and the principal's view of other entities.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import ApartStore, CoercionError

from .compiled import CompiledEntity, CompiledField
from .constraints import existing_ids, member_of
from .errors import ValidationFailed
from .results import Record

__all__ = ["Store", "apart_fields", "check", "load_into", "merge", "save"]

#: Which of some ids of an entity the principal may read.
Visible = Callable[[str, set[int]], set[int]]
#: The titles of some records of an entity, by id (those the principal may read).
Titles = Callable[[str, set[int]], dict[int, str]]


class Store(ApartStore):
    """The `ApartStore` the hooks get: `tables` are the revision's (storage/tables.py
    EntityTables: entity tables by name, and `apart(entity, field, part)`)."""

    def __init__(self, conn: sa.Connection, tables: Any, visible: Visible, titles: Titles | None = None,
                 entities: Mapping[str, CompiledEntity] | None = None,
                 writer: Callable[[], Any] | None = None):
        self._conn = conn
        self._tables = tables
        self._visible = visible
        self._titles = titles
        self._entities = entities or {}
        self._writer = writer

    @property
    def conn(self) -> sa.Connection:
        return self._conn

    @property
    def titled(self) -> bool:
        return self._titles is not None

    def table(self, entity: str) -> sa.Table:
        found: sa.Table = self._tables[entity]
        return found

    def apart_table(self, entity: str, field: str, part: str = "") -> sa.Table:
        found: sa.Table = self._tables.apart(entity, field, part)
        return found

    def visible_ids(self, entity: str, ids: Iterable[int]) -> set[int]:
        wanted = set(ids)
        return self._visible(entity, wanted) if wanted else set()

    def titles(self, entity: str, ids: Iterable[int]) -> dict[int, str]:
        wanted = set(ids)
        if not wanted or self._titles is None:
            return {}
        return self._titles(entity, wanted)


    def entity(self, name: str) -> CompiledEntity | None:
        return self._entities.get(name)

    def writer(self) -> Any:
        if self._writer is None:
            raise RuntimeError("this store reads; it has no writer")
        return self._writer()


def apart_fields(ce: CompiledEntity) -> list[CompiledField]:
    """The entity's fields stored apart, in field order (built once per compiled entity)."""
    found: list[CompiledField] | None = ce.__dict__.get("_slate_apart")
    if found is None:  # kept on the (frozen) compiled entity, as a cached_property would be
        found = ce.__dict__.setdefault("_slate_apart",
                                       [f for f in ce.fields.values() if f.type.stored_apart])
    return found


def load_into(store: Store, ce: CompiledEntity, records: Sequence[Record]) -> None:
    """Each record's values of the fields stored apart: one `load_apart` per field for all."""
    fields = apart_fields(ce)
    if not fields or not records:
        return
    ids = [r.id for r in records]
    for compiled in fields:
        loaded = compiled.type.load_apart(store, compiled.field, ce.name, ids)
        blank = compiled.type.apart_blank(compiled.field)
        for record in records:
            record.values[compiled.name] = loaded.get(record.id, blank)


def load_values(store: Store, ce: CompiledEntity, record_id: int) -> dict[str, Any]:
    """The values stored apart of one record (a write's `before`)."""
    out = {}
    for compiled in apart_fields(ce):
        loaded = compiled.type.load_apart(store, compiled.field, ce.name, [record_id])
        out[compiled.name] = loaded.get(record_id, compiled.type.apart_blank(compiled.field))
    return out


def merge(ce: CompiledEntity, before: Mapping[str, Any] | None, given: Mapping[str, Any],
          values: dict[str, Any], errors: Mapping[str, list[str]]) -> None:
    """The values to save of the fields stored apart: a client's value merged with the stored
    one (`merge_apart`), a blank (None) made the type's blank value."""
    for compiled in apart_fields(ce):
        name = compiled.name
        blank = compiled.type.apart_blank(compiled.field)
        stored = blank if before is None else before.get(name, blank)
        if name in given and name not in errors:
            values[name] = compiled.type.merge_apart(stored, values.get(name), compiled.field)
        if values.get(name) is None:
            values[name] = stored if name not in given else blank


def check(store: Store, ce: CompiledEntity, drafts: Sequence[Any], changes: Sequence[set[str]]) -> None:
    """The validate step's part: each changed value of each field checked for the batch at once."""
    for compiled in apart_fields(ce):
        name = compiled.name
        which = [d for d, changed in zip(drafts, changes, strict=True)
                 if name in changed and name not in d.errors]
        if not which:
            continue
        problems = compiled.type.check_apart(store, compiled.field, ce.name, [d.values[name] for d in which])
        for draft, messages in zip(which, problems, strict=True):
            for message in messages:
                draft.refuse(name, message)


def save(store: Store, ce: CompiledEntity, record_id: int, before: Mapping[str, Any] | None,
         values: Mapping[str, Any], changed: Iterable[str]) -> None:
    """The write step's part, after the record's row is written: each changed value saved."""
    changed = set(changed)
    for compiled in apart_fields(ce):
        if compiled.name not in changed:
            continue
        blank = compiled.type.apart_blank(compiled.field)
        old = blank if before is None else before.get(compiled.name, blank)
        try:
            compiled.type.save_apart(store, compiled.field, ce.name, record_id, old,
                                     values.get(compiled.name))
        except CoercionError as refused:  # a hook refuses the value (a line the child refused)
            raise ValidationFailed({compiled.name: [str(refused)]}) from None


def visible_in(conn: sa.Connection, entities: Mapping[str, CompiledEntity],
               where: Callable[[CompiledEntity], sa.ColumnElement[bool] | None]) -> Visible:
    """A `Visible` over `entities` with the read condition `where` (None: all rows)."""
    def visible(entity: str, ids: set[int]) -> set[int]:
        ce = entities.get(entity)
        if ce is None:
            return set()
        condition = where(ce)
        if condition is None:
            return existing_ids(conn, ce.table, ids)
        return set(conn.execute(sa.select(ce.table.c.id).where(
            member_of(conn, ce.table.c.id, sorted(ids)), condition)).scalars())
    return visible
