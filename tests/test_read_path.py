"""The one read path, through HTTP, on SQLite and PostgreSQL: statement counts per page,
one connection per request, a record-level filter injected at its one place reaching
every surface, one JSON format for moments, and references named by their titles."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.platform.identity.principal import WORK_OPTION
from slatecrm.platform.records import reading
from slatecrm.platform.records.compiled import CompiledEntity
from slatecrm.platform.records.scope import OnEventLoop
from slatecrm.platform.records.service import RecordsService

from .test_api_live_editing import confirmed

#: The head-revision poll (at most one indexed query per poll interval and process) is
#: kept out of the counts: it is not part of any page's work, and whether it falls in a
#: given request depends on the clock. It runs on the request's connection all the same.
POLL = re.compile(r"\bslate_revision\b")
MOMENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@dataclass
class Statements:
    texts: list[str] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)
    polls: int = 0
    #: What authentication read (web/authentication.py), counted apart from the page's work.
    authentication: list[str] = field(default_factory=list)


@contextmanager
def counted(client: TestClient) -> Iterator[Statements]:
    """The statements the app's engine runs meanwhile (and on how many connections). A
    session's use noted (a write, at most once a minute, on a connection of its own) is left out."""
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    seen = Statements()

    def before(conn: sa.Connection, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        options = context.execution_options if context is not None else conn.get_execution_options()
        if options.get(WORK_OPTION) == "authentication":
            if statement.lstrip().upper().startswith("SELECT"):
                seen.authentication.append(statement)  # the session's check, before the read path
                seen.connections.add(id(conn.connection.dbapi_connection))
            return
        if POLL.search(statement):
            seen.polls += 1
        else:
            seen.texts.append(statement)
        seen.connections.add(id(conn.connection.dbapi_connection))

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


def made(client: TestClient, entity: str, **values: Any) -> dict[str, Any]:
    response = client.post(f"/api/v1/{entity}", json=values)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def crm(client: TestClient) -> dict[str, Any]:
    """An account with records in all of its related lists, a history and stage visits."""
    acme = made(client, "account", name="Acme")
    parent = made(client, "account", name="Acme Holdings")
    assert client.patch(f"/api/v1/account/{acme['id']}",
                        json={"parent_account": parent["id"], "version": 1}).status_code == 200
    jane = made(client, "contact", name={"first": "Jane", "last": "Doe"}, account=acme["id"])
    deal = made(client, "opportunity", name="Big deal", account=acme["id"], primary_contact=jane["id"],
                amount={"amount": "1200", "currency": "USD"})
    assert client.patch(f"/api/v1/opportunity/{deal['id']}",
                        json={"stage": "qualification", "version": 1}).status_code == 200
    made(client, "activity", subject="Call Jane", account=acme["id"], contact=jane["id"])
    made(client, "lead", last_name="Roe", company="Roe Ltd", status="converted", converted_account=acme["id"])
    for number in range(3):
        made(client, "opportunity", name=f"Deal {number}", account=acme["id"])
    return {"account": acme, "parent": parent, "contact": jane, "deal": deal}


def test_statement_counts_of_a_get_a_record_page_and_a_list(client: TestClient, crm: dict[str, Any]) -> None:
    deal, acme = crm["deal"], crm["account"]
    client.get("/api/v1/opportunity")  # the revision's snapshot is built by a first request
    with counted(client) as get:
        body = client.get(f"/api/v1/opportunity/{deal['id']}").json()
    assert body["account"] == {"id": acme["id"], "title": "Acme"}
    assert body["primary_contact"]["title"] == "Jane Doe"
    # Reference titles joined, no second round trip; a field stored apart (the opportunity's
    # many-to-many `contacts`) is one more statement, its links, never one per reference.
    assert len(get.texts) == 2, get.texts
    assert "x_opportunity_contact" not in get.texts[0] and "FROM x_opportunity_contact" in get.texts[1]
    # The session seen lately: its principal is cached, checked by the identity generation
    # alone, on the connection the page then reads on (one checkout, one round trip).
    assert len(get.authentication) == 1 and "slate_identity_generation" in get.authentication[0], \
        get.authentication
    assert len(get.connections) == 1

    for path in (f"/e/account/{acme['id']}", f"/e/account/{acme['id']}.json"):
        with counted(client) as page:
            response = client.get(path)
        assert response.status_code == 200
        # ... and one for the links of the related opportunities' many-to-many `contacts`, all at once.
        assert len(page.texts) <= 7, "\n\n".join(page.texts)
        assert sum("FROM x_opportunity_contact" in text for text in page.texts) == 1, page.texts
        assert len(page.connections) == 1
    html = client.get(f"/e/account/{acme['id']}").text
    for related in ("Big deal", "Jane", "Call Jane", "Roe", "Deal 2"):
        assert related in html  # all five related lists were read in those statements
    history = re.sub(r"\s+", " ", html.split("<h2>History</h2>")[1])
    assert "Parent account:</span> Acme Holdings" in history  # its title, read in the same budget

    for path in ("/e/opportunity", "/e/opportunity.json", "/api/v1/opportunity"):
        with counted(client) as listed:
            assert client.get(path).status_code == 200
        # Seven opportunities, one short first page: its rows are its count, no COUNT runs;
        # the links of the many-to-many `contacts` of every row in one more statement; the
        # page (not the API) reads the reader's personal views for its switcher in a third.
        texts = [text for text in listed.texts if text != "BEGIN"]
        switcher = [] if path.startswith("/api/") else ["FROM slate_saved_view"]
        assert len(texts) == 2 + len(switcher), texts
        assert "FROM x_opportunity_contact" in texts[1], texts
        assert all(wanted in texts[2] for wanted in switcher), texts
        assert len(listed.authentication) == 1
        assert len(listed.connections) == 1


def test_a_request_reads_one_revision_even_when_another_is_applied_meanwhile(
        client: TestClient, crm: dict[str, Any]) -> None:
    """The snapshot is pinned by the request: a revision applied while it runs changes
    nothing in it (the next request sees the new one)."""
    app = client.app
    records: RecordsService = app.state.records  # type: ignore[attr-defined]
    pinned = records.pinned()
    try:
        before = pinned.snapshot().revision
        confirmed(client, "PUT", "/api/v1/admin/entities/opportunity/fields/rating", {"type": "integer"})
        assert records.snapshot().revision == before + 1
        assert pinned.snapshot().revision == before
        assert "rating" not in pinned.entity("opportunity").fields
        assert "rating" not in pinned.get("opportunity", crm["deal"]["id"]).values
    finally:
        pinned.close()
    assert "rating" in client.get(f"/api/v1/opportunity/{crm['deal']['id']}").json()


def test_one_format_for_moments_in_every_response(client: TestClient, crm: dict[str, Any]) -> None:
    deal = crm["deal"]
    record = client.get(f"/api/v1/opportunity/{deal['id']}").json()
    history = client.get(f"/api/v1/opportunity/{deal['id']}/history").json()["data"]
    visits = client.get(f"/api/v1/opportunity/{deal['id']}/stages").json()["data"]
    twin = client.get(f"/e/opportunity/{deal['id']}.json").json()
    moments = [record["created_at"], record["updated_at"], *(h["changed_at"] for h in history),
               *(v["entered_at"] for v in visits), visits[0]["left_at"], twin["record"]["updated_at"],
               *(h["changed_at"] for h in twin["history"])]
    assert all(MOMENT.match(m) for m in moments), moments


def test_references_in_titles_and_history_show_the_referenced_title(client: TestClient) -> None:
    confirmed(client, "PUT", "/api/v1/admin/entities/site", {
        "title_template": "{account} – {code}",
        "fields": {"code": {"type": "text", "required": True},
                   "account": {"type": "reference", "target": "account", "required": True}}})
    confirmed(client, "PUT", "/api/v1/admin/entities/visit", {
        "title_field": "site",
        "fields": {"site": {"type": "reference", "target": "site"}, "note": {"type": "text"}}})
    acme = made(client, "account", name="Acme")
    globex = made(client, "account", name="Globex")
    site = made(client, "site", code="North", account=acme["id"])
    assert site["_title"] == "Acme – North"  # not "1 – North"
    visit = made(client, "visit", site=site["id"], note="first")
    assert visit["_title"] == "Acme – North"  # a title made of a reference whose title has one too
    assert client.get(f"/api/v1/visit/{visit['id']}").json()["site"]["title"] == "Acme – North"
    listed = client.get("/api/v1/site").json()["data"]
    assert [s["_title"] for s in listed] == ["Acme – North"]
    assert "Acme – North" in client.get("/e/visit").text

    client.patch(f"/api/v1/site/{site['id']}", json={"account": globex["id"], "version": 1})
    page = client.get(f"/e/site/{site['id']}").text
    assert "<h1>Globex – North</h1>" in page
    history = re.sub(r"\s+", " ", page.split("<h2>History</h2>")[1])
    assert "<del>Acme</del> → Globex" in history
    assert f"#{acme['id']}" not in history and f"#{globex['id']}" not in history


SECRET = "Secret"


def test_a_filter_at_the_one_place_reaches_every_surface(client: TestClient) -> None:
    """Each surface is read once without the filter (it shows the secret, so the check
    can fail) and once with a filter injected at the read path's one place."""
    visible = made(client, "account", name="Visible Co")
    hidden = made(client, "account", name=f"{SECRET} Corp")
    carl = made(client, "contact", name={"last": "Carl"}, account=hidden["id"])  # visible, refers to hidden
    shown = made(client, "opportunity", name="Open deal", account=visible["id"],
                 amount={"amount": "100", "currency": "USD"})
    covert = made(client, "opportunity", name=f"{SECRET} deal", account=visible["id"],
                  amount={"amount": "900", "currency": "USD"})
    client.patch(f"/api/v1/opportunity/{covert['id']}", json={"stage": "qualification",
                                                             "primary_contact": carl["id"], "version": 1})
    hidden_ids = {"account": hidden["id"], "opportunity": covert["id"]}

    def read_filter(ce: CompiledEntity) -> sa.ColumnElement[bool] | None:
        return ce.table.c.id != hidden_ids[ce.name] if ce.name in hidden_ids else None

    texts = {
        "api list": lambda: client.get("/api/v1/account").text,
        "api related list": lambda: client.get(f"/api/v1/account/{visible['id']}/related/opportunity").text,
        "api search": lambda: client.get("/api/v1/opportunity", params={"q": SECRET}).text,
        "api reference title": lambda: client.get(f"/api/v1/contact/{carl['id']}").text,
        "list page": lambda: client.get("/e/opportunity").text,
        "list page reference cells": lambda: client.get("/e/contact").text,
        "search page": lambda: str(client.get("/search.json", params={"q": SECRET}).json()["results"]),
        "record page related list": lambda: client.get(f"/e/account/{visible['id']}").text,
        "record page reference and history": lambda: client.get(f"/e/contact/{carl['id']}").text,
        "board columns": lambda: client.get("/e/opportunity/board/sales").text,
        "board json": lambda: client.get("/e/opportunity/board/sales.json").text,
        "csv export": lambda: client.get("/e/opportunity/export.csv").text,
        "csv export reference titles": lambda: client.get("/e/contact/export.csv").text,
        "reference options": lambda: client.get("/e/account/options", params={"q": SECRET}).text,
    }
    gone = {
        "api get": f"/api/v1/account/{hidden['id']}",
        "record page": f"/e/account/{hidden['id']}",
        "history": f"/api/v1/account/{hidden['id']}/history",
        "stage history": f"/api/v1/opportunity/{covert['id']}/stages",
        "related of a hidden record": f"/api/v1/account/{hidden['id']}/related/contact",
        "edit form": f"/e/opportunity/{covert['id']}/edit",
    }
    before = {name: read() for name, read in texts.items()}
    assert [name for name, text in before.items() if SECRET not in text] == []
    assert all(client.get(path).status_code == 200 for path in gone.values())
    board = client.get("/e/opportunity/board/sales.json").json()
    assert sum(c["count"] for c in board["columns"]) == 2

    records: RecordsService = client.app.state.records  # type: ignore[attr-defined]
    records.read_filter = read_filter
    after = {name: read() for name, read in texts.items()}
    assert [name for name, text in after.items() if SECRET in text] == []
    assert {name: client.get(path).status_code for name, path in gone.items()} == {name: 404 for name in gone}
    assert "Open deal" in after["list page"] and "Carl" in after["csv export reference titles"]
    board = client.get("/e/opportunity/board/sales.json").json()
    assert sum(c["count"] for c in board["columns"]) == 1
    qualification = next(c for c in board["columns"] if c["stage"] == "qualification")
    assert (qualification["count"], qualification["records"]) == (0, [])
    assert "900" not in qualification["total"]  # the hidden deal's amount is not added up
    listed = client.get("/api/v1/account", params={"count": "true"}).json()
    assert (listed["count"], [a["id"] for a in listed["data"]]) == (1, [visible["id"]])
    rows = list(csv.reader(io.StringIO(client.get("/e/opportunity/export.csv").text)))
    assert [r[0] for r in rows[1:]] == [str(shown["id"])]


def test_reading_on_the_event_loop_thread_is_refused(client: TestClient) -> None:
    """Database work belongs in the thread pool: a read from the loop is a bug the tests
    find, not a stall production finds."""
    records: RecordsService = client.app.state.records  # type: ignore[attr-defined]
    pinned = records.pinned()

    async def on_the_loop() -> None:
        pinned.page("account")

    try:
        with pytest.raises(OnEventLoop, match="event loop's thread"):
            asyncio.run(on_the_loop())
        assert pinned.page("account").count == 0  # the same call off the loop is fine
    finally:
        pinned.close()


def test_a_board_reads_its_columns_in_one_statement_and_wide_stacks_are_split(
        client: TestClient, crm: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    client.get("/e/opportunity/board/sales")
    with counted(client) as board:
        columns = client.get("/e/opportunity/board/sales.json").json()["columns"]
    # The totals, every column's cards, and the many-to-many `contacts` of all cards at once.
    assert len(board.texts) == 3, board.texts
    assert "FROM x_opportunity_contact" in board.texts[2], board.texts
    cards = {c["stage"]: [r["_title"] for r in c["records"]] for c in columns}
    assert cards["qualification"] == ["Big deal"]
    assert sorted(cards["prospecting"]) == ["Deal 0", "Deal 1", "Deal 2"]
    assert {c["stage"]: c["count"] for c in columns if c["count"]} == {"qualification": 1, "prospecting": 3}

    monkeypatch.setattr(reading, "STACK_COLUMNS", 60)  # as if the related entities were very wide
    with counted(client) as page:
        html = client.get(f"/e/account/{crm['account']['id']}").text
    assert len(page.texts) > 6  # the related lists took several statements, and read the same
    for related in ("Big deal", "Jane", "Call Jane", "Roe", "Deal 2"):
        assert related in html


def test_a_list_counts_on_its_first_page_only_and_later_pages_answer_the_same_count(
        client: TestClient) -> None:
    for number in range(5):
        made(client, "account", name=f"Account {number}")
    client.get("/api/v1/account")  # the revision's snapshot is built by a first request
    with counted(client) as first:
        body = client.get("/api/v1/account", params={"sort": "name", "limit": 2, "count": "true"}).json()
    # The page, then its count (on PostgreSQL after the SET LOCAL of the count's time budget).
    statements = [t for t in first.texts if not t.startswith("SET LOCAL statement_timeout")]
    assert body["count"] == 5 and len(statements) == 2, first.texts
    with counted(client) as later:
        second = client.get("/api/v1/account", params={"sort": "name", "limit": 2, "count": "true",
                                                       "after": body["next_cursor"]}).json()
    assert [r["name"] for r in second["data"]] == ["Account 2", "Account 3"]
    assert second["count"] == 5 and len(later.texts) == 1, later.texts  # no COUNT
    assert not any("count(" in text.lower() for text in later.texts)
    third = client.get("/api/v1/account", params={"sort": "name", "limit": 2, "count": "true",
                                                  "after": second["next_cursor"]}).json()
    assert third["count"] == 5 and [r["name"] for r in third["data"]] == ["Account 4"]
    # The same cursor given to another query pages on, and that query counts for itself.
    other = client.get("/api/v1/account", params={"sort": "name", "limit": 2, "name__gte": "Account 3",
                                                  "count": "true", "after": body["next_cursor"]}).json()
    assert other["count"] == 2 and [r["name"] for r in other["data"]] == ["Account 3", "Account 4"]


def test_a_short_first_page_is_its_own_count_in_one_statement(client: TestClient) -> None:
    for number in range(3):
        made(client, "account", name=f"Account {number}")
    client.get("/api/v1/account")
    for params, expected in (({"limit": 3}, 3), ({"limit": 50}, 3), ({"q": "no such text"}, 0)):
        with counted(client) as short:
            body = client.get("/api/v1/account", params={**params, "count": "true"}).json()
        assert body["count"] == expected and "next_cursor" not in body
        # PostgreSQL's search page: a bounded walk, then every match when it finds no next
        # page (records/searchwalk.py); a page statement either way, never a COUNT.
        engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
        searched = "q" in params and engine.dialect.name == "postgresql"
        assert len(short.texts) == (2 if searched else 1), short.texts
        assert not any("count(" in text.lower() for text in short.texts), short.texts


def test_a_list_not_asked_for_its_count_runs_no_count_and_answers_none(client: TestClient) -> None:
    """docs/decisions.md, "The total of an API list is asked for": without `count=true` an
    API list is its page only, one statement, on every page, and on a related list too."""
    account = made(client, "account", name="Acme")["id"]
    for number in range(5):
        made(client, "contact", name={"last": f"Doe {number}"}, account=account)
    client.get("/api/v1/contact")  # the revision's snapshot is built by a first request
    count_keys = {"count", "count_capped", "count_estimate"}
    # (path, parameters, statements per page: a related list reads its record first)
    pages = [("/api/v1/contact", {"sort": "name", "limit": 2}, 1),
             ("/api/v1/contact", {"sort": "name", "limit": 2, "count": "false"}, 1),
             (f"/api/v1/account/{account}/related/contact", {"sort": "name", "limit": 2}, 2)]
    for path, params, statements in pages:
        names: list[str] = []
        url: str | None = path
        while url:
            with counted(client) as seen:
                body = client.get(url, params=params if url == path else None).json()
            assert len(seen.texts) == statements, seen.texts  # no COUNT, no estimate, no time budget
            assert not any("count(" in text.lower() for text in seen.texts), seen.texts
            assert not count_keys & set(body), body
            names += [r["name"]["last"] for r in body["data"]]
            url = body["next"]
            assert url is None or "count=" not in url or "count=false" in url
        assert names == [f"Doe {n}" for n in range(5)], path  # every record once, in order
    # A cursor of a list that did not count, given with count=true, counts that list.
    first = client.get("/api/v1/contact", params={"sort": "name", "limit": 2}).json()
    later = client.get("/api/v1/contact", params={"sort": "name", "limit": 2, "count": "true",
                                                  "after": first["next_cursor"]}).json()
    assert (later["count"], later["count_capped"]) == (5, False)
    assert [r["name"]["last"] for r in later["data"]] == ["Doe 2", "Doe 3"]


def test_blanks_sort_where_the_database_keeps_them_and_pages_see_each_record_once(
        client: TestClient) -> None:
    """docs/api.md, "Blanks in sorts": SQLite keeps blanks smallest, PostgreSQL largest."""
    dates = ["2027-01-01", None, "2027-03-01", None, "2027-02-01"]
    account = made(client, "account", name="Acme")["id"]
    ids = [made(client, "opportunity", name=f"Deal {n}", account=account, close_date=d)["id"]
           for n, d in enumerate(dates)]
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    blanks = sorted((i for i, d in zip(ids, dates, strict=True) if d is None), reverse=True)
    dated = [ids[2], ids[4], ids[0]]  # March, February, January
    expected = [*dated, *blanks] if engine.dialect.name == "sqlite" else [*blanks, *dated]
    seen: list[int] = []
    params: dict[str, Any] = {"sort": "-close_date", "limit": 2}
    while True:
        body = client.get("/api/v1/opportunity", params=params).json()
        seen += [r["id"] for r in body["data"]]
        if "next_cursor" not in body:
            break
        params["after"] = body["next_cursor"]
    assert seen == expected
    ascending = client.get("/api/v1/opportunity", params={"sort": "close_date"}).json()["data"]
    assert [r["id"] for r in ascending] == list(reversed(expected))
