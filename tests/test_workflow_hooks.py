"""Inbound webhooks (POST /hooks/workflows/{name}) over real HTTP through the app: signed,
idempotent, mapped and matched, refused records keeping nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.storage import system
from slatecrm.platform.workflows.settings import ExecutionSettings
from slatecrm.platform.workflows.signing import signature_headers
from slatecrm.platform.workflows.worker import Worker

from .defaults import make_app
from .packs import install, write_files_pack
from .workflow_support import job_rows, sales_without_workflows

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

WEB_FORM = """\
    kind: workflow
    name: web_form
    entity: lead
    trigger:
      kind: webhook
      mapping:
        last_name: $.contact.last_name
        company: $.contact.company
        email: $.contact.emails[0]
        source: $.source
      idempotency_key: $.submission_id
    actions:
      - kind: update
        set:
          rating: "'hot'"
    """

RATE = """\
    kind: workflow
    name: rate_leads
    entity: lead
    trigger: {kind: created}
    actions:
      - kind: update
        set:
          job_title: "'Rated'"
    """


@pytest.fixture
def http(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Iterator[TestClient]:
    pack = write_files_pack(tmp_path, {"workflows/web_form.yaml": WEB_FORM, "workflows/rate.yaml": RATE},
                            name="hooks")
    install(engine, registry, "crm-core", sales_without_workflows(tmp_path), pack)  # only the test's run
    app = make_app(db_url)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.engine.dispose()


def post(http: TestClient, body: Any, *, key: str | None = "k-1", name: str = "web_form",
         secret: bytes | None = None, raw: bytes | None = None, **headers: str) -> Any:
    data = raw if raw is not None else json.dumps(body).encode()
    records = http.app.state.records  # type: ignore[attr-defined]
    secret = secret if secret is not None else records.secrets.get(f"workflow-inbound:{name}")
    signed = signature_headers(secret, data, key or "unused", name, int(time.time()))
    if key is None:
        del signed["Idempotency-Key"]
    return http.post(f"/hooks/workflows/{name}", content=data,
                     headers={"Content-Type": "application/json", **signed, **headers})


def form(email: str = "ada@example.com", last_name: str = "Lovelace", **extra: Any) -> dict[str, Any]:
    return {"submission_id": "s-1", "source": "web",
            "contact": {"last_name": last_name, "company": "Analytical", "emails": [email]}, **extra}


def rows(http: TestClient, table: sa.Table, **where: Any) -> list[Any]:
    engine: sa.Engine = http.app.state.engine  # type: ignore[attr-defined]
    if table is system.workflow_jobs:
        return job_rows(engine, **where)
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table).where(*[table.c[k] == v for k, v in where.items()])
                                 .order_by(*table.primary_key.columns)).all())


def leads(http: TestClient) -> list[Any]:
    snapshot = http.app.state.records.full_snapshot()  # type: ignore[attr-defined]
    return rows(http, snapshot.entities["lead"].table)


def run_worker(http: TestClient) -> int:
    state = http.app.state  # type: ignore[attr-defined]
    return Worker(state.engine, state.records, ExecutionSettings(environ={}), name="test").run_until_idle()


def test_a_signed_delivery_creates_a_record_and_a_job_a_worker_runs(http: TestClient) -> None:
    answer = post(http, form())
    assert answer.status_code == 202, answer.text
    made = answer.json()
    assert made["created"] is True
    [lead] = leads(http)
    assert lead.id == made["record_id"]
    assert (lead.last_name, lead.company, lead.email, lead.source) == ("Lovelace", "Analytical",
                                                                       "ada@example.com", "web")
    jobs = rows(http, system.workflow_jobs, workflow="web_form")
    assert [(j.id, j.trigger, j.record_id, j.status) for j in jobs] == [
        (made["job_id"], "webhook", lead.id, "pending")]
    assert jobs[0].event["body"] == form()
    # The record's creation fired the entity's own workflows too, in the same transaction.
    assert [j.trigger for j in rows(http, system.workflow_jobs, workflow="rate_leads")] == ["created"]
    assert run_worker(http) == 2
    [run] = rows(http, system.workflow_runs, workflow="web_form")
    assert (run.trigger, run.status, run.record_id, run.job_id) == ("webhook", "done", lead.id,
                                                                     made["job_id"])
    assert (leads(http)[0].rating, leads(http)[0].job_title) == ("hot", "Rated")


def test_a_bad_signature_is_refused_and_keeps_nothing(http: TestClient) -> None:
    answer = post(http, form(), secret=b"not the secret")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert "signature does not match" in answer.json()["detail"]
    unsigned = http.post("/hooks/workflows/web_form", json=form())
    assert unsigned.status_code == 401 and "X-SlateCRM-Timestamp" in unsigned.json()["detail"]
    assert leads(http) == [] and rows(http, system.workflow_jobs) == []


def test_a_replayed_delivery_is_answered_as_a_duplicate_and_runs_nothing(http: TestClient) -> None:
    first = post(http, form())
    assert first.status_code == 202
    again = post(http, form())
    assert again.status_code == 200
    assert again.json() == {"duplicate": True, **{k: first.json()[k] for k in ("job_id", "record_id")}}
    # The key from the body's path ($.submission_id) when the header has none.
    by_body = post(http, form(submission_id="s-2"), key=None)
    assert by_body.status_code == 202
    repeated = post(http, form(submission_id="s-2"), key=None)
    assert repeated.status_code == 200 and repeated.json()["duplicate"] is True
    assert len(leads(http)) == 2
    assert len(rows(http, system.workflow_jobs, workflow="web_form")) == 2
    assert {(d.key, d.record_id) for d in rows(http, system.workflow_deliveries)
            if not d.key.startswith("signed:")} == {("k-1", first.json()["record_id"]),
                                                    ("s-2", by_body.json()["record_id"])}


def test_a_captured_request_sent_again_counts_once_whatever_its_key(http: TestClient) -> None:
    """The Idempotency-Key header is not signed: the signed request itself is a key too."""
    secret = http.app.state.records.secrets.get("workflow-inbound:web_form")  # type: ignore[attr-defined]
    data = json.dumps(form(submission_id="s-9")).encode()
    signed = {"Content-Type": "application/json",
              **signature_headers(secret, data, "k-1", "web_form", int(time.time()))}
    first = http.post("/hooks/workflows/web_form", content=data, headers=signed)
    assert first.status_code == 202
    replayed = http.post("/hooks/workflows/web_form", content=data,
                         headers={**signed, "Idempotency-Key": "k-2"})
    assert replayed.status_code == 200
    assert replayed.json() == {"duplicate": True, "job_id": first.json()["job_id"],
                               "record_id": first.json()["record_id"]}
    keyless = {k: v for k, v in signed.items() if k != "Idempotency-Key"}
    data_without = json.dumps({"contact": {"last_name": "Noether", "company": "Erlangen"}}).encode()
    keyless.update(signature_headers(secret, data_without, "unused", "web_form", int(time.time())))
    del keyless["Idempotency-Key"]
    assert http.post("/hooks/workflows/web_form", content=data_without, headers=keyless).status_code == 202
    again = http.post("/hooks/workflows/web_form", content=data_without, headers=keyless)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert len(leads(http)) == 2


def test_a_key_older_than_a_day_is_forgotten(http: TestClient) -> None:
    engine: sa.Engine = http.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(system.workflow_deliveries.insert().values(
            workflow="web_form", key="k-1", received_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=25),
            job_id=None, record_id=None))
    assert post(http, form()).status_code == 202
    assert [(d.key, d.job_id is not None) for d in rows(http, system.workflow_deliveries)
            if not d.key.startswith("signed:")] == [("k-1", True)]


def test_match_updates_the_record_with_the_same_value(http: TestClient, registry: FieldTypeRegistry,
                                                      tmp_path: Path) -> None:
    matching = WEB_FORM.replace("idempotency_key: $.submission_id",
                                "idempotency_key: $.submission_id\n      match: email")
    files = {"workflows/web_form.yaml": matching, "workflows/rate.yaml": RATE}
    pack = write_files_pack(tmp_path / "2", files, name="hooks", version="1.1.0")
    install(http.app.state.engine, registry, "crm-core", sales_without_workflows(tmp_path),  # type: ignore[attr-defined]
            pack)
    http.app.state.records.holder.refresh()  # type: ignore[attr-defined]
    first = post(http, form(last_name="Byron"))
    assert first.status_code == 202 and first.json()["created"] is True
    second = post(http, form(last_name="Lovelace"), key="k-2")
    assert second.status_code == 202, second.text
    assert second.json()["created"] is False
    assert second.json()["record_id"] == first.json()["record_id"]
    [lead] = leads(http)
    assert (lead.last_name, lead.version) == ("Lovelace", 2)
    other = post(http, form(email="grace@example.com"), key="k-3")
    assert other.json()["created"] is True
    assert len(leads(http)) == 2
    assert [j.record_id for j in rows(http, system.workflow_jobs, workflow="web_form")] == [
        lead.id, lead.id, other.json()["record_id"]]


def test_a_refused_record_is_422_and_nothing_is_kept(http: TestClient) -> None:
    answer = post(http, form(email="not an address", last_name=""))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert set(answer.json()["errors"]) >= {"email", "last_name"}
    assert leads(http) == []
    assert rows(http, system.workflow_jobs) == [] and rows(http, system.workflow_deliveries) == []
    # Its key was not kept: the corrected delivery is taken.
    assert post(http, form()).status_code == 202


def test_unknown_and_other_workflows_are_404_and_bodies_must_be_objects(http: TestClient) -> None:
    unknown = post(http, form(), name="nothing_here")
    other = post(http, form(), name="rate_leads")  # active, but not a webhook workflow
    assert unknown.status_code == other.status_code == 404
    assert unknown.json() == other.json()
    listed = post(http, [form()])
    assert listed.status_code == 400 and "JSON object" in listed.json()["detail"]
    broken = post(http, None, raw=b'{"a": ')
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["detail"]
    assert leads(http) == []


def test_concurrent_duplicates_make_one_record(http: TestClient) -> None:
    """Deliveries of one key at the same moment: one is taken, the others are duplicates
    (PostgreSQL: the second waits on the key's row, then fails on it; SQLite: one writer)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post(http, form()), range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
    taken = next(a.json() for a in answers if a.status_code == 202)
    assert all(a.json() == {"duplicate": True, "job_id": taken["job_id"], "record_id": taken["record_id"]}
               for a in answers if a.status_code == 200)
    assert len(leads(http)) == 1
    assert len(rows(http, system.workflow_jobs, workflow="web_form")) == 1
