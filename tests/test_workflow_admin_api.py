"""The organisation's workflows through the admin API: plan, then confirm, like every other
metamodel edit; a pack's workflow replaced (deactivated) by name and given back (SQLite and
PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.platform.storage import system

from .test_api_live_editing import confirmed
from .workflow_support import job_rows

NOTE_ON_CREATE = {"entity": "lead", "trigger": {"kind": "created"},
                  "actions": [{"kind": "note", "text": "Welcome {{ record.company }}"}]}


def test_an_admin_defines_a_workflow_plan_first_then_confirmed(client: TestClient) -> None:
    dry = client.put("/api/v1/admin/workflows/welcome_note", json=NOTE_ON_CREATE)
    assert dry.status_code == 200, dry.text
    changes = dry.json()["plan"]["changes"]
    assert [c["summary"] for c in changes] == ["add workflow welcome_note (lead, created)"]
    created = client.post("/api/v1/lead", json={"last_name": "Doe", "company": "Acme"})
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    before = [j.workflow for j in job_rows(engine)]
    assert "welcome_note" not in before  # a dry run changes nothing
    confirmed(client, "PUT", "/api/v1/admin/workflows/welcome_note", NOTE_ON_CREATE)
    made = client.post("/api/v1/lead", json={"last_name": "Roe", "company": "Initech"})
    assert created.status_code == made.status_code == 201
    jobs = job_rows(engine, system.workflow_jobs.c.workflow, system.workflow_jobs.c.record_id,
                    workflow="welcome_note")
    assert [tuple(j) for j in jobs] == [("welcome_note", made.json()["id"])]


def test_a_broken_workflow_is_refused_naming_the_place(client: TestClient) -> None:
    broken = {**NOTE_ON_CREATE, "actions": [{"kind": "update", "set": {"no_such_field": "1"}}]}
    answer = client.put("/api/v1/admin/workflows/broken", json=broken)
    assert answer.status_code == 422, answer.text
    assert "no_such_field" in answer.text and "broken" in answer.text


def test_a_packs_workflow_is_deactivated_by_name_and_given_back(client: TestClient) -> None:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    customised = {"entity": "lead", "active": False, "trigger": {"kind": "created"},
                  "actions": [{"kind": "assign", "strategy": "round_robin", "team": "North"}]}
    confirmed(client, "PUT", "/api/v1/admin/workflows/lead_round_robin", customised)
    client.post("/api/v1/lead", json={"last_name": "Doe", "company": "Acme"})
    names = [j.workflow for j in job_rows(engine)]
    assert "lead_round_robin" not in names
    confirmed(client, "DELETE", "/api/v1/admin/workflows/lead_round_robin", None)
    client.post("/api/v1/lead", json={"last_name": "Roe", "company": "Acme"})
    names = [j.workflow for j in job_rows(engine)]
    assert names.count("lead_round_robin") == 1
    refused = client.delete("/api/v1/admin/workflows/lead_round_robin")
    assert refused.status_code == 422 and "is defined by pack 'sales'" in refused.text


def _jobs(client: TestClient, workflow: str) -> list[tuple[str, int, str]]:
    t = system.workflow_jobs
    return [tuple(r) for r in job_rows(client.app.state.engine,  # type: ignore[attr-defined]
                                       t.c.trigger, t.c.record_id, t.c.entity, workflow=workflow)]


def test_every_surface_fires_workflows_form_api_and_bulk_edit(client: TestClient) -> None:
    confirmed(client, "PUT", "/api/v1/admin/workflows/account_watch",
              {"entity": "account", "trigger": {"kind": "updated", "fields": ["industry"]},
               "actions": [{"kind": "note", "text": "industry now {{ record.industry }}"}]})
    confirmed(client, "PUT", "/api/v1/admin/workflows/account_new",
              {"entity": "account", "trigger": {"kind": "created"}, "actions": [{"kind": "note",
                                                                                 "text": "new"}]})
    by_form = client.post("/e/account/new", data={"name": "Form Co"}, follow_redirects=False)
    assert by_form.status_code == 303, by_form.text
    by_api = client.post("/api/v1/account", json={"name": "Api Co"}).json()
    ids = [r[1] for r in _jobs(client, "account_new")]
    assert len(ids) == 2 and by_api["id"] in ids
    edited = client.post("/e/account/bulk", data={"ids": [str(i) for i in ids], "action": "set",
                                                  "field": "industry", "value": "technology"})
    assert edited.status_code == 200, edited.text
    assert sorted(r[1] for r in _jobs(client, "account_watch")) == sorted(ids)
