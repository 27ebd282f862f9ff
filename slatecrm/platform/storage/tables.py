"""Tables from the metamodel: one table per entity, one column per field (two for currency).

Built once per metamodel revision; the same Table objects serve the schema engine, and
(later) every records query, so SQLAlchemy's statement cache keeps working.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import ColumnSpec, FieldTypeRegistry
from slatecrm.metamodel.fieldtypes.sqltypes import UTCDateTime, record_id
from slatecrm.metamodel.model import ENTITY_TABLE_PREFIX, Entity, Field, Metamodel
from slatecrm.metamodel.names import MAX_IDENTIFIER

from .once import LazyMapping
from .system import NAMING_CONVENTION, users

ON_DELETE_SQL = {"restrict": "RESTRICT", "set_null": "SET NULL", "cascade": "CASCADE"}


def short_name(name: str) -> str:
    """`name`, shortened with a hash when longer than every database allows."""
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER - 9]}_{digest}"


def table_name(entity: str) -> str:
    return ENTITY_TABLE_PREFIX + entity


def foreign_table(spec: ColumnSpec) -> str | None:
    """The table a column's foreign key points to: an entity's, or a platform table's."""
    if spec.references_table:
        return spec.references_table
    return table_name(spec.references) if spec.references else None


def fk_name(table: str, column: str) -> str:
    return short_name(f"fk_{table}_{column}")


def composite_index_name(table: str, fields: Sequence[str], *, unique: bool,
                         descending: Sequence[str] = ()) -> str:
    """The name of a composite unique constraint (`ux_`) or index (`ix_`). Fields are joined
    with `__`, which no field name contains, so it never meets a single field's index; a
    descending field is followed by `__desc` (an SQL keyword: no field's name)."""
    keys = [f"{f}__desc" if f in descending else f for f in fields]
    return short_name(f"{'ux' if unique else 'ix'}_{table}_{'__'.join(keys)}")


#: The column every list orders by last (records/keyset.py), and the dialect whose
#: non-unique indexes name it explicitly (IndexSpec.columns_on).
TIEBREAK = "id"
TIEBREAK_DIALECT = "postgresql"


@dataclass(frozen=True)
class IndexSpec:
    """An index the metamodel wants; `fields` are field names (a field's columns follow)."""

    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool
    #: The entity's fields (or system columns) the index is over, in order.
    fields: tuple[str, ...]
    #: The columns of `columns` held descending.
    descending: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return ", ".join(f"-{f}" if f in self.descending_fields else f for f in self.fields)

    @property
    def descending_fields(self) -> frozenset[str]:
        return frozenset(f for f in self.fields if f in self.descending)

    def keys_on(self, dialect: str) -> list[Any]:
        """`columns_on(dialect)` for CREATE INDEX: names, or `name DESC` for a descending column."""
        return [sa.text(f'"{c}" DESC') if c in self.descending else c for c in self.columns_on(dialect)]

    def columns_on(self, dialect: str) -> tuple[str, ...]:
        """The columns the database's index holds: on PostgreSQL a non-unique index ends
        with `id`, so that it serves a list's keyset order (sort keys, then id) to the
        LIMIT instead of leaving an Incremental Sort to read a whole run of equal keys
        (docs/decisions.md, "Indexes end with the id on PostgreSQL"). SQLite's indexes end
        with the rowid already; a unique index keeps its columns (the id would void it)."""
        if dialect == TIEBREAK_DIALECT and not self.unique and self.columns[-1:] != (TIEBREAK,):
            return (*self.columns, TIEBREAK)
        return self.columns


def system_columns() -> list[sa.Column[Any]]:
    def user_ref(name: str) -> sa.Column[Any]:
        return sa.Column(name, record_id(), sa.ForeignKey(f"{users.name}.id", ondelete="SET NULL"),
                         nullable=True)
    return [
        sa.Column("id", record_id(), primary_key=True, autoincrement=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        user_ref("created_by"),
        user_ref("updated_by"),
        user_ref("owner"),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    ]


def field_column(spec: ColumnSpec, field: Field, table: str, *, name: str | None = None,
                 with_fk: bool = True, use_alter: bool = False) -> sa.Column[Any]:
    """The column of `spec`; `name` overrides its name (the schema engine's temporary columns).

    `use_alter` marks foreign keys of the runtime's tables, which may form cycles
    (account ⇄ contact) and are never used to create tables.
    """
    name = name or spec.column_name(field.name)
    target = foreign_table(spec)
    if target is not None and with_fk:
        return sa.Column(name, spec.type, sa.ForeignKey(
            f"{target}.id", ondelete=ON_DELETE_SQL[spec.on_delete or "restrict"],
            name=fk_name(table, name), use_alter=use_alter), nullable=True)
    return sa.Column(name, spec.type, nullable=True)


def entity_columns(entity: Entity, registry: FieldTypeRegistry,
                   without_fk_to: frozenset[str] = frozenset(),
                   runtime: bool = False) -> list[sa.Column[Any]]:
    """Fresh columns of an entity's table, retired fields included (they hold data)."""
    columns = system_columns()
    for field in entity.fields:
        for spec in registry[field.type].columns(field):
            columns.append(field_column(spec, field, entity.table_name, use_alter=runtime,
                                        with_fk=spec.references not in without_fk_to))
    return columns


def indexes_of(entity: Entity, registry: FieldTypeRegistry) -> Iterator[IndexSpec]:
    """The indexes an active entity wants: owner, indexed, unique, reference and stage
    fields, and the entity's composite `unique` and `indexes` (over every column of each
    field, in the order given)."""
    table = entity.table_name
    yield IndexSpec(short_name(f"ix_{table}_owner"), table, ("owner",), False, ("owner",))
    for field in entity.active_fields:
        field_type = registry[field.type]
        if field.unique or field.indexed or field_type.index_by_default:
            prefix = "ux" if field.unique else "ix"
            columns: tuple[str, ...] = (field.name,)
            specs = {spec.suffix: spec for spec in field_type.columns(field)}
            if field_type.index_by_default and len(specs) > 1:
                # A value kept in several columns that always wants an index (a polymorphic
                # reference's entity and id): one index over them, in their sort order.
                columns = tuple(specs[suffix].column_name(field.name)
                                for suffix in field_type.sort_columns(field))
            yield IndexSpec(short_name(f"{prefix}_{table}_{field.name}"), table, columns,
                            field.unique, (field.name,))
    for prefix, composites in (("ux", entity.unique), ("ix", entity.indexes)):
        for composite in composites:
            fields = [entity.field(name) for name in composite.fields]
            columns = tuple(spec.column_name(f.name) for f in fields if f is not None
                            for spec in registry[f.type].columns(f))
            descending = frozenset(spec.column_name(f.name) for f in fields
                                   if f is not None and f.name in composite.descending
                                   for spec in registry[f.type].columns(f))
            yield IndexSpec(composite_index_name(table, composite.fields, unique=prefix == "ux",
                                                 descending=composite.descending),
                            table, columns, prefix == "ux", composite.fields, descending)


def wanted_indexes(metamodel: Metamodel, registry: FieldTypeRegistry) -> dict[str, IndexSpec]:
    return {i.name: i for e in metamodel.active_entities for i in indexes_of(e, registry)}


def outdated_indexes(conn: sa.Connection, indexes: Iterable[IndexSpec]) -> set[str]:
    """The names of `indexes` the database holds without the columns `columns_on` gives it
    (a PostgreSQL index made before its non-unique indexes ended with the id): the planner
    re-creates those, so `slatecrm init` upgrades them. They still serve, only slower, so a
    server does not refuse them (storage/upgrades.py). Empty on SQLite, where nothing changed.
    """
    dialect = conn.dialect.name
    wanted = {i.name: i for i in indexes if i.columns_on(dialect) != i.columns}
    if not wanted:
        return set()
    tables = sorted({i.table for i in wanted.values()})
    held = sa.inspect(conn).get_multi_indexes(filter_names=tables)  # one query on PostgreSQL
    found = {(table, i["name"]): tuple(i["column_names"]) for (_, table), listed in held.items()
             for i in listed}
    return {name for name, index in wanted.items()
            if found.get((index.table, name), index.columns_on(dialect)) != index.columns_on(dialect)}


def entity_table(entity: Entity, metadata: sa.MetaData, registry: FieldTypeRegistry,
                 dialect: str | None = None) -> sa.Table:
    """The table of an entity, with the columns of retired fields too (they hold data).
    Its indexes have the columns the database's indexes have on `dialect` (none given:
    the metamodel's own columns)."""
    table = sa.Table(entity.table_name, metadata, *entity_columns(entity, registry, runtime=True))
    if not entity.retired:
        for index in indexes_of(entity, registry):
            columns = index.columns_on(dialect) if dialect else index.columns
            sa.Index(index.name, *(table.c[c].desc() if c in index.descending else table.c[c]
                                   for c in columns), unique=index.unique)
    return table


def apart_tables_of(entity: Entity, registry: FieldTypeRegistry, metadata: sa.MetaData,
                    fields: Iterable[Field] | None = None) -> dict[tuple[str, str], sa.Table]:
    """The tables the fields stored apart of `entity` keep their values in (FieldType.
    apart_tables), retired fields' too (they hold data), by (field, part)."""
    out: dict[tuple[str, str], sa.Table] = {}
    for field in entity.fields if fields is None else fields:
        field_type = registry.of(field)
        if field_type is None or not field_type.stored_apart:
            continue
        for table in field_type.apart_tables(field, entity.name, metadata):
            out[(field.name, str(table.info.get("part", "")))] = table
    return out


class EntityTables(LazyMapping[str, sa.Table]):
    """The tables of one revision's entities (retired ones too), by entity name, each built
    when first asked for: a request needs a few of hundreds, and building one costs
    milliseconds (a 200-entity revision took seconds to build whole).

    They share one `MetaData`, so a foreign key to a table not built yet is linked by
    SQLAlchemy when that table is built. Tables are added to it one at a time (the
    `MetaData` and its pending foreign keys are not safe to change from two threads at
    once); `complete()` builds the rest, for what needs every table (comparing the
    schema with the database).
    """

    def __init__(self, metamodel: Metamodel, registry: FieldTypeRegistry, dialect: str | None = None):
        entities = {e.name: e for e in metamodel.entities}
        super().__init__(entities, lambda name: self._add(entities[name]))
        self.registry = registry
        self.dialect = dialect
        self._metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
        users.to_metadata(self._metadata)
        self._adding = threading.Lock()
        self._apart: dict[tuple[str, str, str], sa.Table] = {}

    def _add(self, entity: Entity) -> sa.Table:
        with self._adding:
            table = entity_table(entity, self._metadata, self.registry, self.dialect)
            self._apart.update({(entity.name, *key): t for key, t in
                                apart_tables_of(entity, self.registry, self._metadata).items()})
            return table

    def apart(self, entity: str, field: str, part: str = "") -> sa.Table:
        """A table a field of `entity` keeps its values in (FieldType.apart_tables)."""
        self[entity]
        return self._apart[(entity, field, part)]

    def complete(self) -> sa.MetaData:
        """The `MetaData` with every entity's table in it."""
        for name in self:
            self[name]
        return self._metadata

