"""What each kind of workflow action does, given the run's record and connection.

Database actions (update, create, assign, move_stage, note) write through the records service
bound to the run's connection (records/service.py `bound`): the same write pipeline as a
person's edit (coercion, formulas, validation, the stage gate, history, the outbox), in a
savepoint of the run's transaction, committed with the run's bookkeeping. External actions
(email, webhook) and plugins' actions are at least once: each gets an idempotency key that
is the same on every attempt of the run (`<job id>:<action index>`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.workflows import Action

from ..records.compiled import CompiledEntity
from ..records.errors import RecordError, ValidationFailed
from ..records.service import RecordsService
from ..storage import sequences, system
from .registry import CompiledAction, CompiledWorkflow


class ActionFailed(Exception):
    """An action could not be done; `retryable`: whether trying again later may help."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@dataclass
class RunContext:
    """What an action is given."""

    conn: sa.Connection
    #: bound to `conn` (RecordsService.bound): the run's writes are in its transaction, and
    #: their after-commit work is the worker's to call once that commits
    records: RecordsService
    workflow: CompiledWorkflow
    ce: CompiledEntity
    record_id: int | None
    #: the record's values (Python), with "id", "owner" and "version"
    record: dict[str, Any]
    previous: Mapping[str, Any] | None
    rule_context: Any
    job_id: int
    trigger: str
    event: Mapping[str, Any]
    now: dt.datetime
    settings: Any  # ExecutionSettings (worker.py)

    def key(self, action: CompiledAction) -> str:
        return f"{self.job_id}:{action.index}"

    def before_network(self) -> None:
        """Called by an external action once it has read what it needs, before it waits on
        the network: ends the read transaction, so no lock is held while a server answers
        (on SQLite a transaction of this worker's holds the database's one write lock)."""
        if self.conn.in_transaction():
            self.conn.commit()


def rule_value(ce: CompiledEntity, name: str, value: Any) -> Any:
    """A rule's value as the field's JSON form, what the write pipeline takes as given."""
    compiled = ce.fields[name]
    return compiled.to_json(compiled.type.from_rule_value(value, compiled.field))


def _refused(error: RecordError) -> ActionFailed:
    if isinstance(error, ValidationFailed):
        detail = "; ".join(f"{k or 'record'}: {', '.join(v)}" for k, v in error.errors.items())
        return ActionFailed(f"the record was refused: {detail}", retryable=False)
    return ActionFailed(str(error), retryable=False)


def _update(run: RunContext, values: Mapping[str, Any]) -> dict[str, Any]:
    if run.record_id is None:
        raise ActionFailed("there is no record to change", retryable=False)
    try:
        saved = run.records.update(run.ce.name, run.record_id, values, version=run.record["version"],
                                   user=None)
    except RecordError as error:
        raise _refused(error) from None
    run.record.update(saved.values)
    run.record["version"] = saved.version
    run.record["owner"] = saved.system.get("owner", run.record.get("owner"))
    return {"version": saved.version, "set": sorted(values)}


def do_update(run: RunContext, action: CompiledAction, definition: Action) -> dict[str, Any]:
    values = {name: rule_value(run.ce, name, closure(run.record, run.rule_context))
              for name, closure in action.values}
    return _update(run, values)


def do_create(run: RunContext, action: CompiledAction, definition: Action) -> dict[str, Any]:
    snapshot = run.records.full_snapshot()
    target = snapshot.entities[definition.entity or ""]
    data: dict[str, Any] = {name: rule_value(target, name, closure(run.record, run.rule_context))
                            for name, closure in action.values}
    if definition.link is not None and run.record_id is not None:
        # The reference's value pointing to the record (`entity:id` for a polymorphic one).
        linked = target.fields[definition.link]
        data[definition.link] = linked.type.reference_text(run.ce.name, run.record_id, linked.field)
    if run.record.get("owner") is not None:
        data.setdefault("owner", run.record["owner"])
    try:
        created = run.records.create(target.name, data, user=None)
    except RecordError as error:
        raise _refused(error) from None
    return {"entity": target.name, "id": created.id}


def do_assign(run: RunContext, action: CompiledAction, definition: Action) -> dict[str, Any]:
    users, members, teams = system.users, system.team_members, system.teams
    conn = run.conn
    if definition.strategy in (None, "fixed"):
        email = (definition.user or "").strip().lower()
        found = conn.execute(sa.select(users.c.id).where(users.c.email_key == email,
                                                         users.c.active.is_(True))).scalar()
        if found is None:
            raise ActionFailed(f"there is no active user {definition.user!r} to assign", retryable=False)
        chosen = int(found)
    else:
        team = conn.execute(sa.select(teams.c.id).where(teams.c.name == definition.team)).scalar()
        if team is None:
            raise ActionFailed(f"there is no team {definition.team!r}", retryable=False)
        ids = [int(i) for i in conn.execute(
            sa.select(users.c.id).select_from(members.join(users, users.c.id == members.c.user_id))
            .where(members.c.team_id == team, users.c.active.is_(True)).order_by(users.c.id)).scalars()]
        if not ids:
            raise ActionFailed(f"team {definition.team!r} has no active member", retryable=False)
        if definition.strategy == "round_robin":
            turn = sequences.take(conn, f"workflow:{run.workflow.name}", f"assign:{action.index}", 0, 1)
            chosen = ids[turn % len(ids)]
        else:
            chosen = _least_loaded(run, ids)
    if run.record.get("owner") == chosen:
        return {"owner": chosen, "unchanged": True}
    _update(run, {"owner": chosen})
    return {"owner": chosen}


def _least_loaded(run: RunContext, ids: list[int]) -> int:
    """The member owning the fewest open records of the entity (records in a stage of a
    won or lost category do not count); the lowest id among equals."""
    table = run.ce.table
    where: list[sa.ColumnElement[bool]] = [table.c.owner.in_(ids)]
    for field_name, pipeline in run.ce.pipelines.items():
        closed = [s.key for s in pipeline.stages if s.category != "open"]
        if closed:
            column = table.c[run.ce.fields[field_name].column]
            where.append(sa.or_(column.is_(None), column.not_in(closed)))
    counts: dict[int, int] = dict(run.conn.execute(sa.select(table.c.owner, sa.func.count()).where(*where)
                                   .group_by(table.c.owner)).all())
    return min(ids, key=lambda i: (counts.get(i, 0), i))


def do_move_stage(run: RunContext, action: CompiledAction, definition: Action) -> dict[str, Any]:
    pipelines = run.ce.pipelines
    field_name = next((f for f, p in pipelines.items()
                       if definition.pipeline is None or p.name == definition.pipeline), None)
    if field_name is None:
        raise ActionFailed(f"{run.ce.name!r} has no pipeline {definition.pipeline!r}", retryable=False)
    if run.record.get(field_name) == definition.stage:
        return {"stage": definition.stage, "unchanged": True}
    return _update(run, {field_name: definition.stage})


def do_note(run: RunContext, action: CompiledAction, definition: Action) -> dict[str, Any]:
    from .templates import render

    text = render(definition.text or "", record=record_view(run), previous=run.previous,
                  workflow=workflow_view(run))
    if run.record_id is None:
        raise ActionFailed("there is no record to add a note to", retryable=False)
    run.conn.execute(system.history.insert().values(
        entity=run.ce.name, record_id=run.record_id, version=run.record.get("version") or 0, action="note",
        changed_at=run.now, changed_by=None, token_id=None,
        changes={"note": [run.workflow.name, text]}))
    return {"note": text[:200]}


def do_email(run: RunContext, action: CompiledAction, definition: Action) -> dict[str, Any]:
    from .mail import send_email
    from .templates import render

    settings = run.settings.smtp()
    recipient = action.to(run.record, run.rule_context) if action.to is not None else None
    address = _address(run.conn, recipient)
    view, workflow = record_view(run), workflow_view(run)
    subject = render(definition.subject or "", record=view, previous=run.previous, workflow=workflow)
    text = render(definition.body or "", record=view, previous=run.previous, workflow=workflow)
    html = (render(definition.html, record=view, previous=run.previous, workflow=workflow, html=True)
            if definition.html else None)
    run.before_network()
    send_email(settings, to=[address], subject=subject.strip(), text=text, html=html,
               message_id=run.key(action).replace(":", "."))
    return {"to": address, "subject": subject.strip()[:200]}


def _address(conn: sa.Connection, recipient: Any) -> str:
    """A recipient rule's value: an address as it is, a number as the user with that id."""
    if isinstance(recipient, bool) or recipient is None or recipient == "":
        raise ActionFailed("the recipient rule gives no address", retryable=False)
    if isinstance(recipient, int | float) or (isinstance(recipient, str) and recipient.isdigit()):
        row = conn.execute(sa.select(system.users.c.email, system.users.c.active)
                           .where(system.users.c.id == int(recipient))).first()
        if row is None or not row.email:
            raise ActionFailed(f"user {int(recipient)} has no e-mail address", retryable=False)
        if not row.active:
            raise ActionFailed(f"user {int(recipient)} is disabled", retryable=False)
        return str(row.email)
    return str(recipient)


def do_webhook(run: RunContext, action: CompiledAction, definition: Action) -> dict[str, Any]:
    from .delivery import json_body, post_webhook

    body = json_body({
        "workflow": run.workflow.name, "version": run.workflow.version, "trigger": run.trigger,
        "entity": run.ce.name, "record_id": run.record_id, "event_id": run.job_id,
        "record": {name: compiled.to_json(run.record.get(name)) for name, compiled in run.ce.fields.items()}
        | {"id": run.record_id, "owner": run.record.get("owner")},
        "changes": run.event.get("changes", {}),
    })
    run.before_network()
    secret = run.records.secrets.get(f"webhook:{definition.secret}") if definition.secret else None
    result = post_webhook(definition.url or "", body, secret=secret, idempotency_key=run.key(action),
                          event=run.workflow.name, timeout=definition.timeout_seconds or 10.0)
    return {"status": result.status_code, "ms": result.elapsed_ms}


def do_plugin(run: RunContext, action: CompiledAction, definition: Action) -> dict[str, Any]:
    found = run.settings.plugin_actions().get(definition.plugin or "")
    if found is None:
        raise ActionFailed(f"no plugin registers the workflow action {definition.plugin!r}", retryable=False)
    outcome = found.run(record=dict(run.record), params=dict(definition.params), connection=run.conn,
                        idempotency_key=run.key(action))
    return dict(outcome or {})


ACTIONS: Mapping[str, Callable[[RunContext, CompiledAction, Action], dict[str, Any]]] = {
    "update": do_update, "create": do_create, "assign": do_assign, "move_stage": do_move_stage,
    "note": do_note, "email": do_email, "webhook": do_webhook, "plugin": do_plugin,
}


def record_view(run: RunContext) -> Any:
    from .templates import RecordView

    return RecordView({**run.record, "id": run.record_id}, lookup=run.rule_context.lookup,
                      references=run.ce.references())


def workflow_view(run: RunContext) -> dict[str, Any]:
    return {"name": run.workflow.name, "label": run.workflow.workflow.label, "trigger": run.trigger}
