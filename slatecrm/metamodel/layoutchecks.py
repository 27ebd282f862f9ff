"""Layouts merged across packs and checked against the effective metamodel.

A layout is replaced by name: a pack that requires the layout's pack, or the organisation's
layer, may give its own version (a pack that does not require it may not: two packs that do
not know each other would fight over one page). Once merged, an entity has at most one
layout. Everything a layout names is checked here, at install time, at its place in the
file: its entity, the fields it places (each once), the related lists (a field of the other
entity that points at this one), their columns and sort keys, the compact fields. A field
that is required and has no default must be placed: a new record's form without it could
never be saved (the API still sets fields left out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .byname import ORGANISATION_LAYER
from .errors import Location, Problem
from .fieldtypes import FieldTypeRegistry
from .layouts import Layout, RelatedList
from .model import Entity, Field, Metamodel, renamed_note
from .names import suggest
from .rules.types import SYSTEM_FIELDS


def merge_layouts(packs: Sequence[tuple[str, str, Sequence[Layout]]], metamodel: Metamodel,
                  may_name: Callable[[str, str], bool],
                  registry: FieldTypeRegistry) -> tuple[tuple[Layout, ...], list[Problem]]:
    """The layouts of `packs` ((pack, origin, layouts), in dependency order) and their problems.

    `may_name(pack, other)` says whether `pack` may name (and so replace) what `other` defines."""
    merged: dict[str, tuple[Layout, str]] = {}
    problems: list[Problem] = []
    for pack, origin, layouts in packs:
        for layout in layouts:
            first = merged.get(layout.name)
            if first is not None and pack != ORGANISATION_LAYER and not may_name(pack, first[0].pack):
                problems.append(Problem(
                    f"layout {layout.name!r} is already defined by pack {first[0].pack!r} "
                    f"({first[0].source}); "
                    f"a pack replaces another's layout only if it requires it: add {first[0].pack!r} to "
                    "requires in pack.yaml, or give this layout another name", layout.source, origin))
                continue
            merged[layout.name] = (layout, origin)
    by_entity: dict[str, Layout] = {}
    for layout, origin in merged.values():
        other = by_entity.get(layout.entity)
        if other is not None:
            problems.append(Problem(
                f"entity {layout.entity!r} already has layout {other.name!r} ({other.source}); an entity "
                f"has one layout: name this one {other.name!r} to replace it", layout.source, origin))
            continue
        by_entity[layout.entity] = layout
        problems.extend(_Checks(layout, origin, metamodel, may_name, registry).all())
    return tuple(by_entity.values()), problems


@dataclass
class _Checks:
    layout: Layout
    origin: str
    metamodel: Metamodel
    may_name: Callable[[str, str], bool]
    registry: FieldTypeRegistry

    def problem(self, message: str, where: Location) -> Problem:
        return Problem(f"layout {self.layout.name!r}: {message}", where, self.origin)

    def all(self) -> Iterator[Problem]:
        layout = self.layout
        entity = self.entity(layout.entity, layout.locate("entity"))
        if isinstance(entity, Problem):
            yield entity
            return
        for name in layout.placed:
            yield from self.field(entity, name, layout.locate(f"field:{name}"))
        for name in layout.compact:
            yield from self.field(entity, name, layout.locate(f"compact:{name}"))
        if layout.tabs:
            yield from self.required_placed(entity)
        seen: dict[tuple[str, str], int] = {}
        for index, related in enumerate(layout.related_lists or ()):
            where = layout.locate(f"related:{index}")
            if (related.entity, related.field) in seen:
                yield self.problem(f"the related list {related.entity}.{related.field} is given twice", where)
                continue
            seen[(related.entity, related.field)] = index
            yield from self.related(entity, index, related)

    def entity(self, name: str, where: Location) -> Entity | Problem:
        entity = self.metamodel.entity(name)
        if entity is None:
            known = [e.name for e in self.metamodel.active_entities]
            hint = renamed_note(name, self.metamodel.active_entities) or suggest(name, known)
            return self.problem(f"entity {name!r} is not defined by any pack given, installed or "
                                f"required{hint}", where)
        if not self.may_name(self.layout.pack, entity.pack):
            return self.problem(f"entity {name!r} is defined by pack {entity.pack!r}, which pack "
                                f"{self.layout.pack!r} does not require: add it to requires in pack.yaml",
                                where)
        return entity

    def field(self, entity: Entity, name: str, where: Location) -> Iterator[Problem]:
        if entity.field(name) is None:
            names = [f.name for f in entity.active_fields]
            yield self.problem(f"{entity.name!r} has no field {name!r}{suggest(name, names)}", where)

    def required_placed(self, entity: Entity) -> Iterator[Problem]:
        placed = set(self.layout.placed)
        for found in entity.active_fields:
            if found.name not in placed and self.needs_a_person(found):
                yield self.problem(
                    f"field {found.name!r} is required and has no default: place it in the layout "
                    "(a form without it could never save a new record)", self.layout.source)

    def needs_a_person(self, found: Field) -> bool:
        """Whether only a person filling in the form can give the field a value on a new record."""
        field_type = self.registry.of(found)
        writable = field_type is not None and field_type.writable
        return (found.required and writable and found.default is None and found.default_expression is None
                and found.formula is None and not found.read_only)

    def related(self, entity: Entity, index: int, related: RelatedList) -> Iterator[Problem]:
        layout = self.layout
        other = self.entity(related.entity, layout.locate(f"related:{index}"))
        if isinstance(other, Problem):
            yield other
            return
        pointing = other.field(related.field)
        if pointing is None:
            yield from self.field(other, related.field, layout.locate(f"related:{index}:field"))
            return
        if not self.points_at(other, pointing, entity.name):
            yield self.problem(f"{other.name}.{related.field} does not point at {entity.name!r} (a related "
                               f"list shows the {other.name} records whose reference, line or many-to-many "
                               "field points at this record)", layout.locate(f"related:{index}:field"))
        for name in related.columns:
            yield from self.field(other, name, layout.locate(f"related:{index}:column:{name}"))
        for key in related.sort:
            name = key.lstrip("-")
            where = layout.locate(f"related:{index}:sort:{key}")
            found = other.field(name)
            if found is None and name not in SYSTEM_FIELDS:
                names = [f.name for f in other.active_fields] + list(SYSTEM_FIELDS)
                yield self.problem(f"{other.name!r} has no field {name!r} to sort by{suggest(name, names)}",
                                   where)
            elif found is not None and (sorted_by := self.registry.of(found)) is not None \
                    and not sorted_by.sortable:
                yield self.problem(f"{other.name}.{name} is a {found.type} field, which cannot be sorted by",
                                   where)

    def points_at(self, other: Entity, pointing: Field, entity: str) -> bool:
        """Whether `other`'s field links its records to records of `entity`: a reference (or a
        polymorphic one naming it), or a many-to-many on either side."""
        if entity in pointing.targets and not self.stored_apart(pointing):
            return True
        if self.stored_apart(pointing):
            field_type = self.registry.of(pointing)
            relation = field_type.apart_related(pointing, other.name) if field_type is not None else None
            return relation is not None and (relation.target == entity or other.name == entity)
        return False

    def stored_apart(self, found: Field) -> bool:
        field_type = self.registry.of(found)
        return field_type is not None and field_type.stored_apart
