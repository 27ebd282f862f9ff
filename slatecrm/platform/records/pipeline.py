"""The one write pipeline: every create, bulk create, update, bulk edit and validate-on-change
runs the same named steps in the same order.

    authorise → load → coerce → defaults → default expressions → stage side effects (close
    dates) → formulas → before-save hooks → validate (required, references, unique, owner,
    stage gate, validation rules and stage conditions) → write + history + stage history,
    one transaction → after-commit hooks

Before this module each entry point ran its own sequence, in its own order, and the form's
validate-on-change skipped the rules that saving applied. Now `check` is the pipeline run up to
`validate` in a transaction that is rolled back, so the form shows exactly what saving would.

Three extension points are plain lists of callables on the pipeline (`Hooks`), for what is
coming: record permissions (`authorise`: called before any record is read or written; raise
`WriteRefused` to stop), workflows and plugins (`before_save`: may change the draft, in the
write's transaction, before validation; `after_commit`: told what was saved once it is
committed, later fed from the outbox).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import sqlalchemy as sa

from slatecrm.digits import VERSION_MAX
from slatecrm.metamodel.rules import RuleContext

from ..identity.principal import SYSTEM, Principal
from ..storage import sequences, system
from . import apart, stages
from . import rules as rule_hooks
from .coercion import READ_ONLY, EntityCoercion
from .compiled import CompiledEntity, is_blank
from .constraints import UniqueValues, composite_unique_errors, existing_ids, member_of
from .errors import BadQuery, RecordNotFound, ValidationFailed, VersionConflict, WriteRefused
from .formlogic import NO_STATE, FormState
from .inserts import EntityInsert
from .rollups import rollups_of

if TYPE_CHECKING:
    from ..identity.access import Access, EntityAccess
    from .service import Record, RecordsService
    from .snapshot import Snapshot

log = logging.getLogger(__name__)

#: The steps, in the order every write runs them (docs/architecture.md, "From request to record").
STEPS = ("authorise", "load", "coerce", "defaults", "default expressions", "close dates", "formulas",
         "before-save hooks", "validate", "write", "after-commit hooks")

__all__ = ["READ_ONLY", "STEPS", "Draft", "Hooks", "Saved", "WritePipeline", "WriteRequest", "check_version"]

Action = Literal["create", "update", "delete", "check"]
T = TypeVar("T")


@dataclass(frozen=True)
class WriteRequest:
    """What is about to be written, as the authorise hooks see it (nothing has been read)."""

    entity: str
    action: Action
    user: int | None
    #: One per record: its id, or None for a new record.
    record_ids: tuple[int | None, ...]
    #: One per record: the values the caller gave, as given.
    data: tuple[Mapping[str, Any], ...]
    #: Who asks (identity/principal.py): what the permission checks read.
    principal: Principal = SYSTEM
    #: A silent write fires no workflows (an explicit, permitted option: records/service.py
    #: `silently`); the workflows it silenced are written to their run log.
    silent: bool = False


@dataclass
class Draft:
    """One record on its way through the pipeline."""

    entity: CompiledEntity
    #: What the caller gave, as given.
    given: Mapping[str, Any]
    record_id: int | None = None
    #: The stored record (with `owner`) for an update, None for a new record.
    before: dict[str, Any] | None = None
    #: The version the stored record has (updates).
    version: int | None = None
    #: The record as it will be saved. Before-save hooks may change it.
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    #: The stored record's other system fields (what a sharing rule may test besides owner).
    system: dict[str, Any] = field(default_factory=dict)

    @property
    def is_new(self) -> bool:
        return self.before is None

    def changed(self) -> list[str]:
        """Every key of a new record; the keys whose value differs from the stored one otherwise."""
        before = self.before
        if before is None:
            return list(self.values)
        return [k for k in self.values if self.values[k] != before.get(k)]

    def refuse(self, where: str, message: str) -> None:
        self.errors.setdefault(where, []).append(message)


@dataclass(frozen=True)
class Saved:
    """What after-commit hooks are told: the request and the records as committed."""

    request: WriteRequest
    records: Sequence[Record]
    #: Per record, the fields the write changed.
    changed: Sequence[Sequence[str]]
    #: The rows the write added to the history table (cascaded changes and deletes included):
    #: entity, record_id, version, action, changed_at, changed_by and changes (from → to).
    history: Sequence[Mapping[str, Any]] = ()


Authorise = Callable[[WriteRequest], None]
BeforeSave = Callable[[sa.Connection, WriteRequest, Draft, RuleContext], None]
AfterCommit = Callable[[Saved], None]
#: (entity, record id) → the record's values as written (a delete: as they were), for the
#: records whose full values the write had at hand.
WrittenValues = Mapping[tuple[str, int], Mapping[str, Any]]
Written = Callable[[sa.Connection, WriteRequest, Sequence[Mapping[str, Any]], WrittenValues], None]
BeforeCommit = Callable[[sa.Connection], None]


@dataclass
class Hooks:
    """The pipeline's extension points; register by appending."""

    #: Called before any record is read or written; raise `WriteRefused` to stop the write.
    authorise: list[Authorise] = field(default_factory=list)
    #: Called for each record after formulas and before validation, in the write's transaction
    #: (for `check`, in a transaction that is rolled back: `request.action == "check"`). What a
    #: hook changes in `draft.values` is recomputed through the formulas and validated.
    before_save: list[BeforeSave] = field(default_factory=list)
    #: Called once the write is committed (not for `check`).
    after_commit: list[AfterCommit] = field(default_factory=list)
    #: Called in the write's transaction right after its rows and history rows are written,
    #: with those history rows (cascades included) and the records' values: the workflow
    #: outbox (platform/workflows/outbox.py) turns them into its events there.
    written: list[Written] = field(default_factory=list)
    #: Called last in a transaction the write owns, before COMMIT (a write made on a caller's
    #: connection leaves this to the caller: records/service.py `bound`).
    before_commit: list[BeforeCommit] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class WritePipeline:
    """The steps, run by `create`, `update` and `check` of the records service."""

    def __init__(self, service: RecordsService, hooks: Hooks | None = None):
        """`hooks`: shared with another pipeline (a request's pinned service shares the app's)."""
        self.service = service
        self.hooks = hooks if hooks is not None else Hooks()

    # --- entry points --------------------------------------------------------------------------
    def create(self, entity: str, items: Sequence[Mapping[str, Any]], *, user: int | None) -> list[Record]:
        """New records, validated together and inserted in one transaction (one bulk write
        per table: records/inserts.py). Errors are keyed `[index].field` when there are
        several records; one refused record refuses the batch."""
        ce = self._entity(entity)
        principal = self.service.principal
        user = principal.user_id if user is None else user
        request = WriteRequest(ce.name, "create", user, (None,) * len(items), tuple(items), principal,
                               self.service.silent)
        self.service.preloaded.clear()  # a write may change what was read before it
        self.authorise(request)
        if not items:
            return []
        now = _now()
        with self.service.transaction() as conn:
            context = rule_hooks.context_for(conn, self._full().entities, user, None,
                                                principal=self.service.principal)
            rules = self._full().rules.entity(ce.name)
            coercion = self._derived(ce, "coercion", EntityCoercion)
            drafts = [self._prepare(conn, request, Draft(ce, data), context, rules, now, coercion)
                      for data in items]
            self._validate(conn, request, drafts, context)
            self._within_reach(request, drafts, context)
            self._refuse_if_any(drafts)
            records, history = self._insert(conn, ce, drafts, user, now)
            self.written(conn, request, history,
                         {(ce.name, r.id): d.values for r, d in zip(records, drafts, strict=True)})
        self.after_commit(request, records, [d.changed() for d in drafts], history)
        return records

    def update(self, entity: str, record_id: int, data: Mapping[str, Any], *, version: int | None,
               user: int | None) -> Record:
        """A partial update based on `version`: a stale version is refused (409) with the
        fields that changed since, never silently overwritten."""
        ce = self._entity(entity)
        principal = self.service.principal
        user = principal.user_id if user is None else user
        request = WriteRequest(ce.name, "update", user, (record_id,), (data,), principal, self.service.silent)
        self.authorise(request)
        if version is None:
            raise ValidationFailed({"version": ["give the version this change is based on"]})
        check_version(version)
        now = _now()
        with self.service.transaction() as conn:
            draft = self._load(conn, ce, record_id, data, lock=True)
            self.reach(conn, ce, record_id, "update")
            if draft.version != version:
                raise VersionConflict(entity, record_id, version, draft.version or 0,
                                      self.service._changed_since(conn, ce, record_id, version))
            context = self._context(conn, user, draft)
            self._prepare(conn, request, draft, context, self._full().rules.entity(ce.name), now)
            self._validate(conn, request, [draft], context)
            self._within_reach(request, [draft], context)
            self._refuse_if_any([draft])
            changed = draft.changed()
            record, history = self._update(conn, draft, version, changed, user, now)
            if changed:
                self.written(conn, request, history, {(ce.name, record_id): draft.values})
        if changed:
            self.after_commit(request, [record], [changed], history)
        return record

    def check(self, entity: str, data: Mapping[str, Any], *, record_id: int | None = None,
              user: int | None = None) -> dict[str, list[str]]:
        """Every problem `data` would meet when saved as a new record (or as a change to
        `record_id`), writing nothing: the same steps as a save, up to validate."""
        return self.preview(entity, data, record_id=record_id, user=user)[0]

    def preview(self, entity: str, data: Mapping[str, Any], *, record_id: int | None = None,
                user: int | None = None, candidates: Mapping[str, Sequence[int]] | None = None,
                ) -> tuple[dict[str, list[str]], FormState]:
        """`check`, and what the form logic decides about the record as it would be saved
        (records/formlogic.py): what a form shows. `candidates`: per reference with an
        option rule, the records the form would offer (those offered come back)."""
        ce = self._entity(entity)
        principal = self.service.principal
        user = principal.user_id if user is None else user
        request = WriteRequest(ce.name, "check", user, (record_id,), (data,), principal)
        self.authorise(request)
        with self.service.engine.connect() as conn, self._rolled_back(conn):
            if record_id is None:
                draft = Draft(ce, data)
            else:
                draft = self._load(conn, ce, record_id, data, lock=False)
                self.reach(conn, ce, record_id, "update")
            context = self._context(conn, user, draft)
            rules = self._full().rules.entity(ce.name)
            self._prepare(conn, request, draft, context, rules, _now())
            self._validate(conn, request, [draft], context)
            self._within_reach(request, [draft], context)
            self._mask_hidden([draft])
            state = NO_STATE
            if rules.logic.fields:
                record = draft.values if draft.record_id is None else {**draft.values, "id": draft.record_id}
                state = rules.logic.state(record, context, candidates)
        return draft.errors, state

    # --- steps -------------------------------------------------------------------------------
    def authorise(self, request: WriteRequest) -> None:
        """Step 1: nothing has been read yet. The principal's roles first (identity/access.py):
        the action on the entity (403 naming both; an entity it cannot read is 404, as if
        there were none), then the fields given (hidden or read-only: 422 naming the field,
        never its value). Then the hooks; a hook refuses by raising WriteRefused. Deletes
        (records/service.py) pass here too."""
        access = self.service.access()
        if access is not None:
            try:
                authorise_fields(access, request, self._full().entities[request.entity])
            except WriteRefused:
                # A record the principal cannot read is missing (404), whatever it asked to do
                # with it: a 403 would confirm that the id exists.
                for record_id in request.record_ids:
                    if record_id is not None:
                        self.service.get(request.entity, record_id)
                raise
        for hook in self.hooks.authorise:
            hook(request)

    def _full(self) -> Snapshot:
        return self.service.full_snapshot()

    def _entity(self, entity: str) -> CompiledEntity:
        """The entity with every field (defaults and formulas fill hidden ones); unknown
        (404) when it does not exist or the principal cannot read it, named among the
        entities it can read."""
        self.service.entity(entity)
        return self._full().entities[entity]

    def reach(self, conn: sa.Connection, ce: CompiledEntity, record_id: int, purpose: str) -> None:
        """The stored record must be within the principal's reach for `purpose` ("update",
        "delete"): the same SQL condition as the read path. Not even readable: 404, as if
        it did not exist; readable only: 403."""
        access = self.service.access()
        if access is None:
            return
        read = access.where(ce.name, ce.table, "read")
        wanted = access.where(ce.name, ce.table, purpose)
        if read is None and wanted is None:
            return
        flags = [sa.case((c, True), else_=False) if c is not None else sa.true() for c in (read, wanted)]
        row = conn.execute(sa.select(*flags).where(ce.table.c.id == record_id)).first()
        if row is None or not row[0]:
            raise RecordNotFound(ce.name, record_id)
        if not row[1]:
            raise WriteRefused(f"you may not {purpose} this {ce.name} record (id {record_id})")

    def _within_reach(self, request: WriteRequest, drafts: Sequence[Draft], context: RuleContext) -> None:
        """Step 9, last: each record as it will be saved must still be within the principal's
        reach (the Python form of the read path's condition): nobody moves a record out of
        their own reach by editing it, nor creates one outside it."""
        access = self.service.access()
        if access is None:
            return
        entity = request.entity
        purpose = "update" if access.may(entity, "update") else "read"
        grant = access.entity(entity)
        for draft in drafts:
            if draft.before is not None:
                for name in grant.read_only_on_update.intersection(draft.given):
                    if draft.values.get(name) != draft.before.get(name):
                        draft.refuse(name, read_only_refusal(grant, name))
            record = {**draft.system, **draft.values, "id": draft.record_id}
            if not access.within(entity, record, purpose, context.lookup):
                raise WriteRefused(f"the change would take the {entity} record out of your reach "
                                   "(your roles would not let you see or change it afterwards)")
        self._mask_hidden(drafts)

    def _mask_hidden(self, drafts: Sequence[Draft]) -> None:
        """Problems found on fields the principal cannot see are reported on the record as a
        whole, without the field's name or any value."""
        access = self.service.access()
        if access is None:
            return
        for draft in drafts:
            hidden = access.entity(draft.entity.name).hidden
            if hidden and hidden.intersection(draft.errors):
                for name in hidden.intersection(draft.errors):
                    del draft.errors[name]
                draft.refuse("", "a field you cannot see refuses this record: ask whoever manages your roles")

    @staticmethod
    def _visible_ids(conn: sa.Connection, access: Access | None, target: CompiledEntity,
                     ids: set[int]) -> set[int]:
        """Which of `ids` the principal may see of `target`: a reference to a record it
        cannot see is refused as if there were none (its existence is not confirmed)."""
        condition = None if access is None else access.where(target.name, target.table, "read")
        if condition is None:
            return existing_ids(conn, target.table, ids)
        return set(conn.execute(sa.select(target.table.c.id).where(
            member_of(conn, target.table.c.id, sorted(ids)), condition)).scalars())

    def _load(self, conn: sa.Connection, ce: CompiledEntity, record_id: int, data: Mapping[str, Any], *,
              lock: bool) -> Draft:
        """Step 2 (updates): the stored record, locked for the write on PostgreSQL (or the row
        the bound caller read and locked already in this transaction: `preloaded`)."""
        row = self.service.preloaded.pop((ce.name, record_id), None) if lock else None
        if row is None:
            statements = self._derived(ce, "load", _LoadStatements)
            query = statements.locked if lock and conn.dialect.name == "postgresql" else statements.plain
            row = conn.execute(query, {"slate__id": record_id}).mappings().first()
        if row is None:
            raise RecordNotFound(ce.name, record_id)
        before = {name: f.from_row(row) for name, f in ce.fields.items()}
        if apart.apart_fields(ce):
            before.update(apart.load_values(self._apart_store(conn), ce, record_id))
        before["owner"] = row["owner"]
        draft = Draft(ce, data, record_id, before, row["version"], dict(before))
        draft.system = {k: row[k] for k in ("created_at", "updated_at", "created_by", "updated_by")}
        return draft

    def _apart_store(self, conn: sa.Connection) -> apart.Store:
        """The store of the hooks of fields stored apart, on the write's connection: links are
        checked against what the principal may read (a record it may not read is refused as
        if there were none)."""
        access = self.service.access()

        def where(target: CompiledEntity) -> sa.ColumnElement[bool] | None:
            return None if access is None else access.where(target.name, target.table, "read")
        full = self._full()
        service = self.service

        def writer() -> RecordsService:
            if service.connection is not None:
                return service  # bound already (a workflow's run): its writes are on `conn`
            bound = service.bound(conn, service.principal, savepoints=False)
            bound.silent = service.silent
            if service.deferred is not None:
                bound.deferred = service.deferred  # a bound caller runs them after its commit
            return bound
        return apart.Store(conn, full.tables, apart.visible_in(conn, full.entities, where),
                           entities=full.entities, writer=writer)

    def _context(self, conn: sa.Connection, user: int | None, draft: Draft) -> RuleContext:
        previous = None if draft.before is None else {**draft.before, "id": draft.record_id}
        return rule_hooks.context_for(conn, self._full().entities, user, previous,
                                      principal=self.service.principal)

    def _prepare(self, conn: sa.Connection, request: WriteRequest, draft: Draft, context: RuleContext,
                 rules: rule_hooks.EntityRules, now: dt.datetime,
                 coercion: EntityCoercion | None = None) -> Draft:
        """Steps 3–8 for one record: from the given values to the record as it will be saved.
        `coercion`: the entity's, when the caller has it at hand (a batch looks it up once)."""
        ce = draft.entity
        coercion = coercion or self._derived(ce, "coercion", EntityCoercion)
        draft.values.update(coercion.given(draft.given, draft.errors))
        if draft.is_new:
            coercion.defaults(draft.values)
            draft.values.setdefault("owner", request.user)  # rules read the owner it will have
            rule_hooks.apply_defaults(rules, ce, draft.values, draft.given, context, draft.errors)
        if apart.apart_fields(ce):
            apart.merge(ce, draft.before, draft.given, draft.values, draft.errors)
        stages.close_dates(ce, draft.before, draft.values, now)
        formula_errors: dict[str, list[str]] = {}
        rule_hooks.compute(rules, ce, draft.values, context, formula_errors)
        if self.hooks.before_save:
            for hook in self.hooks.before_save:
                hook(conn, request, draft, context)
            formula_errors = {}  # computed again from what the hooks left: only that counts
            rule_hooks.compute(rules, ce, draft.values, context, formula_errors)
        for name, messages in formula_errors.items():
            draft.errors.setdefault(name, []).extend(messages)
        return draft

    def _validate(self, conn: sa.Connection, request: WriteRequest, drafts: Sequence[Draft],
                  context: RuleContext) -> None:
        """Step 9: rules over whole records. References, owners and unique values are looked
        up once for the whole batch (one query per referenced entity, unique field or
        combination), not once per record, so bulk create stays at batch speed. `context`:
        the rule context of these drafts (several drafts only when they are all new)."""
        if not drafts:
            return
        ce = drafts[0].entity
        rules = self._full().rules.entity(ce.name)
        changes = [set(d.changed()) for d in drafts]
        existing = self._existing_references(conn, ce, drafts, changes)
        owners = self._existing_owners(conn, ce, drafts, changes)
        unique = UniqueValues(conn, ce, [(d.values, c) for d, c in zip(drafts, changes, strict=True)])
        references = ce.references()
        required = [name for name, each in ce.fields.items() if each.field.required and each.type.writable]
        if apart.apart_fields(ce):
            apart.check(self._apart_store(conn), ce, drafts, changes)
        for index, (draft, changed) in enumerate(zip(drafts, changes, strict=True)):
            validate_fields(draft, index, changed, required, references, existing, owners, unique)
            for field_name, pipeline in ce.pipelines.items():
                if field_name in changed:
                    old = draft.before.get(field_name) if draft.before else None
                    for where, message in stages.gate(ce, pipeline, old, draft.values.get(field_name),
                                                      draft.values):
                        draft.refuse(where, message)
            record = draft.values if draft.record_id is None else {**draft.values, "id": draft.record_id}
            rule_hooks.validate(rules, ce, record, changed, context, draft.errors)
            if rules.logic.fields:  # form logic binds every write; hidden / read-only: people's
                people = not self.service.principal.unrestricted
                refused = rules.logic.refusals(record, context, given=draft.given, before=draft.before,
                                               changed=changed, people=people)
                for name, messages in refused.items():
                    if name not in draft.errors:
                        draft.errors[name] = messages

    @staticmethod
    def _refuse_if_any(drafts: Sequence[Draft]) -> None:
        errors: dict[str, list[str]] = {}
        for index, draft in enumerate(drafts):
            prefix = f"[{index}]." if len(drafts) > 1 else ""
            errors.update({prefix + k: v for k, v in draft.errors.items()})
        if errors:
            raise ValidationFailed(errors)

    def _insert(self, conn: sa.Connection, ce: CompiledEntity, drafts: Sequence[Draft], user: int | None,
                now: dt.datetime) -> tuple[list[Record], list[dict[str, Any]]]:
        """Step 10 for new records: numbers, then the rows, history rows and stage visits,
        each table in one bulk write (records/inserts.py), then the records read back."""
        prepared = [d.values for d in drafts]
        _number(conn, ce, prepared)
        writer = self._derived(ce, "insert", lambda ce: EntityInsert(ce, conn.dialect))
        try:
            ids, history = writer.write(conn, prepared, user, now, self.service.principal.token_id)
        except sa.exc.IntegrityError as error:
            raise ValidationFailed(integrity_errors(ce, error)) from None
        if apart.apart_fields(ce):
            store = self._apart_store(conn)
            for record_id, draft in zip(ids, drafts, strict=True):
                apart.save(store, ce, record_id, None, draft.values, draft.values)
        rollups = rollups_of(self._full())
        rollups.recompute_own(conn, ce.name, ids)
        rollups.children_written(conn, ce.name, [(None, values) for values in prepared])
        return self.service._read_back(conn, ce, ids), history

    def _update(self, conn: sa.Connection, draft: Draft, version: int, changed: Sequence[str],
                user: int | None, now: dt.datetime) -> tuple[Record, list[dict[str, Any]]]:
        """Step 10 for a change: UPDATE … WHERE version = n, history, stage history."""
        ce = draft.entity
        record_id = draft.record_id
        assert record_id is not None and draft.before is not None
        merged, before = draft.values, draft.before
        history: list[dict[str, Any]] = []
        if changed:
            update: dict[str, Any] = {"updated_at": now, "updated_by": user, "version": version + 1}
            for name in changed:
                if name == "owner":
                    update["owner"] = merged["owner"]
                else:
                    update.update(ce.fields[name].to_row(merged[name]))
            columns = sorted(update)
            statement = self._derived(ce, "update:" + ",".join(columns), lambda ce: _UpdateStatement(ce,
                                                                                                     columns))
            try:
                done = conn.execute(statement.statement,
                                    {**update, "slate__id": record_id, "slate__version": version})
            except sa.exc.IntegrityError as error:
                raise ValidationFailed(integrity_errors(ce, error)) from None
            if done.rowcount != 1:  # a concurrent writer won between our read and write
                raise VersionConflict(ce.name, record_id, version, version + 1, [])
            if apart.apart_fields(ce):
                apart.save(self._apart_store(conn), ce, record_id, before, merged, changed)
            history.append({"entity": ce.name, "record_id": record_id, "version": version + 1,
                            "action": "update", "changed_at": now, "changed_by": user,
                            "token_id": self.service.principal.token_id, "changes": {
                                n: [_json(ce, n, before.get(n)), _json(ce, n, merged[n])] for n in changed}})
            conn.execute(HISTORY_INSERT, history[0])
            for field_name in ce.pipelines:
                if field_name in changed:
                    stages.record_move(conn, ce, record_id, field_name, merged[field_name], now, user)
            rollups = rollups_of(self._full())
            rollups.children_written(conn, ce.name, [(before, merged)], changed)
            if any(f.name in changed for f in apart.apart_fields(ce)):
                rollups.recompute_own(conn, ce.name, [record_id])  # over children saved with it (lines)
        if not self.service.read_back:
            return _as_written(ce, record_id, version + (1 if changed else 0), merged, draft, now,
                               user), history
        return self.service._read_back(conn, ce, [record_id])[0], history

    def written(self, conn: sa.Connection, request: WriteRequest, history: Sequence[Mapping[str, Any]],
                values: WrittenValues) -> None:
        """End of step 10, in the write's transaction: the `written` hooks (the outbox)."""
        for hook in self.hooks.written:
            hook(conn, request, history, values)

    def after_commit(self, request: WriteRequest, records: Sequence[Record],
                     changed: Sequence[Sequence[str]], history: Sequence[Mapping[str, Any]]) -> None:
        """Step 11: the write is committed; hooks learn what was saved. A hook that fails
        cannot undo the write, so its error is logged and the caller still hears of the
        save (durable work goes through the workflow outbox instead). A write made on a
        caller's connection (`bound`) hands them to the caller, who calls them after its commit."""
        deferred = self.service.deferred
        if deferred is not None:
            deferred.append(lambda: self.after_commit_now(request, records, changed, history))
            return
        self.after_commit_now(request, records, changed, history)

    def after_commit_now(self, request: WriteRequest, records: Sequence[Record],
                         changed: Sequence[Sequence[str]], history: Sequence[Mapping[str, Any]]) -> None:
        if self.hooks.after_commit:
            saved = Saved(request, records, changed, history)
            for hook in self.hooks.after_commit:
                try:
                    hook(saved)
                except Exception:
                    log.exception("after-commit hook %r failed for %s %s", hook, request.action,
                                  request.entity)

    # --- batch look-ups --------------------------------------------------------------------
    def _existing_references(self, conn: sa.Connection, ce: CompiledEntity, drafts: Sequence[Draft],
                             changes: Sequence[set[str]]) -> dict[str, set[Any]]:
        """Which of the ids the changed references point to exist, by reference field (the
        (entity, id) pairs of a polymorphic one): one query per referenced entity (and few
        thousand ids), not one per record."""
        compiled = self._full().entities
        access = self.service.access()
        references = ce.references()
        several = ce.polymorphic_references()
        wanted: dict[str, set[int]] = {}
        for name, target_name in references.items():
            wanted.setdefault(target_name, set()).update(
                d.values[name] for d, changed in zip(drafts, changes, strict=True)
                if name in changed and isinstance(d.values.get(name), int))
        for name in several:  # {entity, id}: the ids wanted of each entity
            for d, changed in zip(drafts, changes, strict=True):
                value = d.values.get(name)
                if name in changed and isinstance(value, Mapping):
                    wanted.setdefault(value["entity"], set()).add(value["id"])
        found = {target_name: self._visible_ids(conn, access, target, ids)
                 if (target := compiled.get(target_name)) is not None and ids else set()
                 for target_name, ids in wanted.items()}
        out: dict[str, set[Any]] = {name: found[target_name] for name, target_name in references.items()}
        for name, targets in several.items():
            out[name] = {(target, i) for target in targets for i in found.get(target, ())}
        return out

    @staticmethod
    def _existing_owners(conn: sa.Connection, ce: CompiledEntity, drafts: Sequence[Draft],
                         changes: Sequence[set[str]]) -> set[int]:
        """Which of the user ids the changed owners and user fields (`links_users`) name
        exist: one query for the batch."""
        names = ["owner", *(name for name, f in ce.fields.items() if f.type.links_users)]
        ids = {d.values[name] for d, changed in zip(drafts, changes, strict=True)
               for name in names if name in changed and _is_id(d.values.get(name))}
        return existing_ids(conn, system.users, ids) if ids else set()

    def _derived(self, ce: CompiledEntity, kind: str, build: Callable[[CompiledEntity], T]) -> T:
        """What `build` makes of `ce`, kept with the revision `ce` belongs to (made again,
        not kept, when the service's current revision is another one by now)."""
        made = self._full().derived(f"records.pipeline.{kind}.{ce.name}", lambda: build(ce))
        return made if getattr(made, "ce", None) is ce else build(ce)

    @staticmethod
    @contextmanager
    def _rolled_back(conn: sa.Connection) -> Iterator[None]:
        transaction = conn.begin()
        try:
            yield
        finally:
            transaction.rollback()


# --- the steps' work, one record at a time ------------------------------------------------------
def authorise_fields(access: Access, request: WriteRequest, ce: CompiledEntity) -> None:
    """The object-level and field-level part of `authorise`, before anything is read: the
    action (403), and no value given for a hidden field (refused whatever the value, so the
    refusal confirms nothing) nor for a read-only one on a new record (an update may send a
    read-only field unchanged: that is checked once the record is loaded). Read-only: the
    roles' and the fields defined `read_only` (identity/access.py); a field defined
    `read_only_after_create` may be given here."""
    action = request.action
    if action == "check":
        action = "create" if request.record_ids[0] is None else "update"
    if not access.may(request.entity, action):
        raise WriteRefused(f"you may not {action} {ce.entity.label_plural.lower()} ({request.entity})")
    if action == "delete":
        return
    grant = access.entity(request.entity)
    if not grant.read_only:
        return
    errors: dict[str, list[str]] = {}
    for index, (record_id, data) in enumerate(zip(request.record_ids, request.data, strict=True)):
        prefix = f"[{index}]." if len(request.data) > 1 else ""
        for name, value in data.items():
            if name in grant.hidden:
                errors[prefix + name] = ["you cannot change this field"]
            elif name in grant.read_only and record_id is None and not is_blank(value):
                errors[prefix + name] = ["is read-only for you"]
    if errors:
        raise ValidationFailed(errors)


def read_only_refusal(grant: EntityAccess, name: str) -> str:
    """Why a stored record's field may not be changed: read-only for the principal (its roles
    or the field's `read_only`), or fixed once the record exists (`read_only_after_create`)."""
    if name in grant.read_only:
        return "is read-only for you"
    return "is set when the record is created and cannot be changed afterwards"


def validate_fields(draft: Draft, index: int, changed: set[str], required: Sequence[str],
                    references: Mapping[str, str], existing: Mapping[str, set[Any]], owners: set[int],
                    unique: UniqueValues) -> None:
    """Required fields, references that exist (`existing`: the ids found, by reference field),
    unique values and combinations (`unique`: looked up for the batch; `index`: the draft's
    place in it), and the owner and user fields (`owners`: the user ids found)."""
    ce, values = draft.entity, draft.values
    for name in required:
        # A value refused by its type is not also "required" (it was given, just not valid).
        if is_blank(values.get(name)) and name not in draft.errors:
            draft.refuse(name, "is required")
    for name in changed:
        compiled = ce.fields.get(name)
        value = values.get(name)
        if compiled is None or value is None or name in draft.errors:
            continue
        if name in references and value not in existing.get(name, ()):
            draft.refuse(name, f"there is no {references[name]} with id {value}")
        elif compiled.type.links_records and isinstance(value, Mapping) \
                and (value["entity"], value["id"]) not in existing.get(name, ()):
            draft.refuse(name, f"there is no {value['entity']} with id {value['id']}")
        if compiled.type.links_users and (not _is_id(value) or value not in owners):
            draft.refuse(name, f"there is no user with id {value}")
        if compiled.field.unique and (clash := unique.field_clash(index, draft.record_id, name, value)):
            draft.refuse(name, clash)
    for name, messages in unique.combination_clashes(index, draft.record_id, values, changed).items():
        for message in messages:
            draft.refuse(name, message)
    owner = values.get("owner")
    if "owner" in changed and owner is not None and (not _is_id(owner) or owner not in owners):
        draft.refuse("owner", f"there is no user with id {owner}")


def _as_written(ce: CompiledEntity, record_id: int, version: int, values: Mapping[str, Any], draft: Draft,
                now: dt.datetime, user: int | None) -> Record:
    """The changed record from what was written, without reading it back (`read_back=False`:
    a workflow's action needs its values, version and owner, not the titles of its references)."""
    from .results import Record

    system_values = {**draft.system, "owner": values.get("owner", draft.system.get("owner")),
                     "updated_at": now, "updated_by": user}
    return Record(ce.name, record_id, version, "", {n: values.get(n) for n in ce.fields}, system_values, {})


#: One statement for every history row a change writes (its parameters vary, not its shape).
HISTORY_INSERT = system.history.insert()


class _LoadStatements:
    """The SELECT of one record by id, plain and FOR UPDATE, built once per entity."""

    def __init__(self, ce: CompiledEntity):
        self.ce = ce
        self.plain = ce.select.where(ce.table.c.id == sa.bindparam("slate__id"))
        self.locked = self.plain.with_for_update()


class _UpdateStatement:
    """`UPDATE … SET <columns> WHERE id = :slate__id AND version = :slate__version`, built
    once per entity and set of columns (kept with the revision by `_derived`), so a change
    does not build and cache-key a new statement each time."""

    def __init__(self, ce: CompiledEntity, columns: Sequence[str]):
        self.ce = ce
        table = ce.table
        self.statement = table.update().where(
            table.c.id == sa.bindparam("slate__id"), table.c.version == sa.bindparam("slate__version")
        ).values({name: sa.bindparam(name) for name in columns})


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _number(conn: sa.Connection, ce: CompiledEntity, prepared: list[dict[str, Any]]) -> None:
    """Give auto-number fields the next numbers of their sequence (a block for a batch)."""
    for name, compiled in ce.fields.items():
        if not compiled.type.numbered:
            continue
        start = int(compiled.field.settings.get("start", 1))
        first = sequences.take(conn, ce.name, name, start, len(prepared))
        for offset, values in enumerate(prepared):
            values[name] = compiled.type.format(first + offset, compiled.field)


def check_version(version: object) -> int:
    """`version` if it is one a record can have (1 to VERSION_MAX, the range of the
    `version` columns), else BadQuery: a version out of range never reaches the database,
    which would refuse it with a 500 (docs/decisions.md, "Never a 5xx for bad input")."""
    if isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= VERSION_MAX:
        return version
    shown = repr(version) if len(repr(version)) <= 40 else repr(version)[:40] + "…"
    raise BadQuery({"version": [f"{shown} is not a record version (a whole number from 1 to {VERSION_MAX})"]})


def _json(ce: CompiledEntity, name: str, value: Any) -> Any:
    compiled = ce.fields.get(name)
    return compiled.to_json(value) if compiled is not None else value


def integrity_errors(ce: CompiledEntity, error: sa.exc.IntegrityError) -> dict[str, list[str]]:
    """A database refusal that slipped past the checks (a race) as field errors."""
    if (composite := composite_unique_errors(ce, error)) is not None:
        return composite
    text = str(error.orig)
    for name, compiled in ce.fields.items():
        columns = [c for _, c in compiled.columns]
        if any(f"{ce.table.name}.{c}" in text or f"_{c}" in text or f"({c})" in text for c in columns):
            unique = "unique" in text.lower() or "duplicate" in text.lower()
            return {name: ["is already used by another record" if unique
                           else "points to a record that does not exist"]}
    return {"": [f"the database refused the record: {text.splitlines()[0]}"]}
