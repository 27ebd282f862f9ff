"""`kind: workflow` definitions: read from packs, checked against the merged metamodel with
every problem at its file:line (and no traceback), layered (the organisation may replace a
pack's workflow by name, a pack may not), and stored with each revision. Execution (outbox,
workers, runs) is not built yet; these tests need no database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import FORMAT_VERSION, Metamodel
from slatecrm.metamodel.packs import Pack
from slatecrm.metamodel.workflows import TRIGGER_KINDS, offset_minutes
from slatecrm.platform import installer
from slatecrm.platform.storage import revisions

from .packs import write_files_pack

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
        retrigger: true
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
    "workflows/proposal_task.yaml": """\
        kind: workflow
        name: proposal_task
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
    "workflows/closing_reminder.yaml": """\
        kind: workflow
        name: closing_reminder
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
        trigger: {kind: manual, roles: [sales_manager, administrator]}
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
          match: email
        actions:
          - kind: assign
            strategy: least_loaded
            team: Sales reps
        """,
    "workflows/tidy_next_step.yaml": """\
        kind: workflow
        name: tidy_next_step
        entity: opportunity
        timing: before_save
        trigger: {kind: updated, fields: [next_step]}
        actions:
          - kind: update
            set:
              next_step: trim(next_step)
        """,
}


def write_pack(root: Path, files: dict[str, str], *, name: str = "automation", version: str = "1.0.0",
               requires: dict[str, str] | None = None) -> Path:
    return write_files_pack(root, files, name=name, version=version, requires=requires)


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
    ours = [w for w in metamodel.workflows if w.pack == "automation"]
    assert {w.trigger.kind for w in ours} == set(TRIGGER_KINDS)
    assert len(ours) == len(VALID)
    reminder = metamodel.workflow("closing_reminder")
    assert reminder is not None and reminder.trigger.offset_minutes == -3 * 24 * 60
    assert reminder.source.file == "workflows/closing_reminder.yaml" and reminder.source.line == 2
    assert (reminder.timing, reminder.retrigger) == ("after_save", False)  # the defaults
    tidy = metamodel.workflow("tidy_next_step")
    assert tidy is not None and tidy.timing == "before_save" and tidy.timing_source.line == 4
    rating = metamodel.workflow("rating_changed")
    assert rating is not None and rating.retrigger is True
    qualify = metamodel.workflow("qualify")
    assert qualify is not None and qualify.trigger.roles == ("sales_manager", "administrator")
    weekly = metamodel.workflow("weekly_stalled")
    assert weekly is not None and weekly.trigger.timezone == "Europe/Paris"
    deleted = metamodel.workflow("lead_deleted")
    assert deleted is not None and not deleted.active and deleted.actions[0].timeout_seconds == 5
    follow_up = metamodel.workflow("proposal_task")
    assert follow_up is not None
    assert [a.kind for a in follow_up.actions] == ["create", "email"]
    assert dict(follow_up.actions[0].values) == {"subject": "concat('Follow up on ', name)",
                                                 "due_date": "now()"}
    web_form = metamodel.workflow("web_form")
    assert web_form is not None and dict(web_form.trigger.mapping)["email"] == "$.contact.emails[0]"
    assert web_form.trigger.match == "email" and web_form.trigger.roles == ()
    stored = json.loads(json.dumps(metamodel.as_dict()))
    assert stored["format"] == FORMAT_VERSION == 5
    assert Metamodel.from_dict(stored) == metamodel
    assert Metamodel.from_dict(stored).as_dict() == stored
    back = Metamodel.from_dict(stored)
    for name in ("tidy_next_step", "rating_changed", "qualify", "web_form"):  # the fields that
        before, after = metamodel.workflow(name), back.workflow(name)  # equality leaves out too
        assert before is not None and after is not None
        assert after.timing_source == before.timing_source
        assert after.trigger.locations == before.trigger.locations


def test_a_workflow_stored_before_timing_retrigger_match_and_roles_reads_them_as_defaults(
        tmp_path: Path, registry: FieldTypeRegistry) -> None:
    """Format 5 as first written had none of these keys: absent, they read as the defaults."""
    metamodel = merged(registry, write_pack(tmp_path, VALID))
    stored = json.loads(json.dumps(metamodel.as_dict()))
    for workflow in stored["workflows"]:
        for key in ("timing", "retrigger", "timing_source"):
            del workflow[key]
        for key in ("match", "roles"):
            del workflow["trigger"][key]
    read = Metamodel.from_dict(stored)
    assert {(w.timing, w.retrigger, w.trigger.match, w.trigger.roles) for w in read.workflows} == {
        ("after_save", False, None, ())}
    web_form = read.workflow("web_form")
    assert web_form is not None and web_form.trigger.idempotency_key == "$.submission_id"


def test_the_sales_pack_defines_a_workflow_of_most_trigger_kinds(registry: FieldTypeRegistry) -> None:
    """The default packs' workflows are checked like any pack's (merge raises on a problem)."""
    metamodel = merge(packs(registry), registry)
    by_name = {w.name: w for w in metamodel.workflows}
    assert {w.pack for w in by_name.values()} == {"sales"}
    assert {name: w.trigger.kind for name, w in by_name.items()} == {
        "close_date_reminder": "time", "lead_manual_qualify": "manual", "lead_round_robin": "created",
        "lead_web_form": "webhook", "proposal_follow_up": "stage_entered", "rating_note": "updated",
        "stalled_digest": "schedule", "won_webhook": "stage_entered"}
    assert [name for name, w in by_name.items() if not w.active] == ["won_webhook"]
    assert by_name["won_webhook"].actions[0].secret == "won_webhook"
    assert by_name["lead_round_robin"].actions[0].team == "North"
    assert by_name["lead_web_form"].trigger.match == "email"
    assert by_name["lead_manual_qualify"].trigger.roles == ("sales_manager", "sales_rep")
    assert by_name["stalled_digest"].trigger.timezone == "Europe/Paris"


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


# --- broken definitions: each refused at its file:line, with no traceback -------------------------
def on(entity: str, rest: str) -> str:
    """A workflow file named `broken` on `entity`, with the rest of its keys."""
    return f"kind: workflow\nname: broken\nentity: {entity}\n{rest}"


#: A workflow of the rest's actions: one note.
NOTE = "actions:\n  - {kind: note, text: hi}\n"
#: (what is wrong, the file, the line of the problem in it, what the message says)
BROKEN: list[tuple[str, str, int, str]] = [
    ("unknown entity", on("oportunity", """\
trigger: {kind: created}
""" + NOTE),
     3, "entity 'oportunity' is not defined by any pack given, installed or required (did you mean "
         "'opportunity'?)"),
    ("unknown trigger kind", on("lead", """\
trigger: {kind: changed}
""" + NOTE),
     4, "'changed' is not one of 'created'"),
    ("unknown trigger key", on("lead", """\
trigger: {kind: created, fields: [email]}
""" + NOTE),
     4, "unknown key 'fields'"),
    ("unknown field watched", on("lead", """\
trigger:
  kind: updated
  fields: [email, ratin]
""" + NOTE),
     6, "'lead' has no field 'ratin' (did you mean 'rating'?)"),
    ("time on a text field", on("opportunity", """\
trigger: {kind: time, field: name, offset: 1 day before}
""" + NOTE),
     4, "a time trigger counts from a date or datetime field; 'name' is a text field"),
    ("offset not understood", on("opportunity", """\
trigger: {kind: time, field: close_date, offset: soon}
""" + NOTE),
     4, "'soon' is not an offset"),
    ("unknown pipeline", on("opportunity", """\
trigger: {kind: stage_entered, pipeline: sale, stage: proposal}
""" + NOTE),
     4, "'opportunity' has no pipeline 'sale' (did you mean 'sales'?)"),
    ("unknown stage", on("opportunity", """\
trigger:
  kind: stage_left
  stage: proposl
""" + NOTE),
     6, "'proposl' is not a stage of pipeline 'sales' (did you mean 'proposal'?)"),
    ("condition not boolean", on("opportunity", """\
trigger: {kind: created}
condition: amount + 1
""" + NOTE),
     5, 'a condition must be true or false; this expression gives a number'),
    ("condition unknown field", on("opportunity", """\
trigger: {kind: created}
condition: "amont > 10"
""" + NOTE),
     5, "unknown field 'amont' on opportunity (did you mean 'amount'?)"),
    ("previous without a change", on("opportunity", """\
trigger: {kind: created}
condition: "previous(amount) > 10"
""" + NOTE),
     5, 'previous() works in validation rules and workflow conditions, where there is a change'),
    ("update unknown field", on("opportunity", """\
trigger: {kind: manual}
actions:
  - kind: update
    set:
      next_stp: "'call'"
"""),
     8, "'opportunity' has no field 'next_stp' (did you mean 'next_step'?)"),
    ("update wrong type", on("opportunity", """\
trigger: {kind: manual}
actions:
  - kind: update
    set:
      close_date: "'soon'"
"""),
     8, 'close_date: it must give a date; this expression gives a text'),
    ("update a field rules cannot fill", on("opportunity", """\
trigger: {kind: manual}
actions:
  - kind: update
    set:
      amount: "1000"
"""),
     8, 'a currency field cannot get its value from a rule'),
    ("update system field", on("opportunity", """\
trigger: {kind: manual}
actions:
  - kind: update
    set:
      created_at: now()
"""),
     8, "cannot set field 'created_at': it is kept by the engine"),
    ("update owner", on("opportunity", """\
trigger: {kind: manual}
actions:
  - kind: update
    set:
      owner: "1"
"""),
     8, "cannot set field 'owner': it is set with an assign action"),
    ("update stage field", on("opportunity", """\
trigger: {kind: manual}
actions:
  - kind: update
    set:
      stage: "'proposal'"
"""),
     8, "cannot set field 'stage': it moves through its pipeline's gate: use a move_stage action"),
    ("create unknown entity", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: create
    entity: task
"""),
     7, "entity 'task' is not defined by any pack given, installed or required"),
    ("create unknown field", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: create
    entity: activity
    set:
      subject: name
      due: now()
"""),
     10, "'activity' has no field 'due'"),
    ("create link not a reference here", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: create
    entity: activity
    link: account
    set: {subject: name}
"""),
     8, "link 'account' must be a reference of 'activity' to 'opportunity'"),
    ("cron does not parse", on("opportunity", """\
trigger:
  kind: schedule
  cron: "0 25 * * *"
""" + NOTE),
     6, "'0 25 * * *' is not a cron expression"),
    ("unknown time zone", on("opportunity", """\
trigger:
  kind: schedule
  cron: "0 8 * * 1"
  timezone: Europe/Pariss
""" + NOTE),
     7, "'Europe/Pariss' is not a time zone"),
    ("time zone is a region", on("opportunity", """\
trigger: {kind: schedule, cron: "0 8 * * 1", timezone: Europe}
""" + NOTE),
     4, "'Europe' is not a time zone"),
    ("cron never comes", on("opportunity", """\
trigger: {kind: schedule, cron: "0 0 30 2 *"}
""" + NOTE),
     4, "'0 0 30 2 *' never comes (no such day)"),
    ("update rule does not parse", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: update
    set: {next_step: "'a' +"}
"""),
     7, "next_step: the expression ends too early"),
    ("stage trigger on an entity without pipelines", on("account", """\
trigger: {kind: stage_entered}
""" + NOTE),
     4, "'account' has no pipeline, so no stages"),
    ("assign user not an address", on("lead", """\
trigger: {kind: created}
actions:
  - {kind: assign, user: nobody}
"""),
     6, "'nobody' is not an e-mail address"),
    ("webhook timeout zero", on("lead", """\
trigger: {kind: created}
actions:
  - {kind: webhook, url: "https://hooks.example.com", timeout: 0}
"""),
     6, "0 is not a timeout: give seconds, more than 0"),
    ("template item of an unknown field", on("opportunity", """\
trigger: {kind: created}
actions:
  - {kind: note, text: "{{ record['nme'] }}"}
"""),
     6, "the template reads record.nme, but 'opportunity' has no field 'nme' (did you mean 'name'?)"),
    ("create link of an unknown field", on("opportunity", """\
trigger: {kind: created}
actions:
  - {kind: create, entity: activity, link: opp}
"""),
     6, "'activity' has no field 'opp'"),
    ("schedule filter reads a change", on("opportunity", """\
trigger:
  kind: schedule
  cron: "0 8 * * 1"
  filter: changed(amount)
""" + NOTE),
     7, 'filter: changed() works in validation rules and workflow conditions, where there is a change; '
         'not here'),
    ("template does not parse", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: email
    to: owner
    subject: "{{ record.name "
    body: hi
"""),
     8, 'subject: the template does not parse: unexpected end of template'),
    ("template unknown field", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: email
    to: owner
    subject: New
    body: |
      Hello,
      {{ record.nam }} was created.
"""),
     9, "the template reads record.nam, but 'opportunity' has no field 'nam' (did you mean 'name'?) "
         '(line 2 of the template)'),
    ("template unknown related field", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: note
    text: "{{ record.account.nmae }}"
"""),
     7, "the template reads record.account.nmae, but 'account' has no field 'nmae' (did you mean "
         "'name'?)"),
    ("template unknown variable", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: note
    text: "{{ user.name }}"
"""),
     7, "the template names 'user', which is not given to templates"),
    ("template previous without a change", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: note
    text: "{{ previous.amount }}"
"""),
     7, "the template names 'previous', which is not given to templates (previous is there only for "
         'updated and stage triggers)'),
    ("template unknown filter", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: note
    text: "{{ record.name | shout }}"
"""),
     7, "the template does not parse: No filter named 'shout'"),
    ("recipient not an address", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: email
    to: amount > 5
    subject: x
    body: y
"""),
     7, "a recipient is an e-mail address (text) or a user's id (like owner); this expression gives a "
         'boolean'),
    ("webhook not http", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: webhook
    url: ftp://files.example.com/in
"""),
     7, "'ftp://files.example.com/in' is not a URL: an outgoing webhook calls an http:// or https:// "
         'address'),
    ("before_save on a stage trigger", on("opportunity", """\
timing: before_save
trigger: {kind: stage_entered, stage: proposal}
actions:
  - kind: update
    set: {next_step: "'Send it'"}
"""),
     4, "timing before_save runs inside the write of a record, so its trigger is created or updated, "
         "not stage_entered (use after_save)"),
    ("before_save with another action than update", on("opportunity", """\
trigger: {kind: created}
timing: before_save
actions:
  - kind: update
    set: {next_step: "'Call'"}
  - kind: note
    text: hi
"""),
     9, "actions[1] (note): a before_save workflow may only update the record being saved; run note "
         "actions in an after_save workflow"),
    ("timing unknown", on("opportunity", """\
timing: on_save
trigger: {kind: created}
""" + NOTE),
     4, "'on_save' is not one of 'before_save'"),
    ("retrigger not a boolean", on("opportunity", """\
retrigger: sometimes
trigger: {kind: created}
""" + NOTE),
     4, "retrigger: expected true or false, got text 'sometimes'"),
    ("manual trigger unknown role", on("lead", """\
trigger:
  kind: manual
  roles: [sales_manager, sales_mangr]
""" + NOTE),
     6, "role 'sales_mangr' is not defined by any pack given, installed or required (did you mean "
         "'sales_manager'?)"),
    ("roles on a trigger that is not manual", on("lead", """\
trigger: {kind: created, roles: [sales_rep]}
""" + NOTE),
     4, "unknown key 'roles'"),
    ("webhook match not mapped", on("lead", """\
trigger:
  kind: webhook
  mapping:
    last_name: $.name
  match: email
""" + NOTE),
     8, "match: 'email' is not in the mapping (last_name): a delivery is matched on a field it gives, so "
         "map it too"),
    ("webhook match unknown field", on("lead", """\
trigger:
  kind: webhook
  mapping:
    last_name: $.name
  match: emial
""" + NOTE),
     8, "'lead' has no field 'emial' (did you mean 'email'?)"),
    ("unknown action key", on("opportunity", """\
trigger: {kind: created}
actions:
  - kind: note
    txt: hi
"""),
     7, "unknown key 'txt' (did you mean 'text'?)"),
    ("round robin without team", on("lead", """\
trigger: {kind: created}
actions:
  - kind: assign
    strategy: round_robin
"""),
     7, 'assign: strategy round_robin picks a member of a team: give the team'),
    ("move to unknown stage", on("lead", """\
trigger: {kind: manual}
actions:
  - kind: move_stage
    stage: qualifed
"""),
     7, "'qualifed' is not a stage of pipeline 'qualification' (did you mean 'qualified'?)"),
    ("webhook maps unknown field", on("lead", """\
trigger:
  kind: webhook
  mapping:
    last_name: $.name
    compny: $.company
""" + NOTE),
     8, "'lead' has no field 'compny' (did you mean 'company'?)"),
    ("webhook path not json path", on("lead", """\
trigger:
  kind: webhook
  mapping:
    last_name: name
""" + NOTE),
     7, "'name' is not a JSON path of the body"),
]


@pytest.mark.parametrize(("text", "line", "message"), [case[1:] for case in BROKEN],
                         ids=[case[0] for case in BROKEN])
def test_a_broken_workflow_is_refused_at_its_line(tmp_path: Path, registry: FieldTypeRegistry, text: str,
                                                  line: int, message: str) -> None:
    found = problems(registry, write_pack(tmp_path, {"workflows/w.yaml": text}))
    assert all("/automation/workflows/w.yaml:" in p for p in found), found
    assert any(f"/automation/workflows/w.yaml:{line}:" in p and message in p for p in found), found
    assert not any("Traceback" in p for p in found)


def test_there_are_at_least_twenty_broken_definitions() -> None:
    assert len(BROKEN) >= 20


def test_a_name_twice_in_a_pack_is_refused_at_the_second(tmp_path: Path, registry: FieldTypeRegistry) -> None:
    text = on("lead", "trigger: {kind: manual}\n" + NOTE).replace("name: broken", "name: twice")
    found = problems(registry, write_pack(tmp_path, {"workflows/a.yaml": text, "workflows/b.yaml": text}))
    assert [p.split("/automation/")[1] for p in found] == [
        "workflows/b.yaml:2:7: name: workflow 'twice' is defined twice in this pack "
        "(also at workflows/a.yaml:2:7)"]


def test_a_pack_may_not_take_another_packs_workflow_name(tmp_path: Path,
                                                         registry: FieldTypeRegistry) -> None:
    qualify = {"workflows/w.yaml": VALID["workflows/qualify.yaml"]}
    found = problems(registry, write_pack(tmp_path, qualify), write_pack(tmp_path, qualify, name="other"))
    assert len(found) == 1
    assert ("/other/workflows/w.yaml:2:7: name: workflow 'qualify' is already defined by pack 'automation'"
            in found[0])
    assert "the organisation may replace a pack's workflow, a pack may not" in found[0]


def test_the_organisation_replaces_a_packs_workflow_by_name(tmp_path: Path,
                                                           registry: FieldTypeRegistry) -> None:
    text = VALID["workflows/qualify.yaml"]
    pack = write_pack(tmp_path, {"workflows/w.yaml": text})
    replacement = text.replace("trigger: {kind: manual, roles: [sales_manager, administrator]}",
                               "trigger: {kind: created}")
    organisation = write_pack(tmp_path, {"workflows/w.yaml": replacement}, name="organisation",
                              requires={"sales": "^0.2.0", "automation": "^1.0.0"})
    metamodel = merged(registry, pack, organisation)
    qualify = metamodel.workflow("qualify")
    assert qualify is not None and qualify.pack == "organisation" and qualify.trigger.kind == "created"
    assert [w.name for w in metamodel.workflows if w.pack != "sales"] == ["qualify"]


def test_a_workflow_names_only_entities_of_packs_it_requires(tmp_path: Path,
                                                            registry: FieldTypeRegistry) -> None:
    core_only = {"crm-core": "^0.1.0"}
    text = VALID["workflows/qualify.yaml"]
    found = problems(registry, write_pack(tmp_path, {"workflows/w.yaml": text}, requires=core_only))
    assert [p.split("/automation/")[1] for p in found] == [
        "workflows/w.yaml:3:9: entity: workflow 'qualify': entity 'lead' is defined by pack 'sales', "
        "which pack 'automation' does not require: add it to requires in pack.yaml"]
    create = on("account", "trigger: {kind: created}\nactions:\n"
                "  - kind: create\n    entity: lead\n    set: {company: name}\n")
    found = problems(registry, write_pack(tmp_path / "2", {"workflows/w.yaml": create}, requires=core_only))
    assert [p.split("/automation/")[1] for p in found] == [
        "workflows/w.yaml:7:13: actions[0].entity: workflow 'broken': entity 'lead' is defined by pack "
        "'sales', which pack 'automation' does not require: add it to requires in pack.yaml"]


def test_an_install_plans_workflows_added_changed_and_removed(engine: sa.Engine, registry: FieldTypeRegistry,
                                                              tmp_path: Path) -> None:
    """A workflow is metamodel without a table: the plan names it, and installing it makes a
    revision holding it (nothing runs it yet)."""
    from .packs import install, plan

    install(engine, registry, "crm-core", "sales")
    note = VALID["workflows/lead_deleted.yaml"]
    first = write_pack(tmp_path / "1", {"workflows/lead_deleted.yaml": note})
    planned = plan(engine, registry, "crm-core", "sales", first)
    assert [c.summary for c in planned.plan.changes] == ["add workflow lead_deleted (lead, deleted)"]
    install(engine, registry, "crm-core", "sales", first)
    with engine.connect() as conn:
        stored = revisions.current_metamodel(conn)[1].workflow("lead_deleted")
    assert stored is not None and stored.trigger.kind == "deleted" and stored.active is False
    changed = write_pack(tmp_path / "2", {"workflows/lead_deleted.yaml": note.replace("active: false",
                                                                                       "active: true")},
                         version="1.1.0")
    assert [c.summary for c in plan(engine, registry, "crm-core", "sales", changed).plan.changes] == [
        "change workflow lead_deleted (lead)"]
    emptied = write_pack(tmp_path / "3", {}, version="1.2.0")
    assert [c.summary for c in plan(engine, registry, "crm-core", "sales", emptied).plan.changes] == [
        "remove workflow lead_deleted"]
