"""The active workflows of one revision, compiled once and indexed the way the write pipeline
and the workers look them up: by entity and trigger kind, before-save ones apart.

A workflow's **version** is a fingerprint of its stored definition (metamodel/model.py
`workflow_dict`, locations left out): a job carries the version that made it, a schedule's
registration the version it belongs to, so an upgrade is seen as a new version whatever the
pack's own version number says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from slatecrm.metamodel.model import workflow_dict
from slatecrm.metamodel.rules import Closure, Type, check, compile_python
from slatecrm.metamodel.rules.types import field_type
from slatecrm.metamodel.workflows import CHANGE_TRIGGERS, Workflow

from ..records.rules import Condition
from ..records.snapshot import Snapshot


def fingerprint(workflow: Workflow) -> str:
    stored = {k: v for k, v in workflow_dict(workflow).items() if not k.endswith("source")}
    return hashlib.sha256(orjson.dumps(stored, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


@dataclass(frozen=True)
class CompiledAction:
    index: int
    kind: str
    #: update / create: field → the rule computing its value, on the triggering record.
    values: tuple[tuple[str, Closure], ...] = ()
    #: email: the recipient's rule.
    to: Closure | None = None


@dataclass(frozen=True)
class CompiledWorkflow:
    workflow: Workflow
    version: str
    condition: Condition | None
    actions: tuple[CompiledAction, ...]
    #: schedule: the filter over the entity's records (SQL).
    filter: Condition | None = None

    @property
    def name(self) -> str:
        return self.workflow.name

    @property
    def database_only(self) -> bool:
        """Whether every action only writes to the database: such a run commits its actions
        with its done mark, in one transaction, so it takes effect exactly once."""
        return all(a.kind in DATABASE_ACTIONS for a in self.actions)


#: Actions that only write to the database (plugins' actions are told the connection too,
#: but what they do besides is theirs: they count as external).
DATABASE_ACTIONS = frozenset({"update", "create", "assign", "move_stage", "note"})


class ActiveWorkflows:
    """The revision's active workflows, compiled."""

    def __init__(self, snapshot: Snapshot):
        metamodel = snapshot.metamodel
        self.by_name: dict[str, CompiledWorkflow] = {}
        self._on: dict[tuple[str, str], list[CompiledWorkflow]] = {}
        self._before_save: dict[str, list[CompiledWorkflow]] = {}
        for workflow in metamodel.workflows:
            if not workflow.active or metamodel.entity(workflow.entity) is None:
                continue
            compiled = _compile(snapshot, workflow)
            self.by_name[workflow.name] = compiled
            if workflow.timing == "before_save":
                self._before_save.setdefault(workflow.entity, []).append(compiled)
            else:
                self._on.setdefault((workflow.entity, workflow.trigger.kind), []).append(compiled)

    def on(self, entity: str, trigger: str) -> list[CompiledWorkflow]:
        return self._on.get((entity, trigger), [])

    def before_save(self, entity: str) -> list[CompiledWorkflow]:
        return self._before_save.get(entity, [])

    def any_on(self, entity: str) -> bool:
        return any(e == entity for e, _ in self._on)

    def of_kind(self, trigger: str) -> list[CompiledWorkflow]:
        return [w for (_, kind), ws in self._on.items() if kind == trigger for w in ws]


def active_workflows(snapshot: Snapshot) -> ActiveWorkflows:
    """The revision's, built once (kept with the revision)."""
    return snapshot.derived("workflows.active", lambda: ActiveWorkflows(snapshot))


def _compile(snapshot: Snapshot, workflow: Workflow) -> CompiledWorkflow:
    changes = workflow.trigger.kind in CHANGE_TRIGGERS
    rules = snapshot.rules
    condition = (rules.condition(workflow.entity, workflow.condition, changes=changes)
                 if workflow.condition else None)
    schedule_filter = (rules.condition(workflow.entity, workflow.trigger.filter)
                       if workflow.trigger.kind == "schedule" and workflow.trigger.filter else None)
    actions = []
    for index, action in enumerate(workflow.actions):
        values: tuple[tuple[str, Closure], ...] = ()
        to = None
        if action.kind in ("update", "create"):
            target = action.entity if action.kind == "create" and action.entity else workflow.entity
            values = tuple((name, expression(snapshot, workflow.entity, target, name, text, changes))
                           for name, text in action.values)
        elif action.kind == "email" and action.to:
            to = compile_python(check(action.to, snapshot.metamodel, workflow.entity, expect=None,
                                      changes=changes, functions=snapshot.functions,
                                      registry=snapshot.registry).typed)
        actions.append(CompiledAction(index, action.kind, values, to))
    return CompiledWorkflow(workflow, fingerprint(workflow), condition, tuple(actions), schedule_filter)


def expression(snapshot: Snapshot, entity: str, target: str, field: str, text: str, changes: bool) -> Closure:
    """A rule on a record of `entity` giving the value of `target`'s `field` (checked at
    install by metamodel/workflowchecks.py; checked again here, against this revision)."""
    found = snapshot.metamodel.entity(target)
    assert found is not None
    definition = found.field(field)
    wanted = field_type(definition, snapshot.registry) if definition is not None else None
    checked = check(text, snapshot.metamodel, entity, expect=Type(wanted.kind) if wanted else None,
                    changes=changes, functions=snapshot.functions, registry=snapshot.registry)
    return compile_python(checked.typed)

