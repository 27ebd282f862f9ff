"""Workflows over HTTP: the JSON API (workflows, runs, jobs, retry, a record's runs, manual
runs) and the pages (the record page's Automation panel, the list's bulk action, the admin
pages), with their permission refusals, on SQLite and PostgreSQL. A small pack of its own
(tickets and customers, two roles, the workflows) is the whole metamodel: the default packs'
workflows are not relied on, and do not run here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.identity.principal import Principal
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage import system
from slatecrm.platform.workflows import console
from slatecrm.platform.workflows.worker import Worker

from .defaults import make_app, signed_in, user_id
from .packs import install, write_files_pack
from .workflow_support import job_rows

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

#: Tickets (owned by agents) and customers (every agent reads them, none updates them); an
#: agent works their own tickets, a ticket lead every ticket, a watcher reads every ticket.
ENTITIES = {
    "entities/ticket.yaml": """\
        kind: entity
        name: ticket
        label: Ticket
        title_field: subject
        fields:
          subject: {type: text, required: true}
          requester: {type: text}
          email: {type: email}
          priority:
            type: choice
            options:
              - {key: low, label: Low}
              - {key: normal, label: Normal}
              - {key: high, label: High}
          need: {type: long_text}
        """,
    "entities/customer.yaml": """\
        kind: entity
        name: customer
        label: Customer
        title_field: name
        fields:
          name: {type: text, required: true}
        """,
    "roles/ticket_agent.yaml": """\
        kind: role
        name: ticket_agent
        label: Ticket agent
        entities:
          ticket: {actions: [create, read, update], scope: own}
          customer: {actions: [read], scope: all}
        """,
    "roles/ticket_watcher.yaml": """\
        kind: role
        name: ticket_watcher
        label: Ticket watcher
        entities:
          ticket: {actions: [read], scope: all}
        """,
    "roles/ticket_lead.yaml": """\
        kind: role
        name: ticket_lead
        label: Ticket lead
        entities:
          ticket: {actions: [create, read, update], scope: all}
          customer: {actions: [read], scope: all}
        """,
}
#: A manual workflow (an update and a note), one that fails on a bad requester (its e-mail is
#: refused: a dead job at once), a manual one for ticket leads only, one fired by a change of
#: `need`, a weekly schedule (its next firing is days away: it registers, never fires here),
#: and an inactive manual one.
FILES = {
    **ENTITIES,
    "workflows/escalate.yaml": """\
        kind: workflow
        name: escalate
        label: Escalate
        description: Make the ticket high priority and say so in its history.
        entity: ticket
        trigger: {kind: manual}
        actions:
          - kind: update
            set:
              priority: "'high'"
          - kind: note
            text: "Escalated by hand: {{ record.subject }}"
        """,
    "workflows/lead_review.yaml": """\
        kind: workflow
        name: lead_review
        label: Review by a lead
        entity: ticket
        trigger: {kind: manual, roles: [ticket_lead]}
        actions:
          - kind: update
            set:
              priority: "'normal'"
        """,
    "workflows/mail_from_requester.yaml": """\
        kind: workflow
        name: mail_from_requester
        label: E-mail from the requester
        entity: ticket
        trigger: {kind: manual}
        actions:
          - kind: update
            set:
              email: "concat(requester, '@example.com')"
        """,
    "workflows/on_need.yaml": """\
        kind: workflow
        name: on_need
        label: Warm on a need
        entity: ticket
        trigger: {kind: updated, fields: [need]}
        actions:
          - kind: update
            set:
              priority: "'normal'"
        """,
    "workflows/weekly.yaml": """\
        kind: workflow
        name: weekly_cooling
        label: Weekly cooling
        entity: ticket
        trigger:
          kind: schedule
          cron: "0 8 * * 1"
          filter: "priority = 'normal'"
        actions:
          - kind: update
            set:
              priority: "'low'"
        """,
    "workflows/dormant.yaml": """\
        kind: workflow
        name: dormant
        label: Dormant
        entity: ticket
        active: false
        trigger: {kind: manual}
        actions:
          - kind: update
            set:
              priority: "'low'"
        """,
}

REP = "rep@workflows.example"
LEAD = "lead@workflows.example"
WATCHER = "watcher@workflows.example"



@dataclass
class Web:
    app: Starlette
    http: TestClient  # the administrator's

    @property
    def records(self) -> RecordsService:
        records: RecordsService = self.app.state.records
        return records

    def ticket(self, **values: Any) -> int:
        return self.records.create("ticket", {"requester": "doe", "subject": "Acme", **values}).id

    def work(self) -> int:
        """A worker round on the app's database, until nothing is due."""
        return Worker(self.app.state.engine, self.records, name="test-worker").run_until_idle()

    def as_user(self, email: str, roles: tuple[str, ...] = ("ticket_agent",)) -> TestClient:
        return signed_in(self.app, email, roles=roles, raise_server_exceptions=False)

    def user(self, email: str, roles: tuple[str, ...] = ("ticket_agent",)) -> int:
        return user_id(self.app.state.engine, email, roles=roles)

    def fix(self, ticket: int, **values: Any) -> None:
        self.records.update("ticket", ticket, values, version=self.records.get("ticket", ticket).version)

    def jobs(self, **where: Any) -> list[Any]:
        return job_rows(self.app.state.engine, **where)


def handwork(root: Path) -> Path:
    """The test pack, on its own (it requires no other pack)."""
    return write_files_pack(root, FILES, name="handwork", requires={})


@pytest.fixture
def web(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Iterator[Web]:
    install(engine, registry, handwork(tmp_path))
    app = make_app(db_url, body_limit=64 * 1024)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield Web(app, http)
    app.state.engine.dispose()


def problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    body: dict[str, Any] = answer.json()
    return body


# --- the JSON API -------------------------------------------------------------------------------
def test_a_manual_run_is_queued_and_a_worker_round_runs_it(web: Web) -> None:
    ticket = web.ticket(subject="Initech")
    answer = web.http.post(f"/api/v1/records/ticket/{ticket}/workflows/escalate/run")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["workflow"] == "escalate" and body["record_ids"] == [ticket] and len(body["job_ids"]) == 1
    [job] = web.jobs(id=body["job_ids"][0])
    assert (job.status, job.trigger, job.record_id) == ("pending", "manual", ticket)
    assert job.event["user"] == user_id(web.app.state.engine, "admin@example.com")
    assert web.work() == 1
    assert web.records.get("ticket", ticket).values["priority"] == "high"
    notes = [h for h in web.records.history("ticket", ticket) if h.action == "note"]
    assert notes and "Escalated by hand: Initech" in notes[0].changes["note"][1]

    runs = web.http.get(f"/api/v1/records/ticket/{ticket}/workflow-runs").json()
    [run] = runs["data"]
    assert (run["workflow"], run["label"], run["trigger"], run["status"]) == (
        "escalate", "Escalate", "manual", "done")
    assert [(a["kind"], a["status"]) for a in run["actions"]] == [("update", "done"), ("note", "done")]
    assert all("ms" in a for a in run["actions"]) and runs["next"] is None

    logged = web.http.get("/api/v1/workflow-runs", params={"workflow": "escalate", "status": "done"}).json()
    assert [r["id"] for r in logged["data"]] == [run["id"]]
    assert web.http.get("/api/v1/workflow-runs", params={"status": "failed"}).json()["data"] == []

    listed = {w["name"]: w for w in web.http.get("/api/v1/workflows").json()["data"]}
    assert set(listed) >= {"escalate", "mail_from_requester", "on_need", "dormant"}
    hot = listed["escalate"]
    assert (hot["trigger"], hot["active"], hot["entity"], hot["pack"]) == (
        "manual", True, "ticket", "handwork")
    assert hot["jobs"]["done"] == 1 and hot["jobs"]["dead"] == 0 and hot["healthy"] is True
    assert hot["registration"] is None and len(hot["version"]) == 16
    assert listed["dormant"]["active"] is False


def test_a_schedule_is_healthy_once_a_worker_registered_its_version(web: Web) -> None:
    def weekly() -> dict[str, Any]:
        listed = {w["name"]: w for w in web.http.get("/api/v1/workflows").json()["data"]}
        found: dict[str, Any] = listed["weekly_cooling"]
        return found

    def row() -> str:
        page = web.http.get("/admin/workflows").text
        return page.split('id="workflow-weekly_cooling"')[1].split("</tr>")[0]

    started = weekly()  # the app registered it at its start
    assert started["trigger"] == "schedule" and started["healthy"] is True
    table = system.workflow_schedules
    with web.app.state.engine.begin() as conn:  # as if an older version were registered
        conn.execute(table.update().where(table.c.workflow == "weekly_cooling").values(version="0123abcd"))
    stale = weekly()
    assert stale["healthy"] is False and stale["registration"]["registered_version"] == "0123abcd"
    assert stale["registration"]["active_version"] == stale["version"]
    assert f"registered version 0123abcd, active {stale['version']}" in row()
    with web.app.state.engine.begin() as conn:  # or none at all
        conn.execute(table.delete().where(table.c.workflow == "weekly_cooling"))
    assert weekly()["registration"]["registered_version"] is None and "not registered" in row()
    web.work()  # a worker reconciles the registrations with the revision first
    after = weekly()
    assert after["healthy"] is True and after["registration"]["registered_version"] == after["version"]
    assert after["registration"]["next_at"]
    assert "health-ok" in row() and "not registered" not in row()


def test_a_bulk_manual_run_queues_one_job_per_record_or_none(web: Web) -> None:
    first, second = web.ticket(requester="One"), web.ticket(requester="Two")
    answer = web.http.post("/api/v1/records/ticket/workflows/escalate/run",
                           json={"ids": [first, second, first]})
    assert answer.status_code == 202, answer.text
    assert answer.json()["record_ids"] == [first, second] and len(answer.json()["job_ids"]) == 2
    missing = web.http.post("/api/v1/records/ticket/workflows/escalate/run", json={"ids": [first, 999_999]})
    assert "999999" in problem(missing, 404)["detail"]
    assert len(web.jobs(workflow="escalate")) == 2  # nothing of the refused request was queued
    assert web.work() == 2
    assert {web.records.get("ticket", i).values["priority"] for i in (first, second)} == {"high"}
    for body, key in (({"ids": []}, "ids"), ({"ids": ["1"]}, "ids"), ({"ids": [True]}, "ids"),
                      ({"ids": [0]}, "ids"), ({"ids": [1], "x": 1}, "x"), ({}, "ids")):
        refused = problem(web.http.post("/api/v1/records/ticket/workflows/escalate/run", json=body), 400)
        assert key in refused["errors"], (body, refused)


def test_a_workflow_that_is_not_manual_is_refused_clearly(web: Web) -> None:
    ticket = web.ticket()
    refused = problem(web.http.post(f"/api/v1/records/ticket/{ticket}/workflows/on_need/run"), 409)
    assert "'updated'" in refused["detail"] and "manual" in refused["detail"]
    assert "not active" in problem(web.http.post(f"/api/v1/records/ticket/{ticket}/workflows/dormant/run"),
                                   409)["detail"]
    customer = web.records.create("customer", {"name": "Globex"}).id
    wrong = problem(web.http.post(f"/api/v1/records/customer/{customer}/workflows/escalate/run"), 409)
    assert "'ticket'" in wrong["detail"]
    assert "no workflow" in problem(web.http.post(f"/api/v1/records/ticket/{ticket}/workflows/nope/run"),
                                    404)["detail"]
    problem(web.http.post("/api/v1/records/nothing/1/workflows/escalate/run"), 404)
    problem(web.http.post(f"/api/v1/records/ticket/{ticket + 1000}/workflows/escalate/run"), 404)
    assert web.jobs(trigger="manual") == []


def test_who_may_run_and_read(web: Web) -> None:
    rep = web.user(REP)
    own, theirs = web.ticket(owner=rep, requester="Mine"), web.ticket(requester="Theirs")
    with web.as_user(REP) as http:
        for path in ("/api/v1/workflows", "/api/v1/workflow-runs", "/api/v1/workflow-jobs?status=dead"):
            assert "manage metamodel" in problem(http.get(path), 403)["detail"], path
        problem(http.post("/api/v1/workflow-jobs/retry", json={"ids": [1]}), 403)
        # Someone else's record: not found, for its runs and for a manual run alike.
        problem(http.get(f"/api/v1/records/ticket/{theirs}/workflow-runs"), 404)
        problem(http.post(f"/api/v1/records/ticket/{theirs}/workflows/escalate/run"), 404)
        problem(http.post("/api/v1/records/ticket/workflows/escalate/run", json={"ids": [own, theirs]}), 404)
        # Their own record: they may run it and read its runs.
        started = http.post(f"/api/v1/records/ticket/{own}/workflows/escalate/run")
        assert started.status_code == 202, started.text
        web.work()
        runs = http.get(f"/api/v1/records/ticket/{own}/workflow-runs")
        assert runs.status_code == 200 and [r["status"] for r in runs.json()["data"]] == ["done"]
        assert all("detail" in a for a in runs.json()["data"][0]["actions"])  # they see every field
    # A user who may read every customer but update none: 403 on a manual run there.
    assert len(web.jobs(trigger="manual")) == 1


def test_a_readable_record_that_may_not_be_updated_is_403(web: Web) -> None:
    """A watcher reads every ticket and updates none: its runs are theirs to read, a manual
    run is refused (403, the write pipeline's reach check) and the panel offers no button."""
    ticket = web.ticket(subject="Watched")
    web.user(WATCHER, ("ticket_watcher",))
    with web.as_user(WATCHER, ("ticket_watcher",)) as http:
        assert http.get(f"/api/v1/records/ticket/{ticket}/workflow-runs").status_code == 200
        refused = problem(http.post(f"/api/v1/records/ticket/{ticket}/workflows/escalate/run"), 403)
        assert "may not update" in refused["detail"]
        page = http.get(f"/e/ticket/{ticket}").text
        assert 'id="automation"' in page and "/workflows/" not in page
        assert "Run workflow…" not in http.get("/e/ticket").text
    assert web.jobs(trigger="manual") == []


def test_trigger_roles_narrow_who_may_start_a_workflow(web: Web) -> None:
    """`roles` on a manual trigger: a user needs one of them (administrators always may)."""
    web.user(REP)
    web.user(LEAD, ("ticket_lead",))
    own = web.ticket(owner=web.user(REP))
    with web.as_user(REP) as http:
        refused = problem(http.post(f"/api/v1/records/ticket/{own}/workflows/lead_review/run"), 403)
        assert "ticket_lead" in refused["detail"]
        panel = http.get(f"/e/ticket/{own}").text.split('id="automation"')[1].split("</section>")[0]
        assert "Escalate" in panel and "Review by a lead" not in panel
    with web.as_user(LEAD, ("ticket_lead",)) as http:
        assert http.post(f"/api/v1/records/ticket/{own}/workflows/lead_review/run").status_code == 202
        assert "Review by a lead" in http.get(f"/e/ticket/{own}").text
    assert web.http.post(f"/api/v1/records/ticket/{own}/workflows/lead_review/run").status_code == 202

    def as_(*roles: str) -> Any:
        principal = Principal(user_id=7, name="x", via="session", roles=frozenset(roles))
        return SimpleNamespace(principal=principal)

    review = SimpleNamespace(workflow=SimpleNamespace(trigger=SimpleNamespace(roles=("ticket_lead",))))
    assert console.may_start(as_("administrator"), review)
    assert not console.may_start(as_("ticket_agent"), review)
    assert console.may_start(SimpleNamespace(principal=Principal(user_id=None, name="system", via="system")),
                             review)


def test_dead_jobs_are_listed_and_a_bulk_retry_replays_them(web: Web) -> None:
    bad, other = web.ticket(requester="no such address"), web.ticket(requester="also bad")
    for ticket in (bad, other):
        started = web.http.post(f"/api/v1/records/ticket/{ticket}/workflows/mail_from_requester/run")
        assert started.status_code == 202
    web.work()
    dead = web.http.get("/api/v1/workflow-jobs",
                        params={"status": "dead", "workflow": "mail_from_requester"}).json()
    assert [j["record_id"] for j in dead["data"]] == [other, bad]  # newest first
    assert all("e-mail" in (j["last_error"] or "") for j in dead["data"]), dead
    assert dead["data"][0]["label"] == "E-mail from the requester"
    failed = web.http.get("/api/v1/workflow-runs", params={"status": "dead"}).json()["data"]
    assert {r["record_id"] for r in failed} == {bad, other}
    counts = {w["name"]: w["jobs"] for w in web.http.get("/api/v1/workflows").json()["data"]}
    assert counts["mail_from_requester"]["dead"] == 2 and counts["mail_from_requester"]["done"] == 0

    web.fix(bad, requester="fixed")
    web.fix(other, requester="mended")
    one = web.http.post("/api/v1/workflow-jobs/retry", json={"ids": [dead["data"][1]["id"]]})
    assert one.status_code == 200 and one.json() == {"retried": 1}
    for expected in (1, 0):  # the one left; then none
        again = web.http.post("/api/v1/workflow-jobs/retry", json={"workflow": "mail_from_requester"})
        assert again.json() == {"retried": expected}
    assert web.work() == 2
    assert web.records.get("ticket", bad).values["email"] == "fixed@example.com"
    assert web.records.get("ticket", other).values["email"] == "mended@example.com"
    assert web.http.get("/api/v1/workflow-jobs", params={"status": "dead"}).json()["data"] == []
    for body in ({}, {"ids": [1], "workflow": "x"}, {"ids": "1"}, {"workflow": 3}, {"other": 1}):
        problem(web.http.post("/api/v1/workflow-jobs/retry", json=body), 400)


def test_runs_are_paged_newest_first_and_filters_are_strict(web: Web) -> None:
    tickets = [web.ticket(requester=f"L{i}") for i in range(5)]
    web.http.post("/api/v1/records/ticket/workflows/escalate/run", json={"ids": tickets})
    web.work()
    first = web.http.get("/api/v1/workflow-runs", params={"limit": 2}).json()
    assert len(first["data"]) == 2 and first["next_cursor"]
    seen = [r["id"] for r in first["data"]]
    page = first
    while page["next"]:
        page = web.http.get(page["next"]).json()
        seen += [r["id"] for r in page["data"]]
    assert seen == sorted(seen, reverse=True) and len(seen) == 5
    only = web.http.get("/api/v1/workflow-runs", params={"entity": "ticket", "record_id": tickets[2]}).json()
    assert [r["record_id"] for r in only["data"]] == [tickets[2]]
    for params, key in (({"status": "nope"}, "status"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
                        ({"after": "-1"}, "after"), ({"colour": "red"}, "colour"),
                        ({"record_id": "1e3"}, "record_id")):
        refused = problem(web.http.get("/api/v1/workflow-runs", params=params), 422)
        assert key in refused["errors"], (params, refused)
    problem(web.http.get("/api/v1/workflow-runs?status=done&status=dead"), 422)
    problem(web.http.get(f"/api/v1/records/ticket/{tickets[0]}/workflow-runs", params={"entity": "x"}), 422)


def test_the_openapi_document_describes_the_workflow_routes(web: Web) -> None:
    from openapi_spec_validator import validate

    document = web.http.get("/api/v1/openapi.json").json()
    validate(document)
    paths = document["paths"]
    for path in ("/api/v1/workflows", "/api/v1/workflow-runs", "/api/v1/workflow-jobs",
                 "/api/v1/workflow-jobs/retry", "/api/v1/records/{entity}/{id}/workflow-runs",
                 "/api/v1/records/{entity}/{id}/workflows/{name}/run",
                 "/api/v1/records/{entity}/workflows/{name}/run"):
        assert path in paths, path
    assert "202" in paths["/api/v1/records/{entity}/{id}/workflows/{name}/run"]["post"]["responses"]
    assert "WorkflowRun" in document["components"]["schemas"]


def test_hostile_input_is_a_4xx_never_a_5xx(web: Web) -> None:
    ticket = web.ticket()
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/v1/workflow-runs", {"params": {"workflow": "a\x00b"}}),
        ("GET", "/api/v1/workflow-runs", {"params": {"entity": "x" * 500}}),
        ("GET", "/api/v1/workflow-jobs", {"params": {"record_id": "9" * 30}}),
        ("GET", "/api/v1/workflow-jobs", {"params": {"limit": "100000"}}),
        ("GET", "/api/v1/workflow-jobs", {"params": {"after": "0"}}),
        ("POST", "/api/v1/workflow-jobs/retry", {"json": {"workflow": "a\x00b"}}),
        ("POST", "/api/v1/workflow-jobs/retry", {"json": {"ids": [2**70]}}),
        ("POST", "/api/v1/workflow-jobs/retry", {"json": {"ids": list(range(1, 10_002))}}),
        ("POST", "/api/v1/workflow-jobs/retry",
         {"content": b"not json", "headers": {"content-type": "application/json"}}),
        ("POST", "/api/v1/workflow-jobs/retry", {"content": b"{}"}),
        ("POST", f"/api/v1/records/ticket/{ticket}/workflows/a%00b/run", {}),
        ("POST", "/api/v1/records/a%00b/workflows/escalate/run", {"json": {"ids": [ticket]}}),
        ("GET", "/api/v1/records/a%00b/1/workflow-runs", {}),
        ("POST", "/api/v1/records/ticket/workflows/escalate/run", {"json": {"ids": [2**63]}}),
        ("POST", "/api/v1/records/ticket/workflows/escalate/run", {"json": [1, 2]}),
        ("GET", "/admin/workflows/runs", {"params": {"workflow": "a\x00b", "record_id": "-3"}}),
        ("GET", "/admin/workflows/dead", {"params": {"after": "x", "retried": "zz"}}),
        ("POST", "/admin/workflows/dead/retry", {"data": {"workflow": "a\x00b", "all": "1"}}),
        ("POST", "/admin/workflows/dead/retry", {"data": {"job": "1" * 40}}),
        ("POST", "/admin/workflows/dead/retry", {"data": {"ids": ["1", "x"]}}),
        ("POST", f"/e/ticket/{ticket}/workflows/a%00b/run", {}),
        ("POST", "/e/ticket/bulk",
         {"data": {"ids": str(ticket), "action": "workflow", "workflow": "a\x00b"}}),
    ]
    for method, path, options in calls:
        answer = web.http.request(method, path, **options)
        assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text[:300])


# --- pages ------------------------------------------------------------------------------------
def test_the_record_page_runs_a_manual_workflow_and_shows_its_run(web: Web) -> None:
    ticket = web.ticket(subject="Hooli")
    page = web.http.get(f"/e/ticket/{ticket}")
    assert page.status_code == 200
    panel = page.text.split('id="automation"')[1].split("</section>")[0]
    assert "Escalate" in panel and "E-mail from the requester" in panel
    assert "Dormant" not in panel and "Warm on a need" not in panel  # inactive, not manual
    assert "No workflow has run on this record yet" in panel
    assert f'action="/e/ticket/{ticket}/workflows/escalate/run"' in panel and 'name="csrftoken"' in panel
    posted = web.http.post(f"/e/ticket/{ticket}/workflows/escalate/run", follow_redirects=False)
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/e/ticket/{ticket}?queued=escalate#automation"
    shown = web.http.get(posted.headers["location"])
    assert "“Escalate” queued" in shown.text
    assert web.work() == 1
    after = web.http.get(f"/e/ticket/{ticket}").text.split('id="automation"')[1].split("</section>")[0]
    assert "Escalate" in after and "done" in after and "update" in after and "note" in after
    assert re.search(r"\(\d+(\.\d+)? ms\)", after)
    twin = web.http.get(f"/e/ticket/{ticket}.json").json()["automation"]
    assert [r["status"] for r in twin["runs"]] == ["done"]
    # by label: E-mail from the requester, Escalate, Review by a lead
    assert [b["name"] for b in twin["buttons"]] == ["mail_from_requester", "escalate", "lead_review"]
    refused = web.http.post(f"/e/ticket/{ticket}/workflows/on_need/run", follow_redirects=False)
    assert refused.status_code == 409 and "text/html" in refused.headers["content-type"]
    error = refused.text.split('id="automation"')[1].split("</section>")[0]  # shown in the panel
    assert 'id="automation-error"' in error and "not run by hand" in error


def test_the_panel_offers_buttons_only_to_who_may_update(web: Web) -> None:
    rep = web.user(REP)
    own, theirs = web.ticket(owner=rep), web.ticket()
    with web.as_user(REP) as http:
        assert "Escalate" in http.get(f"/e/ticket/{own}").text
        assert http.get(f"/e/ticket/{theirs}").status_code == 404
        refused = http.post(f"/e/ticket/{theirs}/workflows/escalate/run", follow_redirects=False)
        assert refused.status_code == 404
        customer = web.records.create("customer", {"name": "Soylent"}).id
        page = http.get(f"/e/customer/{customer}").text
        assert 'id="automation"' in page and "/workflows/" not in page  # no manual workflow there
        assert "/admin/workflows" not in page  # the admin link is not offered


def test_the_list_runs_a_workflow_on_the_selected_records(web: Web) -> None:
    first, second = web.ticket(requester="Alpha"), web.ticket(requester="Beta")
    listing = web.http.get("/e/ticket").text
    assert 'value="workflow"' in listing and "Run workflow…" in listing
    assert '<option value="escalate">Escalate</option>' in listing
    done = web.http.post("/e/ticket/bulk", data={"ids": [str(first), str(second)], "action": "workflow",
                                               "workflow": "escalate", "back": "/e/ticket"})
    assert done.status_code == 200, done.text
    assert "“Escalate” queued for 2 records" in done.text
    assert web.work() == 2
    assert {web.records.get("ticket", i).values["priority"] for i in (first, second)} == {"high"}
    refused = web.http.post("/e/ticket/bulk", data={"ids": [str(first)], "action": "workflow",
                                                  "workflow": "on_need"})
    assert refused.status_code == 409


def test_the_admin_pages_show_health_runs_and_dead_jobs_and_retry(web: Web) -> None:
    ticket, bad = web.ticket(), web.ticket(requester="bad name")
    web.http.post(f"/api/v1/records/ticket/{ticket}/workflows/escalate/run")
    web.http.post(f"/api/v1/records/ticket/{bad}/workflows/mail_from_requester/run")
    web.work()
    home = web.http.get("/").text
    assert 'href="/admin/workflows"' in home
    overview = web.http.get("/admin/workflows")
    assert overview.status_code == 200
    row = overview.text.split('id="workflow-mail_from_requester"')[1].split("</tr>")[0]
    assert "manual" in row and "/admin/workflows/dead?workflow=mail_from_requester" in row
    workers = overview.text.split('id="workers"')[1]
    assert "test-worker" in workers and "alive" in workers
    assert [w["name"] for w in web.http.get("/admin/workflows.json").json()["workers"]] == ["test-worker"]

    runs = web.http.get("/admin/workflows/runs",
                        params={"workflow": "escalate", "status": "done", "entity": "", "record_id": ""})
    assert runs.status_code == 200
    table = runs.text.split('id="runs-table"')[1]
    assert "Escalate" in table and f"ticket #{ticket}" in table and "E-mail from" not in table
    of_bad = web.http.get("/admin/workflows/runs", params={"record_id": bad}).text
    assert of_bad.count('class="run-dead"') == 1
    wrong = web.http.get("/admin/workflows/runs", params={"status": "nope"})
    assert wrong.status_code == 422 and "is not one of" in wrong.text

    dead = web.http.get("/admin/workflows/dead")
    assert dead.status_code == 200
    [job] = web.jobs(status="dead")
    assert f'id="job-{job.id}"' in dead.text and "e-mail" in dead.text
    web.fix(bad, requester="good")
    retried = web.http.post("/admin/workflows/dead/retry", data={"job": str(job.id)}, follow_redirects=False)
    assert retried.status_code == 303 and retried.headers["location"] == "/admin/workflows/dead?retried=1"
    assert "1 job queued again" in web.http.get(retried.headers["location"]).text
    assert web.work() == 1
    assert web.records.get("ticket", bad).values["email"] == "good@example.com"
    assert "No dead jobs" in web.http.get("/admin/workflows/dead").text


def test_retry_selected_and_all_of_a_workflow_from_the_dead_page(web: Web) -> None:
    tickets = [web.ticket(requester=f"bad {i}") for i in range(3)]
    web.http.post("/api/v1/records/ticket/workflows/mail_from_requester/run", json={"ids": tickets})
    web.work()
    dead = web.jobs(status="dead")
    assert len(dead) == 3
    page = web.http.get("/admin/workflows/dead", params={"workflow": "mail_from_requester"}).text
    assert 'id="retry-all"' in page and 'id="retry-selected"' in page
    chosen = web.http.post("/admin/workflows/dead/retry", data={"ids": [str(dead[0].id), str(dead[1].id)]},
                           follow_redirects=False)
    assert chosen.headers["location"].endswith("retried=2")
    everything = web.http.post("/admin/workflows/dead/retry",
                               data={"workflow": "mail_from_requester", "all": "1"},
                               follow_redirects=False)
    assert everything.headers["location"] == "/admin/workflows/dead?workflow=mail_from_requester&retried=1"
    assert [j.status for j in web.jobs(workflow="mail_from_requester")] == ["pending"] * 3
    assert web.http.post("/admin/workflows/dead/retry", data={}).status_code == 422


def test_the_admin_pages_are_refused_to_other_users(web: Web) -> None:
    web.user(REP)
    with web.as_user(REP) as http:
        for path in ("/admin/workflows", "/admin/workflows/runs", "/admin/workflows/dead"):
            assert http.get(path).status_code == 403, path
        assert http.post("/admin/workflows/dead/retry", data={"job": "1"}).status_code == 403
