"""Before-save workflows (`timing: before_save`): field updates made inside the write
pipeline, after formulas and before validation, in the write's transaction. The saved record
already has their changes, and validation judges the result.

Each has a budget per write (statements, which paths through references cost, and time): a
workflow that goes over it refuses the write with an error naming it, instead of a slow or
mysterious rollback.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.rules import RuleContext

from ..records.errors import ValidationFailed
from ..records.pipeline import Draft, Hooks, WriteRequest
from .actions import rule_value
from .registry import CompiledWorkflow, active_workflows

BUDGET_STATEMENTS = "SLATECRM_BEFORE_SAVE_STATEMENTS"
BUDGET_MILLISECONDS = "SLATECRM_BEFORE_SAVE_MS"


@dataclass(frozen=True)
class Budget:
    statements: int = 50
    milliseconds: float = 250.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Budget:
        environ = os.environ if environ is None else environ
        try:
            return cls(int(environ.get(BUDGET_STATEMENTS) or 50),
                       float(environ.get(BUDGET_MILLISECONDS) or 250))
        except ValueError:
            raise ValueError(f"{BUDGET_STATEMENTS} and {BUDGET_MILLISECONDS} must be numbers") from None


class OverBudget(Exception):
    pass


class BeforeSave:
    def __init__(self, snapshot_of: Any, budget: Budget | None = None):
        self.snapshot_of = snapshot_of
        self.budget = budget or Budget.from_environment()

    def register(self, hooks: Hooks) -> None:
        hooks.before_save.append(self.apply)

    def apply(self, conn: sa.Connection, request: WriteRequest, draft: Draft, context: RuleContext) -> None:
        workflows = active_workflows(self.snapshot_of()).before_save(draft.entity.name)
        if not workflows or request.silent:
            return
        for compiled in workflows:
            if not self._fires(compiled, draft):
                continue
            self._run(compiled, draft, context)

    @staticmethod
    def _fires(compiled: CompiledWorkflow, draft: Draft) -> bool:
        trigger = compiled.workflow.trigger
        if trigger.kind == "created":
            return draft.is_new
        if trigger.kind != "updated" or draft.is_new:
            return False
        changed = set(draft.changed())
        return bool(changed) and (not trigger.fields or bool(changed.intersection(trigger.fields)))

    def _run(self, compiled: CompiledWorkflow, draft: Draft, context: RuleContext) -> None:
        budget = self.budget
        spent = [0]
        lookup = context.lookup

        def counted(entity: str, key: int) -> Mapping[str, Any] | None:
            spent[0] += 1
            if spent[0] > budget.statements:
                raise OverBudget(f"more than {budget.statements} look-ups ({BUDGET_STATEMENTS})")
            return lookup(entity, key) if lookup is not None else None

        local = RuleContext(now=context.now, today=context.today, user_id=context.user_id,
                            user_roles=context.user_roles, user_teams=context.user_teams,
                            user_manager=context.user_manager, user_attributes=context.user_attributes,
                            previous=draft.before, lookup=counted)
        began = time.perf_counter()
        record = {**draft.system, **draft.values, "id": draft.record_id}
        try:
            if compiled.condition is not None and not compiled.condition.holds(record, local):
                return
            for action in compiled.actions:
                for name, closure in action.values:
                    value = closure(record, local)
                    compiled_field = draft.entity.fields[name]
                    typed = compiled_field.type.from_rule_value(value, compiled_field.field)
                    draft.values[name] = compiled_field.type.coerce(typed, compiled_field.field)
                    record[name] = draft.values[name]
                    elapsed = (time.perf_counter() - began) * 1000
                    if elapsed > budget.milliseconds:
                        raise OverBudget(f"more than {budget.milliseconds:g} ms ({BUDGET_MILLISECONDS})")
        except OverBudget as error:
            message = f"before-save workflow {compiled.name!r} went over its budget: {error}"
            raise ValidationFailed({"": [message]}) from None
        except Exception as error:
            message = f"before-save workflow {compiled.name!r} failed: {error}"
            raise ValidationFailed({"": [message]}) from None


__all__ = ["BeforeSave", "Budget", "rule_value"]
