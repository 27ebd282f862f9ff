"""The records service: create, read, update, delete and list records of any entity.

Driven only by the metamodel of the current revision. Every write validates the whole
record (all problems at once, by field), checks the version it was based on, gates stage
moves, and writes the change, its history and its stage history in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.names import suggest
from slatecrm.metamodel.rules import RuleContext
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from .. import jsontext
from ..files.attachments import FileAttachments, file_fields
from ..files.settings import files_from_environment
from ..files.store import FileStore, StoredFile
from ..identity.access import Access, role_access, role_key
from ..identity.principal import SYSTEM, Principal
from ..storage import statistics, system
from ..storage.engine import text_in_code_point_order
from ..storage.runtime import RuntimeHolder
from ..storage.secrets import DatabaseSecrets
from . import rules as rule_hooks
from .compiled import CompiledEntity, CompiledField
from .errors import BatchTooLarge, RecordInUse, RecordNotFound, UnknownEntity, VersionConflict, WriteRefused
from .events import RecordEvents
from .formlogic import NO_STATE, FormState
from .limits import DEFAULT, Limits
from .listing import ListQuery
from .pipeline import Hooks, WritePipeline, WriteRequest, check_version
from .reading import Reader, ReadFilter, UserFilter, no_filter
from .restricted import restricted_snapshot
from .results import HistoryEntry, Page, Record, StageVisit
from .rollups import rollups_of
from .scope import ReadScope
from .snapshot import Snapshot, snapshot_of

__all__ = ["HistoryEntry", "Page", "Record", "RecordsService", "StageVisit"]


class RecordsService:
    """The records of the current revision. A web request uses a `pinned()` copy: one
    snapshot and one read connection for the whole request (records/scope.py); used
    directly (CLI, tests), each call reads the current revision on a connection of its own.
    Every write goes through `pipeline` (records/pipeline.py), whose hooks a pinned copy
    shares with the service it was made from."""

    def __init__(self, engine: sa.Engine, holder: RuntimeHolder, registry: FieldTypeRegistry, *,
                 functions: RuleFunctions = NO_FUNCTIONS, events: RecordEvents | None = None,
                 scope: ReadScope | None = None, read_filter: ReadFilter = no_filter,
                 secrets: DatabaseSecrets | None = None, hooks: Hooks | None = None,
                 limits: Limits = DEFAULT, principal: Principal = SYSTEM, files: FileStore | None = None):
        """`functions`: the plugins' rule functions; `events`: the plugins' record hooks;
        `limits`: the bounds every list query and bulk request keeps (records/limits.py);
        `files`: where uploaded files are kept (platform/files/; by default as the
        environment says)."""
        self.engine = engine
        #: The uploaded files of file fields (platform/files/store.py).
        self.files = files if files is not None else files_from_environment(engine)
        self.limits = limits
        #: Who the calls act as: a request's signed-in user (web/pinning.py), or the system.
        #: Writes without an explicit `user` are made by `principal.user_id`.
        self.principal = principal
        self.holder = holder
        self.registry = registry
        self.functions = functions
        self.events = events or RecordEvents()
        self.scope = scope
        #: The record-level read filter (see records/reading.py, `Reader.visible`): the one
        #: place the coming permission rules will narrow what a request can read.
        self.read_filter = read_filter
        self.secrets = secrets or DatabaseSecrets(engine)
        #: Every write goes through it; permissions and workflows register on `pipeline.hooks`.
        self.pipeline = WritePipeline(self, hooks)
        self._access: tuple[Snapshot, Access | None] | None = None
        self._restricted: tuple[Snapshot, Snapshot] | None = None
        #: Writes fire no workflows (`silently`).
        self.silent = False
        #: A caller's connection every write runs on, in a savepoint of the caller's
        #: transaction (`bound`); None: each write has a transaction of its own.
        self.connection: sa.Connection | None = None
        #: With `connection`: whether each write has a savepoint of its own, and whether an
        #: update reads its record back.
        self.savepoints = True
        self.read_back = True
        #: With `connection`: records the caller read FOR UPDATE in its transaction, by
        #: (entity, id): the next update of one uses that row instead of reading it again
        #: (the workflow worker reads a run's record for its condition).
        self.preloaded: dict[tuple[str, int], Any] = {}
        #: With `connection`: the after-commit work of the writes, for the caller to run once
        #: it has committed.
        self.deferred: list[Callable[[], None]] | None = None
        if hooks is None:
            self.events.register(self.pipeline.hooks)
            attachments = FileAttachments(lambda: self.files, lambda: self.full_snapshot().entities)
            attachments.register(self.pipeline.hooks)

    def pinned(self, principal: Principal = SYSTEM,
               connection: sa.Connection | None = None) -> RecordsService:
        """A copy for one request, acting as `principal`: its snapshot is pinned on first use
        and its reads share one connection (`connection`, when the request opened one
        already: a `connect_for_reading` one), until `close()`; its writes run through the
        same pipeline hooks."""
        scope = ReadScope(self.engine, self.holder, self.registry, functions=self.functions, guard=True,
                          connection=connection)
        return RecordsService(self.engine, self.holder, self.registry, functions=self.functions,
                              events=self.events, scope=scope, read_filter=self.read_filter,
                              secrets=self.secrets, hooks=self.pipeline.hooks,
                              limits=self.limits, principal=principal, files=self.files)

    def bound(self, connection: sa.Connection, principal: Principal = SYSTEM, *,
              savepoints: bool = True, read_back: bool = True) -> RecordsService:
        """A copy whose writes run on `connection`, each in a savepoint of the transaction the
        caller holds, seeing what it wrote: the workflow worker commits a run's record
        changes with the run's own bookkeeping. The caller commits, then runs `deferred`, and
        calls the `before_commit` hooks (the outbox's flush) before its COMMIT.
        `savepoints=False`: no savepoint of their own (two round trips each), for a caller that
        rolls back all it did whenever a write fails (the worker's runs). `read_back=False`: an
        update answers the record from what it wrote, without reading it back (no titles).
        A copy that is already bound refuses: binding it again would make a fresh copy with
        the default settings and an after-commit list nobody runs (plugins would never hear
        of its writes); use the bound copy itself."""
        if self.connection is not None:
            raise RuntimeError("this records service is already bound to a connection: use it directly")
        copy = RecordsService(self.engine, self.holder, self.registry, functions=self.functions,
                              events=self.events, read_filter=self.read_filter, secrets=self.secrets,
                              hooks=self.pipeline.hooks, limits=self.limits, principal=principal,
                              files=self.files)
        copy.connection = connection
        copy.savepoints = savepoints
        copy.read_back = read_back
        copy.deferred = []
        copy.silent = self.silent
        return copy

    def silently(self) -> RecordsService:
        """A copy whose writes fire no workflows: for imports and fixes an administrator
        chooses to make quietly. Each workflow a write silences gets a `silenced` entry in
        its run log, naming who wrote."""
        copy = RecordsService(self.engine, self.holder, self.registry, functions=self.functions,
                              events=self.events, scope=self.scope, read_filter=self.read_filter,
                              secrets=self.secrets, hooks=self.pipeline.hooks, limits=self.limits,
                              principal=self.principal, files=self.files)
        copy.silent = True
        copy.connection, copy.deferred, copy.savepoints = self.connection, self.deferred, self.savepoints
        copy.read_back = self.read_back
        return copy

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """The connection a write runs on, in a transaction: its own (committed at the end,
        after the `before_commit` hooks), or a savepoint of the bound caller's."""
        if self.connection is not None:
            if not self.savepoints:
                yield self.connection
                return
            with self.connection.begin_nested():
                yield self.connection
            return
        with self._write() as conn, conn.begin():
            yield conn
            for hook in self.pipeline.hooks.before_commit:
                hook(conn)

    def close(self) -> None:
        if self.scope is not None:
            self.scope.close()

    # --- the revision's snapshot -----------------------------------------------------------
    def full_snapshot(self) -> Snapshot:
        """The revision's snapshot with every entity and field: what the write pipeline
        computes with (defaults and formulas fill fields the user cannot see)."""
        if self.scope is not None:
            return self.scope.snapshot()
        return snapshot_of(self.holder.current(), self.registry, self.engine.dialect.name, self.functions,
                           text_in_code_point_order(self.engine))

    def snapshot(self) -> Snapshot:
        """The snapshot as the principal sees it: without the entities it cannot read and the
        fields it may not see (records/restricted.py), so that everything built from it lacks
        them; the full one for the system and administrators."""
        full = self.full_snapshot()
        # Asked for per record (`as_json`, `entity`): the answer for this revision is kept.
        seen = self._restricted
        if seen is not None and seen[0] is full:
            return seen[1]
        access = self.access(full)
        if access is None or access.reads_everything:
            shown = full
        else:
            key = role_key(full.metamodel.roles, self.principal.roles)
            shown = restricted_snapshot(full, access.roles, key)
        self._restricted = (full, shown)
        return shown

    def access(self, full: Snapshot | None = None) -> Access | None:
        """The principal's access on the revision (identity/access.py); None for the system,
        which nothing narrows (and which pays nothing for permissions)."""
        if self.principal.unrestricted:
            return None
        full = full or self.full_snapshot()
        cached = self._access
        if cached is not None and cached[0] is full:
            return cached[1]
        key = role_key(full.metamodel.roles, self.principal.roles)
        roles = full.derived(f"identity.access:{key}",
                             lambda: role_access(full.metamodel.roles, self.principal.roles, full.rules))
        access = Access(self.principal, roles, full.dialect)
        self._access = (full, access)
        return access

    def require(self, entity: str, action: str) -> None:
        """Refuse `action` on `entity` unless the principal's roles allow it: an entity it
        cannot read is unknown (404, like a missing one), another action refused (403)."""
        access = self.access()
        if access is None:
            return
        if not access.readable(entity) or entity not in self.full_snapshot().entities:
            raise UnknownEntity(entity)
        if not access.may(entity, action):
            raise WriteRefused(f"you may not {action} {entity} records")

    def _sees_everything(self) -> bool:
        access = self.access()
        return access is None or access.reads_everything

    def read_filter_of(self, access: Access | None) -> ReadFilter:
        """The record-level filter of the read path: the service's own (tests inject one)
        and the principal's reach (scope or sharing rules)."""
        own = self.read_filter
        if access is None or access.reads_everything:
            return own
        if own is no_filter:
            return UserFilter(lambda ce: access.where(ce.name, ce.table), access.reach_key,
                              access.roles.reach)

        def both(ce: CompiledEntity) -> sa.ColumnElement[bool] | None:
            parts = [c for c in (own(ce), access.where(ce.name, ce.table)) if c is not None]
            return sa.and_(*parts) if parts else None
        return both

    def compiled(self) -> Mapping[str, CompiledEntity]:
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
        key = self.secrets.cursor_key()
        if self.scope is not None:
            yield Reader(self.snapshot(), self.scope.connection(), self.read_filter_of(self.access()), key,
                         self.limits, self.filter_context)
            return
        with ReadScope(self.engine, self.holder, self.registry, functions=self.functions) as scope:
            full = scope.snapshot()
            access = self.access(full)
            snapshot = full if access is None or access.reads_everything else restricted_snapshot(
                full, access.roles, role_key(full.metamodel.roles, self.principal.roles))
            yield Reader(snapshot, scope.connection(), self.read_filter_of(access), key, self.limits,
                         self.filter_context)

    @contextmanager
    def read_connection(self) -> Iterator[sa.Connection]:
        """A connection to read the platform's own tables on (a user's saved views, say):
        the request's pinned one, so a page checks out one connection, or one of its own
        outside a request."""
        if self.scope is not None:
            yield self.scope.connection()
            return
        with self.engine.connect() as conn:
            yield conn

    def filter_context(self) -> RuleContext:
        """What a list's filter reads as `current_user`: the principal reading it."""
        return rule_hooks.principal_context(self.principal)

    def _write(self) -> sa.Connection:
        """A connection whose transaction takes SQLite's write lock at BEGIN (a read lock
        upgraded later could fail at once instead of waiting)."""
        return self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")

    # --- reading (every query goes through records/reading.py) ---------------------------
    def get(self, entity: str, record_id: int) -> Record:
        with self.reading() as reader:
            return reader.get(entity, record_id)

    def _read_back(self, conn: sa.Connection, ce: CompiledEntity, ids: Sequence[int]) -> list[Record]:
        """The records just written, in the order of `ids`, read back through the read path
        on the writing connection (it sees its own uncommitted rows): one statement, titles
        joined. The writer's own change is shown to it whatever the read filter: whether it
        may write is the write pipeline's permission check."""
        if not ids:
            return []
        access = self.access()
        shown = self.snapshot().entities.get(ce.name, ce)  # without the fields the writer may not see
        reader = Reader(self.snapshot(), conn, self.read_filter_of(access))
        by_id = {r.id: r for r in reader.fetch(shown, ids, filtered=False)}
        return [by_id[i] for i in ids]

    # --- writing: thin calls into the one write pipeline (records/pipeline.py) -------------
    def check(self, entity: str, data: Mapping[str, Any], *, record_id: int | None = None,
              user: int | None = None) -> dict[str, list[str]]:
        """Every problem `data` would meet as a new record (or as a change to `record_id`),
        writing nothing: the forms validate on change through the very same steps as a save."""
        return self.pipeline.check(entity, data, record_id=record_id, user=user)

    def preview(self, entity: str, data: Mapping[str, Any], *, record_id: int | None = None,
                candidates: Mapping[str, Sequence[int]] | None = None,
                ) -> tuple[dict[str, list[str]], FormState]:
        """`check`, and what the form logic decides about the record as it would be saved:
        a form's validation on change and what it shows (records/formlogic.py)."""
        return self.pipeline.preview(entity, data, record_id=record_id, candidates=candidates)

    def form_state(self, record: Record) -> FormState:
        """What the form logic decides about a stored record as it is (the record page
        hides the fields hidden by it). Paths read other records through the read path's
        snapshot rules; nothing is authorised here, only read."""
        full = self.full_snapshot()
        logic = full.rules.entity(record.entity).logic
        if not logic.fields:
            return NO_STATE
        with self.engine.connect() as conn:
            context = rule_hooks.context_for(conn, full.entities, self.principal.user_id, None,
                                             principal=self.principal)
            values = {**record.values, "id": record.id, "owner": record.system.get("owner")}
            return logic.state(values, context)

    def create(self, entity: str, data: Mapping[str, Any], *, user: int | None = None) -> Record:
        return self.pipeline.create(entity, [data], user=user)[0]

    def create_many(self, entity: str, items: Sequence[Mapping[str, Any]], *,
                    user: int | None = None) -> list[Record]:
        """Validate every record, then insert them all with executemany in one transaction.
        Errors are reported per record: `ValidationFailed` keys are `[index].field`. No
        batch bound here (imports and sample data load large batches): a request's is
        checked by the web layer (`check_batch`). A large load (statistics.LARGE_LOAD
        records or more, and many for the table's size) is followed by ANALYZE of the
        entity's table, so the planner knows its new size and spread."""
        created = self.pipeline.create(entity, items, user=user)
        statistics.analyze_after_load(self.engine, self.entity(entity).table.name, len(items))
        return created

    def check_batch(self, count: int) -> None:
        """Refuse (413, naming the cap) a request's bulk create of more than
        `limits.batch_max` records, before any is read."""
        if count > self.limits.batch_max:
            raise BatchTooLarge(f"the body holds {count} records; a bulk create takes at most "
                                f"{self.limits.batch_max} (SLATECRM_MAX_BATCH): send them in batches")

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
        shown = self.snapshot().entities.get(ce.name, ce).fields  # not the names of hidden fields
        return sorted({name for changes in rows for name in changes if name in shown or name == "owner"})

    def delete(self, entity: str, record_id: int, *, version: int | None = None,
               user: int | None = None) -> None:
        self.entity(entity)  # unknown, or not readable: 404
        ce = self.full_snapshot().entities[entity]
        user = self.principal.user_id if user is None else user
        request = WriteRequest(ce.name, "delete", user, (record_id,), ({},), self.principal, self.silent)
        self.preloaded.clear()
        self.pipeline.authorise(request)
        if version is not None:
            check_version(version)
        with self.transaction() as conn:
            row = conn.execute(ce.select.where(ce.table.c.id == record_id)).mappings().first()
            if row is None:
                raise RecordNotFound(entity, record_id)
            self.pipeline.reach(conn, ce, record_id, "delete")
            if version is not None and row["version"] != version:
                raise VersionConflict(entity, record_id, version, row["version"],
                                      self._changed_since(conn, ce, record_id, version))
            written: list[dict[str, Any]] = []
            removed: dict[tuple[str, int], Mapping[str, Any]] = {}
            self._remove(conn, ce, [record_id], dt.datetime.now(dt.UTC), user, set(), written, removed)
            self.pipeline.written(conn, request, written, removed)
        self.pipeline.after_commit(request, (), (), written)

    def _remove(self, conn: sa.Connection, ce: CompiledEntity, ids: list[int], now: dt.datetime,
                user: int | None, seen: set[tuple[str, int]], written: list[dict[str, Any]],
                removed: dict[tuple[str, int], Mapping[str, Any]]) -> None:
        """Delete records and carry out every reference's on_delete in the service, so that
        each record it touches gets its history and a new version (the database's own
        foreign-key actions stay as a safety net)."""
        seen.update((ce.name, i) for i in ids)
        self._check_restrictions(conn, ce, ids)
        rollups = rollups_of(self.full_snapshot())
        for other, compiled in self._referrers(ce.name):
            action = compiled.field.settings.get("on_delete", "restrict")
            pointing = _refers_to(other, compiled, ce.name, ids)
            rows = conn.execute(sa.select(other.table.c.id, other.table.c.version)
                                .where(pointing).order_by(other.table.c.id)).all()
            rows = [r for r in rows if (other.name, r.id) not in seen]
            if not rows:
                continue
            if action == "cascade":
                self._remove(conn, other, [r.id for r in rows], now, user, seen, written, removed)
            elif action == "set_null":
                stored = [other.table.c[c] for _, c in compiled.columns]
                old = {row.id: compiled.to_json(compiled.from_row(row._mapping)) for row in conn.execute(
                    sa.select(other.table.c.id, *stored).where(other.table.c.id.in_([r.id for r in rows])))}
                moved = rollups.children_by_id(conn, other.name, [r.id for r in rows], {compiled.name})
                conn.execute(other.table.update().where(other.table.c.id.in_([r.id for r in rows])).values(
                    {**compiled.to_row(None), "version": other.table.c.version + 1, "updated_at": now,
                     "updated_by": user}))
                rollups.recompute_pairs(conn, moved)
                nulled = [
                    {"entity": other.name, "record_id": r.id, "version": r.version + 1, "action": "update",
                     "changed_at": now, "changed_by": user, "token_id": self.principal.token_id,
                     "changes": {compiled.name: [old[r.id], None]}}
                    for r in rows]
                conn.execute(system.history.insert(), nulled)
                written.extend(nulled)
        # The records as they were: the workflows a delete fires read them.
        rows_before = conn.execute(ce.select.where(ce.table.c.id.in_(ids))).mappings().all()
        versions = {row["id"]: row["version"] for row in rows_before}
        for row in rows_before:
            removed[(ce.name, row["id"])] = {"owner": row["owner"],
                                             **{n: f.from_row(row) for n, f in ce.fields.items()}}
        parents = rollups.children_by_id(conn, ce.name, ids)
        try:
            conn.execute(ce.table.delete().where(ce.table.c.id.in_(ids)))
        except sa.exc.IntegrityError as error:
            raise RecordInUse(f"{ce.name} {ids[0]} is still referenced: {error.orig}") from None
        rollups.recompute_pairs(conn, parents)
        deleted = [{"entity": ce.name, "record_id": i, "version": versions[i] + 1, "action": "delete",
                    "changed_at": now, "changed_by": user, "token_id": self.principal.token_id, "changes": {}}
                   for i in ids if i in versions]
        conn.execute(system.history.insert(), deleted)
        written.extend(deleted)

    def _referrers(self, entity: str) -> list[tuple[CompiledEntity, CompiledField]]:
        """Every reference to `entity`, seen or not by the principal: a delete carries out
        each one's on_delete."""
        full = self.full_snapshot()
        return [(full.entities[other], full.entities[other].fields[field])
                for other, field in full.referrers(entity)]

    def _check_restrictions(self, conn: sa.Connection, ce: CompiledEntity, record_ids: list[int]) -> None:
        blockers = []
        for other, compiled in self._referrers(ce.name):
            if compiled.field.settings.get("on_delete", "restrict") != "restrict":
                continue
            ids = conn.execute(sa.select(other.table.c.id).where(
                _refers_to(other, compiled, ce.name, record_ids)).order_by(other.table.c.id).limit(6)
            ).scalars().all()
            if ids:
                shown = ", ".join(str(i) for i in ids[:5]) + (" …" if len(ids) > 5 else "")
                shown = f"ids {shown}" if self._sees_everything() else "records not all yours to see"
                blockers.append(f"{other.entity.label_plural.lower()} ({compiled.name}: {shown})")
        if blockers:
            subject = f"{ce.entity.label} {record_ids[0]}" if len(record_ids) == 1 else (
                f"{ce.entity.label_plural} {', '.join(str(i) for i in record_ids[:5])}")
            raise RecordInUse(f"{subject} cannot be deleted while these refer to it: " + "; ".join(blockers))

    # --- uploaded files (platform/files/) ----------------------------------------------------
    def upload(self, data: BinaryIO, name: str | None) -> StoredFile:
        """Store an uploaded file for the principal: free until a write of theirs puts it
        in a record's file field (refused past SLATECRM_MAX_UPLOAD_BYTES: 413). Only a
        principal that may create or update records of an entity with a file field it can
        see may upload (403 otherwise): nobody else could attach the file."""
        access = self.access()
        if access is not None and not any(
                access.may(name, action) for name, ce in self.snapshot().entities.items() if file_fields(ce)
                for action in ("create", "update")):
            raise WriteRefused("you may not upload files: none of your roles may create or update records "
                               "with a file field")
        return self.files.upload(data, name, user=self.principal.user_id)

    def stored_file(self, file_id: int) -> StoredFile:
        """A stored file the principal may download: one held by a record field it can
        read (the read path's access rules: a record or field it cannot see is as if the
        file did not exist, 404), or an upload of its own not attached yet."""
        with self.engine.connect() as conn:
            found = self.files.info(conn, file_id)
        if found is None or found.released_at is not None:
            raise RecordNotFound("file", file_id)
        if found.entity is None or found.record_id is None or found.field is None:
            if self.principal.unrestricted or (found.created_by is not None
                                               and found.created_by == self.principal.user_id):
                return found
            raise RecordNotFound("file", file_id)
        shown = self.snapshot().entities.get(found.entity)
        compiled = shown.fields.get(found.field) if shown is not None else None
        if compiled is None:
            raise RecordNotFound("file", file_id)
        try:
            record = self.get(found.entity, found.record_id)
        except (RecordNotFound, UnknownEntity):
            raise RecordNotFound("file", file_id) from None
        if file_id not in compiled.type.file_ids(record.values.get(found.field), compiled.field):
            raise RecordNotFound("file", file_id)
        return found

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
        return list(self.snapshot().referrers(entity))

    def as_json(self, record: Record) -> dict[str, Any]:
        """The record as the API shows it: references with the title of what they point to,
        user fields with the user's name."""
        ce = self.entity(record.entity)
        out: dict[str, Any] = {"id": record.id, "version": record.version, "_title": record.title}
        for key, value in record.system.items():
            out[key] = jsontext.moment(value) if isinstance(value, dt.datetime) else value
        for name, compiled in ce.fields.items():
            value = record.values.get(name)
            if compiled.type.links_records and value is not None and not compiled.field.target:
                out[name] = {**value, "title": record.titles.get(name, "")}  # {entity, id, title}
            elif compiled.type.links_records and value is not None:
                out[name] = {"id": value, "title": record.titles.get(name, "")}
            elif compiled.type.links_users and value is not None:
                out[name] = {"id": value, "name": record.titles.get(name, "")}
            else:
                out[name] = compiled.to_json(value)
        return out


def _refers_to(other: CompiledEntity, compiled: CompiledField, entity: str, ids: Sequence[int]) -> Any:
    """The rows of `other` whose reference `compiled` points to one of `ids` of `entity` (a
    polymorphic reference: to `entity`'s records among its several targets)."""
    columns = {suffix: other.table.c[column] for suffix, column in compiled.columns}
    return compiled.type.refers_to(columns, entity, list(ids), compiled.field)
