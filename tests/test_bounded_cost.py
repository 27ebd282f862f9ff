"""A bounded cost for every request (issue 11, section 3), through HTTP in-process on
SQLite and PostgreSQL: each bound is the app's (records/limits.py, from the environment),
refused with the documented status and a message naming the parameter and the limit, and
a statement that runs past the statement timeout answers 503, never 500."""

from __future__ import annotations

import html
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records import export
from slatecrm.platform.records.limits import DEFAULT, VARIABLES, Limits
from slatecrm.platform.records.listing import ListQuery
from slatecrm.platform.web.app import app_from_environment

from .defaults import Client, signed_in
from .pack_templates import PackTemplates


def refused(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def says(response: Any, status: int, text: str) -> None:
    """A UI page's refusal (an HTML error page, or the page's JSON twin): the status and
    the message as a person reads it."""
    assert response.status_code == status, response.text[:500]
    assert text in html.unescape(response.text), response.text[:2000]


# --- configuration ---------------------------------------------------------------------------

def test_the_limits_come_from_the_environment_with_documented_defaults() -> None:
    assert Limits.from_environment({}) == DEFAULT
    assert Limits(search_text_max=1_000, sort_keys_max=10, page_size_max=500, columns_max=50,
                             batch_max=1_000, statement_timeout_ms=30_000) == DEFAULT
    changed = Limits.from_environment({"SLATECRM_MAX_SEARCH_TEXT": "20",
                                       "SLATECRM_STATEMENT_TIMEOUT_MS": "5"})
    assert (changed.search_text_max, changed.statement_timeout_ms, changed.batch_max) == (20, 5, 1_000)
    for bad in ("0", "-3", "1e3", "ten"):
        with pytest.raises(ValueError, match=f"SLATECRM_MAX_BATCH={bad!r}: expected a whole number"):
            Limits.from_environment({"SLATECRM_MAX_BATCH": bad})
    assert set(VARIABLES) == set(Limits.__dataclass_fields__)


def test_the_served_app_reads_its_limits_from_the_environment(
        db_url: str, engine: sa.Engine, registry: FieldTypeRegistry, pack_templates: PackTemplates,
        monkeypatch: pytest.MonkeyPatch) -> None:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    monkeypatch.setenv("SLATECRM_DATABASE_URL", db_url)
    monkeypatch.setenv("SLATECRM_MAX_SEARCH_TEXT", "5")
    app = app_from_environment()
    try:
        with signed_in(app, raise_server_exceptions=False) as http:
            body = refused(http.get("/api/v1/account?q=abcdef"), 400)
            assert body["errors"] == {"q": ["is 6 characters long; a search is at most 5"]}
            assert http.get("/api/v1/account?q=abcde").status_code == 200
    finally:
        app.state.engine.dispose()


# --- the parameters of a list ----------------------------------------------------------------

def test_search_text_over_the_bound_is_refused(bounded: Client) -> None:
    http = bounded(search_text_max=20)
    body = refused(http.get("/api/v1/account", params={"q": "x" * 21}), 400)
    assert body["errors"] == {"q": ["is 21 characters long; a search is at most 20"]}
    assert http.get("/api/v1/account", params={"q": "x" * 20}).status_code == 200
    page = http.get("/e/account", params={"q": "x" * 21})
    assert page.status_code == 400 and "a search is at most 20" in page.text
    assert http.get("/search", params={"q": "x" * 21}).status_code == 400


def test_sort_keys_over_the_bound_are_refused(bounded: Client) -> None:
    http = bounded(sort_keys_max=2)
    body = refused(http.get("/api/v1/account?sort=name,-id,created_at"), 400)
    assert body["errors"] == {"sort": ["gives 3 sort keys; at most 2 are allowed"]}
    assert http.get("/api/v1/account?sort=name,-id").status_code == 200


def test_page_size_over_the_bound_is_refused_and_documented(bounded: Client) -> None:
    http = bounded(page_size_max=5)
    body = refused(http.get("/api/v1/account?limit=6"), 400)
    assert body["errors"] == {"limit": ["must be between 1 and 5"]}
    assert http.get("/api/v1/account?limit=5").status_code == 200
    listing = http.get("/api/v1/openapi.json").json()["paths"]["/api/v1/account"]["get"]
    limit = [p for p in listing["parameters"] if p["name"] == "limit"]
    assert limit[0]["schema"]["maximum"] == 5


def test_list_columns_must_be_known_fields_each_once_and_few(bounded: Client) -> None:
    http = bounded(columns_max=3)
    for path in ("/e/account", "/e/account.json", "/e/account/export.csv"):
        repeated = http.get(path, params={"columns": ",".join(["name"] * 6000)})
        says(repeated, 400, "names 6000 columns; at most 3 are allowed")
        assert len(repeated.content) < 10_000, len(repeated.content)
        says(http.get(path, params={"columns": "name,industry,name"}), 400, "'name' is named more than once")
        says(http.get(path, params={"columns": "name,nope"}), 400, "account has no field 'nope'")
    assert refused(http.get("/e/account.json?columns=nope"), 400)["errors"] == {
        "columns": ["account has no field 'nope'"]}
    chosen = http.get("/e/account.json", params={"columns": "name,industry"})
    assert chosen.json()["columns"] == ["name", "industry"]


def test_the_csv_export_writes_the_columns_chosen(bounded: Client) -> None:
    http = bounded()
    assert http.post("/api/v1/account", json={"name": "Acme", "industry": "finance"}).status_code == 201
    lines = http.get("/e/account/export.csv?columns=name").text.splitlines()
    assert lines == ["id,Account name", lines[1]] and lines[1].endswith(",Acme")


# --- bulk requests ---------------------------------------------------------------------------

def test_a_bulk_create_over_the_batch_bound_is_refused_before_anything_is_written(bounded: Client) -> None:
    http = bounded(batch_max=3)
    body = refused(http.post("/api/v1/account", json=[{"name": f"A{i}"} for i in range(4)]), 413)
    assert body["detail"] == ("the body holds 4 records; a bulk create takes at most 3 "
                              "(SLATECRM_MAX_BATCH): send them in batches")
    assert http.get("/api/v1/account?count=true").json()["count"] == 0
    assert http.post("/api/v1/account", json=[{"name": f"A{i}"} for i in range(3)]).status_code == 201


def test_a_bulk_edit_of_more_ids_than_a_form_takes_names_the_batch_bound(bounded: Client) -> None:
    """Starlette parses at most 1,000 form fields by default and refused 5,000 ids with its
    own message; the batch bound (1,000 by default) is the answer now."""
    http = bounded()
    edit = http.post("/e/account/bulk", data={"ids": [str(i) for i in range(1, 5001)], "action": "delete"},
                     headers={"accept": "application/json"})
    assert refused(edit, 413)["detail"] == ("ids: 5000 records selected; a bulk edit takes at most 1000 "
                                            "(SLATECRM_MAX_BATCH)")


def test_a_bulk_edit_over_the_batch_bound_is_refused(bounded: Client) -> None:
    http = bounded(batch_max=3)
    ids = [http.post("/api/v1/account", json={"name": f"A{i}"}).json()["id"] for i in range(4)]
    edit = http.post("/e/account/bulk", data={"ids": [str(i) for i in ids], "action": "delete"},
                     headers={"accept": "application/json"})
    body = refused(edit, 413)
    assert body["detail"] == "ids: 4 records selected; a bulk edit takes at most 3 (SLATECRM_MAX_BATCH)"
    assert http.get("/api/v1/account?count=true").json()["count"] == 4


# --- the statement timeout -------------------------------------------------------------------

def _many_accounts(http: TestClient, engine: sa.Engine, doublings: int) -> None:
    """2^doublings accounts, copied in SQL (the API would take minutes)."""
    assert http.post("/api/v1/account", json={"name": "Acme", "industry": "finance"}).status_code == 201
    table = http.app.state.records.entity("account").table  # type: ignore[attr-defined]
    copied = [c.name for c in table.columns if c.name != "id"]
    with engine.begin() as conn:
        for _ in range(doublings):
            conn.execute(table.insert().from_select(copied, sa.select(*[table.c[c] for c in copied])))


TIMED_OUT = ("the query took longer than {} s (the statement timeout, SLATECRM_STATEMENT_TIMEOUT_MS) "
             "and was stopped; nothing was changed. Narrow the filter or search, or try again later")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_stops_a_statement_past_the_deadline(bounded: Client, engine: sa.Engine) -> None:
    """A search that matches 131,072 rows, sorted on a field without an index, cannot end
    within 1 ms (the full-text index finds them, the sort reads them all): SQLite's progress handler
    interrupts it, and each surface answers 503 with the limit (the export before it
    starts streaming)."""
    http = bounded(statement_timeout_ms=1)
    _many_accounts(http, engine, 17)
    message = TIMED_OUT.format("0.001")
    assert refused(http.get("/api/v1/account?q=acme&sort=-employees"), 503)["detail"] == message
    for path in ("/e/account.json?q=acme&sort=-employees", "/e/account/export.csv?q=acme&sort=-employees",
                 "/e/account?q=acme&sort=-employees"):
        says(http.get(path), 503, message)
    # The connection is usable afterwards, and a short statement is not stopped.
    assert http.get("/api/v1/account?limit=1").status_code == 200


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_cancels_a_statement_past_the_timeout(bounded: Client, engine: sa.Engine) -> None:
    """A statement waiting on a lock held by another transaction is still running: the
    server's statement_timeout cancels it, for a read, an export and a write alike."""
    http = bounded(statement_timeout_ms=200)
    assert http.post("/api/v1/account", json={"name": "Acme"}).status_code == 201
    table = http.app.state.records.entity("account").table  # type: ignore[attr-defined]
    message = TIMED_OUT.format("0.2")
    with engine.connect() as holder:
        holder.exec_driver_sql(f'LOCK TABLE "{table.name}" IN ACCESS EXCLUSIVE MODE')
        assert refused(http.get("/api/v1/account"), 503)["detail"] == message
        says(http.get("/e/account/export.csv"), 503, message)
        assert refused(http.post("/api/v1/account", json={"name": "Later"}), 503)["detail"] == message
        holder.rollback()
    assert http.get("/api/v1/account?count=true").json()["count"] == 1


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_bulk_create_stopped_during_its_copy_is_a_503(bounded: Client, engine: sa.Engine) -> None:
    """PostgreSQL writes a bulk create's rows with COPY (records/inserts.py), outside the
    engine's statement events: a COPY the statement timeout cancels is the same 503 as any
    other statement's, never a 500. Here the COPY waits for the account another transaction
    holds FOR UPDATE (the foreign-key check of its rows needs a KEY SHARE lock on it); the
    reads before it (does the account exist?) take no lock and pass."""
    http = bounded(statement_timeout_ms=300)
    made = http.post("/api/v1/account", json={"name": "Acme"})
    assert made.status_code == 201
    account = made.json()["id"]
    contacts = [{"name": {"first": f"Ann {i}", "last": "Lee"}, "account": account} for i in range(20)]
    table = http.app.state.records.entity("account").table  # type: ignore[attr-defined]
    with engine.connect() as holder:
        holder.exec_driver_sql(f'SELECT id FROM "{table.name}" WHERE id = {int(account)} FOR UPDATE')
        assert refused(http.post("/api/v1/contact", json=contacts), 503)["detail"] == TIMED_OUT.format("0.3")
        holder.rollback()
    assert http.get("/api/v1/contact?count=true").json()["count"] == 0  # nothing was written
    assert http.post("/api/v1/contact", json=contacts).status_code == 201


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_the_csv_export_streams_in_pages_each_bounded(bounded: Client, engine: sa.Engine) -> None:
    """More records than a page: the export reads them in pages of the page-size bound and
    writes every one (each page is its own statement, under the statement timeout)."""
    http = bounded(page_size_max=5)
    _many_accounts(http, engine, 4)
    lines = http.get("/e/account/export.csv?columns=name").text.splitlines()
    assert lines[0] == "id,Account name" and len(lines) == 17
    assert all(line.endswith(",Acme") for line in lines[1:])
    records = http.app.state.records  # type: ignore[attr-defined]
    chunks = list(export.csv_rows(records, "account", ListQuery(), ["name"]))
    assert [chunk.count("Acme") for chunk in chunks] == [5, 5, 5, 1]
