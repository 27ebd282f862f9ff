"""The one write pipeline (records/pipeline.py), through the HTTP API and the CLI: the form's
validate-on-change says what saving says, close dates, a field named `title`, the hooks,
and sample data for a pack with formulas and validation rules. Issue 10, section 1."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.cli import main
from slatecrm.platform.records.errors import WriteRefused
from slatecrm.platform.records.listing import ListQuery
from slatecrm.platform.records.pipeline import STEPS, Draft, WriteRequest
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.runtime import RuntimeHolder

from .defaults import field_types, signed_in
from .packs import install, write_pack

#: A job has a formula, a close date set by its pipeline and two validation rules.
JOB: dict[str, Any] = {
    "label": "Job",
    "title_field": "name",
    "fields": {
        "name": {"type": "text", "required": True},
        "amount": {"type": "integer"},
        "doubled": {"type": "integer", "formula": "amount * 2"},
        "phone": {"type": "text"},
        "email": {"type": "email"},
        "finished": {"type": "date", "label": "Finished on"},
        "customer": {"type": "reference", "target": "customer"},
    },
    "validations": [
        {"name": "small", "condition": "amount < 100", "message": "keep the amount under 100",
         "field": "amount"},
        {"name": "one_contact", "condition": "phone is blank or email is blank",
         "message": "give a phone or an e-mail, not both", "field": "email"},
        {"name": "named", "condition": "name != \"TBD\"", "message": "name the job"},
    ],
    "pipelines": {"flow": {"field": "status", "close_date_field": "finished", "stages": [
        {"key": "planned"},
        {"key": "done", "category": "won", "requires": ["finished"]},
        {"key": "dropped", "category": "lost"},
    ]}},
}
#: A customer has an optional `title` field (a job title); a task a required one.
CUSTOMER: dict[str, Any] = {"label": "Customer", "title_field": "name",
                            "fields": {"name": {"type": "text", "required": True}, "title": {"type": "text"}}}
TASK: dict[str, Any] = {"label": "Task", "title_field": "title",
                        "fields": {"title": {"type": "text", "required": True}}}
JSON = {"accept": "application/json"}


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    return write_pack(tmp_path, "workshop", "1.0.0", {"customer": CUSTOMER, "job": JOB, "task": TASK})


@pytest.fixture
def app_client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
               pack: Path) -> Iterator[TestClient]:
    from .defaults import make_app

    install(engine, registry, pack)
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def records_of(client: TestClient) -> RecordsService:
    service: RecordsService = client.app.state.records  # type: ignore[attr-defined]
    return service


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


# --- validate-on-change says what saving says -------------------------------------------------------
def test_validate_on_change_reports_the_validation_rules_saving_applies(app_client: TestClient) -> None:
    saved = app_client.post("/api/v1/job", json={"name": "Fix the roof", "amount": 150})
    assert saved.status_code == 422
    assert saved.json()["errors"] == {"amount": ["keep the amount under 100"]}
    checked = app_client.post("/e/job/validate", data={"name": "Fix the roof", "amount": "150"},
                              headers=JSON)
    assert checked.status_code == 200
    assert checked.json()["errors"] == saved.json()["errors"]
    # the form's htmx request for the field that changed gets the message in its error slot
    slot = app_client.post("/e/job/validate", data={"name": "Fix the roof", "amount": "150"},
                           headers={"hx-request": "true", "hx-source": "input#f-amount"})
    assert "keep the amount under 100" in slot.text

    job = app_client.post("/api/v1/job", json={"name": "Fix the roof", "amount": 50, "phone": "555"}).json()
    change = {"name": "Fix the roof", "amount": "50", "phone": "555", "email": "a@example.com"}
    refused = app_client.patch(f"/api/v1/job/{job['id']}", json={"email": "a@example.com", "version": 1})
    assert refused.status_code == 422
    checked = app_client.post(f"/e/job/{job['id']}/validate", data=change, headers=JSON)
    assert checked.json()["errors"] == refused.json()["errors"] == {
        "email": ["give a phone or an e-mail, not both"]}
    fine = app_client.post(f"/e/job/{job['id']}/validate", data={**change, "phone": ""}, headers=JSON)
    assert fine.json()["errors"] == {}
    # in the form, a rule over two fields shows its message whichever of them changed ...
    slots = app_client.post(f"/e/job/{job['id']}/validate", data=change,
                            headers={"hx-request": "true", "hx-source": "input#f-phone"}).text
    assert 'id="error-email" hx-swap-oob="true" role="status">give a phone or an e-mail, not both<' in slots
    # ... and a rule on the whole record in the form's record slot, like the save's alert
    named = app_client.post("/e/job/validate", data={"name": "TBD"},
                            headers={"hx-request": "true", "hx-source": "input#f-name"}).text
    assert 'id="error-" hx-swap-oob="true" role="status">name the job<' in named
    saved = app_client.post("/e/job/new", data={"name": "TBD"})
    assert saved.status_code == 422 and "name the job" in saved.text


# --- close dates -------------------------------------------------------------------------------------
def test_a_record_created_in_a_won_stage_gets_its_close_date_like_a_move(app_client: TestClient) -> None:
    made = app_client.post("/api/v1/job", json={"name": "Paint", "status": "done"})
    assert made.status_code == 201, made.text
    assert made.json()["finished"] == today()
    lost = app_client.post("/api/v1/job", json={"name": "Tile", "status": "dropped"}).json()
    assert lost["finished"] == today()
    given = app_client.post("/api/v1/job", json={"name": "Tile", "status": "done", "finished": "2026-01-05"})
    assert given.json()["finished"] == "2026-01-05"
    assert app_client.post("/e/job/validate", data={"name": "Paint", "status": "done"},
                           headers=JSON).json()["errors"] == {}
    bulk = app_client.post("/api/v1/job", json=[{"name": "A", "status": "done"}, {"name": "B"}])
    assert [r["finished"] for r in bulk.json()["data"]] == [today(), None]


def test_close_dates_keep_a_date_already_set_and_survive_a_reopen(app_client: TestClient) -> None:
    job = app_client.post("/api/v1/job", json={"name": "Paint", "finished": "2027-06-30"}).json()
    won = app_client.patch(f"/api/v1/job/{job['id']}", json={"status": "done", "version": 1})
    assert won.status_code == 200, won.text
    assert won.json()["finished"] == "2027-06-30"  # the user's date is kept, not overwritten
    reopened = app_client.patch(f"/api/v1/job/{job['id']}", json={"status": "planned", "version": 2}).json()
    assert reopened["finished"] == "2027-06-30"  # and kept when the record is reopened
    blank = app_client.post("/api/v1/job", json={"name": "Tile"}).json()
    lost = app_client.patch(f"/api/v1/job/{blank['id']}", json={"status": "dropped", "version": 1}).json()
    assert lost["finished"] == today()  # a blank close date is filled when the record closes
    again = app_client.patch(f"/api/v1/job/{blank['id']}", json={"status": "planned", "version": 2}).json()
    assert again["finished"] == today()


def test_bulk_edit_runs_every_record_through_the_pipeline(app_client: TestClient) -> None:
    made = app_client.post("/api/v1/job", json=[{"name": "A", "phone": "1"}, {"name": "B"},
                                                {"name": "C", "finished": "2027-01-02"}]).json()["data"]
    ids = [str(r["id"]) for r in made]
    email = app_client.post("/e/job/bulk", data={"ids": ids, "action": "set", "field": "email",
                                                 "value": "x@example.com"}, headers=JSON).json()
    assert email["done"] == [made[1]["id"], made[2]["id"]]  # a validation rule refuses the first one
    assert email["refused"] == {ids[0]: "email: give a phone or an e-mail, not both"}
    done = app_client.post("/e/job/bulk", data={"ids": ids, "action": "set", "field": "status",
                                                "value": "done"}, headers=JSON).json()
    assert done["done"] == [r["id"] for r in made]  # each enters the won stage with a close date
    finished = [app_client.get(f"/api/v1/job/{i}").json()["finished"] for i in ids]
    assert finished == [today(), today(), "2027-01-02"]


# --- a field named title -----------------------------------------------------------------------------
def test_a_field_named_title_is_an_ordinary_writable_field(app_client: TestClient) -> None:
    made = app_client.post("/api/v1/task", json={"title": "Fix the roof"})
    assert made.status_code == 201, made.text  # a required title field used to be "is required"
    body = made.json()
    assert (body["title"], body["_title"]) == ("Fix the roof", "Fix the roof")
    changed = app_client.patch(f"/api/v1/task/{body['id']}", json={"title": "Fix the porch", "version": 1})
    assert changed.json()["title"] == "Fix the porch"
    read = app_client.get(f"/api/v1/task/{body['id']}").json()
    assert read["title"] == "Fix the porch"
    # a record read back (display title included) may be sent back unchanged
    assert app_client.patch(f"/api/v1/task/{body['id']}", json=read).status_code == 200
    # an optional title (a job title) is kept, apart from the record's display title
    ceo = app_client.post("/api/v1/customer", json={"name": "Ada", "title": "CEO"}).json()
    assert (ceo["title"], ceo["_title"]) == ("CEO", "Ada")  # it used to be dropped silently
    assert app_client.get(f"/api/v1/customer/{ceo['id']}").json()["title"] == "CEO"
    plain = app_client.post("/api/v1/job", json={"name": "Paint", "title": "x"})
    assert plain.json()["errors"] == {"title": ["job has no field 'title'"]}
    schemas = app_client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    assert schemas["Task"]["properties"]["_title"]["readOnly"] is True
    assert schemas["Task"]["properties"]["title"]["title"] == "Title"
    assert "title" in schemas["TaskInput"]["properties"] and "title" in schemas["TaskInput"]["required"]
    # the form writes it too, and the record page's JSON twin shows both
    form = app_client.post("/e/customer/new", data={"name": "Grace", "title": "CTO"}, follow_redirects=False)
    assert form.status_code == 303, form.text
    page = app_client.get(form.headers["location"], headers=JSON).json()
    assert (page["record"]["title"], page["record"]["_title"]) == ("CTO", "Grace")
    assert "CTO" in app_client.get(form.headers["location"]).text


# --- the hooks ---------------------------------------------------------------------------------------
def test_before_save_hooks_change_what_is_saved_and_are_validated(app_client: TestClient) -> None:
    def price(conn: sa.Connection, request: WriteRequest, draft: Draft, context: object) -> None:
        if request.entity == "job" and draft.values.get("name", "").startswith("Quote"):
            draft.values["amount"] = len(draft.values["name"]) * 10

    records_of(app_client).pipeline.hooks.before_save.append(price)
    saved = app_client.post("/api/v1/job", json={"name": "Quote 1"}).json()
    assert (saved["amount"], saved["doubled"]) == (70, 140)  # formulas see the hook's change
    refused = app_client.post("/api/v1/job", json={"name": "Quote for the big roof"})
    assert refused.status_code == 422
    assert refused.json()["errors"] == {"amount": ["keep the amount under 100"]}
    checked = app_client.post("/e/job/validate", data={"name": "Quote for the big roof"}, headers=JSON)
    assert checked.json()["errors"] == {"amount": ["keep the amount under 100"]}


def test_an_authorise_hook_stops_a_write_before_anything_is_read(app_client: TestClient) -> None:
    service = records_of(app_client)
    job = app_client.post("/api/v1/job", json={"name": "Paint"}).json()
    seen: list[WriteRequest] = []

    def refuse(request: WriteRequest) -> None:
        seen.append(request)
        raise WriteRefused(f"you may not {request.action} {request.entity} records")

    service.pipeline.hooks.authorise.append(refuse)
    statements: list[str] = []

    def log(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    service.entity("job")  # the metamodel is loaded; what follows reads no record
    sa.event.listen(service.engine, "before_cursor_execute", log)
    try:
        created = app_client.post("/api/v1/job", json={"name": "Sweep"})
        updated = app_client.patch(f"/api/v1/job/{job['id']}", json={"name": "Sweep", "version": 1})
        deleted = app_client.delete(f"/api/v1/job/{job['id']}")
    finally:
        sa.event.remove(service.engine, "before_cursor_execute", log)
    assert [r.status_code for r in (created, updated, deleted)] == [403, 403, 403]
    assert created.json()["detail"] == "you may not create job records"
    assert [(r.action, r.record_ids) for r in seen] == [("create", (None,)), ("update", (job["id"],)),
                                                        ("delete", (job["id"],))]
    assert not [s for s in statements if "job" in s or "slate_history" in s], statements
    service.pipeline.hooks.authorise.clear()
    assert app_client.get(f"/api/v1/job/{job['id']}").json()["name"] == "Paint"


def test_after_commit_hooks_hear_of_committed_writes_only(app_client: TestClient) -> None:
    heard: list[tuple[str, list[str], list[list[str]]]] = []
    records_of(app_client).pipeline.hooks.after_commit.append(
        lambda saved: heard.append((saved.request.action, [r.values["name"] for r in saved.records],
                                    [sorted(c) for c in saved.changed])))
    job = app_client.post("/api/v1/job", json={"name": "Paint", "amount": 5}).json()
    assert app_client.post("/api/v1/job", json={"name": "Big", "amount": 500}).status_code == 422
    app_client.patch(f"/api/v1/job/{job['id']}", json={"amount": 6, "version": 1})
    app_client.post("/e/job/validate", data={"name": "x"}, headers=JSON)
    assert [(a, t) for a, t, _ in heard] == [("create", ["Paint"]), ("update", ["Paint"])]
    assert heard[1][2] == [["amount", "doubled"]]


def test_a_failing_after_commit_hook_does_not_hide_the_save(app_client: TestClient,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    def broken(saved: object) -> None:
        raise RuntimeError("the mail server is down")

    records_of(app_client).pipeline.hooks.after_commit.append(broken)
    made = app_client.post("/api/v1/job", json={"name": "Paint"})
    assert made.status_code == 201
    assert app_client.get(f"/api/v1/job/{made.json()['id']}").json()["name"] == "Paint"
    assert "the mail server is down" in caplog.text


def test_the_steps_are_documented_in_their_order() -> None:
    text = (Path(__file__).parent.parent / "docs" / "architecture.md").read_text()
    section = text.split("## From request to record", 1)[1]
    positions = [section.find(f"**{step}**") for step in STEPS]
    assert -1 not in positions, [s for s, p in zip(STEPS, positions, strict=True) if p == -1]
    assert positions == sorted(positions)


# --- sample data for any valid pack --------------------------------------------------------------------
def cli(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.output)
    return out


def test_sample_data_fills_a_pack_with_formulas_owner_rules_and_at_most_one_of(db_url: str,
                                                                               tmp_path: Path) -> None:
    owned = {**JOB, "validations": [*JOB["validations"], {
        "name": "owned", "condition": "owner is not blank", "message": "every job has an owner"}]}
    pack = write_pack(tmp_path, "workshop", "1.0.0", {"customer": CUSTOMER, "job": owned})
    cli("init", "--database", db_url, "--no-default-packs")
    cli("pack", "install", str(pack), "--database", db_url, "--yes")
    report = cli("sample-data", "--database", db_url, "--count", "120", "--seed", "5")
    assert report["created"] == {"customer": 120, "job": 120}
    engine = sa.create_engine(db_url)
    registry = field_types()
    records = RecordsService(engine, RuntimeHolder(engine, registry), registry)
    rows = records.page("job", ListQuery(limit=500)).records
    assert len(rows) == 120
    assert all(r.values["name"] for r in rows)
    assert all(r.values["amount"] is None or r.values["amount"] < 100 for r in rows)
    assert all(r.values["doubled"] == (None if r.values["amount"] is None else 2 * r.values["amount"])
               for r in rows)
    assert not [r for r in rows if r.values["phone"] and r.values["email"]]
    assert any(r.values["amount"] for r in rows) and any(r.values["phone"] or r.values["email"] for r in rows)
    assert all(r.system["owner"] for r in rows)
    assert all(r.values["finished"] for r in rows if r.values["status"] != "planned")
    engine.dispose()
