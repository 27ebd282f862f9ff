"""How the write pipeline (records/pipeline.py) claims, attaches and releases uploaded files.

Three hooks, for every field whose type `holds_files`:

- before save: each file a write gives that the record did not hold already must be an
  upload of the writer (any for the system: imports, workflows) that no record holds, and
  fit the field (`check_file`: size, accepted types, an image); the value gets the file's
  name and type from the file table (a client's are never believed).
- written (in the write's transaction): the files are attached to (entity, record, field),
  only if still free, so two writes cannot both take one upload; the files an update
  removed, and every file of a deleted record (cascades too), are marked released.
- after commit: the released files are deleted (bytes, thumbnails, row). A write rolled back
  never gets there and its release is rolled back with it, so its files are kept.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from slatecrm.metamodel.rules import RuleContext

from ..records.errors import ValidationFailed
from ..storage.system import files as file_table
from .store import FileStore

if TYPE_CHECKING:
    from ..records.compiled import CompiledEntity, CompiledField
    from ..records.pipeline import Draft, Hooks, Saved, WriteRequest


#: The file fields of recently seen compiled entities, by identity (a bulk create asks once
#: per record; a compiled entity is frozen, so its fields never change).
_FIELDS: dict[int, tuple[Any, list[tuple[str, CompiledField]]]] = {}


def file_fields(ce: CompiledEntity | None) -> list[tuple[str, CompiledField]]:
    if ce is None:
        return []
    seen = _FIELDS.get(id(ce))
    if seen is not None and seen[0] is ce:
        return seen[1]
    found = [(name, compiled) for name, compiled in ce.fields.items() if compiled.type.holds_files]
    if len(_FIELDS) > 256:
        _FIELDS.clear()
    _FIELDS[id(ce)] = (ce, found)
    return found


def _ids_of_json(value: Any) -> list[int]:
    """The file ids of a value as history keeps it (JSON: a file or a list of them)."""
    items = value if isinstance(value, list) else [value]
    return [item["id"] for item in items if isinstance(item, Mapping) and isinstance(item.get("id"), int)]


class FileAttachments:
    """The pipeline hooks of one records service (`register` adds them)."""

    def __init__(self, store: Callable[[], FileStore],
                 entities: Callable[[], Mapping[str, CompiledEntity]]):
        self.store = store
        self.entities = entities
        self._released = threading.local()

    def register(self, hooks: Hooks) -> None:
        hooks.before_save.insert(0, self.before_save)
        hooks.written.insert(0, self.written)
        hooks.after_commit.insert(0, self.after_commit)

    # --- before save: claim ---------------------------------------------------------------
    def before_save(self, conn: sa.Connection, request: WriteRequest, draft: Draft,
                    context: RuleContext) -> None:
        fields = file_fields(draft.entity)
        if not fields:
            return
        before = draft.before or {}
        wanted: dict[str, tuple[CompiledField, dict[int, Mapping[str, Any]], list[int]]] = {}
        for name, compiled in fields:
            value = draft.values.get(name)
            if value is None or name in draft.errors or value == before.get(name):
                continue
            kept = {item["id"]: item for item in _items(before.get(name))}
            new = [i for i in compiled.type.file_ids(value, compiled.field) if i not in kept]
            wanted[name] = (compiled, kept, new)
        if not wanted:
            return
        rows = self.store().rows(conn, (i for _, _, new in wanted.values() for i in new))
        principal = request.principal
        for name, (compiled, kept, new) in wanted.items():
            problems = []
            for file_id in new:
                row = rows.get(file_id)
                if row is None or row["released_at"] is not None or row["entity"] is not None or not (
                        principal.unrestricted or row["created_by"] == request.user):
                    problems.append(f"there is no file with id {file_id} to attach (upload it first; "
                                    "a file belongs to one record)")
                elif (problem := compiled.type.check_file(row, compiled.field)) is not None:
                    problems.append(f"the uploaded file {file_id} does not fit this field: {problem}")
            if problems:
                for problem in problems:
                    draft.refuse(name, problem)
                continue
            known = {**kept, **rows}
            draft.values[name] = compiled.type.with_files(draft.values[name], known, compiled.field)

    # --- written: attach and release ---------------------------------------------------------
    def written(self, conn: sa.Connection, request: WriteRequest, history: Sequence[Mapping[str, Any]],
                values: Mapping[tuple[str, int], Mapping[str, Any]]) -> None:
        entities = self.entities()
        now = dt.datetime.now(dt.UTC)
        if request.action == "delete":
            for (entity, record_id), record in values.items():
                for name, compiled in file_fields(entities.get(entity)):
                    self._release(conn, compiled.type.file_ids(record.get(name), compiled.field),
                                  entity, record_id, name, now)
            return
        changes = {(row["entity"], row["record_id"]): row["changes"] for row in history
                   if row.get("action") == "update"}
        for (entity, record_id), record in values.items():
            changed = changes.get((entity, record_id))
            for name, compiled in file_fields(entities.get(entity)):
                if changed is not None and name not in changed:
                    continue
                ids = compiled.type.file_ids(record.get(name), compiled.field)
                self._attach(conn, ids, entity, record_id, name)
                if changed is not None:
                    old = _ids_of_json(changed[name][0])
                    self._release(conn, [i for i in old if i not in ids], entity, record_id, name, now)

    def _attach(self, conn: sa.Connection, ids: Sequence[int], entity: str, record_id: int,
                field: str) -> None:
        if not ids:
            return
        mine = sa.and_(file_table.c.entity == entity, file_table.c.record_id == record_id,
                       file_table.c.field == field)
        done = conn.execute(file_table.update().where(
            file_table.c.id.in_(sorted(set(ids))), file_table.c.released_at.is_(None),
            sa.or_(file_table.c.entity.is_(None), mine)
        ).values(entity=entity, record_id=record_id, field=field))
        if done.rowcount != len(set(ids)):
            raise ValidationFailed({field: ["a file given was attached to another record meanwhile: "
                                            "upload it again"]})

    def _release(self, conn: sa.Connection, ids: Iterable[int], entity: str, record_id: int, field: str,
                 now: dt.datetime) -> None:
        ids = sorted(set(ids))
        if not ids:
            return
        conn.execute(file_table.update().where(
            file_table.c.id.in_(ids), file_table.c.entity == entity, file_table.c.record_id == record_id,
            file_table.c.field == field, file_table.c.released_at.is_(None)).values(released_at=now))
        self._pending().update(ids)

    def _pending(self) -> set[int]:
        pending: set[int] | None = getattr(self._released, "ids", None)
        if pending is None:
            pending = self._released.ids = set()
        return pending

    # --- after commit: delete -------------------------------------------------------------------
    def after_commit(self, saved: Saved) -> None:
        pending = self._pending()
        if not pending:
            return
        ids = sorted(pending)
        pending.clear()
        # Only those whose release is committed are deleted (a rolled-back write's are not).
        self.store().purge(ids)


def _items(value: Any) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
