"""Workflows: "when this happens to a record, and this holds, do these things", declared as
metamodel definitions (`kind: workflow`, by a pack or the organisation's layer).

This module holds the definitions only: what a workflow says, as values that are read from
pack files (metamodel/packs.py), merged (metamodel/layering.py), checked against the merged
metamodel (metamodel/workflowchecks.py) and stored with each revision (model.py). Running
workflows (an outbox, workers, runs) is not built yet: a definition that passes here is one
the engine will be able to run without meeting an unknown field, stage or template variable.

A trigger and an action are each one class with the parameters of every kind, most of them
unset for any one kind: one shape per class keeps the stored form, the plan's comparison and
equality plain values, and `kind` says which parameters mean something (TRIGGER_PARAMETERS,
ACTION_PARAMETERS).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as attribute
from typing import Any

from .errors import Location

#: What starts a workflow.
TRIGGER_KINDS = ("created", "updated", "deleted", "stage_entered", "stage_left", "time", "schedule",
                 "manual", "webhook")
#: Triggers fired by a change of a record, whose conditions may ask what changed
#: (changed(), previous(), is_new()).
CHANGE_TRIGGERS = ("updated", "stage_entered", "stage_left")
#: When a workflow runs: `before_save` synchronously inside the write's transaction, before
#: validation (so its updates are validated and saved with the write), or `after_save`, once
#: the write is committed (the default).
TIMINGS = ("before_save", "after_save")
#: The triggers and actions a `before_save` workflow may have: it changes the record being
#: written, and nothing else, before there is a committed record to act on.
BEFORE_SAVE_TRIGGERS = ("created", "updated")
BEFORE_SAVE_ACTIONS = ("update",)
#: What a workflow may do, in order.
ACTION_KINDS = ("update", "create", "assign", "move_stage", "email", "webhook", "note", "plugin")
#: How an assign action picks the new owner: a named user, or one of a team's members in turn,
#: or the member with the fewest open records of the entity.
ASSIGN_STRATEGIES = ("fixed", "round_robin", "least_loaded")
#: The units a time trigger's offset may be written in, in minutes.
OFFSET_UNITS: Mapping[str, int] = {"minute": 1, "hour": 60, "day": 24 * 60, "week": 7 * 24 * 60}
#: "3 days before", "2 hours after", "1 week before".
OFFSET_PATTERN = re.compile(r"^\s*(\d{1,6})\s+(minute|hour|day|week)s?\s+(before|after)\s*$")
#: A JSON path into a webhook's body: `$.a.b`, `$.items[0].id`.
JSON_PATH_PATTERN = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])+$")
#: The names a template may use: the record (with `record.<field>`), what it was before the
#: change (`previous.<field>`, change triggers only) and the workflow itself.
TEMPLATE_NAMES = ("record", "previous", "workflow")


def offset_minutes(text: str) -> int | None:
    """The signed number of minutes a time trigger's offset says ("3 days before" → -4320),
    or None when it is not written as `<number> <unit> before|after`."""
    match = OFFSET_PATTERN.match(text)
    if match is None:
        return None
    amount = int(match.group(1)) * OFFSET_UNITS[match.group(2)]
    return -amount if match.group(3) == "before" else amount


@dataclass(frozen=True)
class Trigger:
    """What starts a workflow; `kind` is one of TRIGGER_KINDS."""

    kind: str
    #: updated: fire only when one of these fields changed (none: any change).
    fields: tuple[str, ...] = ()
    #: stage_entered / stage_left: the pipeline (None: any pipeline) and the stage (None: any).
    pipeline: str | None = None
    stage: str | None = None
    #: time: the date or datetime field the moment is counted from, the offset as written
    #: ("3 days before") and as signed minutes (negative: before).
    field: str | None = None
    offset: str | None = None
    offset_minutes: int = 0
    #: schedule: a cron expression, read in `timezone` (IANA name), over the records `filter`
    #: (a rule on the entity; None: every record) selects.
    cron: str | None = None
    timezone: str | None = None
    filter: str | None = None
    #: webhook: record field → JSON path of the body ($.a.b), and the path of the key that
    #: makes a repeated delivery count once.
    mapping: tuple[tuple[str, str], ...] = ()
    idempotency_key: str | None = None
    #: webhook: the mapped field whose value finds the record a delivery updates (a delivery
    #: whose value of it equals an existing record's updates that record; None: always create).
    match: str | None = None
    #: manual: the roles allowed to run it (none: anyone who may update the record).
    roles: tuple[str, ...] = ()
    source: Location = attribute(default_factory=Location, compare=False)
    #: Where each parameter stands (by key; a mapping's entries as "mapping.<field>", watched
    #: fields as "fields.<field>", roles as "roles.<role>").
    locations: Mapping[str, Location] = attribute(default_factory=dict, compare=False)

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.source)


@dataclass(frozen=True)
class Action:
    """One step of a workflow; `kind` is one of ACTION_KINDS."""

    kind: str
    #: update: the record's fields to set; create: the new record's. Field → rule expression
    #: on the triggering record.
    values: tuple[tuple[str, str], ...] = ()
    #: create: the entity of the new record, and its reference field that is set to the
    #: triggering record (None: not linked).
    entity: str | None = None
    link: str | None = None
    #: assign: how the owner is chosen, the user (by e-mail) for `fixed`, the team otherwise.
    strategy: str | None = None
    user: str | None = None
    team: str | None = None
    #: move_stage: where to.
    pipeline: str | None = None
    stage: str | None = None
    #: email: the recipient (a rule expression: an address, or a user id such as owner) and
    #: the Jinja2 templates of the subject, the text part and the HTML part.
    to: str | None = None
    subject: str | None = None
    body: str | None = None
    html: str | None = None
    #: webhook: where to POST, the name of the secret that signs it, how long to wait.
    url: str | None = None
    secret: str | None = None
    timeout_seconds: float | None = None
    #: note: the template of the note added to the record's history.
    text: str | None = None
    #: plugin: the action a plugin registers, and its parameters (plain JSON values).
    plugin: str | None = None
    params: Mapping[str, Any] = attribute(default_factory=dict)
    source: Location = attribute(default_factory=Location, compare=False)
    #: Where each parameter stands (by key; `values` entries as "set.<field>").
    locations: Mapping[str, Location] = attribute(default_factory=dict, compare=False)

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.source)


@dataclass(frozen=True)
class Workflow:
    name: str
    label: str
    entity: str
    trigger: Trigger
    #: A rule on the entity that must be true for the actions to run (None: always).
    condition: str | None = None
    actions: tuple[Action, ...] = ()
    description: str = ""
    #: An inactive workflow is kept (and checked) but never runs.
    active: bool = True
    #: One of TIMINGS.
    timing: str = "after_save"
    #: Whether the record updates of its own runs (and of the workflows they start) may trigger
    #: it again; by default they do not, which keeps a workflow from looping on itself.
    retrigger: bool = False
    #: The pack that defines it ("organisation" for the organisation's layer).
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)
    entity_source: Location = attribute(default_factory=Location, compare=False)
    condition_source: Location = attribute(default_factory=Location, compare=False)
    timing_source: Location = attribute(default_factory=Location, compare=False)
