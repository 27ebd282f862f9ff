"""Views merged across packs and checked against the effective metamodel.

A view names its entity, fields, sort keys and pipeline, and holds a filter in the rule
language: each is checked here, when packs are installed or the organisation edits its
layer, so that a view that passes never meets an unknown name when a list applies it; every
problem points at the place in the view's file.

Unlike a workflow, a view may be replaced by name by a pack that requires the pack defining
it (a vertical pack's own "Open opportunities"), as well as by the organisation's layer: a
view only shows records, so the later definition winning cannot make anything act.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

from .byname import ORGANISATION_LAYER
from .calendarfields import date_kind, is_duration
from .errors import Location, Problem
from .fieldtypes import FieldTypeRegistry
from .model import SORTABLE_SYSTEM, Entity, Metamodel, renamed_note, unsortable
from .names import suggest
from .rules import BOOLEAN, RuleError, check
from .rules.definitions import rule_problem
from .rules.functions import NO_FUNCTIONS, RuleFunctions
from .views import View


def merge_views(packs: Sequence[tuple[str, str, Sequence[View]]], metamodel: Metamodel,
                may_name: Callable[[str, str], bool], registry: FieldTypeRegistry,
                functions: RuleFunctions = NO_FUNCTIONS) -> tuple[tuple[View, ...], list[Problem]]:
    """The views of `packs` ((pack, origin, views), in dependency order) and their problems.
    A view replaces one of the same name from a pack its own pack requires (or any, for the
    organisation's layer), keeping its place in the order; two unrelated packs may not use
    one name. `may_name(pack, other)` says whether `pack` may name (and so replace) `other`'s."""
    merged: dict[str, View] = {}
    problems: list[Problem] = []
    for pack, origin, views in packs:
        for view in views:
            first = merged.get(view.name)
            if first is not None and pack != ORGANISATION_LAYER and not may_name(pack, first.pack):
                problems.append(Problem(
                    f"view {view.name!r} is already defined by pack {first.pack!r} ({first.source}), "
                    f"which pack {pack!r} does not require; give this one another name (a pack may "
                    "replace a view of a pack it requires)", view.source, origin))
                continue
            merged[view.name] = view
            problems.extend(_Checks(view, origin, metamodel, may_name, registry, functions).all())
    return tuple(merged.values()), problems


@dataclass
class _Checks:
    view: View
    origin: str
    metamodel: Metamodel
    may_name: Callable[[str, str], bool]
    registry: FieldTypeRegistry
    functions: RuleFunctions

    def problem(self, message: str, location: Location) -> Problem:
        return Problem(f"view {self.view.name!r}: {message}", location, self.origin)

    def all(self) -> Iterator[Problem]:
        view = self.view
        entity = self.metamodel.entity(view.entity)
        if entity is None:
            known = [e.name for e in self.metamodel.active_entities]
            hint = renamed_note(view.entity, self.metamodel.active_entities) or suggest(view.entity, known)
            yield self.problem(f"entity {view.entity!r} is not defined by any pack given, installed or "
                               f"required{hint}", view.locate("entity"))
            return
        if not self.may_name(view.pack, entity.pack):
            yield self.problem(f"entity {view.entity!r} is defined by pack {entity.pack!r}, which pack "
                               f"{view.pack!r} does not require: add it to requires in pack.yaml",
                               view.locate("entity"))
            return
        for key in ("columns", "card_fields"):
            for name in getattr(view, key):
                yield from self.field(entity, name, view.locate(f"{key}.{name}"))
        yield from self.sort(entity)
        if view.filter is not None:
            try:
                check(view.filter, self.metamodel, entity.name, expect=BOOLEAN, functions=self.functions,
                      registry=self.registry)
            except RuleError as error:
                yield rule_problem(error, f"view {view.name!r}: filter", view.locate("filter"), self.origin)
        if view.pipeline is not None and not any(p.name == view.pipeline for p in entity.pipelines):
            names = [p.name for p in entity.pipelines]
            yield self.problem(f"{entity.name!r} has no pipeline {view.pipeline!r}"
                               f"{suggest(view.pipeline, names)}; pipelines: {', '.join(names) or 'none'}",
                               view.locate("pipeline"))
        if view.totals is not None:
            found = yield from self.field(entity, view.totals, view.locate("totals"))
            if found and found in self.registry.names() and not self.registry[found].summable:
                yield self.problem(f"totals: {view.totals!r} is a {found} field; a board adds up a "
                                   "number or an amount", view.locate("totals"))
        yield from self.calendar(entity)

    def calendar(self, entity: Entity) -> Iterator[Problem]:
        """A calendar's field and end field are date fields the calendar page accepts
        (calendarfields.py), the end another one; its duration field is a duration."""
        view = self.view
        dates = [f.name for f in entity.active_fields if self.date_kind(entity, f.name)]
        listed = ", ".join(dates) or "none"
        for key in ("field", "end_field"):
            name = getattr(view, key)
            if name is None:
                continue
            where = view.locate(key)
            found = yield from self.field(entity, name, where)
            if found is None:
                continue
            if not self.date_kind(entity, name):
                yield self.problem(f"{key}: {name!r} is not a date field (its type is {found}); a calendar "
                                   f"places records by a date or a date and time: {listed}", where)
            elif key == "end_field" and name == view.field:
                yield self.problem(f"end_field: {name!r} is the calendar's field; an item ends at "
                                   f"another date field: {listed}", where)
        if view.duration_field is not None:
            where = view.locate("duration_field")
            found = yield from self.field(entity, view.duration_field, where)
            if found and found in self.registry.names() and not is_duration(self.registry[found]):
                yield self.problem(f"duration_field: {view.duration_field!r} is not a duration field "
                                   f"(its type is {found})", where)

    def date_kind(self, entity: Entity, name: str) -> str | None:
        """The calendar kind of `entity`'s field `name` (None when not a date, or of a type
        this registry does not know)."""
        found = entity.field(name)
        if found is None or found.type not in self.registry.names():
            return None
        return date_kind(self.registry[found.type], found)

    def field(self, entity: Entity, name: str, where: Location) -> Generator[Problem, None, str | None]:
        """Yields a problem when `entity` has no active field `name`; returns its type."""
        found = entity.field(name)
        if found is None:
            names = [f.name for f in entity.active_fields]
            yield self.problem(f"{entity.name!r} has no field {name!r}{suggest(name, names)}", where)
            return None
        return found.type

    def sort(self, entity: Entity) -> Iterator[Problem]:
        """What a request's `sort` accepts (records/listing.py), as for an entity's default_sort."""
        names = [key.lstrip("-") for key in self.view.sort]
        for key, name in zip(self.view.sort, names, strict=True):
            where = self.view.locate(f"sort.{key}")
            found = entity.field(name)
            if name in SORTABLE_SYSTEM:
                continue
            if found is None:
                known = [f.name for f in entity.active_fields]
                yield self.problem(f"sort: {entity.name!r} has no field {name!r}"
                                   f"{suggest(name, [*known, *SORTABLE_SYSTEM])}", where)
            elif found.type in self.registry.names() and not self.registry[found.type].sortable:
                yield self.problem(f"sort: {unsortable(name)}", where)
        for name in sorted({n for n in names if names.count(n) > 1}):
            yield self.problem(f"sort: {name!r} is named more than once", self.view.locate("sort"))
