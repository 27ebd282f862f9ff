"""plan(current, target): every schema change, its SQL, and the data it puts at risk.

The plan is made from the two metamodels, not from a diff of the database alone, so
that it knows intent: a field with `renamed_from` is a column rename, a field that
disappeared is retired (column and data kept), and a type change is a retype whose
every existing value is checked with the new type's own coercer before anything runs.
Nothing here writes: `apply` (slatecrm.platform.storage.apply) runs the steps.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as attribute
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from slatecrm.metamodel.fieldtypes import CoercionError, ColumnSpec, FieldType, FieldTypeRegistry
from slatecrm.metamodel.model import Entity, Field, Metamodel

from .fulltext import (
    SearchIndex,
    create_index,
    drop_index,
    outdated,
    redefine_index,
    suspend_index,
    wanted_search_indexes,
)
from .tables import (
    ON_DELETE_SQL,
    IndexSpec,
    entity_columns,
    field_column,
    fk_name,
    foreign_table,
    indexes_of,
    outdated_indexes,
    table_name,
    wanted_indexes,
)

SAMPLE_IDS = 10
BATCH = 5000


@dataclass(frozen=True)
class DataRisk:
    """What existing data a change would hurt. A blocking risk stops `apply`."""

    message: str
    blocking: bool
    rows: int
    total: int
    sample_ids: tuple[int, ...] = ()

    @classmethod
    def found(cls, message: str, rows: Rows, total: int, *, blocking: bool) -> DataRisk:
        """A risk about `rows`; the message ends with their ids."""
        return cls(f"{message}: ids {rows.ids()}", blocking, rows.count, total, rows.sample)

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "blocking": self.blocking, "rows": self.rows,
                "total": self.total, "sample_ids": list(self.sample_ids)}


@dataclass(frozen=True)
class Rows:
    """How many rows a check found, and the first few ids to show."""

    count: int
    sample: tuple[int, ...]

    def ids(self) -> str:
        text = ", ".join(str(i) for i in self.sample)
        rest = self.count - len(self.sample)
        return text + (f" and {rest:,} more" if rest > 0 else "")


@dataclass(frozen=True)
class Step:
    """One executable piece of a change: DDL through Alembic operations, or a data copy."""

    describe: str
    ddl: Callable[[Operations], None] | None = None
    data: Callable[[sa.Connection], None] | None = None


@dataclass(frozen=True)
class Change:
    action: str
    entity: str
    field: str | None
    summary: str
    sql: tuple[str, ...] = ()
    risks: tuple[DataRisk, ...] = ()
    rewrites_table: bool = False
    steps: tuple[Step, ...] = attribute(default=(), compare=False, repr=False)

    @property
    def blocked(self) -> bool:
        return any(r.blocking for r in self.risks)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "entity": self.entity, "field": self.field,
                "summary": self.summary, "sql": list(self.sql),
                "risks": [r.as_dict() for r in self.risks], "rewrites_table": self.rewrites_table}


@dataclass(frozen=True)
class Plan:
    base_revision: int
    dialect: str
    current: Metamodel
    #: The metamodel after apply, retired fields and entities included.
    target: Metamodel
    changes: tuple[Change, ...]

    @property
    def blocked(self) -> bool:
        return any(c.blocked for c in self.changes)

    @property
    def schema_changes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.sql)

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def as_dict(self) -> dict[str, Any]:
        return {"base_revision": self.base_revision, "dialect": self.dialect,
                "blocked": self.blocked, "changes": [c.as_dict() for c in self.changes]}


# --- rendering SQL without running it ---------------------------------------------------
def render_sql(steps: Iterable[Step], dialect: sa.Dialect) -> tuple[str, ...]:
    out: list[str] = []
    for step in steps:
        if step.ddl is not None:
            buffer = io.StringIO()
            context = MigrationContext.configure(
                dialect=dialect, opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True})
            step.ddl(Operations(context))
            out.extend(s.strip() for s in buffer.getvalue().split(";\n") if s.strip())
        if step.data is not None:
            out.append(f"-- {step.describe}")
    return tuple(out)


def _signature(spec: ColumnSpec) -> tuple[Any, ...]:
    return (repr(spec.type), spec.references, spec.on_delete, spec.references_table)


def _tmp_column(table: str, column: str) -> str:
    return "slate_tmp_" + hashlib.sha1(f"{table}.{column}".encode()).hexdigest()[:12]


class Planner:
    def __init__(self, conn: sa.Connection, registry: FieldTypeRegistry, current: Metamodel,
                 target: Metamodel, base_revision: int, purge: Sequence[tuple[str, str]] = ()):
        self.conn = conn
        self.dialect = conn.dialect
        self.registry = registry
        self.current = current
        self.target = target
        self.base_revision = base_revision
        self.purge = set(purge)
        self.changes: list[Change] = []
        self._row_counts: dict[str, int] = {}
        #: (table, column after this plan) → its name in the database now, for renamed columns.
        self._renamed: dict[tuple[str, str], str] = {}

    # --- helpers ---------------------------------------------------------------------
    def change(self, action: str, entity: str, field: str | None, summary: str,
               steps: Sequence[Step] = (), risks: Sequence[DataRisk] = (),
               rewrites_table: bool = False) -> None:
        self.changes.append(Change(action, entity, field, summary, render_sql(steps, self.dialect),
                                   tuple(risks), rewrites_table, tuple(steps)))

    def rows(self, table: str) -> int:
        if table not in self._row_counts:
            self._row_counts[table] = self.conn.execute(
                sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one()
        return self._row_counts[table]

    def ftype(self, f: Field) -> FieldType:
        return self.registry[f.type]

    # --- the plan ----------------------------------------------------------------------
    def plan(self) -> Plan:
        unknown = [(e, f) for e, f in self.purge if not self._retired_field(e, f)]
        if unknown:
            raise PlanError("; ".join(
                f"{e}.{f} is not a retired field (only retired fields can be purged)" for e, f in unknown))
        state: list[Entity] = []
        created: list[Entity] = []
        for target in self.target.active_entities:
            current = self.current.any_entity(target.name)
            if current is None:
                created.append(target)
                state.append(target)
            else:
                state.append(self.entity_changes(current, target))
        self.create_tables(created)
        for current in self.current.active_entities:
            if self.target.entity(current.name) is None:
                self.change("retire table", current.name, None,
                            f"retire entity {current.name} (table {current.table_name} and its "
                            f"{self.rows(current.table_name):,} rows are kept, hidden)")
                state.append(replace(current, retired=True))
        for current in self.current.entities:
            if current.retired and self.target.any_entity(current.name) is None:
                state.append(current)
        target_state = replace(self.target, entities=tuple(state))
        self.index_changes(target_state)
        self.search_index_changes(target_state)
        self.role_changes()
        self.user_attribute_changes()
        self.workflow_changes()
        return Plan(self.base_revision, self.dialect.name, self.current, target_state,
                    tuple(self._ordered()))

    def role_changes(self) -> None:
        """Roles are metamodel without tables: a change is shown (and makes a revision) but
        runs nothing."""
        current = {r.name: r for r in self.current.roles}
        target = {r.name: r for r in self.target.roles}
        for name, role in target.items():
            if name not in current:
                self.change("add role", "", None, f"add role {name} ({role.label})")
            elif current[name] != role:
                self.change("change role", "", None, f"change role {name} ({role.label})")
        for name in current:
            if name not in target:
                self.change("remove role", "", None, f"remove role {name}")

    def user_attribute_changes(self) -> None:
        """User attributes are metamodel without tables (their values are platform data, kept
        when an attribute is removed): a change is shown (and makes a revision), runs nothing."""
        current = {a.name: a for a in self.current.user_attributes}
        target = {a.name: a for a in self.target.user_attributes}
        for name, found in target.items():
            if name not in current:
                self.change("add user attribute", "", None, f"add user attribute {name} ({found.type})")
            elif current[name] != found:
                self.change("change user attribute", "", None, f"change user attribute {name} ({found.type})")
        for name in current:
            if name not in target:
                self.change("remove user attribute", "", None,
                            f"remove user attribute {name} (users' values are kept, unused)")

    def workflow_changes(self) -> None:
        """Workflows are metamodel without tables (nothing runs them yet): a change is shown
        (and makes a revision) but runs nothing."""
        current = {w.name: w for w in self.current.workflows}
        target = {w.name: w for w in self.target.workflows}
        for name, found in target.items():
            if name not in current:
                self.change("add workflow", "", None,
                            f"add workflow {name} ({found.entity}, {found.trigger.kind})")
            elif current[name] != found:
                self.change("change workflow", "", None, f"change workflow {name} ({found.entity})")
        for name in current:
            if name not in target:
                self.change("remove workflow", "", None, f"remove workflow {name}")

    def _ordered(self) -> Iterator[Change]:
        order = ["create table", "drop search index", "suspend search index", "drop index",
                 "rename column", "restore column", "add column",
                 "retype column", "change field", "retire column", "purge column", "restore table",
                 "retire table", "add index", "redefine search index", "add search index"]
        yield from sorted(self.changes, key=lambda c: order.index(c.action) if c.action in order else 99)

    def _retired_field(self, entity: str, name: str) -> bool:
        current = self.current.any_entity(entity)
        in_current = current is not None and any(
            f.name == name and f.retired for f in current.fields)
        target = self.target.entity(entity)
        removed_now = (current is not None and current.field(name) is not None
                       and target is not None and target.field(name) is None)
        return in_current or removed_now

    # --- new tables --------------------------------------------------------------------
    def create_tables(self, entities: list[Entity]) -> None:
        """Create tables in dependency order; on PostgreSQL, foreign keys into tables made
        later in the same plan are added once every table exists."""
        names = {e.name for e in entities}
        done: set[str] = set()
        deferred: list[tuple[Entity, Field]] = []
        remaining = list(entities)
        while remaining:
            ready = [e for e in remaining
                     if all(t in done or t == e.name or t not in names for t in _targets(e))]
            entity = ready[0] if ready else remaining[0]
            remaining.remove(entity)
            later = {t for t in _targets(entity) if t in names and t not in done and t != entity.name}
            self._create_table(entity, later, deferred)
            done.add(entity.name)
        for entity, f in deferred:
            self.change("add column", entity.name, f.name,
                        f"add foreign key {entity.name}.{f.name} → {f.target}",
                        [Step(f"foreign key {f.name}", ddl=_add_fk(entity.table_name, f.name,
                                                                   f.target or "", f.settings))])

    def _create_table(self, entity: Entity, later: set[str],
                      deferred: list[tuple[Entity, Field]]) -> None:
        skip_fk = frozenset(later) if self.dialect.name != "sqlite" else frozenset()
        deferred.extend((entity, f) for f in entity.fields if f.target in skip_fk)
        registry = self.registry
        indexes = list(indexes_of(entity, registry))
        dialect = self.dialect.name

        def ddl(ops: Operations) -> None:
            ops.create_table(entity.table_name, *entity_columns(entity, registry, skip_fk))
            for index in indexes:
                ops.create_index(index.name, index.table, list(index.columns_on(dialect)),
                                 unique=index.unique)

        self.change("create table", entity.name, None,
                    f"create table {entity.table_name} for entity {entity.name} "
                    f"({len(entity.active_fields)} fields)", [Step("create table", ddl=ddl)])

    # --- changes to an existing entity -------------------------------------------------
    def entity_changes(self, current: Entity, target: Entity) -> Entity:
        table = target.table_name
        if current.retired:
            self.change("restore table", target.name, None,
                        f"restore entity {target.name} with its {self.rows(table):,} rows")
        fields: list[Field] = []
        consumed: set[str] = set()
        for new in target.active_fields:
            old = current.any_field(new.name)
            if old is None and new.renamed_from:
                source = current.any_field(new.renamed_from)
                if source is not None and target.field(new.renamed_from) is None:
                    self.rename(target, source, new)
                    consumed.add(source.name)
                    old = replace(source, name=new.name)
            if old is None:
                self.add(target, new)
            else:
                consumed.add(new.name)
                if old.retired:
                    self.change("restore column", target.name, new.name,
                                f"restore retired field {target.name}.{new.name} with its data")
                self.compare(target, old, new)
            fields.append(replace(new, retired=False))
        for old in current.fields:
            if old.name in consumed:
                continue
            if (target.name, old.name) in self.purge:
                self.purge_field(target, old)
                continue
            if not old.retired:
                self.change("retire column", target.name, old.name,
                            f"retire field {target.name}.{old.name} (its column and data are kept, "
                            "hidden, until purged; adding the field again brings them back)")
            fields.append(replace(old, retired=True))
        self.default_sort_change(current, target)
        return replace(target, fields=tuple(fields))

    def default_sort_change(self, current: Entity, target: Entity) -> None:
        """A new default_sort changes how lists read, not the table: shown (and making a
        revision) with no DDL. No index is made for it: `indexes` in the pack does that,
        as for any list sorted on several fields."""
        before = current.default_sort.keys if current.default_sort else ()
        after = target.default_sort.keys if target.default_sort else ()
        if before != after:
            self.change("change entity", target.name, None,
                        f"default sort of {target.name}: {_sort_text(before)} → {_sort_text(after)} "
                        "(lists only; no schema change)")

    def rename(self, entity: Entity, old: Field, new: Field) -> None:
        steps = []
        for spec in self.ftype(old).columns(old):
            before, after = spec.column_name(old.name), spec.column_name(new.name)
            self._renamed[(entity.table_name, after)] = before
            steps.append(Step(f"rename {before}", ddl=_rename(entity.table_name, before, after)))
        self.change("rename column", entity.name, new.name,
                    f"rename field {entity.name}.{old.name} → {new.name} (data kept)", steps)

    def add(self, entity: Entity, new: Field) -> None:
        table = entity.table_name
        field_type = self.ftype(new)
        steps = []
        backfill = None
        # A constant default fills the new column without a rewrite; a JSON list has no
        # literal a server default could hold, so it is written by a data step instead.
        single = field_type.columns(new)
        if new.default is not None and len(single) == 1 and not isinstance(single[0].type, sa.JSON):
            backfill = field_type.coerce(new.default, new)  # a constant: no table rewrite
        for spec in field_type.columns(new):
            column = field_column(spec, new, table)
            default = None
            if backfill is not None and spec.suffix == "":
                default = sa.literal(backfill, spec.type).compile(
                    dialect=self.dialect, compile_kwargs={"literal_binds": True})
            steps.append(Step(f"add column {column.name}",
                              ddl=_add_column(table, column, spec, str(default) if default else None,
                                              self.dialect.name)))
        existing = self.rows(table)
        note = ""
        if backfill is not None and existing:
            note = f"; the {existing:,} existing rows get the default {field_type.display(backfill, new)!r}"
        risks = []
        if new.required and backfill is None and existing:
            risks.append(DataRisk(f"required field {new.name}: the {existing:,} existing rows have no "
                                  "value yet", False, existing, existing))
        self.change("add column", entity.name, new.name,
                    f"add {new.type} field {entity.name}.{new.name}{note}", steps, risks)

    def purge_field(self, entity: Entity, old: Field) -> None:
        table = entity.table_name
        specs = self.ftype(old).columns(old)
        t = sa.table(table, sa.column("id"), *[sa.column(s.column_name(old.name)) for s in specs])
        used = self.conn.execute(sa.select(sa.func.count()).select_from(t).where(
            sa.or_(*[t.c[s.column_name(old.name)].isnot(None) for s in specs]))).scalar_one()
        steps = [_drop_column(table, s.column_name(old.name), s.has_foreign_key, self.dialect.name)
                 for s in specs]
        risk = DataRisk(f"purge deletes the values of {old.name} in {used:,} rows for good",
                        False, used, self.rows(table))
        self.change("purge column", entity.name, old.name,
                    f"purge retired field {entity.name}.{old.name}", steps, [risk] if used else [],
                    rewrites_table=self.dialect.name == "sqlite" and any(s.has_foreign_key for s in specs))

    def compare(self, entity: Entity, old: Field, new: Field) -> None:
        old_specs = {s.suffix: s for s in self.ftype(old).columns(old)}
        new_specs = {s.suffix: s for s in self.ftype(new).columns(new)}
        same_storage = old_specs.keys() == new_specs.keys() and all(
            _signature(old_specs[k]) == _signature(new_specs[k]) for k in old_specs)
        if not same_storage:
            self.retype(entity, old, new, old_specs, new_specs)
        elif old.type != new.type:
            self.retype_in_place(entity, old, new)
        elif _definition_differs(old, new):
            self.change("change field", entity.name, new.name,
                        f"change definition of {entity.name}.{new.name} (no schema change)", (),
                        list(self.validity_risks(entity, old, new)))

    def retype_in_place(self, entity: Entity, old: Field, new: Field) -> None:
        """A type change that keeps the column (text → email, text → choice): every value must
        convert, and those whose canonical form differs (a choice's label → its key, an
        e-mail's domain in capitals) are rewritten."""
        table = entity.table_name
        old_type, new_type = self.ftype(old), self.ftype(new)
        scan = scan_values(self.conn, table, old, old_type, new, new_type)
        risks = [DataRisk.found(
            f"retype {new.name} {old.type} → {new.type}: {scan.bad.count:,} of {scan.total:,} rows do "
            f"not convert ({scan.example})", scan.bad, scan.total, blocking=True)] if scan.bad.count else []
        steps = []
        if scan.changed:
            names = {spec.suffix: spec.column_name(new.name) for spec in new_type.columns(new)}
            steps.append(Step(
                f"rewrite the {scan.changed:,} values of {new.name} whose {new.type} form differs "
                f"(UPDATE {table} SET … WHERE id = …, in batches of {BATCH})",
                data=_converter(table, old, old_type, new, new_type, names, only_changed=True)))
        self.change("retype column", entity.name, new.name,
                    f"retype {entity.name}.{new.name} {old.type} → {new.type} in its column: "
                    f"{scan.total:,} values to check, {scan.changed:,} to rewrite", steps,
                    [*risks, *self.validity_risks(entity, old, new, scanned=True)])

    def validity_risks(self, entity: Entity, old: Field, new: Field,
                       scanned: bool = False) -> Iterator[DataRisk]:
        """Existing values that the changed definition no longer accepts (kept as they are)."""
        table = entity.table_name
        if not scanned and _constraints_changed(old, new, self.registry):
            scan = scan_values(self.conn, table, old, self.ftype(old), new, self.ftype(new))
            if scan.bad.count:
                yield DataRisk.found(
                    f"{new.name}: {scan.bad.count:,} of {scan.total:,} rows hold values the new definition "
                    f"refuses ({scan.example}); they are kept and must be corrected on their next edit",
                    scan.bad, scan.total, blocking=False)
        if new.required and not old.required:
            missing = _null_ids(self.conn, table, new.name)
            if missing.count:
                yield DataRisk.found(f"{new.name} becomes required: {missing.count:,} rows have no value",
                                     missing, self.rows(table), blocking=False)
        # A field that becomes unique gets a unique index; index_changes checks for duplicates.

    def retype(self, entity: Entity, old: Field, new: Field, old_specs: Mapping[str, ColumnSpec],
               new_specs: Mapping[str, ColumnSpec]) -> None:
        table = entity.table_name
        old_type, new_type = self.ftype(old), self.ftype(new)
        scan = scan_values(self.conn, table, old, old_type, new, new_type)
        risks: list[DataRisk] = []
        what = f"{old.type} → {new.type}" if old.type != new.type else f"{old.type} (new storage)"
        if scan.bad.count:
            risks.append(DataRisk.found(
                f"retype {new.name} {what}: {scan.bad.count:,} of {scan.total:,} rows do not convert "
                f"({scan.example})", scan.bad, scan.total, blocking=True))
        if new.target and (old.target != new.target):
            orphans = _orphan_ids(self.conn, table, new.name, table_name(new.target))
            if orphans.count:
                risks.append(DataRisk.found(
                    f"{new.name} now points to {new.target}, but {orphans.count:,} rows hold ids that "
                    f"are not {new.target} records", orphans, self.rows(table), blocking=True))
        for suffix, spec in new_specs.items():
            old_spec = old_specs.get(suffix)
            was = old_specs.get("")
            now_users = old_spec is None or old_spec.references_table != spec.references_table
            if spec.references_table and now_users and was is not None and isinstance(was.type, sa.Integer):
                # A platform table (the users): ids not in it would break the foreign key
                # (values of other types are the coercer's to refuse, in the scan above).
                orphans = _orphan_ids(self.conn, table, new.name, spec.references_table)
                if orphans.count:
                    risks.append(DataRisk.found(
                        f"{new.name} now holds ids of {spec.references_table}, but {orphans.count:,} rows "
                        f"hold ids that are not in it", orphans, self.rows(table), blocking=True))
        # A value that carries its companions (a polymorphic reference's entity) lost nothing
        # when the new coercer accepted it: the scan above reports those it refused.
        dropped = set() if old_type.value_carries_companions(old) else old_specs.keys() - new_specs.keys()
        for suffix in dropped:
            column = old_specs[suffix].column_name(old.name)
            kept = _null_ids(self.conn, table, column, negate=True)
            if kept.count:
                risks.append(DataRisk.found(
                    f"retype {new.name} {what} drops column {column}, which holds values in "
                    f"{kept.count:,} rows", kept, self.rows(table), blocking=True))
        steps: list[Step] = []
        moved: list[tuple[str, str]] = []  # (tmp column, final name)
        rebuild = False
        for spec in new_specs.values():
            final = spec.column_name(new.name)
            tmp = _tmp_column(table, final)
            steps.append(Step(f"add column {tmp} for the converted values",
                              ddl=_add_column(table, field_column(spec, new, table, name=tmp), spec, None,
                                              self.dialect.name, constraint=fk_name(table, final))))
            moved.append((tmp, final))
        steps.append(Step(
            f"convert the {scan.total:,} values of {new.name} with the {new.type} coercer "
            f"(UPDATE {table} SET … WHERE id = …, in batches of {BATCH})",
            data=_converter(table, old, old_type, new, new_type, {s: t for (t, _), s in
                                                                  zip(moved, new_specs, strict=True)})))
        for spec in old_specs.values():
            name = spec.column_name(old.name)
            rebuild = rebuild or (spec.has_foreign_key and self.dialect.name == "sqlite")
            steps.append(_drop_column(table, name, spec.has_foreign_key, self.dialect.name))
        for (tmp, final), spec in zip(moved, new_specs.values(), strict=True):
            steps.append(Step(f"rename {tmp} → {final}", ddl=_rename(table, tmp, final)))
            if spec.has_foreign_key and self.dialect.name != "sqlite":
                steps.append(Step("rename the foreign key", ddl=_rename_fk(table, tmp, final)))
        self.change("retype column", entity.name, new.name,
                    f"retype {entity.name}.{new.name} {what}: {scan.total:,} values to convert",
                    steps, risks, rewrites_table=rebuild)

    # --- indexes -----------------------------------------------------------------------
    def index_changes(self, target_state: Metamodel) -> None:
        """Indexes the metamodels' difference adds or drops, and those the database holds
        without their trailing id (tables.outdated_indexes), re-created with it."""
        before = wanted_indexes(self.current, self.registry)
        after = wanted_indexes(target_state, self.registry)
        old_layout = outdated_indexes(self.conn, before.values())
        created_tables = {e.table_name for e in target_state.entities
                          if self.current.any_entity(e.name) is None}
        retyped = {(table_name(c.entity), c.field) for c in self.changes if c.action == "retype column"}
        added = {(table_name(c.entity), c.field) for c in self.changes if c.action == "add column"}
        def touches(index: IndexSpec, changed: set[tuple[str, str | None]]) -> bool:
            return any((index.table, f) in changed for f in index.fields)

        for name, index in before.items():
            if (name not in after or after[name] != index or touches(index, retyped)
                    or name in old_layout):
                self.change("drop index", _entity_of(index.table), index.label,
                            f"drop index {name}", [Step("drop index", ddl=_drop_index(index))])
        for name, index in after.items():
            if index.table in created_tables:
                continue
            if (name not in before or before[name] != index or touches(index, retyped)
                    or name in old_layout):
                risks = []
                if index.unique and not touches(index, added):
                    now_named = [self._renamed.get((index.table, c), c) for c in index.columns]
                    dupes = _duplicate_ids(self.conn, index.table, now_named)
                    if dupes.count:
                        what = (f"{index.label} becomes unique" if len(index.fields) == 1
                                else f"{index.label} become unique together")
                        risks.append(DataRisk.found(
                            f"{what}, but {dupes.count:,} rows share "
                            f"{'a value' if len(index.fields) == 1 else 'their values'} "
                            "with another row", dupes, self.rows(index.table), blocking=True))
                self.change("add index", _entity_of(index.table), index.label,
                            f"add {'unique ' if index.unique else ''}index {name}",
                            [Step("create index", ddl=_create_index(index, self.dialect.name))],
                            risks)


    def search_index_changes(self, target_state: Metamodel) -> None:
        """Full-text indexes (fulltext.py). An index whose entries stay right is redefined
        in place, last: its columns renamed, or new ones NULL in every row (a field added
        without a default). Any other change rebuilds it: dropped (or, on PostgreSQL, its
        trigger suspended) first, so that the columns it covers can be renamed, retyped or
        dropped in between, and created again last with every row — when a searched column
        leaves, comes with values (a default, a restored or retyped field), is retyped, or
        its table is rebuilt (a SQLite rebuild loses the table's triggers), and when the
        database holds the index in an earlier layout."""
        before = wanted_search_indexes(self.current, self.registry)
        after = wanted_search_indexes(target_state, self.registry)
        dialect = self.dialect.name
        old_layout = outdated(self.conn, before.values())

        def rebuilt(old: SearchIndex, new: SearchIndex) -> bool:
            return old.entity in old_layout or any(c.entity == old.entity and (
                c.rewrites_table or (c.action == "retype column" and (
                    c.field in old.columns or c.field in new.columns))) for c in self.changes)

        for entity, old in before.items():
            new = after.get(entity)
            if new is None or rebuilt(old, new) or not self._search_kept(old, new):
                drop = drop_index(old, dialect, keep_column=new is not None)
                self.change("drop search index", entity, None, f"drop the search index of {entity}",
                            [Step("drop search index", ddl=drop)])
            elif new != old:
                renamed = [c for c in new.columns if self._renamed.get((new.table, c), c) != c]
                suspended = bool(renamed) and dialect != "sqlite"
                if suspended:
                    self.change("suspend search index", entity, None,
                                f"stop the search index of {entity} following writes until it "
                                f"names {', '.join(renamed)}",
                                [Step("suspend search index", ddl=suspend_index(old, dialect))])
                self.change("redefine search index", entity, None,
                            f"search {', '.join(new.columns)} of {entity} (the index entries are "
                            "kept: no searched value changes)",
                            [Step("redefine search index",
                                  ddl=redefine_index(new, dialect, suspended=suspended))])
        for entity, new in after.items():
            was = before.get(entity)
            if was is None or rebuilt(was, new) or not self._search_kept(was, new):
                rows = self.rows(new.table) if self.current.any_entity(entity) is not None else 0
                self.change("add search index", entity, None,
                            f"index {', '.join(new.columns)} of {entity} for search "
                            f"({rows:,} existing rows)",
                            [Step("create search index", ddl=create_index(new, dialect))])

    def _search_kept(self, old: SearchIndex, new: SearchIndex) -> bool:
        """Whether every entry of `old` stays right under `new`: each searched column is
        still searched (perhaps renamed), and each new one is a column added by this plan
        that holds no value in any existing row."""
        carried = {c for c in new.columns if self._renamed.get((new.table, c), c) in old.columns}
        entity = self.target.entity(new.entity)
        empty = {c.field for c in self.changes if c.entity == new.entity and c.action == "add column"
                 and entity is not None and (f := entity.field(c.field or "")) is not None
                 and f.default is None}
        return len(carried) == len(old.columns) and set(new.columns) <= carried | empty

class PlanError(Exception):
    """The request cannot be planned (for example: purge of a field that is not retired)."""


# --- DDL steps (Alembic operations) ------------------------------------------------------
def _sort_text(keys: Sequence[str]) -> str:
    return ", ".join(keys) if keys else "by id"


def _entity_of(table: str) -> str:
    return table.removeprefix("x_")


def _targets(entity: Entity) -> set[str]:
    return {f.target for f in entity.fields if f.target}


def _rename(table: str, before: str, after: str) -> Callable[[Operations], None]:
    def ddl(ops: Operations) -> None:
        ops.alter_column(table, before, new_column_name=after)
    return ddl


def _add_column(table: str, column: sa.Column[Any], spec: ColumnSpec, default_sql: str | None,
                dialect: str, constraint: str | None = None) -> Callable[[Operations], None]:
    """`constraint` names an inline SQLite key (SQLite lets two keys share a name, so a
    retype's temporary column can carry the final name from the start)."""
    def ddl(ops: Operations) -> None:
        if spec.has_foreign_key and dialect == "sqlite":
            # SQLite cannot add a constraint to a table, but may add a column carrying one.
            preparer = ops.get_context().dialect.identifier_preparer
            coltype = column.type.compile(ops.get_context().dialect)
            ops.execute(
                f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(column.name)} "
                f"{coltype} CONSTRAINT {preparer.quote(constraint or fk_name(table, column.name))} "
                "REFERENCES "
                f"{preparer.quote(foreign_table(spec) or '')} (id) "
                f"ON DELETE {ON_DELETE_SQL[spec.on_delete or 'restrict']}")
            return
        server_default = sa.text(default_sql) if default_sql is not None else None
        ops.add_column(table, sa.Column(column.name, column.type, *[
            sa.ForeignKey(fk.target_fullname, ondelete=fk.ondelete, name=fk.name)
            for fk in column.foreign_keys], nullable=True, server_default=server_default))
    return ddl


def _add_fk(table: str, column: str, target: str,
            settings: Mapping[str, Any]) -> Callable[[Operations], None]:
    def ddl(ops: Operations) -> None:
        ops.create_foreign_key(fk_name(table, column), table, table_name(target), [column], ["id"],
                               ondelete=ON_DELETE_SQL[settings.get("on_delete", "restrict")])
    return ddl


def _rename_fk(table: str, before: str, after: str) -> Callable[[Operations], None]:
    def ddl(ops: Operations) -> None:
        preparer = ops.get_context().dialect.identifier_preparer
        ops.execute(f"ALTER TABLE {preparer.quote(table)} RENAME CONSTRAINT "
                    f"{preparer.quote(fk_name(table, before))} TO {preparer.quote(fk_name(table, after))}")
    return ddl


def _drop_column(table: str, column: str, has_fk: bool, dialect: str) -> Step:
    if has_fk and dialect == "sqlite":
        def rebuild(conn: sa.Connection) -> None:
            # SQLite cannot drop a column that carries a foreign key: Alembic's batch mode
            # rebuilds the table (foreign keys are off during apply, see apply.py).
            ops = Operations(MigrationContext.configure(conn))
            with ops.batch_alter_table(table, recreate="always",
                                       copy_from=reflect_sqlite_table(conn, table)) as batch:
                batch.drop_column(column)
        return Step(f"rebuild table {table} without column {column} (SQLite cannot drop a column "
                    "that has a foreign key)", data=rebuild)

    def ddl(ops: Operations) -> None:
        ops.drop_column(table, column)  # PostgreSQL drops the column's foreign key with it
    return Step(f"drop column {column}", ddl=ddl)


def reflect_sqlite_table(conn: sa.Connection, table: str) -> sa.Table:
    """The table as SQLite has it, foreign-key actions included.

    SQLAlchemy reads ON DELETE only from table-level FOREIGN KEY clauses, but a column
    added later carries its key inline; without this, a rebuild would silently turn
    CASCADE and SET NULL into NO ACTION.
    """
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    actions = {row[3]: row[6] for row in conn.exec_driver_sql(f'PRAGMA foreign_key_list("{table}")')}
    for constraint in reflected.foreign_key_constraints:
        column = constraint.column_keys[0]
        action = actions.get(column, "NO ACTION")
        constraint.ondelete = None if action == "NO ACTION" else action
        constraint.name = fk_name(table, column)
    return reflected


def _create_index(index: IndexSpec, dialect: str) -> Callable[[Operations], None]:
    def ddl(ops: Operations) -> None:
        ops.create_index(index.name, index.table, list(index.columns_on(dialect)), unique=index.unique)
    return ddl


def _drop_index(index: IndexSpec) -> Callable[[Operations], None]:
    def ddl(ops: Operations) -> None:
        ops.drop_index(index.name, table_name=index.table)
    return ddl


# --- data checks and conversion ------------------------------------------------------------
@dataclass(frozen=True)
class Scan:
    total: int
    bad: Rows
    example: str
    #: Values that convert, but to a form other than the one stored.
    changed: int = 0


def _value_table(table: str, f: Field, field_type: FieldType,
                 names: Mapping[str, str] | None = None) -> sa.TableClause:
    columns = [sa.column("id", sa.BigInteger)]
    for spec in field_type.columns(f):
        columns.append(sa.column((names or {}).get(spec.suffix, spec.column_name(f.name)), spec.type))
    return sa.table(table, *columns)


def _batches(conn: sa.Connection, table: str, f: Field, field_type: FieldType) -> Iterator[Sequence[Any]]:
    t = _value_table(table, f, field_type)
    columns = [t.c[spec.column_name(f.name)] for spec in field_type.columns(f)]
    last = 0
    while True:
        rows = conn.execute(
            sa.select(t.c.id, *columns)
            .where(t.c.id > last, sa.or_(*[c.isnot(None) for c in columns]))
            .order_by(t.c.id).limit(BATCH)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _read(row: Any, f: Field, field_type: FieldType) -> Any:
    return field_type.from_columns(_stored(row, f, field_type), f)


def scan_values(conn: sa.Connection, table: str, old: Field, old_type: FieldType, new: Field,
                new_type: FieldType) -> Scan:
    """Run every stored value of `old` through the coercer of `new`."""
    total = bad = changed = 0
    samples: list[int] = []
    example = ""
    for rows in _batches(conn, table, old, old_type):
        for row in rows:
            total += 1
            try:
                value = new_type.coerce(new_type.retyped(_read(row, old, old_type), old, new), new)
            except CoercionError as error:
                bad += 1
                if len(samples) < SAMPLE_IDS:
                    samples.append(row[0])
                example = example or f"id {row[0]}: {error}"
                continue
            changed += _stored(row, old, old_type) != new_type.to_columns(value, new)
    return Scan(total, Rows(bad, tuple(samples)), example, changed)


def _stored(row: Any, f: Field, field_type: FieldType) -> dict[str, Any]:
    return {spec.suffix: value for spec, value in zip(field_type.columns(f), row[1:], strict=True)}


def _converter(table: str, old: Field, old_type: FieldType, new: Field, new_type: FieldType,
               tmp_names: Mapping[str, str], only_changed: bool = False) -> Callable[[sa.Connection], None]:
    """Write each value converted by `new_type` into the columns `tmp_names` (by suffix);
    `only_changed` skips rows already in their converted form (a rewrite in place)."""
    def run(conn: sa.Connection) -> None:
        target = _value_table(table, new, new_type, tmp_names)
        update = target.update().where(target.c.id == sa.bindparam("_id")).values(
            {tmp_names[s.suffix]: sa.bindparam(tmp_names[s.suffix]) for s in new_type.columns(new)})
        for rows in _batches(conn, table, old, old_type):
            params = []
            for row in rows:
                try:
                    value = new_type.coerce(new_type.retyped(_read(row, old, old_type), old, new), new)
                except CoercionError as error:
                    raise ConversionFailed(f"{table} id {row[0]}: {new.name}: {error}") from None
                columns = new_type.to_columns(value, new)
                if only_changed and columns == _stored(row, old, old_type):
                    continue
                params.append({"_id": row[0], **{tmp_names[k]: v for k, v in columns.items()}})
            if params:
                conn.execute(update, params)
    return run


class ConversionFailed(Exception):
    """A value that passed the plan's check no longer converts (it changed since): nothing applied."""


def _rows_where(conn: sa.Connection, table: sa.TableClause, condition: sa.ColumnElement[bool]) -> Rows:
    count = conn.execute(sa.select(sa.func.count()).select_from(table).where(condition)).scalar_one()
    ids = conn.execute(sa.select(table.c.id).where(condition).order_by(table.c.id)
                       .limit(SAMPLE_IDS)).scalars().all()
    return Rows(count, tuple(ids))


def _null_ids(conn: sa.Connection, table: str, column: str, negate: bool = False) -> Rows:
    t = sa.table(table, sa.column("id"), sa.column(column))
    return _rows_where(conn, t, t.c[column].isnot(None) if negate else t.c[column].is_(None))


def _duplicate_ids(conn: sa.Connection, table: str, columns: Sequence[str]) -> Rows:
    """Rows that share their values of `columns` with another row. A NULL in any of them
    never conflicts (a unique index lets such rows be, on both databases)."""
    t = sa.table(table, sa.column("id"), *(sa.column(c) for c in columns))
    keys = [t.c[c] for c in columns]
    shared = (sa.select(*keys).where(*(k.isnot(None) for k in keys)).group_by(*keys)
              .having(sa.func.count() > 1).subquery())
    condition = sa.exists(sa.select(sa.literal(1)).select_from(shared)
                          .where(*(shared.c[c] == t.c[c] for c in columns)))
    return _rows_where(conn, t, condition)


def _orphan_ids(conn: sa.Connection, table: str, column: str, target: str) -> Rows:
    """Rows whose `column` holds an id that is not a record of the `target` table."""
    if not sa.inspect(conn).has_table(target):
        return _null_ids(conn, table, column, negate=True)
    t = sa.table(table, sa.column("id"), sa.column(column))
    other = sa.table(target, sa.column("id"))
    return _rows_where(conn, t, sa.and_(t.c[column].isnot(None), t.c[column].not_in(sa.select(other.c.id))))


def _constraints_changed(old: Field, new: Field, registry: FieldTypeRegistry) -> bool:
    """Whether stored values may no longer be valid: the type, the options, or a setting
    the type says narrows its values (`FieldType.constraint_settings`) changed."""
    keys = registry[new.type].constraint_settings if new.type in registry else ()
    return (old.type != new.type or old.choices != new.choices or any(
        old.settings.get(k) != new.settings.get(k) for k in keys))


def _definition_differs(old: Field, new: Field) -> bool:
    keep = ("source", "pack", "renamed_from", "retired")
    return any(getattr(old, k) != getattr(new, k) for k in Field.__dataclass_fields__ if k not in keep)
