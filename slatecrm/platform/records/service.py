"""The records service: create, read, update, delete and list records of any entity.

Driven only by the metamodel of the current revision. Every write validates the whole
record (all problems at once, by field), checks the version it was based on, gates stage
moves, and writes the change, its history and its stage history in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import CoercionError, FieldTypeRegistry
from slatecrm.metamodel.names import suggest

from .. import jsontext
from ..storage import system
from ..storage.runtime import RuntimeHolder
from . import rules as rule_hooks
from . import stages
from .compiled import CompiledEntity, CompiledField
from .errors import RecordInUse, RecordNotFound, UnknownEntity, ValidationFailed, VersionConflict
from .listing import ListQuery
from .reading import Reader, ReadFilter, no_filter
from .results import HistoryEntry, Page, Record, StageVisit
from .scope import ReadScope
from .snapshot import Snapshot, snapshot_of

__all__ = ["HistoryEntry", "Page", "Record", "RecordsService", "StageVisit"]

#: System columns a client may send back unchanged (they are ignored); `owner` is writable.
READ_ONLY = frozenset({"id", "created_at", "updated_at", "created_by", "updated_by", "title"})


def _blank(value: Any) -> bool:
    return value is None or value == [] or value == ""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RecordsService:
    """The records of the current revision. A web request uses a `pinned()` copy: one
    snapshot and one read connection for the whole request (records/scope.py); used
    directly (CLI, tests), each call reads the current revision on a connection of its own."""

    def __init__(self, engine: sa.Engine, holder: RuntimeHolder, registry: FieldTypeRegistry, *,
                 scope: ReadScope | None = None, read_filter: ReadFilter = no_filter):
        self.engine = engine
        self.holder = holder
        self.registry = registry
        self.scope = scope
        #: The record-level read filter (see records/reading.py, `Reader.visible`): the one
        #: place the coming permission rules will narrow what a request can read.
        self.read_filter = read_filter

    def pinned(self) -> RecordsService:
        """A copy for one request: its snapshot is pinned on first use and its reads share
        one connection, until `close()`."""
        return RecordsService(self.engine, self.holder, self.registry,
                              scope=ReadScope(self.engine, self.holder, self.registry, guard=True),
                              read_filter=self.read_filter)

    def close(self) -> None:
        if self.scope is not None:
            self.scope.close()

    # --- the revision's snapshot -----------------------------------------------------------
    def snapshot(self) -> Snapshot:
        if self.scope is not None:
            return self.scope.snapshot()
        return snapshot_of(self.holder.current(), self.registry, self.engine.dialect.name)

    def compiled(self) -> dict[str, CompiledEntity]:
        return self.snapshot().entities

    def rules(self) -> rule_hooks.RevisionRules:
        """The revision's compiled rules (see slatecrm.platform.records.rules)."""
        return self.snapshot().rules

    def entity(self, name: str) -> CompiledEntity:
        compiled = self.compiled()
        if name not in compiled:
            raise UnknownEntity(name, suggest(name, compiled))
        return compiled[name]

    @contextmanager
    def reading(self) -> Iterator[Reader]:
        """The read path (records/reading.py) on this request's snapshot and connection,
        or, outside a request, on a scope of its own closed at the end."""
        if self.scope is not None:
            yield Reader(self.scope.snapshot(), self.scope.connection(), self.read_filter)
            return
        with ReadScope(self.engine, self.holder, self.registry) as scope:
            yield Reader(scope.snapshot(), scope.connection(), self.read_filter)

    def _write(self) -> sa.Connection:
        """A connection whose transaction takes SQLite's write lock at BEGIN (a read lock
        upgraded later could fail at once instead of waiting)."""
        return self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")

    # --- reading (every query goes through records/reading.py) ---------------------------
    def get(self, entity: str, record_id: int) -> Record:
        with self.reading() as reader:
            return reader.get(entity, record_id)

    def _records(self, conn: sa.Connection, ce: CompiledEntity,
                 rows: Sequence[Mapping[Any, Any]]) -> list[Record]:
        """The records just written, read back through the read path on the writing
        connection (it sees its own uncommitted rows). The writer's own change is shown
        to it whatever the read filter: whether it may write is the write pipeline's
        permission check."""
        if not rows:
            return []
        reader = Reader(self.snapshot(), conn)
        by_id = {r.id: r for r in reader.fetch(ce, [row["id"] for row in rows])}
        return [by_id[row["id"]] for row in rows]

    # --- validation ------------------------------------------------------------------------
    def _coerce(self, ce: CompiledEntity, data: Mapping[str, Any],
                errors: dict[str, list[str]]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, raw in data.items():
            if key in READ_ONLY or key == "version":
                continue
            if key == "owner":
                values["owner"] = raw
                continue
            compiled = ce.fields.get(key)
            if compiled is None:
                errors.setdefault(key, []).append(f"{ce.name} has no field {key!r}{suggest(key, ce.fields)}")
            elif not compiled.type.writable:
                errors.setdefault(key, []).append("is set by the system")
            elif compiled.field.formula is not None:
                errors.setdefault(key, []).append("is computed by its formula and cannot be set")
            else:
                try:
                    values[key] = compiled.type.coerce(raw, compiled.field)
                except CoercionError as error:
                    errors.setdefault(key, []).append(str(error))
        return values

    def _defaults(self, ce: CompiledEntity, values: dict[str, Any]) -> None:
        for name, compiled in ce.fields.items():
            if name in values or not compiled.type.writable:
                continue
            default = compiled.field.default
            if default is None and compiled.field.type == "stage":
                default = ce.pipelines[name].stages[0].key if ce.pipelines[name].stages else None
            values[name] = compiled.type.coerce(default, compiled.field) if default is not None else None

    def _validate(self, conn: sa.Connection, ce: CompiledEntity, record_id: int | None,
                  before: Mapping[str, Any] | None, merged: dict[str, Any], changed: Iterable[str],
                  errors: dict[str, list[str]], existing: Mapping[str, set[int]] | None = None) -> None:
        """Rules over the whole record: required fields, ranges already checked by coercion,
        references that exist, unique values, and the stage gates. `existing`: the ids known
        to exist, by reference field, looked up once for a whole batch."""
        changed = set(changed)
        for name, each in ce.fields.items():
            if each.field.required and each.type.writable and _blank(merged.get(name)):
                errors.setdefault(name, []).append("is required")
        for name in changed:
            compiled = ce.fields.get(name)
            value = merged.get(name)
            if compiled is None or value is None or name in errors:
                continue
            if compiled.field.type == "reference":
                target = self.compiled().get(compiled.field.target or "")
                if existing is not None and name in existing:
                    found = value in existing[name]
                else:
                    found = target is not None and conn.execute(
                        sa.select(target.table.c.id).where(target.table.c.id == value)).first() is not None
                if not found:
                    errors.setdefault(name, []).append(f"there is no {compiled.field.target} with id {value}")
            if compiled.field.unique:
                other = conn.execute(sa.select(ce.table.c.id).where(
                    ce.table.c[compiled.column] == value,
                    ce.table.c.id != (record_id or 0)).limit(1)).scalar()
                if other is not None:
                    errors.setdefault(name, []).append(f"is already used by {ce.name} {other}")
        if "owner" in changed and merged.get("owner") is not None:
            owner = merged["owner"]
            if not isinstance(owner, int) or isinstance(owner, bool) or not 0 < owner < 2**63 or conn.execute(
                    sa.select(system.users.c.id).where(system.users.c.id == owner)).first() is None:
                errors.setdefault("owner", []).append(f"there is no user with id {owner}")
        for field_name, pipeline in ce.pipelines.items():
            if field_name not in changed:
                continue
            old = before.get(field_name) if before else None
            for where, message in stages.gate(ce, pipeline, old, merged.get(field_name), merged):
                errors.setdefault(where, []).append(message)

    def check(self, entity: str, data: Mapping[str, Any], *,
              record_id: int | None = None) -> dict[str, list[str]]:
        """Every problem `data` would meet as a new record (or as a change to `record_id`),
        writing nothing: the forms validate on change through the very same rules."""
        ce = self.entity(entity)
        errors: dict[str, list[str]] = {}
        values = self._coerce(ce, data, errors)
        with self.engine.connect() as conn:
            before: dict[str, Any] | None = None
            if record_id is None:
                self._defaults(ce, values)
                merged = values
            else:
                row = conn.execute(ce.select.where(ce.table.c.id == record_id)).mappings().first()
                if row is None:
                    raise RecordNotFound(entity, record_id)
                before = {name: f.from_row(row) for name, f in ce.fields.items()}
                before["owner"] = row["owner"]
                merged = {**before, **values}
            changed = [k for k in merged if before is None or merged[k] != before.get(k)]
            self._validate(conn, ce, record_id, before, merged, changed, errors)
        return errors

    # --- writing ---------------------------------------------------------------------------
    def create(self, entity: str, data: Mapping[str, Any], *, user: int | None = None) -> Record:
        return self.create_many(entity, [data], user=user)[0]

    def create_many(self, entity: str, items: Sequence[Mapping[str, Any]], *,
                    user: int | None = None) -> list[Record]:
        """Validate every record, then insert them all with executemany in one transaction.
        Errors are reported per record: `ValidationFailed` keys are `[index].field`."""
        ce = self.entity(entity)
        now = _now()
        with self._write() as conn, conn.begin():
            prepared: list[dict[str, Any]] = []
            errors_of: list[dict[str, list[str]]] = []
            all_errors: dict[str, list[str]] = {}
            entity_rules = self.rules().entity(ce.name)
            context = rule_hooks.context_for(conn, self.compiled(), user, None)
            for data in items:
                errors: dict[str, list[str]] = {}
                values = self._coerce(ce, data, errors)
                self._defaults(ce, values)
                rule_hooks.apply_defaults(entity_rules, ce, values, data, context, errors)
                stages.close_dates(ce, None, values, values, now)
                rule_hooks.compute(entity_rules, ce, values, context, errors)
                prepared.append(values)
                errors_of.append(errors)
            existing = self._existing_references(conn, ce, prepared)
            for index, (values, errors) in enumerate(zip(prepared, errors_of, strict=True)):
                self._validate(conn, ce, None, None, values, values.keys(), errors, existing)
                rule_hooks.validate(entity_rules, ce, values, set(values), context, errors)
                prefix = f"[{index}]." if len(items) > 1 else ""
                all_errors.update({prefix + k: v for k, v in errors.items()})
            if all_errors:
                raise ValidationFailed(all_errors)
            self._number(conn, ce, prepared)
            rows = []
            for values in prepared:
                row: dict[str, Any] = {"created_at": now, "updated_at": now, "created_by": user,
                                       "updated_by": user, "owner": values.pop("owner", user), "version": 1}
                for name, compiled in ce.fields.items():
                    row.update(compiled.to_row(values.get(name)))
                rows.append(row)
            ids = self._insert(conn, ce, rows)
            history = []
            visits = []
            for record_id, values in zip(ids, prepared, strict=True):
                history.append({"entity": ce.name, "record_id": record_id, "version": 1, "action": "create",
                                "changed_at": now, "changed_by": user,
                                "changes": {n: [None, ce.fields[n].to_json(v)] for n, v in values.items()
                                            if n in ce.fields and v is not None}})
                visits += [{"entity": ce.name, "record_id": record_id, "field": f, "stage": values[f],
                            "entered_at": now, "entered_by": user}
                           for f in ce.pipelines if values.get(f) is not None]
            conn.execute(system.history.insert(), history)
            if visits:
                conn.execute(system.stage_history.insert(), visits)
            query = ce.select.where(ce.table.c.id.in_(ids)).order_by(ce.table.c.id)
            return self._records(conn, ce, conn.execute(query).mappings().all())

    def _existing_references(self, conn: sa.Connection, ce: CompiledEntity,
                             prepared: Sequence[Mapping[str, Any]]) -> dict[str, set[int]]:
        """Which of the ids a batch refers to exist: one query per reference field and
        thousand ids, not one per record (bulk create was spending half its time there)."""
        out: dict[str, set[int]] = {}
        for name, target_name in ce.references().items():
            target = self.compiled().get(target_name)
            ids = sorted({v[name] for v in prepared if isinstance(v.get(name), int)})
            if target is None or not ids:
                continue
            found: set[int] = set()
            for start in range(0, len(ids), 1000):
                found.update(conn.execute(sa.select(target.table.c.id).where(
                    target.table.c.id.in_(ids[start:start + 1000]))).scalars())
            out[name] = found
        return out

    def _insert(self, conn: sa.Connection, ce: CompiledEntity, rows: list[dict[str, Any]]) -> list[int]:
        try:
            insert = ce.table.insert().returning(ce.table.c.id, sort_by_parameter_order=True)
            result = conn.execute(insert, rows)
        except sa.exc.IntegrityError as error:
            raise ValidationFailed(_integrity_errors(ce, error)) from None
        return [row[0] for row in result]

    def _number(self, conn: sa.Connection, ce: CompiledEntity, prepared: list[dict[str, Any]]) -> None:
        """Give auto-number fields the next numbers of their sequence (a block for a batch)."""
        for name, compiled in ce.fields.items():
            if compiled.field.type != "auto_number":
                continue
            start = int(compiled.field.settings.get("start", 1))
            sequences = system.sequences
            key = (sequences.c.entity == ce.name) & (sequences.c.field == name)
            taken = conn.execute(sequences.update().where(key).values(
                next_value=sequences.c.next_value + len(prepared)).returning(sequences.c.next_value)).scalar()
            if taken is None:
                conn.execute(sequences.insert().values(entity=ce.name, field=name,
                                                       next_value=start + len(prepared)))
                taken = start + len(prepared)
            first = taken - len(prepared)
            for offset, values in enumerate(prepared):
                values[name] = compiled.type.format(first + offset, compiled.field)  # type: ignore[attr-defined]

    def update(self, entity: str, record_id: int, data: Mapping[str, Any], *, version: int | None,
               user: int | None = None) -> Record:
        """A partial update based on `version`; a stale version is refused with the fields
        that changed since, never silently overwritten."""
        ce = self.entity(entity)
        errors: dict[str, list[str]] = {}
        if version is None:
            raise ValidationFailed({"version": ["give the version this change is based on"]})
        values = self._coerce(ce, data, errors)
        now = _now()
        with self._write() as conn, conn.begin():
            query = ce.select.where(ce.table.c.id == record_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).mappings().first()
            if row is None:
                raise RecordNotFound(entity, record_id)
            if row["version"] != version:
                raise VersionConflict(entity, record_id, version, row["version"],
                                      self._changed_since(conn, ce, record_id, version))
            before = {name: f.from_row(row) for name, f in ce.fields.items()}
            before["owner"] = row["owner"]
            merged = {**before, **values}
            stages.close_dates(ce, before, merged, values, now)
            entity_rules = self.rules().entity(ce.name)
            context = rule_hooks.context_for(conn, self.compiled(), user, {**before, "id": record_id})
            rule_hooks.compute(entity_rules, ce, merged, context, errors)
            changed = [k for k in merged if merged[k] != before.get(k)]
            self._validate(conn, ce, record_id, before, merged, changed, errors)
            rule_hooks.validate(entity_rules, ce, {**merged, "id": record_id}, set(changed), context, errors)
            if errors:
                raise ValidationFailed(errors)
            if not changed:
                return self._records(conn, ce, [row])[0]
            update: dict[str, Any] = {"updated_at": now, "updated_by": user, "version": version + 1}
            for name in changed:
                if name == "owner":
                    update["owner"] = merged["owner"]
                else:
                    update.update(ce.fields[name].to_row(merged[name]))
            try:
                done = conn.execute(ce.table.update().where(
                    ce.table.c.id == record_id, ce.table.c.version == version).values(update))
            except sa.exc.IntegrityError as error:
                raise ValidationFailed(_integrity_errors(ce, error)) from None
            if done.rowcount != 1:  # a concurrent writer won between our read and write
                raise VersionConflict(entity, record_id, version, version + 1, [])
            conn.execute(system.history.insert().values(
                entity=ce.name, record_id=record_id, version=version + 1, action="update", changed_at=now,
                changed_by=user, changes={
                    n: [_json(ce, n, before.get(n)), _json(ce, n, merged[n])] for n in changed}))
            for field_name in ce.pipelines:
                if field_name in changed:
                    stages.record_move(conn, ce, record_id, field_name, merged[field_name], now, user)
            fresh = conn.execute(ce.select.where(ce.table.c.id == record_id)).mappings().one()
            return self._records(conn, ce, [fresh])[0]

    def _changed_since(self, conn: sa.Connection, ce: CompiledEntity, record_id: int,
                       version: int) -> list[str]:
        rows = conn.execute(sa.select(system.history.c.changes).where(
            system.history.c.entity == ce.name, system.history.c.record_id == record_id,
            system.history.c.version > version)).scalars().all()
        return sorted({name for changes in rows for name in changes})

    def delete(self, entity: str, record_id: int, *, version: int | None = None,
               user: int | None = None) -> None:
        ce = self.entity(entity)
        with self._write() as conn, conn.begin():
            row = conn.execute(ce.select.where(ce.table.c.id == record_id)).mappings().first()
            if row is None:
                raise RecordNotFound(entity, record_id)
            if version is not None and row["version"] != version:
                raise VersionConflict(entity, record_id, version, row["version"],
                                      self._changed_since(conn, ce, record_id, version))
            self._remove(conn, ce, [record_id], _now(), user, set())

    def _remove(self, conn: sa.Connection, ce: CompiledEntity, ids: list[int], now: dt.datetime,
                user: int | None, seen: set[tuple[str, int]]) -> None:
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
                self._remove(conn, other, [r.id for r in rows], now, user, seen)
            elif action == "set_null":
                old = dict(conn.execute(sa.select(other.table.c.id, column).where(
                    other.table.c.id.in_([r.id for r in rows]))).all())
                conn.execute(other.table.update().where(other.table.c.id.in_([r.id for r in rows])).values(
                    {compiled.column: None, "version": other.table.c.version + 1, "updated_at": now,
                     "updated_by": user}))
                conn.execute(system.history.insert(), [
                    {"entity": other.name, "record_id": r.id, "version": r.version + 1, "action": "update",
                     "changed_at": now, "changed_by": user, "changes": {compiled.name: [old[r.id], None]}}
                    for r in rows])
        versions = dict(conn.execute(sa.select(ce.table.c.id, ce.table.c.version)
                                     .where(ce.table.c.id.in_(ids))).all())
        try:
            conn.execute(ce.table.delete().where(ce.table.c.id.in_(ids)))
        except sa.exc.IntegrityError as error:
            raise RecordInUse(f"{ce.name} {ids[0]} is still referenced: {error.orig}") from None
        conn.execute(system.history.insert(), [
            {"entity": ce.name, "record_id": i, "version": versions[i] + 1, "action": "delete",
             "changed_at": now, "changed_by": user, "changes": {}} for i in ids if i in versions])

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
    def page(self, entity: str, query: ListQuery | None = None) -> Page:
        with self.reading() as reader:
            return reader.page(entity, query)

    def first_pages(self, queries: Sequence[tuple[str, ListQuery]]) -> list[Page]:
        """The first page of several lists (entity, query), in one statement."""
        with self.reading() as reader:
            return reader.first_pages(queries)

    def related(self, entity: str, record_id: int, relation: str, query: ListQuery | None = None) -> Page:
        """Records of another entity that refer to this one: `relation` is `other.field`,
        or just `other` when it has one reference to `entity`."""
        with self.reading() as reader:
            return reader.related(entity, record_id, relation, query)

    # --- history and related records ---------------------------------------------------------
    def history(self, entity: str, record_id: int) -> list[HistoryEntry]:
        with self.reading() as reader:
            return reader.history(entity, record_id)

    def stage_history(self, entity: str, record_id: int) -> list[StageVisit]:
        with self.reading() as reader:
            return reader.stage_history(entity, record_id)

    def reverse_references(self, entity: str) -> list[tuple[str, str]]:
        """(entity, field) pairs of the references that point to `entity`."""
        return [(other.name, name) for other in self.compiled().values()
                for name, f in other.fields.items() if f.field.target == entity]

    def as_json(self, record: Record) -> dict[str, Any]:
        """The record as the API shows it: references with the title of what they point to."""
        ce = self.entity(record.entity)
        out: dict[str, Any] = {"id": record.id, "version": record.version, "title": record.title}
        for key, value in record.system.items():
            out[key] = jsontext.moment(value) if isinstance(value, dt.datetime) else value
        for name, compiled in ce.fields.items():
            value = record.values.get(name)
            if compiled.field.type == "reference" and value is not None:
                out[name] = {"id": value, "title": record.titles.get(name, "")}
            else:
                out[name] = compiled.to_json(value)
        return out


def _json(ce: CompiledEntity, name: str, value: Any) -> Any:
    compiled = ce.fields.get(name)
    return compiled.to_json(value) if compiled is not None else value


def _integrity_errors(ce: CompiledEntity, error: sa.exc.IntegrityError) -> dict[str, list[str]]:
    """A database refusal that slipped past the checks (a race) as field errors."""
    text = str(error.orig)
    for name, compiled in ce.fields.items():
        columns = [c for _, c in compiled.columns]
        if any(f"{ce.table.name}.{c}" in text or f"_{c}" in text or f"({c})" in text for c in columns):
            unique = "unique" in text.lower() or "duplicate" in text.lower()
            return {name: ["is already used by another record" if unique
                           else "points to a record that does not exist"]}
    return {"": [f"the database refused the record: {text.splitlines()[0]}"]}


def field_for_column(ce: CompiledEntity, column: str) -> CompiledField | None:
    return next((f for f in ce.fields.values() if column in (c for _, c in f.columns)), None)
