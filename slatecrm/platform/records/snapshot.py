"""One metamodel revision as the records layer and the web layer use it.

A request pins one `Snapshot` for its whole duration: a request that starts on revision
N finishes on N even if N+1 is applied meanwhile. The snapshot is made once per revision
and kept with that revision's `Runtime` (storage/runtime.py), so its parts are swapped
together: the tables, the compiled entities, the compiled rules, and what the web layer
derives from them (the OpenAPI document), each built once, lazily, by the first request
that needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from ..storage.runtime import Runtime
from . import rules as rule_hooks
from .compiled import CompiledEntity, compile_entities

T = TypeVar("T")


class Snapshot:
    def __init__(self, runtime: Runtime, registry: FieldTypeRegistry, dialect: str,
                 functions: RuleFunctions = NO_FUNCTIONS):
        self.runtime = runtime
        self.entities: dict[str, CompiledEntity] = compile_entities(
            runtime.metamodel.entities, runtime.tables, registry)
        self.rules = rule_hooks.RevisionRules(runtime.metamodel, runtime.tables, dialect, registry,
                                              functions)

    @property
    def revision(self) -> int:
        return self.runtime.revision

    @property
    def metamodel(self) -> Metamodel:
        return self.runtime.metamodel

    @property
    def tables(self) -> dict[str, sa.Table]:
        return self.runtime.tables

    def derived(self, key: str, build: Callable[[], T]) -> T:
        """Anything else built from this revision (e.g. the OpenAPI document), once."""
        return self.runtime.derived(key, build)


def snapshot_of(runtime: Runtime, registry: FieldTypeRegistry, dialect: str,
                functions: RuleFunctions = NO_FUNCTIONS) -> Snapshot:
    """The one snapshot of `runtime`'s revision (made by the first caller); its rules may
    call the plugins' `functions`."""
    return runtime.derived("records.snapshot", lambda: Snapshot(runtime, registry, dialect, functions))
