"""The audit log, as an administrator or a security reviewer meets it, on SQLite and
PostgreSQL: the database refuses to change it, each source writes its event with who did it,
record history names the token a change came through, and `slatecrm audit`, the admin API
and the admin page find events by user, action, object and time.

Clients sign in through the real path (a session cookie or an API token; tests/signed_in.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner, Result

import slatecrm
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import installer
from slatecrm.platform.cli import main
from slatecrm.platform.identity import audit, tokens, users
from slatecrm.platform.storage import system
from slatecrm.platform.storage.engine import create_engine

from .pack_templates import PackTemplates
from .packs import install, write_pack
from .signed_in import Site, site
from .test_api_live_editing import confirmed

DEFAULT_CONFIG = Path(slatecrm.__file__).parent / "default_config"
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def add_user(engine: sa.Engine, email: str, name: str, *roles: str) -> int:
    user_id = users.add(engine, email, name).id
    with engine.begin() as conn:
        for role in roles:
            conn.execute(system.user_roles.insert().values(user_id=user_id, role=role))
    return user_id


@pytest.fixture
def web(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
        pack_templates: PackTemplates) -> Iterator[Site]:
    """The app over the default packs, with clients signed in as its users."""
    yield from site(engine, db_url, pack_templates, registry)


def rows(engine: sa.Engine, action: str | None = None) -> list[Any]:
    log = system.audit
    query = sa.select(log).order_by(log.c.id)
    if action:
        query = query.where(log.c.action == action)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


# --- append-only --------------------------------------------------------------------------------
def test_the_database_refuses_to_change_or_delete_events(engine: sa.Engine) -> None:
    installer.create_system_tables(engine)
    installer.create_system_tables(engine)  # idempotent: init runs it on every database
    with engine.begin() as conn:
        audit.record(conn, "login", user_id=1, user_name="Ann", detail={"kept": True})
    log = system.audit
    for statement in (log.update().values(action="nothing happened"), log.delete(),
                      log.update().where(log.c.id == 1).values(detail={})):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    if engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE slate_audit")
    [event] = rows(engine)
    assert (event.action, event.user_name, event.detail) == ("login", "Ann", {"kept": True})
    with engine.begin() as conn:  # appending still works
        audit.record(conn, "logout", user_id=1)
    assert [e.action for e in rows(engine)] == ["login", "logout"]


# --- events from each source ----------------------------------------------------------------------
def run(*args: str, database: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database", database], catch_exceptions=False)


def shipped_version(pack: str) -> str:
    """The version of a default pack as shipped (its pack.yaml), so a release of it changes
    nothing here."""
    manifest = yaml.safe_load((DEFAULT_CONFIG / pack / "pack.yaml").read_text(encoding="utf-8"))
    return str(manifest["version"])


def test_init_and_pack_installs_are_logged_with_their_revision(db_url: str, tmp_path: Path,
                                                               registry: FieldTypeRegistry) -> None:
    assert run("init", database=db_url).exit_code == 0
    engine = create_engine(db_url)
    try:
        [init] = rows(engine, "platform.init")
        assert init.detail["new"] is True and init.user_id is None and init.user_name
        installs = {e.object_id: e.detail for e in rows(engine, "pack.install")}
        assert installs == {
            name: {"name": name, "version": shipped_version(name), "previous_version": None, "revision": 1}
            for name in ("crm-core", "sales")}
        fleet = {"vehicle": {"fields": {"plate": {"type": "text"}}}}
        needs = {"crm-core": "^0.1.0"}
        install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", fleet, requires=needs))
        install(engine, registry, write_pack(tmp_path, "fleet", "1.1.0", fleet, requires=needs))
        [upgrade] = rows(engine, "pack.upgrade")
        assert (upgrade.object_kind, upgrade.object_id, upgrade.user_name) == ("pack", "fleet", "test")
        assert upgrade.detail == {"name": "fleet", "version": "1.1.0", "previous_version": "1.0.0",
                                  "revision": 3}
        assert run("init", database=db_url).exit_code == 0  # again: an upgrade of nothing, logged too
        assert [e.detail["new"] for e in rows(engine, "platform.init")] == [True, False]
    finally:
        engine.dispose()


def test_a_metamodel_change_and_an_export_name_who_did_them(web: Site, engine: sa.Engine) -> None:
    admin = add_user(engine, "ada@example.com", "Ada Admin", "administrator")
    http = web.client(admin)
    done = confirmed(http, "PUT", "/api/v1/admin/entities/vehicle",
                     {"label": "Vehicle", "fields": {"plate": {"type": "text", "required": True}}})
    assert not rows(engine, "metamodel.change")[:-1]  # the dry run logged nothing
    [change] = rows(engine, "metamodel.change")
    assert (change.user_id, change.user_name, change.object_kind, change.object_id) == (
        admin, "Ada Admin", "revision", str(done["revision"]))
    assert change.detail == {"summary": "define entity vehicle", "revision": done["revision"],
                             "changed": ["entity/vehicle"]}

    for name in ("Acme", "Acme East", "Globex"):
        assert http.post("/api/v1/account", json={"name": name}).status_code == 201
    exported = http.get("/e/account/export.csv?q=acme&columns=name")
    assert exported.status_code == 200 and len(exported.text.splitlines()) == 3
    [export] = rows(engine, "records.export")
    assert (export.user_id, export.object_kind, export.object_id) == (admin, "entity", "account")
    assert export.detail == {"entity": "account", "filter": {"q": ["acme"], "columns": ["name"]},
                             "rows": 2, "complete": True}


# --- who changed a record, and through which token ----------------------------------------------
def test_a_tokens_use_is_audited_once_a_minute_not_per_request(web: Site, engine: sa.Engine) -> None:
    ann = add_user(engine, "ann@example.com", "Ann Lee", "administrator")
    with engine.begin() as conn:
        token_id, secret = tokens.create(conn, ann, "reports", ["read"], expires_at=None,
                                         now=dt.datetime.now(dt.UTC))
    by_token = web.client(token=secret)
    for _ in range(3):
        assert by_token.get("/api/v1/account").status_code == 200
    with engine.connect() as conn:
        log = system.audit.c
        used = conn.execute(sa.select(log.user_id, log.token_id, log.object_id)
                            .where(log.action == "token.use")).all()
        last_used = conn.execute(sa.select(system.api_tokens.c.last_used_at)
                                 .where(system.api_tokens.c.id == token_id)).scalar_one()
    assert [tuple(row) for row in used] == [(ann, token_id, str(token_id))]
    assert last_used is not None


def test_changes_made_with_a_token_say_so_in_the_history(web: Site, engine: sa.Engine) -> None:
    ann = add_user(engine, "ann@example.com", "Ann Lee", "administrator")
    with engine.begin() as conn:
        token_id, secret = tokens.create(conn, ann, "nightly sync", ["read", "write"], expires_at=None,
                                         now=dt.datetime.now(dt.UTC))
    by_token = web.client(token=secret)
    by_session = web.client(ann)

    made = by_token.post("/api/v1/account", json={"name": "Acme"}).json()
    batch = by_token.post("/api/v1/account", json=[{"name": "Initech"}, {"name": "Globex"}]).json()["data"]
    contact = by_token.post("/api/v1/contact", json={"name": {"first": "Joe", "last": "Bloggs"},
                                                     "account": batch[0]["id"]})
    assert contact.status_code == 201, contact.text
    changed = by_session.patch(f"/api/v1/account/{made['id']}", json={"name": "Acme Corp"},
                               headers={"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    assert by_token.delete(f"/api/v1/account/{batch[0]['id']}").status_code == 204

    via = {"id": token_id, "name": "nightly sync"}
    history = by_session.get(f"/api/v1/account/{made['id']}/history").json()["data"]
    assert [(h["action"], h["changed_by"], h["token"]) for h in history] == [
        ("create", ann, via), ("update", ann, None)]
    assert by_session.get(f"/api/v1/account/{batch[1]['id']}/history").json()["data"][0]["token"] == via
    deleted = by_session.get(f"/api/v1/account/{batch[0]['id']}/history").json()["data"]
    assert [(h["action"], h["token"]) for h in deleted] == [("create", via), ("delete", via)]
    with engine.connect() as conn:  # the contact the delete cleared or removed: the token too
        cascaded = conn.execute(sa.select(system.history.c.token_id).where(
            system.history.c.entity == "contact", system.history.c.version > 1)).scalars().all()
    assert cascaded and set(cascaded) == {token_id}

    page = by_session.get(f"/e/account/{made['id']}")
    assert page.status_code == 200 and "via token nightly sync" in page.text
    twin = by_session.get(f"/e/account/{made['id']}.json").json()
    assert [h.get("token") for h in twin["history"]] == ["nightly sync", None]


# --- reading: the CLI --------------------------------------------------------------------------
def seeded(engine: sa.Engine) -> dict[str, int]:
    """Two users and a handful of events a day apart, oldest first."""
    ann = add_user(engine, "ann@example.com", "Ann Lee")
    bob = add_user(engine, "bob@example.com", "Bob Stone")
    events = [("login", ann, None, None), ("login_failed", None, None, None),
              ("pack.install", None, "pack", "sales"), ("login", bob, None, None),
              ("records.export", bob, "entity", "lead"), ("logout", ann, None, None)]
    names = {ann: "Ann Lee", bob: "Bob Stone"}
    with engine.begin() as conn:
        for day, (action, user, kind, object_id) in enumerate(events):
            audit.record(conn, action, user_id=user, user_name=names.get(user or 0),
                         object_kind=kind, object_id=object_id, at=T0 + dt.timedelta(days=day),
                         detail={"day": day})
    return {"ann": ann, "bob": bob}


def audit_json(db_url: str, *args: str) -> list[dict[str, Any]]:
    result = run("audit", "--json", *args, database=db_url)
    assert result.exit_code == 0, result.output
    found: list[dict[str, Any]] = json.loads(result.output)
    return found


def test_the_cli_filters_the_log(db_url: str, engine: sa.Engine) -> None:
    installer.create_system_tables(engine)
    who = seeded(engine)
    # (adding the two users is audited too, as user.add: not the events seeded here)
    days = lambda *args: [e["detail"]["day"] for e in audit_json(db_url, *args)  # noqa: E731
                          if e["action"] != "user.add"]
    assert days() == [5, 4, 3, 2, 1, 0]  # newest first
    assert days("--action", "login") == [3, 1, 0]  # a prefix: login_failed too
    assert days("--user", "ANN@example.com") == [5, 0]
    assert days("--user", str(who["bob"])) == [4, 3]
    assert days("--object", "pack/sales") == [2]
    assert days("--object", "entity") == [4]
    assert days("--since", "2026-03-02", "--until", "2026-03-04") == [3, 2, 1]  # until: the whole day
    assert days("--since", "2026-03-02T09:00:00+00:00", "--until", "2026-03-03T09:00") == [2, 1]
    assert days("--limit", "2") == [5, 4]
    [event] = audit_json(db_url, "--object", "entity/lead")
    assert event == {"id": event["id"], "at": "2026-03-05T09:00:00Z", "action": "records.export",
                     "user": {"id": who["bob"], "name": "Bob Stone"}, "token": None, "address": None,
                     "object": {"kind": "entity", "id": "lead"}, "detail": {"day": 4}}

    table = run("audit", "--user", "bob@example.com", database=db_url)
    assert table.exit_code == 0 and "records.export" in table.output and "Ann Lee" not in table.output
    bad = run("audit", "--since", "yesterday", "--limit", "0", database=db_url)
    assert bad.exit_code == 2
    assert "--since: 'yesterday' is not a date" in bad.output and "--limit: '0' is not a number" in bad.output
    unknown = run("audit", "--user", "nobody@example.com", database=db_url)
    assert unknown.exit_code == 2
    assert "there is no user with the id or e-mail 'nobody@example.com'" in unknown.output


def test_the_cli_merges_record_changes_in(web: Site, engine: sa.Engine, db_url: str) -> None:
    ann = add_user(engine, "ann@example.com", "Ann Lee", "administrator")
    with engine.begin() as conn:
        token_id, secret = tokens.create(conn, ann, "importer", ["write"], expires_at=None,
                                         now=dt.datetime.now(dt.UTC))
        audit.record(conn, "login", user_id=ann, user_name="Ann Lee")
    http = web.client(token=secret)
    made = http.post("/api/v1/account", json={"name": "Acme", "industry": "finance"}).json()
    assert http.patch(f"/api/v1/account/{made['id']}", json={"name": "Acme Corp"},
                      headers={"If-Match": '"1"'}).status_code == 200
    merged = audit_json(db_url, "--records", "--user", "ann@example.com")
    account = f"account/{made['id']}"
    assert [(e["action"], (e["object"] or {}).get("id")) for e in merged if e["action"] != "token.use"] == [
        ("record.update", account), ("record.create", account), ("login", None)]
    assert [e["object"]["id"] for e in merged if e["action"] == "token.use"] == [str(token_id)]
    assert merged[0]["detail"] == {"version": 2, "fields": ["name"]}
    assert {"industry", "name"} <= set(merged[1]["detail"]["fields"])
    assert merged[0]["token"] == {"id": token_id, "name": "importer"}
    assert merged[0]["user"] == {"id": ann, "name": "Ann Lee"}
    only = audit_json(db_url, "--records", "--action", "record.up")
    assert [e["action"] for e in only] == ["record.update"]
    one = audit_json(db_url, "--records", "--object", f"record/{account}")
    assert [e["action"] for e in one] == ["record.update", "record.create"]
    assert audit_json(db_url, "--records", "--action", "login") == audit_json(db_url, "--action", "login")


# --- reading: the API and the page ---------------------------------------------------------------
def test_the_api_filters_pages_and_refuses_bad_parameters(web: Site, engine: sa.Engine) -> None:
    who = seeded(engine)
    auditor = add_user(engine, "carol@example.com", "Carol Audit", "administrator")
    http = web.client(auditor)

    def days(url: str) -> list[int]:
        answer = http.get(url)
        assert answer.status_code == 200, answer.text
        return [e["detail"]["day"] for e in answer.json()["data"] if "day" in e["detail"]]

    assert days("/api/v1/admin/audit?action=login") == [3, 1, 0]
    assert days(f"/api/v1/admin/audit?user={who['ann']}") == [5, 0]
    assert days("/api/v1/admin/audit?user=bob@example.com&object=entity/lead") == [4]
    assert days("/api/v1/admin/audit?since=2026-03-03&until=2026-03-04") == [3, 2]

    seen: list[int] = []  # keyset pages of 2, through the `next` links
    url: str | None = "/api/v1/admin/audit?limit=2&until=2026-03-31"
    while url:
        page = http.get(url).json()
        assert len(page["data"]) <= 2
        seen += [e["detail"]["day"] for e in page["data"]]
        url = page["next"]
        if url:
            assert page["next_cursor"] and "limit=2" in url and "until=2026-03-31" in url
    assert seen == [5, 4, 3, 2, 1, 0]

    for query, parameter, message in [
        ("colour=red", "colour", "is not a filter of the audit log"),
        ("limit=0", "limit", "'0' is not a number from 1 to 1000"),
        ("limit=abc", "limit", "is not a number"),
        ("since=soon", "since", "'soon' is not a date"),
        ("after=-4", "after", "is not a cursor this log gave"),
        ("action=a&action=b", "action", "is given more than once"),
        ("user=nobody@example.com", "user", "there is no user with the id or e-mail"),
    ]:
        refused = http.get(f"/api/v1/admin/audit?{query}")
        assert refused.status_code == 422, query
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert any(message in m for m in refused.json()["errors"][parameter]), (query, refused.json())


def test_only_holders_of_view_audit_see_the_log(web: Site, engine: sa.Engine) -> None:
    seeded(engine)
    nobody = web.client(add_user(engine, "dan@example.com", "Dan Sales", "sales_rep"))
    for path in ("/api/v1/admin/audit", "/admin/audit", "/admin/audit.json"):
        refused = nobody.get(path)
        assert refused.status_code == 403, path
        assert "Ann Lee" not in refused.text and "view audit" in refused.text
    auditor = web.client(add_user(engine, "carol@example.com", "Carol Audit", "administrator"))
    page = auditor.get("/admin/audit?action=login&user=ann@example.com&since=")
    assert page.status_code == 200
    assert "Ann Lee" in page.text and "Bob Stone" not in page.text and "Audit log" in page.text
    bad = auditor.get("/admin/audit?since=soon")
    assert bad.status_code == 422 and "&#39;soon&#39; is not a date" in bad.text
    twin = auditor.get("/admin/audit.json?action=records.").json()
    assert [e["action"] for e in twin["data"]] == ["records.export"]
    documented = auditor.get("/api/v1/openapi.json").json()["paths"]["/api/v1/admin/audit"]["get"]
    assert {"200", "403", "422"} <= set(documented["responses"])
    assert {p["name"] for p in documented["parameters"]} == {
        "user", "action", "object", "since", "until", "limit", "after"}
