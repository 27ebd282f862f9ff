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

from slatecrm.metamodel.errors import DefinitionError, Problem
from slatecrm.metamodel.fieldtypes import CoercionError, ColumnSpec, FieldType, FieldTypeRegistry
from slatecrm.metamodel.model import Entity, Field, Metamodel
from slatecrm.metamodel.names import suggest

from .capacity import TableSize, problems, row_bytes
from .entityrename import described, entity_renames, rename_rows, rename_values, renamed_metamodel
from .fulltext import (
    SEARCH_COLUMN,
    SearchIndex,
    create_index,
    drop_index,
    outdated,
    redefine_index,
    search_index_of,
    suspend_index,
    wanted_search_indexes,
)
from .tables import (
    ON_DELETE_SQL,
    IndexSpec,
    apart_tables_of,
    entity_columns,
    field_column,
    fk_name,
    foreign_table,
    indexes_of,
    outdated_indexes,
    short_name,
    system_columns,
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
                 target: Metamodel, base_revision: int, purge: Sequence[tuple[str, str]] = (),
                 purge_entities: Sequence[str] = ()):
        self.conn = conn
        self.dialect = conn.dialect
        self.registry = registry
        self.current = current
        self.target = target
        self.base_revision = base_revision
        self.purge = set(purge)
        #: Entities retired (or retired by this plan) whose tables are dropped, data and all.
        self.purge_entities = tuple(dict.fromkeys(purge_entities))
        self.changes: list[Change] = []
        self._row_counts: dict[str, int] = {}
        #: (table, column after this plan) → its name in the database now, for renamed columns.
        self._renamed: dict[tuple[str, str], str] = {}
        #: The metamodel as it was, before `current` took the new names of renamed entities.
        self.original = current
        #: Old name → new name of the entities this plan renames (entity `renamed_from`).
        self.renames: dict[str, str] = {}
        #: table after this plan → its name in the database now, for renamed entities.
        self._tables_now: dict[str, str] = {}
        #: table → columns this plan adds to it (fields added, a retype's new columns).
        self._added: dict[str, int] = {}

    # --- helpers ---------------------------------------------------------------------
    def change(self, action: str, entity: str, field: str | None, summary: str,
               steps: Sequence[Step] = (), risks: Sequence[DataRisk] = (),
               rewrites_table: bool = False) -> None:
        self.changes.append(Change(action, entity, field, summary, render_sql(steps, self.dialect),
                                   tuple(risks), rewrites_table, tuple(steps)))

    def now(self, table: str) -> str:
        """The name `table` has in the database while planning (a renamed entity's old one)."""
        return self._tables_now.get(table, table)

    def rows(self, table: str) -> int:
        if table not in self._row_counts:
            self._row_counts[table] = self.conn.execute(
                sa.select(sa.func.count()).select_from(sa.table(self.now(table)))).scalar_one()
        return self._row_counts[table]

    def ftype(self, f: Field) -> FieldType:
        return self.registry[f.type]

    # --- the plan ----------------------------------------------------------------------
    def plan(self) -> Plan:
        self.renames = entity_renames(self.current, self.target)
        for old, new in self.renames.items():
            self.rename_entity(old, new)
        self.current = renamed_metamodel(self.current, self.renames)
        unknown = [(e, f) for e, f in self.purge if not self._retired_field(e, f)]
        if unknown:
            raise PlanError("; ".join(
                f"{e}.{f} is not a retired field (only retired fields can be purged)" for e, f in unknown))
        kept_entities = [n for n in self.purge_entities
                         if self.current.any_entity(n) is None or self.target.any_entity(n) is not None]
        if kept_entities:
            raise PlanError("; ".join(f"entity {n} is not being removed nor retired (only those can be "
                                      "purged)" for n in kept_entities))
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
            if self.target.entity(current.name) is None and current.name not in self.purge_entities:
                self.change("retire table", current.name, None,
                            f"retire entity {current.name} (table {current.table_name} and its "
                            f"{self.rows(current.table_name):,} rows are kept, hidden)")
                state.append(replace(current, retired=True))
        for current in self.current.entities:
            if (current.retired and self.target.any_entity(current.name) is None
                    and current.name not in self.purge_entities):
                state.append(current)
        self.purge_tables()
        target_state = replace(self.target, entities=tuple(state))
        self.rollup_computations(target_state, {e.name for e in created})
        self.index_changes(target_state)
        self.search_index_changes(target_state)
        self.role_changes()
        self.user_attribute_changes()
        self.workflow_changes()
        self.view_changes()
        self.layout_changes()
        self.capacity_changes(target_state)
        return Plan(self.base_revision, self.dialect.name, self.original, target_state,
                    tuple(self._ordered()))

    def rollup_computations(self, target_state: Metamodel, created: set[str]) -> None:
        """A roll-up added (or defined anew) on an existing entity is computed for every
        record at apply, from the children there are (in the apply's transaction, after
        every table and column exists): a count added today counts yesterday's children."""
        from ..records.rollups import Rollups, rollups_in

        dialect, registry = self.dialect.name, self.registry
        for rollup in rollups_in(target_state, registry):
            if rollup.parent in created:
                continue  # a new table: no records yet
            current = self.current.entity(rollup.parent)
            old = current.field(rollup.field) if current is not None else None
            new = target_state.entity(rollup.parent)
            assert new is not None
            wanted = new.field(rollup.field)
            if old is not None and wanted is not None and old.type == wanted.type \
                    and old.settings == wanted.settings:
                continue

            def compute(conn: sa.Connection, rollup: Any = rollup) -> None:
                from ..records.rules import RevisionRules
                from .tables import EntityTables

                tables = EntityTables(target_state, registry, dialect)
                rules = RevisionRules(target_state, tables, dialect, registry)
                Rollups(target_state, tables, dialect, registry, rules).recompute_all(conn, rollup)
            table = new.table_name
            self.change("compute rollup", rollup.parent, rollup.field,
                        f"compute roll-up {rollup.parent}.{rollup.field} ({rollup.function} over "
                        f"{rollup.child}.{rollup.via}) for the {self.rows(table):,} existing records",
                        [Step(f"compute {rollup.field} from the {rollup.child} records", data=compute)])

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

    def view_changes(self) -> None:
        """Views are metamodel without tables (they choose among what the read path gives): a
        change is shown (and makes a revision) but runs nothing."""
        current = {v.name: v for v in self.current.views}
        target = {v.name: v for v in self.target.views}
        for name, found in target.items():
            if name not in current:
                self.change("add view", "", None, f"add view {name} ({found.entity}, {found.type})")
            elif current[name] != found:
                self.change("change view", "", None, f"change view {name} ({found.entity}, {found.type})")
        for name, found in current.items():
            if name not in target:
                self.change("remove view", "", None, f"remove view {name} ({found.entity})")

    def layout_changes(self) -> None:
        """Layouts only arrange pages: a change is shown (and makes a revision), runs nothing."""
        current = {layout.name: layout for layout in self.current.layouts}
        target = {layout.name: layout for layout in self.target.layouts}
        for name, found in target.items():
            if name not in current:
                self.change("add layout", "", None, f"add layout {name} ({found.entity})")
            elif current[name] != found:
                self.change("change layout", "", None, f"change layout {name} ({found.entity})")
        for name in current:
            if name not in target:
                self.change("remove layout", "", None, f"remove layout {name}")

    def _ordered(self) -> Iterator[Change]:
        order = ["rename table", "create table", "drop search index", "suspend search index", "drop index",
                 "rename column", "fold fields", "restore column", "add column", "create apart table",
                 "retype column", "change field", "retire column", "purge column", "drop apart table",
                 "purge table", "restore table",
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
        for entity in entities:
            for f in entity.active_fields:
                self.add_apart(entity, f)
        for entity, f in deferred:
            self.change("add column", entity.name, f.name,
                        f"add foreign key {entity.name}.{f.name} → {f.target}",
                        [Step(f"foreign key {f.name}", ddl=_add_fk(entity.table_name, f.name,
                                                                   f.target or "", f.settings))])

    def _create_table(self, entity: Entity, later: set[str],
                      deferred: list[tuple[Entity, Field]]) -> None:
        skip_fk = frozenset(later) if self.dialect.name != "sqlite" else frozenset()
        deferred.extend((entity, f) for f in entity.fields if f.target in skip_fk
                        and not self.ftype(f).stored_apart)
        registry = self.registry
        indexes = list(indexes_of(entity, registry))
        dialect = self.dialect.name

        def ddl(ops: Operations) -> None:
            ops.create_table(entity.table_name, *entity_columns(entity, registry, skip_fk))
            for index in indexes:
                ops.create_index(index.name, index.table, index.keys_on(dialect),
                                 unique=index.unique)

        self.change("create table", entity.name, None,
                    f"create table {entity.table_name} for entity {entity.name} "
                    f"({len(entity.active_fields)} fields)", [Step("create table", ddl=ddl)])

    # --- renamed entities ---------------------------------------------------------------
    def rename_entity(self, old: str, new: str) -> None:
        """One change, first of the plan, renaming entity `old` to `new` with its rows: the
        table, its indexes (PostgreSQL renames them, its key, foreign keys and id sequence
        too; SQLite, which cannot rename an index, makes them again), the platform's rows
        naming the entity (entityrename.py); its search index is made again last, under the
        new name. Foreign keys pointing to the table follow it on both databases (SQLite
        rewrites them with `legacy_alter_table` off, the default since 3.26)."""
        entity = self.original.any_entity(old)
        renamed = renamed_metamodel(self.original, self.renames).any_entity(new)
        assert entity is not None and renamed is not None
        before, after = entity.table_name, renamed.table_name
        self._tables_now[after] = before
        dialect = self.dialect.name
        steps: list[Step] = []
        search = None if entity.retired else search_index_of(entity, self.registry)
        if search is not None:
            steps.append(Step(f"drop the search index of {old} (made again for {new} last)",
                              ddl=drop_index(search, dialect, keep_column=True)))
        old_indexes = [] if entity.retired else list(indexes_of(entity, self.registry))
        new_indexes = [] if entity.retired else list(indexes_of(renamed, self.registry))
        if dialect == "sqlite":
            steps += [Step(f"drop index {i.name}", ddl=_drop_index(i)) for i in old_indexes]
        steps.append(Step(f"rename table {before} → {after}", ddl=_rename_table(before, after, dialect)))
        if dialect == "sqlite":
            steps += [Step(f"create index {i.name}", ddl=_create_index(i, dialect)) for i in new_indexes]
        else:
            pairs = [("index", a.name, b.name) for a, b in zip(old_indexes, new_indexes, strict=True)]
            pairs += self._pg_objects(before, after)
            steps += [Step(f"rename {kind} {a} → {b}", ddl=_rename_pg_object(kind, a, b, after))
                      for kind, a, b in pairs if a != b]
        steps += self._rename_apart_tables(entity, renamed)
        named = [(self.now(e.table_name), e.table_name, spec.column_name(f.name))
                 for e in self.target.entities for f in e.fields if new in f.targets
                 for spec in self.ftype(f).columns(f) if spec.suffix in self.ftype(f).entity_name_columns(f)]
        if named:
            steps.append(Step(f"rename entity {old} → {new} in "
                              + ", ".join(sorted({f"{t}.{c}" for _, t, c in named})),
                              data=rename_values(old, new, named)))
        steps.append(Step(described(old, new), data=rename_rows(old, new)))
        pointing = sorted(f"{e.name}.{f.name}" for e in self.target.active_entities
                          for f in e.active_fields if f.target == new and e.name != new)
        follow = f"; the references of {', '.join(pointing)} follow it" if pointing else ""
        self.change("rename table", new, None,
                    f"rename entity {old} → {new}: table {before} → {after} with its "
                    f"{self.rows(after):,} rows (data kept), its indexes and auto numbers{follow}", steps)

    def _rename_apart_tables(self, entity: Entity, renamed: Entity) -> list[Step]:
        """The tables of the entity's fields stored apart (a junction table `x_<entity>__<field>`)
        are named after the entity: they follow it with their rows, and their indexes and keys
        take the names a table made under the new name would have (SQLite, which cannot rename
        an index, makes it again; its keys keep their names inside the table's definition)."""
        before = apart_tables_of(entity, self.registry, sa.MetaData())
        after = apart_tables_of(renamed, self.registry, sa.MetaData())
        steps: list[Step] = []
        for key, old_table in before.items():
            new_table = after.get(key)
            if new_table is None or new_table.name == old_table.name:
                continue
            old_indexes = sorted(old_table.indexes, key=lambda i: str(i.name))
            new_indexes = sorted(new_table.indexes, key=lambda i: str(i.name))
            if self.dialect.name == "sqlite":
                steps += [Step(f"drop index {i.name}", ddl=_drop_sa_index(str(i.name), old_table.name))
                          for i in old_indexes]
            steps.append(Step(f"rename table {old_table.name} → {new_table.name}",
                              ddl=_rename_table(old_table.name, new_table.name, self.dialect.name)))
            if self.dialect.name == "sqlite":
                steps += [Step(f"create index {i.name}", ddl=_create_sa_index(i)) for i in new_indexes]
                continue
            pairs = [("index", str(a.name), str(b.name))
                     for a, b in zip(old_indexes, new_indexes, strict=True)]
            old_keys = sorted(old_table.foreign_keys, key=lambda k: k.parent.name)
            new_keys = sorted(new_table.foreign_keys, key=lambda k: k.parent.name)
            pairs += [("constraint", str(a.constraint.name), str(b.constraint.name))
                      for a, b in zip(old_keys, new_keys, strict=True)
                      if a.constraint is not None and b.constraint is not None]
            primary = self.conn.execute(sa.text(
                "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND contype = 'p'"),
                {"t": old_table.name}).scalar()
            if primary == f"{old_table.name}_pkey":
                pairs.append(("constraint", primary, short_name(f"{new_table.name}_pkey")))
            steps += [Step(f"rename {kind} {a} → {b}", ddl=_rename_pg_object(kind, a, b, new_table.name))
                      for kind, a, b in pairs if a != b]
        return steps

    def _pg_objects(self, before: str, after: str) -> list[tuple[str, str, str]]:
        """PostgreSQL's names that hold the table's name: its constraints (key, foreign keys)
        and the id's sequence, as (kind, name now, name after), so that the renamed table
        is named as a table made under the new name would be."""
        found: list[tuple[str, str, str]] = []
        rows = self.conn.execute(sa.text(
            "SELECT c.conname, c.contype, a.attname FROM pg_constraint c "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.conrelid = CAST(:t AS regclass) ORDER BY c.conname"), {"t": before}).all()
        for name, kind, column in rows:
            if kind == "f" and column is not None and name == fk_name(before, column):
                found.append(("constraint", name, fk_name(after, column)))
            elif name.startswith(before):
                found.append(("constraint", name, short_name(after + name[len(before):])))
        sequence = self.conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"),
                                     {"t": before}).scalar()
        if sequence:
            name = sequence.rsplit(".", 1)[-1].strip('"')
            if name.startswith(before):
                found.append(("sequence", name, short_name(after + name[len(before):])))
        return found

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
            if old is None and isinstance(new.renamed_from, Mapping):
                sources = self.fold_sources(current, target, new)
                self.fold(target, new, sources)
                consumed.update(source.name for _, source in sources)
                fields.append(replace(new, retired=False))
                continue
            if old is None and isinstance(new.renamed_from, str):
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
                kept = "table" if self.ftype(old).stored_apart else "column"
                self.change("retire column", target.name, old.name,
                            f"retire field {target.name}.{old.name} (its {kept} and data are kept, "
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
        if self.ftype(old).stored_apart:
            tables_before = apart_tables_of(entity, self.registry, sa.MetaData(), [old])
            tables_after = apart_tables_of(entity, self.registry, sa.MetaData(), [new])
            for key, table in tables_before.items():
                if (new.name, key[1]) in tables_after:
                    steps.append(Step(f"rename table {table.name}", ddl=_rename_table(
                        table.name, tables_after[(new.name, key[1])].name, self.dialect.name)))
        for spec in self.ftype(old).columns(old):
            before, after = spec.column_name(old.name), spec.column_name(new.name)
            self._renamed[(entity.table_name, after)] = before
            steps.append(Step(f"rename {before}", ddl=_rename(entity.table_name, before, after)))
        self.change("rename column", entity.name, new.name,
                    f"rename field {entity.name}.{old.name} → {new.name} (data kept)", steps)

    def fold_sources(self, current: Entity, target: Entity, new: Field) -> list[tuple[str, Field]]:
        """(part, former field) of a field folded from several (`renamed_from: {part: field}`):
        each former field must be a field of the entity now, in columns of its own."""
        assert isinstance(new.renamed_from, Mapping)
        found: list[tuple[str, Field]] = []
        problems: list[Problem] = []
        for part, former in new.renamed_from.items():
            source = current.any_field(former)
            known = [f.name for f in current.active_fields  # the fields this one could take
                     if f.name not in new.renamed_from.values() and target.field(f.name) is None]
            if source is None:
                problems.append(Problem(
                    f"renamed_from: {current.name!r} has no field {former!r} to fold into part {part!r} "
                    f"of {new.name!r}{suggest(former, known)}", new.source, new.pack))
            elif self.ftype(source).stored_apart:
                problems.append(Problem(
                    f"renamed_from: field {former!r} is a {source.type} field, kept in a table of its "
                    f"own: it cannot be folded into part {part!r} of {new.name!r}", new.source, new.pack))
            else:
                found.append((part, source))
        if problems:
            raise DefinitionError(problems)
        return found

    def fold(self, entity: Entity, new: Field, sources: Sequence[tuple[str, Field]]) -> None:
        """Several fields made the parts of one composite field (an address from a street, a
        city, …), in one change: a former field's column becomes its part's column (renamed
        when the types match, else added and dropped after the copy), and every value is
        converted by the composite type's own coercion of its part (a country's name → its
        code); a value that does not convert blocks the plan with its record's id."""
        table = entity.table_name
        new_type = self.ftype(new)
        by_part = {p.name: p for p in new_type.parts(new)}
        specs = {s.suffix: s for s in new_type.columns(new)}
        steps: list[Step] = []
        drops: list[Step] = []
        notes: list[str] = []
        now: list[_FoldSource] = []    # how to read the values while planning
        later: list[_FoldSource] = []  # and in the data step, after the renames
        taken: set[str] = set()
        for part, source in sources:
            spec = specs[by_part[part].suffix]
            column = spec.column_name(new.name)
            taken.add(spec.suffix)
            source_type = self.ftype(source)
            source_specs = source_type.columns(source)
            names = {s.suffix: s.column_name(source.name) for s in source_specs}
            now.append(_FoldSource(part, source, source_type, names))
            if len(source_specs) == 1 and not source_specs[0].references \
                    and _signature(source_specs[0]) == _signature(spec):
                self._renamed[(table, column)] = names[""]
                steps.append(Step(f"rename {names['']} → {column}", ddl=_rename(table, names[""], column)))
                later.append(_FoldSource(part, source, source_type, {"": column}))
                notes.append(f"{part} ← {source.name} (column renamed)")
            else:
                steps.append(Step(f"add column {column}", ddl=_add_column(
                    table, field_column(spec, new, table), spec, None, self.dialect.name)))
                self._added[table] = self._added.get(table, 0) + 1
                later.append(_FoldSource(part, source, source_type, names))
                drops += [_drop_column(table, n, bool(s.references), self.dialect.name)
                          for n, s in zip(names.values(), source_specs, strict=True)]
                notes.append(f"{part} ← {source.name} (copied)")
        for suffix, spec in specs.items():
            if suffix not in taken:
                steps.append(Step(f"add column {spec.column_name(new.name)}", ddl=_add_column(
                    table, field_column(spec, new, table), spec, None, self.dialect.name)))
                self._added[table] = self._added.get(table, 0) + 1
        scan = _scan_fold(self.conn, self.now(table), now, new, new_type)
        columns = {s: spec.column_name(new.name) for s, spec in specs.items()}
        steps.append(Step(
            f"convert the {scan.total:,} values of {new.name} with the {new.type} coercion of each part "
            f"(UPDATE {table} SET … WHERE id = …, in batches of {BATCH})",
            data=_fold_converter(table, later, new, new_type, columns)))
        steps += drops
        rebuild = self.dialect.name == "sqlite" and any(s.describe.startswith("rebuild") for s in drops)
        risks = [DataRisk.found(
            f"fold into {new.name}: {scan.bad.count:,} of {scan.total:,} rows do not convert "
            f"({scan.example})", scan.bad, scan.total, blocking=True)] if scan.bad.count else []
        if new.required:
            main = next(p.name for p in new_type.parts(new) if p.suffix == "")
            held = [s for s in now if s.part == main and len(s.names) == 1]
            missing = _null_ids(self.conn, self.now(table), next(iter(held[0].names.values()))) if held else \
                Rows(self.rows(table), ())
            if missing.count:
                risks.append(DataRisk.found(
                    f"{new.name} is required: {missing.count:,} rows have no {main}", missing,
                    self.rows(table), blocking=False))
        formers = ", ".join(f"{entity.name}.{source.name}" for _, source in sources)
        self.change("fold fields", entity.name, new.name,
                    f"fold fields {formers} into {new.type} field {entity.name}.{new.name}: "
                    f"{'; '.join(notes)}; {scan.total:,} values to convert", steps, risks,
                    rewrites_table=rebuild)

    def add_apart(self, entity: Entity, new: Field) -> None:
        """The tables of a field stored apart (FieldType.apart_tables), created with it."""
        for table in apart_tables_of(entity, self.registry, sa.MetaData(), [new]).values():
            self.change("create apart table", entity.name, new.name,
                        f"create table {table.name} for {new.type} field {entity.name}.{new.name}",
                        [Step("create table", ddl=_create_apart(table))])

    def add(self, entity: Entity, new: Field) -> None:
        table = entity.table_name
        field_type = self.ftype(new)
        if field_type.stored_apart:
            self.add_apart(entity, new)
            return
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
        self._added[table] = self._added.get(table, 0) + len(single)
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
        if self.ftype(old).stored_apart:
            for apart in apart_tables_of(entity, self.registry, sa.MetaData(), [old]).values():
                rows = self.rows(apart.name) if sa.inspect(self.conn).has_table(apart.name) else 0
                risk = DataRisk(f"purge deletes the {rows:,} rows of {apart.name} for good",
                                False, rows, rows)
                self.change("drop apart table", entity.name, old.name,
                            f"purge retired field {entity.name}.{old.name}: drop table {apart.name}",
                            [Step("drop table", ddl=_drop_table(apart.name))], [risk] if rows else [])
            return
        specs = self.ftype(old).columns(old)
        t = sa.table(self.now(table), sa.column("id"), *[sa.column(s.column_name(old.name)) for s in specs])
        used = self.conn.execute(sa.select(sa.func.count()).select_from(t).where(
            sa.or_(*[t.c[s.column_name(old.name)].isnot(None) for s in specs]))).scalar_one()
        steps = [_drop_column(table, s.column_name(old.name), s.has_foreign_key, self.dialect.name)
                 for s in specs]
        risk = DataRisk(f"purge deletes the values of {old.name} in {used:,} rows for good",
                        False, used, self.rows(table))
        self.change("purge column", entity.name, old.name,
                    f"purge retired field {entity.name}.{old.name}", steps, [risk] if used else [],
                    rewrites_table=self.dialect.name == "sqlite" and any(s.has_foreign_key for s in specs))

    def purge_tables(self) -> None:
        """Drop the tables of the entities purged (`purge_entities`), their fields' tables
        stored apart first, then each table after those that reference it (a reference
        between two of them would make PostgreSQL refuse the drop)."""
        entities = [e for e in (self.current.any_entity(n) for n in self.purge_entities) if e is not None]
        inspector = sa.inspect(self.conn)
        for entity in entities:
            for apart in apart_tables_of(entity, self.registry, sa.MetaData()).values():
                rows = self.rows(apart.name) if inspector.has_table(apart.name) else 0
                self.change("drop apart table", entity.name, None,
                            f"purge entity {entity.name}: drop table {apart.name}",
                            [Step("drop table", ddl=_drop_table(apart.name))],
                            [DataRisk(f"purge deletes the {rows:,} rows of {apart.name} for good",
                                      False, rows, rows)] if rows else [])
        left = list(entities)
        while left:
            # First a table no other table left references, else (a cycle) the first one.
            free = next((e for e in left if not any(
                o is not e and e.name in t for o in left for f in o.fields for t in f.targets)), left[0])
            left.remove(free)
            rows = self.rows(free.table_name)
            self.change("purge table", free.name, None,
                        f"purge entity {free.name}: drop table {free.table_name} and its {rows:,} rows",
                        [Step("drop table", ddl=_drop_table(self.now(free.table_name)))],
                        [DataRisk(f"purge deletes the {rows:,} rows of {free.name} for good",
                                  False, rows, rows)] if rows else [])

    def compare(self, entity: Entity, old: Field, new: Field) -> None:
        if self.ftype(old).stored_apart or self.ftype(new).stored_apart:
            self.compare_apart(entity, old, new)
            return
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

    def compare_apart(self, entity: Entity, old: Field, new: Field) -> None:
        """A field stored apart keeps its tables; a change of type or of the tables' shape
        (another target) is refused while they hold rows: nothing converts them."""
        before = apart_tables_of(entity, self.registry, sa.MetaData(), [old])
        after = apart_tables_of(entity, self.registry, sa.MetaData(), [new])
        same = old.type == new.type and before.keys() == after.keys() and all(
            _table_signature(before[k]) == _table_signature(after[k]) for k in before)
        if same:
            if _definition_differs(old, new):
                self.change("change field", entity.name, new.name,
                            f"change definition of {entity.name}.{new.name} (no schema change)")
            return
        held = sum(self.rows(t.name) for t in before.values() if sa.inspect(self.conn).has_table(t.name))
        risks = [DataRisk(f"{new.name}: {old.type} → {new.type} with other storage cannot convert its "
                          f"{held:,} stored rows; give the new definition another field name (the old "
                          "field is retired with its data)", True, held, held)] if held else []
        steps: list[Step] = []
        if not held:
            steps = [Step("drop table", ddl=_drop_table(t.name)) for t in before.values()
                     if sa.inspect(self.conn).has_table(t.name)]
            steps += [Step("create table", ddl=_create_apart(t)) for t in after.values()]
            # a field gaining columns gets them from `add` semantics
            for spec in self.ftype(new).columns(new):
                steps.append(Step(f"add column {spec.column_name(new.name)}", ddl=_add_column(
                    entity.table_name, field_column(spec, new, entity.table_name), spec, None,
                    self.dialect.name)))
        self.change("retype column", entity.name, new.name,
                    f"retype {entity.name}.{new.name} {old.type} → {new.type} (new storage)", steps, risks)

    def as_stored(self, table: str, f: Field) -> Field:
        """`f` under the name its columns have in the database while planning: a field renamed
        by this plan is read under its former name (the rename is applied with the plan)."""
        before = self._renamed.get((table, f.name))
        return f if before is None else replace(f, name=before)

    def retype_in_place(self, entity: Entity, old: Field, new: Field) -> None:
        """A type change that keeps the column (text → email, text → choice): every value must
        convert, and those whose canonical form differs (a choice's label → its key, an
        e-mail's domain in capitals) are rewritten."""
        table = entity.table_name
        old_type, new_type = self.ftype(old), self.ftype(new)
        scan = scan_values(self.conn, self.now(table), self.as_stored(table, old), old_type, new, new_type)
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
            scan = scan_values(self.conn, self.now(table), self.as_stored(table, old), self.ftype(old),
                               new, self.ftype(new))
            if scan.bad.count:
                yield DataRisk.found(
                    f"{new.name}: {scan.bad.count:,} of {scan.total:,} rows hold values the new definition "
                    f"refuses ({scan.example}); they are kept and must be corrected on their next edit",
                    scan.bad, scan.total, blocking=False)
        if new.required and not old.required:
            missing = _null_ids(self.conn, self.now(table), self.as_stored(table, new).name)
            if missing.count:
                yield DataRisk.found(f"{new.name} becomes required: {missing.count:,} rows have no value",
                                     missing, self.rows(table), blocking=False)
        # A field that becomes unique gets a unique index; index_changes checks for duplicates.

    def retype(self, entity: Entity, old: Field, new: Field, old_specs: Mapping[str, ColumnSpec],
               new_specs: Mapping[str, ColumnSpec]) -> None:
        table = entity.table_name
        old_type, new_type = self.ftype(old), self.ftype(new)
        scan = scan_values(self.conn, self.now(table), self.as_stored(table, old), old_type, new, new_type)
        risks: list[DataRisk] = []
        what = f"{old.type} → {new.type}" if old.type != new.type else f"{old.type} (new storage)"
        if scan.bad.count:
            risks.append(DataRisk.found(
                f"retype {new.name} {what}: {scan.bad.count:,} of {scan.total:,} rows do not convert "
                f"({scan.example})", scan.bad, scan.total, blocking=True))
        if new.target and (old.target != new.target):
            orphans = _orphan_ids(self.conn, self.now(table), new.name, self.now(table_name(new.target)))
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
            if old_type.companions_convert(old):
                kept = _lost_ids(self.conn, self.now(table), self.as_stored(table, old), old_type, new,
                                 new_type, suffix)
            else:
                kept = _null_ids(self.conn, self.now(table),
                                 old_specs[suffix].column_name(self.as_stored(table, old).name), negate=True)
            if kept.count:
                risks.append(DataRisk.found(
                    f"retype {new.name} {what} drops column {column}, which holds values in "
                    f"{kept.count:,} rows that a {new.type} value cannot keep", kept, self.rows(table),
                    blocking=True))
        steps: list[Step] = []
        self._added[table] = self._added.get(table, 0) + len(new_specs)
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

    # --- what the databases take -------------------------------------------------------
    def capacity_changes(self, target_state: Metamodel) -> None:
        """The columns (and on PostgreSQL the row width) of each table this plan changes,
        against what the database takes (capacity.py): a warning from 80% of a limit, a
        refusal beyond one, as a change of its own (no DDL)."""
        touched = {c.entity for c in self.changes if c.entity}
        dialect = self.dialect.name
        searched = wanted_search_indexes(target_state, self.registry)
        for entity in target_state.active_entities:
            if entity.name not in touched:
                continue
            table = entity.table_name
            fields = companions = retired = 0
            columns = entity_columns(entity, self.registry)
            for f in entity.fields:
                for spec in self.ftype(f).columns(f):
                    if f.retired:
                        retired += 1
                    elif spec.suffix:
                        companions += 1
                    else:
                        fields += 1
            platform = int(dialect == "postgresql" and entity.name in searched)
            live = len(system_columns()) + fields + companions + retired + platform
            dropped = 0
            if dialect == "postgresql" and self.current.any_entity(entity.name) is not None:
                held, has_search = self.conn.execute(sa.text(
                    "SELECT count(*), coalesce(bool_or(attname = :search AND NOT attisdropped), false) "
                    "FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0"),
                    {"t": self.now(table), "search": SEARCH_COLUMN}).one()
                added = self._added.get(table, 0) + (platform and not has_search)
                dropped = max(0, held + added - live)
            fixed, widest = row_bytes(columns, extra_variable=platform)
            size = TableSize(len(system_columns()), fields, companions, retired, platform, dropped,
                             fixed, widest)
            found = problems(entity.name, table, size, dialect)
            if found:
                self.change("check table size", entity.name, None,
                            f"table {table} of {entity.name}: {size.columns:,} columns",
                            risks=[DataRisk(message, refused, 0, 0) for message, refused in found])

    # --- indexes -----------------------------------------------------------------------
    def index_changes(self, target_state: Metamodel) -> None:
        """Indexes the metamodels' difference adds or drops, and those the database holds
        without their trailing id (tables.outdated_indexes), re-created with it."""
        before = wanted_indexes(self.current, self.registry)
        after = wanted_indexes(target_state, self.registry)
        # A renamed table's indexes have their new names from the plan's first change on.
        old_layout = outdated_indexes(self.conn, [i for i in before.values()
                                                  if i.table not in self._tables_now])
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
                    dupes = _duplicate_ids(self.conn, self.now(index.table), now_named)
                    if dupes.count:
                        what = (f"{index.label} becomes unique" if len(index.fields) == 1
                                else f"{index.label} become unique together")
                        shared = _duplicate_values(self.conn, self.now(index.table), now_named,
                                                   list(index.columns))
                        risks.append(DataRisk(
                            f"{what}, but {dupes.count:,} rows share "
                            f"{'a value' if len(index.fields) == 1 else 'their values'} "
                            f"with another row: ids {dupes.ids()}; {shared}", True, dupes.count,
                            self.rows(index.table), dupes.sample))
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
        # A renamed entity's index was dropped by its rename (rename_entity): made again here.
        held = wanted_search_indexes(self.current, self.registry)
        before = {entity: index for entity, index in held.items() if entity not in self.renames.values()}
        after = wanted_search_indexes(target_state, self.registry)
        dialect = self.dialect.name
        old_layout = outdated(self.conn, before.values())

        def rebuilt(old: SearchIndex, new: SearchIndex) -> bool:
            return old.entity in old_layout or any(c.entity == old.entity and (
                c.rewrites_table or (c.action in ("retype column", "fold fields") and (
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


def _create_apart(table: sa.Table) -> Callable[[Operations], None]:
    """CREATE TABLE for a table of a field stored apart, with its keys and indexes."""
    def ddl(ops: Operations) -> None:
        columns = [sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                   for c in table.columns]
        constraints: list[sa.Constraint] = [
            sa.ForeignKeyConstraint([c.name for c in fk.columns], [e.target_fullname for e in fk.elements],
                                    name=fk.name, ondelete=fk.ondelete)
            for fk in sorted(table.foreign_key_constraints, key=lambda k: str(k.name))]
        constraints += [sa.UniqueConstraint(*[c.name for c in u.columns], name=u.name)
                        for u in table.constraints if isinstance(u, sa.UniqueConstraint)]
        ops.create_table(table.name, *columns, *constraints)
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            ops.create_index(str(index.name), table.name, [c.name for c in index.columns],
                             unique=bool(index.unique))
    return ddl


def _drop_table(table: str) -> Callable[[Operations], None]:
    def ddl(ops: Operations) -> None:
        ops.drop_table(table)
    return ddl


def _table_signature(table: sa.Table) -> tuple[Any, ...]:
    return (table.name, tuple((c.name, repr(c.type), tuple(sorted(f.target_fullname for f in c.foreign_keys)))
                              for c in table.columns))


def _rename(table: str, before: str, after: str) -> Callable[[Operations], None]:
    def ddl(ops: Operations) -> None:
        ops.alter_column(table, before, new_column_name=after)
    return ddl


def _rename_table(before: str, after: str, dialect: str) -> Callable[[Operations], None]:
    def ddl(ops: Operations) -> None:
        if dialect == "sqlite":
            # Off (the default since SQLite 3.26), the rename rewrites the REFERENCES of the
            # other tables' foreign keys to the new name; on, they would point to nothing.
            ops.execute("PRAGMA legacy_alter_table = OFF")
        ops.rename_table(before, after)
    return ddl


def _rename_pg_object(kind: str, before: str, after: str, table: str) -> Callable[[Operations], None]:
    """ALTER INDEX / SEQUENCE … RENAME, or a constraint of `table` (PostgreSQL)."""
    def ddl(ops: Operations) -> None:
        quote = ops.get_context().dialect.identifier_preparer.quote
        if kind == "constraint":
            ops.execute(f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(before)} TO {quote(after)}")
        else:
            ops.execute(f"ALTER {kind.upper()} {quote(before)} RENAME TO {quote(after)}")
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
        ops.create_index(index.name, index.table, index.keys_on(dialect), unique=index.unique)
    return ddl


def _create_sa_index(index: sa.Index) -> Callable[[Operations], None]:
    def ddl(ops: Operations) -> None:
        assert index.table is not None
        ops.create_index(str(index.name), index.table.name, [c.name for c in index.columns])
    return ddl


def _drop_sa_index(name: str, table: str) -> Callable[[Operations], None]:
    def ddl(ops: Operations) -> None:
        ops.drop_index(name, table_name=table)
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


def _lost_ids(conn: sa.Connection, table: str, old: Field, old_type: FieldType, new: Field,
              new_type: FieldType, suffix: str) -> Rows:
    """Rows whose companion column `suffix` holds a value the retype would lose: the value
    converted to the new type, then back, is not the value stored (an all-day date kept as a
    date loses nothing; a currency code dropped with its amount, or an all-day flag turned
    into midnight, does). A value that does not convert counts as lost."""
    count = 0
    samples: list[int] = []
    for rows in _batches(conn, table, old, old_type):
        for row in rows:
            stored = _stored(row, old, old_type)
            if stored.get(suffix) is None:
                continue
            try:
                back = old_type.coerce(new_type.coerce(_read(row, old, old_type), new), old)
                kept = old_type.to_columns(back, old) == stored
            except (CoercionError, ValueError, TypeError):
                kept = False
            if not kept:
                count += 1
                if len(samples) < SAMPLE_IDS:
                    samples.append(row[0])
    return Rows(count, tuple(samples))


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


@dataclass(frozen=True)
class _FoldSource:
    """A former field folded into `part` of a composite field, read from `names` (by suffix)."""

    part: str
    field: Field
    field_type: FieldType
    names: Mapping[str, str]


def _fold_batches(conn: sa.Connection, table: str,
                  sources: Sequence[_FoldSource]) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """(id, part → the former field's value as text) of each row holding any of them."""
    wanted = [(s, suffix, name) for s in sources for suffix, name in s.names.items()]
    t = sa.table(table, sa.column("id", sa.BigInteger),
                 *[sa.column(name, spec.type) for s in sources for spec in s.field_type.columns(s.field)
                   for name in [s.names[spec.suffix]]])
    columns = [t.c[name] for _, _, name in wanted]
    last = 0
    while True:
        rows = conn.execute(sa.select(t.c.id, *columns)
                            .where(t.c.id > last, sa.or_(*[c.isnot(None) for c in columns]))
                            .order_by(t.c.id).limit(BATCH)).all()
        if not rows:
            return
        batch = []
        for row in rows:
            stored: dict[int, dict[str, Any]] = {}
            for (source, suffix, _), value in zip(wanted, row[1:], strict=True):
                stored.setdefault(id(source), {})[suffix] = value
            parts: dict[str, Any] = {}
            for source in sources:
                value = source.field_type.from_columns(stored[id(source)], source.field)
                if value is None:
                    continue
                parts[source.part] = value if isinstance(value, str) else \
                    source.field_type.display(value, source.field)
            batch.append((row[0], parts))
        yield batch
        last = rows[-1][0]


def _scan_fold(conn: sa.Connection, table: str, sources: Sequence[_FoldSource], new: Field,
               new_type: FieldType) -> Scan:
    """Run every row's former values through the composite type's coercion of their parts."""
    total = bad = 0
    samples: list[int] = []
    example = ""
    for rows in _fold_batches(conn, table, sources):
        for key, parts in rows:
            total += 1
            try:
                new_type.coerce(parts, new)
            except CoercionError as error:
                bad += 1
                if len(samples) < SAMPLE_IDS:
                    samples.append(key)
                example = example or f"id {key}: {error}"
    return Scan(total, Rows(bad, tuple(samples)), example)


def _fold_converter(table: str, sources: Sequence[_FoldSource], new: Field, new_type: FieldType,
                    columns: Mapping[str, str]) -> Callable[[sa.Connection], None]:
    """Write each row's converted parts into the composite field's columns (by suffix)."""
    def run(conn: sa.Connection) -> None:
        target = sa.table(table, sa.column("id", sa.BigInteger),
                          *[sa.column(columns[s.suffix], s.type) for s in new_type.columns(new)])
        update = target.update().where(target.c.id == sa.bindparam("_id")).values(
            {name: sa.bindparam(name) for name in columns.values()})
        for rows in _fold_batches(conn, table, sources):
            params = []
            for key, parts in rows:
                try:
                    value = new_type.coerce(parts, new)
                except CoercionError as error:
                    raise ConversionFailed(f"{table} id {key}: {new.name}: {error}") from None
                stored = new_type.to_columns(value, new)
                params.append({"_id": key, **{columns[k]: v for k, v in stored.items()}})
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


#: How many of the values a unique index would refuse the plan names.
SAMPLE_VALUES = 3


def _duplicate_values(conn: sa.Connection, table: str, columns: Sequence[str],
                      names: Sequence[str]) -> str:
    """Which values rows share, the most repeated first: `duplicated: (person 1, event 1)
    in 3 rows, …` (columns named by `names`, their names after the plan)."""
    t = sa.table(table, *(sa.column(c) for c in columns))
    keys = [t.c[c] for c in columns]
    shared = (sa.select(*keys, sa.func.count().label("n")).where(*(k.isnot(None) for k in keys))
              .group_by(*keys).having(sa.func.count() > 1))
    groups = conn.execute(sa.select(sa.func.count()).select_from(shared.subquery())).scalar_one()
    found = conn.execute(shared.order_by(sa.desc("n"), *keys).limit(SAMPLE_VALUES)).all()

    def shown(value: Any) -> str:
        text = repr(value) if isinstance(value, str) else str(value)
        return text if len(text) <= 40 else text[:39] + "…"

    listed = ", ".join("(" + ", ".join(f"{name} {shown(v)}" for name, v in zip(names, row[:-1], strict=True))
                       + f") in {row[-1]:,} rows" for row in found)
    rest = groups - len(found)
    return f"duplicated: {listed}" + (f" and {rest:,} more values" if rest > 0 else "")


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
