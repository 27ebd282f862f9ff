"""One metamodel revision as the records layer and the web layer use it.

A request pins one `Snapshot` for its whole duration: a request that starts on revision
N finishes on N even if N+1 is applied meanwhile. The snapshot is made once per revision
and kept with that revision's `Runtime` (storage/runtime.py), so its parts are swapped
together: the tables, the compiled entities, the compiled rules, and what the web layer
derives from them (the OpenAPI document), each built once, lazily, by the first request
that needs it; tables and compiled entities one entity at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from ..storage.runtime import Runtime
from . import rules as rule_hooks
from .compiled import CompiledEntities, CompiledEntity

T = TypeVar("T")


class Snapshot:
    #: Whether a principal's access narrowed it (see `RestrictedSnapshot`).
    restricted = False

    def __init__(self, runtime: Runtime, registry: FieldTypeRegistry, dialect: str,
                 functions: RuleFunctions = NO_FUNCTIONS, code_point_text: bool | None = None):
        self.runtime = runtime
        self.registry = registry
        self.dialect = dialect
        self.functions = functions
        self.code_point_text = code_point_text
        #: Active entities by name, each compiled when first used.
        self.entities: Mapping[str, CompiledEntity] = CompiledEntities(
            runtime.metamodel.entities, runtime.tables, registry)
        self.rules = rule_hooks.RevisionRules(runtime.metamodel, runtime.tables, dialect, registry,
                                              functions, code_point_text)

    def hides_searchable(self, entity: str) -> bool:
        """Whether some searchable field of `entity` is not in this snapshot (a restricted
        one's hidden field), while the search index holds its words."""
        return False

    def referrers(self, entity: str) -> tuple[tuple[str, str], ...]:
        """(entity, field) of the active references to `entity`, in metamodel order. Read
        from the metamodel, so a record page or a delete does not compile every entity to
        learn which few point to this one."""
        return self.derived("records.referrers", self._referrers_by_target).get(entity, ())

    def _referrers_by_target(self) -> dict[str, tuple[tuple[str, str], ...]]:
        index: dict[str, list[tuple[str, str]]] = {}
        for other in self.metamodel.active_entities:
            for field in other.active_fields:
                field_type = self.registry.of(field)
                if field_type is not None and field_type.stored_apart:
                    continue  # no column that references (a junction table's keys cascade)
                for target in dict.fromkeys(field.targets):  # a polymorphic one: each of its targets
                    index.setdefault(target, []).append((other.name, field.name))
        return {target: tuple(pairs) for target, pairs in index.items()}

    @property
    def revision(self) -> int:
        return self.runtime.revision

    @property
    def metamodel(self) -> Metamodel:
        return self.runtime.metamodel

    @property
    def tables(self) -> Mapping[str, sa.Table]:
        return self.runtime.tables

    def derived(self, key: str, build: Callable[[], T]) -> T:
        """Anything else built from this revision (e.g. the OpenAPI document), once."""
        return self.runtime.derived(key, build)


def snapshot_of(runtime: Runtime, registry: FieldTypeRegistry, dialect: str,
                functions: RuleFunctions = NO_FUNCTIONS, code_point_text: bool | None = None) -> Snapshot:
    """The one snapshot of `runtime`'s revision (made by the first caller); its rules may
    call the plugins' `functions`, and compile for a database whose text order is code
    point order or not (`code_point_text`, storage/engine.py `text_in_code_point_order`)."""
    return runtime.derived("records.snapshot",
                           lambda: Snapshot(runtime, registry, dialect, functions, code_point_text))
