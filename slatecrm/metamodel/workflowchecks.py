"""Workflows merged across packs and checked against the effective metamodel.

A workflow names things only the merged metamodel knows: its entity (its own pack's or one
of a pack it requires, as for roles, so that removing a pack it does not know cannot break
it), the fields its trigger watches, the pipelines and stages it waits for or moves to, the
fields its actions set, and the fields its templates print. Each is checked here, at install
time, so that a workflow that passes never meets an unknown name when it runs; every
problem points at the place in the workflow's file.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

from croniter import CroniterBadDateError, croniter
from jinja2 import TemplateSyntaxError, nodes
from jinja2.meta import find_undeclared_variables
from jinja2.sandbox import SandboxedEnvironment

from .byname import merged_by_name
from .errors import Location, Problem
from .fieldtypes import FieldTypeRegistry
from .model import Entity, Field, Metamodel, renamed_note
from .names import suggest
from .roles import ADMINISTRATOR
from .rules import BOOLEAN, RuleError, Type, check
from .rules.definitions import rule_problem
from .rules.functions import NO_FUNCTIONS, RuleFunctions
from .rules.types import SYSTEM_FIELDS, computable, field_type
from .workflows import (
    BEFORE_SAVE_ACTIONS,
    BEFORE_SAVE_TRIGGERS,
    CHANGE_TRIGGERS,
    TEMPLATE_NAMES,
    Action,
    Trigger,
    Workflow,
)

#: Templates are parsed (and compiled, which finds unknown filters and tests) in the sandbox
#: they will be rendered in.
_TEMPLATES = SandboxedEnvironment(autoescape=False)


def merge_workflows(packs: Sequence[tuple[str, str, Sequence[Workflow]]], metamodel: Metamodel,
                    may_name: Callable[[str, str], bool], registry: FieldTypeRegistry,
                    functions: RuleFunctions = NO_FUNCTIONS) -> tuple[tuple[Workflow, ...], list[Problem]]:
    """The workflows of `packs` ((pack, origin, workflows), in dependency order) and their
    problems. The organisation's layer may replace a pack's workflow by name; a pack may not
    (two packs meaning different things by one name would make one switch off the other).

    `may_name(pack, other)` says whether a workflow of `pack` may name an entity of `other`.
    """
    merged: dict[str, Workflow] = {}
    problems: list[Problem] = []
    for _pack, origin, workflow in merged_by_name(packs, "workflow", problems):
        merged[workflow.name] = workflow
        problems.extend(_Checks(workflow, origin, metamodel, may_name, registry, functions).all())
    return tuple(merged.values()), problems


@dataclass
class _Checks:
    workflow: Workflow
    origin: str
    metamodel: Metamodel
    may_name: Callable[[str, str], bool]
    registry: FieldTypeRegistry
    functions: RuleFunctions

    def problem(self, message: str, location: Location) -> Problem:
        return Problem(f"workflow {self.workflow.name!r}: {message}", location, self.origin)

    def all(self) -> Iterator[Problem]:
        entity = yield from self.entity(self.workflow.entity, self.workflow.entity_source)
        if entity is None:
            return
        yield from self.trigger(entity, self.workflow.trigger)
        yield from self.timing()
        if self.workflow.condition is not None:
            yield from self.rule(self.workflow.condition, entity, BOOLEAN, "condition",
                                 self.workflow.condition_source, changes=self.changes)
        for index, action in enumerate(self.workflow.actions):
            yield from self.action(entity, action, f"actions[{index}] ({action.kind})")

    @property
    def changes(self) -> bool:
        """Whether rules may ask what changed: only a change of the record has a before."""
        return self.workflow.trigger.kind in CHANGE_TRIGGERS

    # --- names ---------------------------------------------------------------------------
    def entity(self, name: str, where: Location) -> Generator[Problem, None, Entity | None]:
        """Yields the problems with entity `name` and returns the entity, if it may be named."""
        entity = self.metamodel.entity(name)
        if entity is None:
            known = [e.name for e in self.metamodel.active_entities]
            hint = renamed_note(name, self.metamodel.active_entities) or suggest(name, known)
            yield self.problem(f"entity {name!r} is not defined by any pack given, installed or "
                               f"required{hint}", where)
            return None
        if not self.may_name(self.workflow.pack, entity.pack):
            yield self.problem(f"entity {name!r} is defined by pack {entity.pack!r}, which pack "
                               f"{self.workflow.pack!r} does not require: add it to requires in pack.yaml",
                               where)
            return None
        return entity

    def field(self, entity: Entity, name: str, where: Location, *,
              system: bool = True) -> Generator[Problem, None, Field | None]:
        """Yields a problem when `entity` has no field `name` (system fields count when
        `system`) and returns the field."""
        found = entity.field(name) or (SYSTEM_FIELDS.get(name) if system else None)
        if found is None:
            names = [f.name for f in entity.active_fields] + (list(SYSTEM_FIELDS) if system else [])
            yield self.problem(f"{entity.name!r} has no field {name!r}{suggest(name, names)}", where)
        return found

    def stage(self, entity: Entity, pipeline_name: str | None, stage: str | None, where: Location,
              stage_where: Location) -> Iterator[Problem]:
        if not entity.pipelines:
            yield self.problem(f"{entity.name!r} has no pipeline, so no stages", where)
            return
        if pipeline_name is None:
            pipelines = list(entity.pipelines)
        else:
            found = next((p for p in entity.pipelines if p.name == pipeline_name), None)
            if found is None:
                names = [p.name for p in entity.pipelines]
                yield self.problem(f"{entity.name!r} has no pipeline {pipeline_name!r}"
                                   f"{suggest(pipeline_name, names)}; its pipelines: {', '.join(names)}",
                                   where)
                return
            pipelines = [found]
        if stage is None:
            return
        keys = [s.key for p in pipelines for s in p.stages]
        if stage not in keys:
            of = (f"pipeline {pipelines[0].name!r}" if len(pipelines) == 1
                  else f"any pipeline of {entity.name!r}")
            yield self.problem(f"{stage!r} is not a stage of {of}{suggest(stage, keys)}", stage_where)

    def rule(self, text: str, entity: Entity, expect: Type | None, what: str, where: Location, *,
             changes: bool = False) -> Iterator[Problem]:
        try:
            check(text, self.metamodel, entity.name, expect=expect, changes=changes, functions=self.functions,
                  registry=self.registry)
        except RuleError as error:
            yield rule_problem(error, f"workflow {self.workflow.name!r}: {what}", where, self.origin)

    # --- the timing ----------------------------------------------------------------------
    def timing(self) -> Iterator[Problem]:
        """A before_save workflow runs inside the write, before validation: it may only change
        the record being written (update actions), of a write that creates or updates it."""
        if self.workflow.timing != "before_save":
            return
        kind = self.workflow.trigger.kind
        if kind not in BEFORE_SAVE_TRIGGERS:
            yield self.problem(f"timing before_save runs inside the write of a record, so its trigger is "
                               f"{' or '.join(BEFORE_SAVE_TRIGGERS)}, not {kind} (use after_save)",
                               self.workflow.timing_source)
        for index, action in enumerate(self.workflow.actions):
            if action.kind not in BEFORE_SAVE_ACTIONS:
                yield self.problem(f"actions[{index}] ({action.kind}): a before_save workflow may only "
                                   f"{' or '.join(BEFORE_SAVE_ACTIONS)} the record being saved; run "
                                   f"{action.kind} actions in an after_save workflow", action.source)

    # --- the trigger ---------------------------------------------------------------------
    def trigger(self, entity: Entity, trigger: Trigger) -> Iterator[Problem]:
        if trigger.kind == "updated":
            for name in trigger.fields:
                yield from self.field(entity, name, trigger.locate(f"fields.{name}"))
        elif trigger.kind in ("stage_entered", "stage_left"):
            yield from self.stage(entity, trigger.pipeline, trigger.stage,
                                  trigger.locate("pipeline" if trigger.pipeline else "kind"),
                                  trigger.locate("stage"))
        elif trigger.kind == "time" and trigger.field is not None:
            found = yield from self.field(entity, trigger.field, trigger.locate("field"))
            if found is not None and found.type not in ("date", "datetime"):
                yield self.problem(f"a time trigger counts from a date or datetime field; "
                                   f"{trigger.field!r} is a {found.type} field", trigger.locate("field"))
        elif trigger.kind == "schedule":
            yield from self.schedule(entity, trigger)
        elif trigger.kind == "webhook":
            for name, _path in trigger.mapping:
                where = trigger.locate(f"mapping.{name}")
                found = yield from self.field(entity, name, where)
                if found is not None:
                    yield from self.writable(found, where, "an inbound webhook")
            if trigger.match is not None:
                yield from self.match(entity, trigger, trigger.match)
        elif trigger.kind == "manual":
            known = [ADMINISTRATOR, *(r.name for r in self.metamodel.roles)]
            for name in trigger.roles:
                if name not in known:
                    yield self.problem(f"role {name!r} is not defined by any pack given, installed or "
                                       f"required{suggest(name, known)}", trigger.locate(f"roles.{name}"))

    def match(self, entity: Entity, trigger: Trigger, name: str) -> Iterator[Problem]:
        """The field a webhook delivery is matched on: one the entity has, in the mapping (a
        mapped field's own problems are found with the mapping)."""
        mapped = [mapped for mapped, _path in trigger.mapping]
        if name in mapped:
            return
        found = yield from self.field(entity, name, trigger.locate("match"), system=False)
        if found is not None:
            yield self.problem(f"match: {name!r} is not in the mapping ({', '.join(mapped)}): a "
                               "delivery is matched on a field it gives, so map it too",
                               trigger.locate("match"))

    def schedule(self, entity: Entity, trigger: Trigger) -> Iterator[Problem]:
        if trigger.cron is not None and not croniter.is_valid(trigger.cron):
            yield self.problem(f"{trigger.cron!r} is not a cron expression (five fields: minute hour "
                               "day-of-month month day-of-week, like '0 9 * * 1')", trigger.locate("cron"))
        elif trigger.cron is not None:
            try:  # a date that never comes (30 February) parses, but would never run
                croniter(trigger.cron, dt.datetime(2000, 1, 1)).get_next(dt.datetime)
            except CroniterBadDateError:
                yield self.problem(f"{trigger.cron!r} never comes (no such day)", trigger.locate("cron"))
        if trigger.timezone is not None:
            try:
                zoneinfo.ZoneInfo(trigger.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe", a folder
                yield self.problem(f"{trigger.timezone!r} is not a time zone (an IANA name like "
                                   "'Europe/Paris' or 'UTC')", trigger.locate("timezone"))
        if trigger.filter is not None:
            yield from self.rule(trigger.filter, entity, BOOLEAN, "filter", trigger.locate("filter"))

    # --- actions -------------------------------------------------------------------------
    def action(self, entity: Entity, action: Action, what: str) -> Iterator[Problem]:
        if action.kind == "update":
            yield from self.values(entity, entity, action, what)
        elif action.kind == "create" and action.entity is not None:
            target = yield from self.entity(action.entity, action.locate("entity"))
            if target is None:
                return
            yield from self.values(target, entity, action, what)
            if action.link is not None:
                found = yield from self.field(target, action.link, action.locate("link"), system=False)
                if found is not None and entity.name not in found.targets:  # one target, or among several
                    shown = found.target or ", ".join(found.targets)
                    yield self.problem(f"{what}: link {action.link!r} must be a reference of {target.name!r} "
                                       f"to {entity.name!r}; it is a {found.type} field"
                                       + (f" to {shown!r}" if shown else ""),
                                       action.locate("link"))
        elif action.kind == "move_stage":
            pipeline = action.pipeline
            if pipeline is None and len(entity.pipelines) > 1:
                yield self.problem(f"{what}: {entity.name!r} has several pipelines "
                                   f"({', '.join(p.name for p in entity.pipelines)}): say which",
                                   action.source)
                return
            yield from self.stage(entity, pipeline, action.stage,
                                  action.locate("pipeline" if pipeline else "kind"), action.locate("stage"))
        elif action.kind == "email":
            if action.to is not None:
                yield from self.recipient(entity, action.to, what, action.locate("to"))
            for key in ("subject", "body", "html"):
                template = getattr(action, key)
                if template is not None:
                    yield from self.template(entity, template, f"{what} {key}", action.locate(key))
        elif action.kind == "note" and action.text is not None:
            yield from self.template(entity, action.text, f"{what} text", action.locate("text"))

    def values(self, target: Entity, entity: Entity, action: Action, what: str) -> Iterator[Problem]:
        """Fields of `target` set from rules on the triggering record (of `entity`)."""
        for name, text in action.values:
            key_where = action.locate(f"set.{name}:key")
            found = yield from self.field(target, name, key_where)
            if found is None:
                continue
            if not (yield from self.writable(found, key_where, what)):
                continue
            wanted = field_type(found, self.registry)
            if wanted is None or not computable(found, self.registry):
                yield self.problem(f"{what}: a {found.type} field cannot get its value from a rule",
                                   key_where)
                continue
            yield from self.rule(text, entity, Type(wanted.kind), f"{what} {name}",
                                 action.locate(f"set.{name}"), changes=self.changes)

    def writable(self, found: Field, where: Location, what: str) -> Generator[Problem, None, bool]:
        """Yields why a workflow may not set `found` (and returns whether it may)."""
        reason = None
        if found.name in SYSTEM_FIELDS and found is SYSTEM_FIELDS[found.name]:
            reason = ("is kept by the engine" if found.name != "owner"
                      else "is set with an assign action")
        elif found.formula is not None:
            reason = "is computed by its formula"
        elif found.type == "stage":
            reason = "moves through its pipeline's gate: use a move_stage action"
        elif found.type in self.registry and not self.registry[found.type].writable:
            reason = f"is a {found.type} field, which the engine fills"
        if reason is not None:
            yield self.problem(f"{what} cannot set field {found.name!r}: it {reason}", where)
        return reason is None

    def recipient(self, entity: Entity, text: str, what: str, where: Location) -> Iterator[Problem]:
        """`to` is a rule giving an address (text) or a user's id (a number: owner, created_by)."""
        try:
            checked = check(text, self.metamodel, entity.name, expect=None, changes=self.changes,
                            functions=self.functions, registry=self.registry)
        except RuleError as error:
            yield rule_problem(error, f"workflow {self.workflow.name!r}: {what} to", where, self.origin)
            return
        if checked.type.kind not in ("text", "number"):
            yield self.problem(f"{what} to: a recipient is an e-mail address (text) or a user's id "
                               f"(like owner); this expression gives a {checked.type}", where)

    def template(self, entity: Entity, text: str, what: str, where: Location) -> Iterator[Problem]:
        """A Jinja2 template that parses and compiles in the sandbox and reads only the names a
        run gives (TEMPLATE_NAMES) and only fields `record.<field>` (and `record.<ref>.<field>`)
        the entity has."""
        try:
            tree = _TEMPLATES.parse(text)
            _TEMPLATES.compile(tree)
        except TemplateSyntaxError as error:
            yield self.problem(f"{what}: the template does not parse: {error.message} "
                               f"(line {error.lineno} of the template)", where)
            return
        allowed = [n for n in TEMPLATE_NAMES if n != "previous" or self.changes]
        for name in sorted(find_undeclared_variables(tree)):
            if name not in allowed:
                hint = (" (previous is there only for updated and stage triggers)" if name == "previous"
                        else suggest(name, allowed))
                yield self.problem(f"{what}: the template names {name!r}, which is not given to "
                                   f"templates{hint}; they have {', '.join(allowed)}", where)
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            chain = _chain(node)
            if chain is None or chain[0] not in ("record", "previous") or len(chain) < 2:
                continue
            reached: Entity | None = entity
            for hop in chain[1:-1]:  # each hop but the last is checked where it is the last
                found = reached.field(hop) if reached is not None else None
                reached = self.metamodel.entity(found.target) if found is not None and found.target else None
            if reached is None:
                continue
            name = chain[-1]
            if reached.field(name) is None and name not in SYSTEM_FIELDS:
                names = [f.name for f in reached.active_fields] + list(SYSTEM_FIELDS)
                yield self.problem(f"{what}: the template reads {'.'.join(chain)}, but {reached.name!r} has "
                                   f"no field {name!r}{suggest(name, names)} (line {node.lineno} of the "
                                   "template)", where)


def _chain(node: nodes.Node) -> list[str] | None:
    """`record.account.name` (or `record["account"]["name"]`) as ["record", "account", "name"],
    or None when the expression is not such a chain of constant names."""
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str):
            parts.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            parts.append(node.name)
            return parts[::-1]
        else:
            return None
