"""Each action kind run by a worker, against real parts: an SMTP server (aiosmtpd) and an HTTP
receiver on 127.0.0.1 that checks signatures (SQLite and PostgreSQL)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.identity import teams, users

from .test_workflow_delivery import Mailbox, Receiver, receiver, smtp  # noqa: F401 - fixtures
from .workflow_support import Automation, automation


@pytest.fixture
def auto(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> Automation:
    return automation(engine, registry, tmp_path)


def lead(auto: Automation, **values: object) -> int:
    return auto.records.create("lead", {"last_name": "Doe", "company": "Acme", **values}).id


EMAIL = """\
    kind: workflow
    name: welcome
    entity: lead
    trigger: {kind: created}
    actions:
      - kind: email
        to: email
        subject: "Welcome {{ record.first_name }} from {{ record.company }}"
        body: "Dear {{ record.first_name }} {{ record.last_name }}, rating {{ record.rating }}."
        html: "<p>Dear <b>{{ record.first_name }}</b></p>"
      - kind: email
        to: owner
        subject: "New lead {{ record.last_name }}"
        body: "Yours."
    """


def test_emails_arrive_with_recipients_subject_and_fields(auto: Automation, smtp) -> None:  # noqa: F811
    mailbox, settings = smtp
    auto.settings.environ = {"SLATECRM_SMTP_HOST": "127.0.0.1", "SLATECRM_SMTP_PORT": str(settings.port),
                             "SLATECRM_SMTP_FROM": "CRM <crm@example.com>"}
    auto.install({"workflows/welcome.yaml": EMAIL})
    owner = users.add(auto.engine, "owner@example.com", "Olive Owner").id
    auto.records.create("lead", {"last_name": "Doe", "first_name": "Jane", "company": "Acme & Co",
                                 "email": "jane@example.org", "rating": "hot", "owner": owner})
    assert auto.run() == 1
    messages = [email.message_from_bytes(e.content, policy=email.policy.default) for e in mailbox.envelopes]
    assert [e.rcpt_tos for e in mailbox.envelopes] == [["jane@example.org"], ["owner@example.com"]]
    first, second = messages
    assert first["Subject"] == "Welcome Jane from Acme & Co"
    assert "Dear Jane Doe, rating hot." in first.get_body(("plain",)).get_content()
    assert "<p>Dear <b>Jane</b></p>" in first.get_body(("html",)).get_content()
    assert second["Subject"] == "New lead Doe" and second["From"] == "CRM <crm@example.com>"
    (run,) = auto.runs()
    assert run.status == "done" and [a["status"] for a in run.actions] == ["done", "done"]


def test_an_action_that_succeeded_is_not_sent_again_when_a_later_one_fails(auto: Automation,
                                                                           smtp) -> None:  # noqa: F811
    """The first e-mail is sent; the second's recipient (a user without an address) fails
    for good: the job is dead, and replaying it does not send the first again."""
    mailbox, settings = smtp
    auto.settings.environ = {"SLATECRM_SMTP_HOST": "127.0.0.1", "SLATECRM_SMTP_PORT": str(settings.port)}
    auto.install({"workflows/welcome.yaml": EMAIL})
    record = lead(auto, email="jane@example.org")
    assert auto.run() == 1
    (job,) = auto.jobs()
    assert job.status == "dead" and "the recipient rule gives no address" in job.last_error
    assert len(mailbox.envelopes) == 1
    # The owner gets an address: replay (as the dead-letter page does) sends only the second.
    owner = users.add(auto.engine, "late@example.com", "Late Owner").id
    found = auto.records.get("lead", record)
    auto.records.update("lead", record, {"owner": owner}, version=found.version)
    from slatecrm.platform.workflows.jobs import replay

    with auto.engine.begin() as conn:
        assert replay(conn, [job.id], auto.clock()) == 1
    assert auto.run() == 1
    assert [e.rcpt_tos for e in mailbox.envelopes] == [["jane@example.org"], ["late@example.com"]]
    last = auto.runs()[-1]
    assert [a["status"] for a in last.actions] == ["done-before", "done"]


WEBHOOK = """\
    kind: workflow
    name: hook
    entity: lead
    trigger: {{kind: updated, fields: [rating]}}
    actions:
      - kind: webhook
        url: {url}
        secret: crm_hooks
        timeout: 5
      - kind: note
        text: "sent"
    """


def test_a_webhook_is_retried_with_back_off_and_one_idempotency_key(auto: Automation,
                                                                    receiver) -> None:  # noqa: F811
    state, base = receiver
    auto.install({"workflows/hook.yaml": WEBHOOK.format(url=f"{base}/hook")})
    # The receiver verifies with the secret the database keeps under the secret's name.
    state.secret = auto.records.secrets.get("webhook:crm_hooks")
    state.script.extend([500, 500, 200])
    made = auto.records.create("lead", {"last_name": "Doe", "company": "Acme", "rating": "cold"})
    auto.records.update("lead", made.id, {"rating": "hot"}, version=made.version)
    assert auto.run() == 1
    (job,) = auto.jobs()
    assert job.status == "pending" and job.attempts == 1 and "500" in job.last_error
    assert auto.run() == 0  # not due yet: back-off
    auto.clock.advance(seconds=60)
    assert auto.run() == 1
    (job,) = auto.jobs()
    assert job.status == "pending" and job.attempts == 2
    auto.clock.advance(seconds=119)
    assert auto.run() == 0  # the second wait is twice as long
    auto.clock.advance(seconds=1)
    assert auto.run() == 1
    (job,) = auto.jobs()
    assert job.status == "done" and job.attempts == 3
    delivered = [entry for entry in state.log if "verified" in entry]
    assert [entry["status"] for entry in delivered] == [500, 500, 200]
    assert len({entry["headers"]["Idempotency-Key"] for entry in delivered}) == 1
    body = delivered[-1]["body"]
    assert body["record_id"] == made.id and body["changes"] == {"rating": ["cold", "hot"]}
    assert body["record"]["rating"] == "hot" and body["workflow"] == "hook"
    assert [r.status for r in auto.runs()] == ["failed", "failed", "done"]


def test_attempts_spent_make_a_dead_job_with_its_error(auto: Automation, receiver) -> None:  # noqa: F811
    _, base = receiver
    auto.install({"workflows/hook.yaml": WEBHOOK.format(url=f"{base}/status/503")})
    made = auto.records.create("lead", {"last_name": "Doe", "company": "Acme", "rating": "cold"})
    auto.records.update("lead", made.id, {"rating": "hot"}, version=made.version)
    for _ in range(3):  # the fixture's back-off: 3 attempts
        assert auto.run() == 1
        auto.clock.advance(hours=1)
    (job,) = auto.jobs()
    assert job.status == "dead" and "503" in job.last_error
    assert [r.status for r in auto.runs()] == ["failed", "failed", "dead"]
    assert auto.run() == 0


ASSIGN = """\
    kind: workflow
    name: assign
    entity: lead
    trigger: {{kind: created}}
    actions:
      - kind: assign
        {how}
    """


def test_assign_round_robin_least_loaded_and_fixed(auto: Automation) -> None:
    auto.install({"workflows/assign.yaml": ASSIGN.format(how="strategy: round_robin\n        team: Reps")})
    ids = [users.add(auto.engine, f"rep{i}@example.com", f"Rep {i}").id for i in range(3)]
    teams.create(auto.engine, "Reps", member_emails=[f"rep{i}@example.com" for i in range(3)])
    made = [lead(auto) for _ in range(5)]
    assert auto.run() == 5
    owners = [auto.records.get("lead", i).system["owner"] for i in made]
    assert owners == [ids[0], ids[1], ids[2], ids[0], ids[1]]
    auto.install({"workflows/assign.yaml": ASSIGN.format(how="strategy: least_loaded\n        team: Reps")})
    extra = lead(auto)
    assert auto.run() == 1
    assert auto.records.get("lead", extra).system["owner"] == ids[2]  # it owned one; the others two
    auto.install({"workflows/assign.yaml": ASSIGN.format(how="user: REP1@example.com")})
    fixed = lead(auto)
    assert auto.run() == 1
    assert auto.records.get("lead", fixed).system["owner"] == ids[1]
    auto.install({"workflows/assign.yaml": ASSIGN.format(how="strategy: round_robin\n        team: Nobody")})
    lead(auto)
    auto.run()
    assert "there is no team 'Nobody'" in auto.jobs(status="dead")[0].last_error


CREATE_AND_MOVE = """\
    kind: workflow
    name: qualify
    entity: lead
    trigger: {kind: created}
    condition: "email is not blank"
    actions:
      - kind: move_stage
        pipeline: qualification
        stage: suspect
      - kind: create
        entity: account
        set:
          name: "concat(company, ' (from lead ', last_name, ')')"
    """


def test_move_stage_goes_through_the_gate_and_create_makes_a_record(auto: Automation) -> None:
    auto.install({"workflows/qualify.yaml": CREATE_AND_MOVE})
    ok = lead(auto, email="a@example.com")
    assert auto.run() == 1
    assert auto.records.get("lead", ok).values["status"] == "suspect"
    assert any(r.values["name"] == "Acme (from lead Doe)" for r in auto.records.page("account").records)
    assert [v.stage for v in auto.records.stage_history("lead", ok)][-1] == "suspect"
