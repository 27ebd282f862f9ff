"""Per-revision compiled entities: what every record operation needs, built once.

Statements, column maps, coercers and titles depend only on the metamodel revision, so
they are made here when an entity of a revision is first used and shared by every
request after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldType, FieldTypeRegistry
from slatecrm.metamodel.model import Entity, Field, Pipeline
from slatecrm.metamodel.titles import render, template_fields

from ..storage.once import LazyMapping

SYSTEM_FIELDS = ("id", "created_at", "updated_at", "created_by", "updated_by", "owner", "version")


@dataclass(frozen=True)
class CompiledField:
    field: Field
    type: FieldType
    #: (suffix, column name) of each column, main column first.
    columns: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def column(self) -> str:
        """The main column (sorting, filtering, unique checks)."""
        return self.columns[0][1]

    def to_row(self, value: Any) -> dict[str, Any]:
        by_suffix = self.type.to_columns(value, self.field)
        return {column: by_suffix.get(suffix) for suffix, column in self.columns}

    @cached_property
    def _read_as_is(self) -> str | None:
        """The column whose value is the field's value as it is (one column, read by the
        contract's own `from_columns`), or None: every read of every record asks (a page, a
        bulk create's read back), so the answer is worked out once."""
        if len(self.columns) == 1 and self.columns[0][0] == "" \
                and type(self.type).from_columns is FieldType.from_columns:
            return self.columns[0][1]
        return None

    def from_row(self, row: Mapping[Any, Any], labels: Mapping[str, str] | None = None) -> Any:
        """The value from a row; `labels` maps each column to the label it has in the row
        when the SELECT renamed it (a joined table's columns)."""
        if (column := self._read_as_is) is not None:
            return row[column if labels is None else labels[column]]
        if labels is None:
            return self.type.from_columns({suffix: row[column] for suffix, column in self.columns},
                                          self.field)
        return self.type.from_columns({suffix: row[labels[column]] for suffix, column in self.columns},
                                      self.field)

    def to_json(self, value: Any) -> Any:
        return None if value is None else self.type.to_json(value, self.field)

    def column_of(self, suffix: str) -> str:
        """The column that keeps the part `suffix` of a value ("" is the main column)."""
        return dict(self.columns)[suffix]


@dataclass(frozen=True)
class CompiledEntity:
    entity: Entity
    table: sa.Table
    fields: dict[str, CompiledField]
    pipelines: dict[str, Pipeline]
    searchable: tuple[str, ...]
    #: The system and field columns of the table (the read path adds reference titles).
    select: sa.Select[Any]
    #: The fields a title is made of (what the read path joins to name a referenced record).
    title_fields: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.entity.name

    def title_of(self, values: Mapping[str, Any], record_id: int,
                 references: Mapping[str, str] | None = None) -> str:
        """How the record is named wherever it is shown or referenced. A title field that
        is a reference shows the title of the record it points to (`references`, by
        field, as the read path joined them), never the bare id."""
        texts = {name: self._title_text(name, values.get(name), references or {})
                 for name in self.title_fields}
        if self.entity.title_template:
            text = render(self.entity.title_template, texts)
        else:
            text = next(iter(texts.values()), "")
        return text or f"{self.entity.label} #{record_id}"

    def _title_text(self, name: str, value: Any, references: Mapping[str, str]) -> str:
        compiled = self.fields[name]
        if value is None:
            return ""
        if compiled.field.target:  # a reference: the title the read path joined
            return references.get(name) or f"#{value}"
        return compiled.type.display(value, compiled.field)

    def references(self) -> dict[str, str]:
        """The references to one entity (`target`), by field: their target."""
        return {name: f.field.target for name, f in self.fields.items()
                if f.type.links_records and f.field.target}

    def polymorphic_references(self) -> dict[str, tuple[str, ...]]:
        """The references to one of several entities (`targets`), by field: their targets."""
        return {name: f.field.targets for name, f in self.fields.items()
                if f.type.links_records and not f.field.target}


def compile_entity(entity: Entity, table: sa.Table, registry: FieldTypeRegistry) -> CompiledEntity:
    fields: dict[str, CompiledField] = {}
    for field in entity.active_fields:
        field_type = registry[field.type]
        columns = tuple((spec.suffix, spec.column_name(field.name)) for spec in field_type.columns(field))
        fields[field.name] = CompiledField(field, field_type, columns)
    wanted = [table.c[name] for name in SYSTEM_FIELDS]
    wanted += [table.c[column] for f in fields.values() for _, column in f.columns]
    searchable = tuple(f.column_of(suffix) for f in fields.values() if f.type.searchable
                       for suffix in f.type.search_columns(f.field))
    if entity.title_template:
        title_names = tuple(n for n in template_fields(entity.title_template) if n in fields)
    else:
        title_names = (entity.title_field,) if entity.title_field in fields else ()
    return CompiledEntity(
        entity=entity, table=table, fields=fields,
        pipelines={p.field: p for p in entity.pipelines},
        searchable=searchable, select=sa.select(*wanted), title_fields=title_names,
    )


def compile_entities(metamodel_entities: tuple[Entity, ...], tables: Mapping[str, sa.Table],
                     registry: FieldTypeRegistry) -> dict[str, CompiledEntity]:
    """Every active entity compiled at once."""
    return {e.name: compile_entity(e, tables[e.name], registry) for e in metamodel_entities if not e.retired}


class CompiledEntities(LazyMapping[str, CompiledEntity]):
    """The active entities of a revision by name, each compiled (with its table) when first
    used: a request pays for the entities it touches, not for all of them."""

    def __init__(self, metamodel_entities: tuple[Entity, ...], tables: Mapping[str, sa.Table],
                 registry: FieldTypeRegistry):
        active = {e.name: e for e in metamodel_entities if not e.retired}
        super().__init__(active, lambda name: compile_entity(active[name], tables[name], registry))


def is_blank(value: Any) -> bool:
    """No value, as required fields and stage requirements see it: None, "", an empty list
    or tuple (a field stored apart with nothing linked)."""
    return value is None or value == [] or value == () or value == ""
