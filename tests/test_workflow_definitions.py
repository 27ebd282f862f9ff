"""`kind: workflow` definitions: read from packs, checked against the merged metamodel with
every problem at its file:line (and no traceback), layered (the organisation may replace a
pack's workflow by name, a pack may not), and stored with each revision. Execution (outbox,
workers, runs) is not built yet; these tests need no database."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import FORMAT_VERSION, Metamodel
from slatecrm.metamodel.packs import Pack
from slatecrm.metamodel.workflows import TRIGGER_KINDS, offset_minutes
from slatecrm.platform import installer

VALID = {
    "workflows/assign_new_leads.yaml": """\
        kind: workflow
        name: assign_new_leads
        label: Assign new leads
        entity: lead
        trigger: {kind: created}
        condition: "source = 'web'"
        actions:
          - kind: assign
            strategy: round_robin
            team: Sales reps
        """,
    "workflows/rating_changed.yaml": """\
        kind: workflow
        name: rating_changed
        entity: lead
        trigger:
          kind: updated
          fields: [rating, email]
        condition: "changed(rating) and previous(rating) = 'cold'"
        actions:
          - kind: update
            set:
              job_title: "concat(job_title, ' (warmed up)')"
          - kind: note
            text: "Rating went from {{ previous.rating }} to {{ record.rating }}"
        """,
    "workflows/lead_deleted.yaml": """\
        kind: workflow
        name: lead_deleted
        entity: lead
        active: false
        trigger: {kind: deleted}
        actions:
          - kind: webhook
            url: https://hooks.example.com/lead-deleted
            secret: crm_hooks
            timeout: 5
        """,
    "workflows/proposal_follow_up.yaml": """\
        kind: workflow
        name: proposal_follow_up
        entity: opportunity
        trigger:
          kind: stage_entered
          pipeline: sales
          stage: proposal
        actions:
          - kind: create
            entity: activity
            link: opportunity
            set:
              subject: "concat('Follow up on ', name)"
              due_date: "now()"
          - kind: email
            to: owner
            subject: "Proposal for {{ record.name }} ({{ record.account.name }})"
            body: |
              {{ record.name }} entered Proposal; amount {{ record.amount }}.
            html: "<p>{{ record.name | e }}</p>"
        """,
    "workflows/left_negotiation.yaml": """\
        kind: workflow
        name: left_negotiation
        entity: opportunity
        trigger: {kind: stage_left, stage: negotiation}
        actions:
          - kind: plugin
            name: example.notify
            params: {channel: sales}
        """,
    "workflows/close_date_reminder.yaml": """\
        kind: workflow
        name: close_date_reminder
        entity: opportunity
        trigger: {kind: time, field: close_date, offset: 3 days before}
        condition: "stage not in ('closed_won', 'closed_lost')"
        actions:
          - kind: email
            to: owner
            subject: "{{ record.name }} closes on {{ record.close_date }}"
            body: "Three days to go."
        """,
    "workflows/weekly_stalled.yaml": """\
        kind: workflow
        name: weekly_stalled
        entity: opportunity
        trigger:
          kind: schedule
          cron: "0 8 * * 1"
          timezone: Europe/Paris
          filter: "stage not in ('closed_won', 'closed_lost') and close_date < today()"
        actions:
          - kind: move_stage
            stage: negotiation
        """,
    "workflows/qualify.yaml": """\
        kind: workflow
        name: qualify
        entity: lead
        trigger: {kind: manual}
        actions:
          - kind: assign
            user: anna@example.com
          - kind: move_stage
            pipeline: qualification
            stage: suspect
        """,
    "workflows/web_form.yaml": """\
        kind: workflow
        name: web_form
        entity: lead
        trigger:
          kind: webhook
          mapping:
            last_name: $.contact.last_name
            company: $.company
            email: $.contact.emails[0]
          idempotency_key: $.submission_id
        actions:
          - kind: assign
            strategy: least_loaded
            team: Sales reps
        """,
}


def write_pack(root: Path, files: dict[str, str], *, name: str = "automation",
               requires: dict[str, str] | None = None) -> Path:
    folder = root / name
    manifest = {"name": name, "namespace": name.replace("-", "")[:16], "version": "1.0.0",
                "title": name.title(), "requires": requires if requires is not None else {"sales": "^0.2.0"}}
    folder.mkdir(parents=True)
    (folder / "pack.yaml").write_text(json.dumps(manifest))
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(textwrap.dedent(text))
    return folder


def packs(registry: FieldTypeRegistry, *paths: Path) -> list[Pack]:
    return installer.load_packs(["crm-core", "sales", *map(str, paths)], registry)


def merged(registry: FieldTypeRegistry, *paths: Path) -> Metamodel:
    return merge(packs(registry, *paths), registry)


def problems(registry: FieldTypeRegistry, *paths: Path) -> list[str]:
    with pytest.raises(DefinitionError) as error:
        merged(registry, *paths)
    return [str(p) for p in error.value.problems]


# --- a valid pack ---------------------------------------------------------------------------------
def test_a_workflow_of_each_trigger_kind_loads_merges_and_is_stored(tmp_path: Path,
                                                                    registry: FieldTypeRegistry) -> None:
    metamodel = merged(registry, write_pack(tmp_path, VALID))
    assert sorted(w.trigger.kind for w in metamodel.workflows) == sorted(TRIGGER_KINDS)
    assert {w.pack for w in metamodel.workflows} == {"automation"}
    reminder = metamodel.workflow("close_date_reminder")
    assert reminder is not None and reminder.trigger.offset_minutes == -3 * 24 * 60
    assert reminder.source.file == "workflows/close_date_reminder.yaml" and reminder.source.line == 2
    weekly = metamodel.workflow("weekly_stalled")
    assert weekly is not None and weekly.trigger.timezone == "Europe/Paris"
    deleted = metamodel.workflow("lead_deleted")
    assert deleted is not None and not deleted.active and deleted.actions[0].timeout_seconds == 5
    follow_up = metamodel.workflow("proposal_follow_up")
    assert follow_up is not None
    assert [a.kind for a in follow_up.actions] == ["create", "email"]
    assert dict(follow_up.actions[0].values) == {"subject": "concat('Follow up on ', name)",
                                                 "due_date": "now()"}
    web_form = metamodel.workflow("web_form")
    assert web_form is not None and dict(web_form.trigger.mapping)["email"] == "$.contact.emails[0]"
    stored = json.loads(json.dumps(metamodel.as_dict()))
    assert stored["format"] == FORMAT_VERSION == 5
    assert Metamodel.from_dict(stored) == metamodel
    assert Metamodel.from_dict(stored).as_dict() == stored


def test_a_metamodel_stored_before_workflows_reads_as_having_none(registry: FieldTypeRegistry) -> None:
    stored = merge(packs(registry), registry).as_dict()
    del stored["workflows"]
    stored["format"] = 4
    assert Metamodel.from_dict(stored).workflows == ()


@pytest.mark.parametrize(("text", "minutes"), [
    ("3 days before", -4320), ("2 hours after", 120), ("1 week before", -10080), ("0 minutes after", 0),
    ("45 minute after", 45), ("three days before", None), ("3 days", None)])
def test_offsets_are_signed_minutes(text: str, minutes: int | None) -> None:
    assert offset_minutes(text) == minutes
