"""The records service: create, read, update, delete and list records of any entity.

Driven only by the metamodel of the current revision. Every write validates the whole
record (all problems at once, by field), checks the version it was based on, gates stage
moves, and writes the change, its history and its stage history in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.names import suggest
from slatecrm.metamodel.rules import RuleContext
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from ..storage import system
from ..storage.runtime import RuntimeHolder
from ..storage.secrets import DatabaseSecrets
from . import listing
from . import rules as rule_hooks
from .compiled import SYSTEM_FIELDS, CompiledEntity, CompiledField, compile_entities
from .errors import BadQuery, RecordInUse, RecordNotFound, UnknownEntity, VersionConflict
from .events import RecordEvents
from .listing import ListQuery
from .pipeline import WritePipeline, WriteRequest


@dataclass(frozen=True)
class Record:
    entity: str
    id: int
    version: int
    title: str
    values: dict[str, Any]
    system: dict[str, Any]
    #: The titles of the records its references point to, by field.
    titles: dict[str, str]


@dataclass(frozen=True)
class Page:
    records: list[Record]
    #: Give it as `after` for the next page; None on the last page.
    next_cursor: str | None
    count: int
    #: The count stopped at listing.COUNT_CAP: there are more.
    count_capped: bool


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    action: str
    changed_at: dt.datetime
    changed_by: int | None
    changes: dict[str, list[Any]]


@dataclass(frozen=True)
class StageVisit:
    field: str
    stage: str
    entered_at: dt.datetime
    left_at: dt.datetime | None
    seconds: int | None


def _blank(value: Any) -> bool:
    return value is None or value == [] or value == ""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RecordsService:
    def __init__(self, engine: sa.Engine, holder: RuntimeHolder, registry: FieldTypeRegistry, *,
                 functions: RuleFunctions = NO_FUNCTIONS, events: RecordEvents | None = None):
        """`functions`: the plugins' rule functions; `events`: the plugins' record hooks."""
        self.engine = engine
        self.holder = holder
        self.registry = registry
        self.functions = functions
        self.events = events or RecordEvents()
        self._compiled: tuple[int, dict[str, CompiledEntity]] | None = None
        self._rules: tuple[int, rule_hooks.RevisionRules] | None = None
        self.secrets = DatabaseSecrets(engine)
        #: Every write goes through it; permissions and workflows register on `pipeline.hooks`.
        self.pipeline = WritePipeline(self)
        self.events.register(self.pipeline.hooks)

    # --- the current revision's compiled entities ----------------------------------------
    def compiled(self) -> dict[str, CompiledEntity]:
        runtime = self.holder.current()
        cached = self._compiled
        if cached is None or cached[0] != runtime.revision:
            cached = (runtime.revision, compile_entities(runtime.metamodel.entities, runtime.tables,
                                                         self.registry))
            self._compiled = cached
        return cached[1]

    def rules(self) -> rule_hooks.RevisionRules:
        """The current revision's compiled rules (see slatecrm.platform.records.rules)."""
        runtime = self.holder.current()
        cached = self._rules
        if cached is None or cached[0] != runtime.revision:
            cached = (runtime.revision, rule_hooks.RevisionRules(runtime.metamodel, runtime.tables,
                                                                 self.engine.dialect.name, self.registry,
                                                                 self.functions))
            self._rules = cached
        return cached[1]

    def entity(self, name: str) -> CompiledEntity:
        compiled = self.compiled()
        if name not in compiled:
            raise UnknownEntity(name, suggest(name, compiled))
        return compiled[name]

    def _write(self) -> sa.Connection:
        """A connection whose transaction takes SQLite's write lock at BEGIN (a read lock
        upgraded later could fail at once instead of waiting)."""
        return self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")

    # --- reading -------------------------------------------------------------------------
    def get(self, entity: str, record_id: int) -> Record:
        ce = self.entity(entity)
        with self.engine.connect() as conn:
            row = conn.execute(ce.select.where(ce.table.c.id == record_id)).mappings().first()
            if row is None:
                raise RecordNotFound(entity, record_id)
            return self._records(conn, ce, [row])[0]

    def _records(self, conn: sa.Connection, ce: CompiledEntity,
                 rows: Sequence[Mapping[Any, Any]]) -> list[Record]:
        values = [{name: f.from_row(row) for name, f in ce.fields.items()} for row in rows]
        titles = self._reference_titles(conn, ce, values)
        return [
            Record(ce.name, row["id"], row["version"], ce.title_of(vals, row["id"]), vals,
                   {k: row[k] for k in SYSTEM_FIELDS if k not in ("id", "version")},
                   {name: titles[name].get(vals[name], "") for name in titles if vals[name] is not None})
            for row, vals in zip(rows, values, strict=True)
        ]

    def _reference_titles(self, conn: sa.Connection, ce: CompiledEntity,
                          values: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, str]]:
        """One query per reference field for a whole page of records."""
        out: dict[str, dict[int, str]] = {}
        for name, target in ce.references().items():
            ids = {v[name] for v in values if v[name] is not None}
            if not ids or target not in self.compiled():
                out[name] = {}
                continue
            out[name] = self._titles(conn, self.compiled()[target], ids)
        return out

    def _titles(self, conn: sa.Connection, ce: CompiledEntity, ids: Iterable[int]) -> dict[int, str]:
        names = ce.title_fields
        rows = conn.execute(ce.titles, {"ids": list(ids)}).mappings().all()
        return {row["id"]: ce.title_of({name: ce.fields[name].from_row(row) for name in names}, row["id"])
                for row in rows}

    # --- writing: thin calls into the one write pipeline (records/pipeline.py) -------------
    def check(self, entity: str, data: Mapping[str, Any], *, record_id: int | None = None,
              user: int | None = None) -> dict[str, list[str]]:
        """Every problem `data` would meet as a new record (or as a change to `record_id`),
        writing nothing: the forms validate on change through the very same steps as a save."""
        return self.pipeline.check(entity, data, record_id=record_id, user=user)

    def create(self, entity: str, data: Mapping[str, Any], *, user: int | None = None) -> Record:
        return self.pipeline.create(entity, [data], user=user)[0]

    def create_many(self, entity: str, items: Sequence[Mapping[str, Any]], *,
                    user: int | None = None) -> list[Record]:
        """Validate every record, then insert them all with executemany in one transaction.
        Errors are reported per record: `ValidationFailed` keys are `[index].field`."""
        return self.pipeline.create(entity, items, user=user)

    def update(self, entity: str, record_id: int, data: Mapping[str, Any], *, version: int | None,
               user: int | None = None) -> Record:
        """A partial update based on `version`; a stale version is refused with the fields
        that changed since, never silently overwritten."""
        return self.pipeline.update(entity, record_id, data, version=version, user=user)

    def _changed_since(self, conn: sa.Connection, ce: CompiledEntity, record_id: int,
                       version: int) -> list[str]:
        rows = conn.execute(sa.select(system.history.c.changes).where(
            system.history.c.entity == ce.name, system.history.c.record_id == record_id,
            system.history.c.version > version)).scalars().all()
        return sorted({name for changes in rows for name in changes})

    def delete(self, entity: str, record_id: int, *, version: int | None = None,
               user: int | None = None) -> None:
        ce = self.entity(entity)
        request = WriteRequest(ce.name, "delete", user, (record_id,), ({},))
        self.pipeline.authorise(request)
        with self._write() as conn, conn.begin():
            row = conn.execute(ce.select.where(ce.table.c.id == record_id)).mappings().first()
            if row is None:
                raise RecordNotFound(entity, record_id)
            if version is not None and row["version"] != version:
                raise VersionConflict(entity, record_id, version, row["version"],
                                      self._changed_since(conn, ce, record_id, version))
            written: list[dict[str, Any]] = []
            self._remove(conn, ce, [record_id], _now(), user, set(), written)
        self.pipeline.after_commit(request, (), (), written)

    def _remove(self, conn: sa.Connection, ce: CompiledEntity, ids: list[int], now: dt.datetime,
                user: int | None, seen: set[tuple[str, int]], written: list[dict[str, Any]]) -> None:
        """Delete records and carry out every reference's on_delete in the service, so that
        each record it touches gets its history and a new version (the database's own
        foreign-key actions stay as a safety net)."""
        seen.update((ce.name, i) for i in ids)
        self._check_restrictions(conn, ce, ids)
        for other, compiled in self._referrers(ce.name):
            action = compiled.field.settings.get("on_delete", "restrict")
            column = other.table.c[compiled.column]
            rows = conn.execute(sa.select(other.table.c.id, other.table.c.version)
                                .where(column.in_(ids)).order_by(other.table.c.id)).all()
            rows = [r for r in rows if (other.name, r.id) not in seen]
            if not rows:
                continue
            if action == "cascade":
                self._remove(conn, other, [r.id for r in rows], now, user, seen, written)
            elif action == "set_null":
                old = dict(conn.execute(sa.select(other.table.c.id, column).where(
                    other.table.c.id.in_([r.id for r in rows]))).all())
                conn.execute(other.table.update().where(other.table.c.id.in_([r.id for r in rows])).values(
                    {compiled.column: None, "version": other.table.c.version + 1, "updated_at": now,
                     "updated_by": user}))
                nulled = [
                    {"entity": other.name, "record_id": r.id, "version": r.version + 1, "action": "update",
                     "changed_at": now, "changed_by": user, "changes": {compiled.name: [old[r.id], None]}}
                    for r in rows]
                conn.execute(system.history.insert(), nulled)
                written.extend(nulled)
        versions = dict(conn.execute(sa.select(ce.table.c.id, ce.table.c.version)
                                     .where(ce.table.c.id.in_(ids))).all())
        try:
            conn.execute(ce.table.delete().where(ce.table.c.id.in_(ids)))
        except sa.exc.IntegrityError as error:
            raise RecordInUse(f"{ce.name} {ids[0]} is still referenced: {error.orig}") from None
        deleted = [{"entity": ce.name, "record_id": i, "version": versions[i] + 1, "action": "delete",
                    "changed_at": now, "changed_by": user, "changes": {}} for i in ids if i in versions]
        conn.execute(system.history.insert(), deleted)
        written.extend(deleted)

    def _referrers(self, entity: str) -> list[tuple[CompiledEntity, CompiledField]]:
        return [(other, compiled) for other in self.compiled().values()
                for compiled in other.fields.values() if compiled.field.target == entity]

    def _check_restrictions(self, conn: sa.Connection, ce: CompiledEntity, record_ids: list[int]) -> None:
        blockers = []
        for other, compiled in self._referrers(ce.name):
            if compiled.field.settings.get("on_delete", "restrict") != "restrict":
                continue
            ids = conn.execute(sa.select(other.table.c.id).where(
                other.table.c[compiled.column].in_(record_ids)).order_by(other.table.c.id).limit(6)
            ).scalars().all()
            if ids:
                shown = ", ".join(str(i) for i in ids[:5]) + (" …" if len(ids) > 5 else "")
                blockers.append(f"{other.entity.label_plural.lower()} ({compiled.name}: ids {shown})")
        if blockers:
            subject = f"{ce.entity.label} {record_ids[0]}" if len(record_ids) == 1 else (
                f"{ce.entity.label_plural} {', '.join(str(i) for i in record_ids[:5])}")
            raise RecordInUse(f"{subject} cannot be deleted while these refer to it: " + "; ".join(blockers))

    # --- lists --------------------------------------------------------------------------------
    def expression_conditions(self, entity: str, query: ListQuery) -> list[sa.ColumnElement[bool]]:
        """The query's rule-language filter as SQL, for every statement built from a list query
        (pages, board totals), so that they all select the same records."""
        return [self.rules().filter(entity, query.expression, RuleContext())] if query.expression else []

    def page(self, entity: str, query: ListQuery | None = None) -> Page:
        ce = self.entity(entity)
        query = query or ListQuery()
        page = listing.build(ce, query, self.expression_conditions(entity, query), self.secrets.cursor_key())
        with self.engine.connect() as conn:
            try:
                rows = conn.execute(page.select).mappings().all()
                count = conn.execute(page.count).scalar_one()
            except sa.exc.DataError as error:  # a filter computing beyond a column type's range
                if not query.expression:
                    raise
                raise BadQuery({"filter": [f"the filter cannot be computed: {error.orig}"]}) from None
            records = self._records(conn, ce, rows[: page.limit])
        return Page(records, listing.next_cursor(rows, page), min(count, listing.COUNT_CAP),
                    count > listing.COUNT_CAP)

    def related(self, entity: str, record_id: int, relation: str, query: ListQuery | None = None) -> Page:
        """Records of another entity that refer to this one: `relation` is `other.field`,
        or just `other` when it has one reference to `entity`."""
        self.get(entity, record_id)
        other, _, field = relation.partition(".")
        candidates = [(e, f) for e, f in self.reverse_references(entity)
                      if e == other and (not field or f == field)]
        if len(candidates) != 1:
            known = [f"{e}.{f}" for e, f in self.reverse_references(entity)]
            why = "is ambiguous; name the field" if candidates else "is not a reference to it"
            raise BadQuery({"relation": [f"{relation!r} {why}; references to {entity}: "
                                         f"{', '.join(known) or 'none'}"]})
        other, field = candidates[0]
        base = query or ListQuery()
        scoped = replace(base, filters=(*base.filters, listing.Filter(field, "eq", (str(record_id),))))
        return self.page(other, scoped)

    # --- history and related records ---------------------------------------------------------
    def history(self, entity: str, record_id: int) -> list[HistoryEntry]:
        ce = self.entity(entity)
        h = system.history
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(h).where(h.c.entity == ce.name, h.c.record_id == record_id)
                                .order_by(h.c.version, h.c.id)).all()
        if not rows:
            raise RecordNotFound(entity, record_id)
        return [HistoryEntry(r.version, r.action, r.changed_at, r.changed_by, r.changes) for r in rows]

    def stage_history(self, entity: str, record_id: int) -> list[StageVisit]:
        ce = self.entity(entity)
        self.get(entity, record_id)
        s = system.stage_history
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(s).where(s.c.entity == ce.name, s.c.record_id == record_id)
                                .order_by(s.c.entered_at, s.c.id)).all()
        return [StageVisit(r.field, r.stage, r.entered_at, r.left_at, r.seconds) for r in rows]

    def reverse_references(self, entity: str) -> list[tuple[str, str]]:
        """(entity, field) pairs of the references that point to `entity`."""
        return [(other.name, name) for other in self.compiled().values()
                for name, f in other.fields.items() if f.field.target == entity]

    def as_json(self, record: Record) -> dict[str, Any]:
        """The record as the API shows it: references with the title of what they point to."""
        ce = self.entity(record.entity)
        out: dict[str, Any] = {"id": record.id, "version": record.version, "_title": record.title}
        for key, value in record.system.items():
            out[key] = value.isoformat().replace("+00:00", "Z") if isinstance(value, dt.datetime) else value
        for name, compiled in ce.fields.items():
            value = record.values.get(name)
            if compiled.type.links_records and value is not None:
                out[name] = {"id": value, "title": record.titles.get(name, "")}
            else:
                out[name] = compiled.to_json(value)
        return out


