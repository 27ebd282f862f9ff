"""Roles enforced at the one read path and the one write pipeline, on SQLite and PostgreSQL:
object level (an entity not readable is 404, an action not allowed 403), field level (a
hidden field is absent from every answer, a read-only one refused), record level (own,
team, subordinates, sharing rules; records out of reach are 404, never 403, on every
surface: list, get, search, board, totals, export, related, history, titles, pickers),
and writes checked before and after the change."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.roles import ACTIONS, EntityGrant, Role, SharingRule
from slatecrm.platform.identity import memberships, principals, tokens, users
from slatecrm.platform.identity.access import ADMINISTRATOR
from slatecrm.platform.identity.principal import SYSTEM, Principal
from slatecrm.platform.records import bulk
from slatecrm.platform.records.errors import RecordNotFound, UnknownEntity, ValidationFailed, WriteRefused
from slatecrm.platform.records.listing import ListQuery
from slatecrm.platform.records.reading import RESTRICTED
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage import system as storage_system
from slatecrm.platform.storage.runtime import build_runtime

from .defaults import make_app, signed_in, user_id
from .pack_templates import PackTemplates
from .packs import install, write_pack

#: A value only the hidden field holds: it must never appear in an answer to the rep.
SENTINEL = "SENTINEL-7f3a9c-hidden"

ROLES = (
    Role("rep", "Sales representative", entities=(
        EntityGrant("account", frozenset({"read"}), "all",
                    fields=(("annual_revenue", "hidden"), ("description", "hidden"),
                            ("billing_address", "hidden"))),
        EntityGrant("contact", frozenset({"read"}), "all"),
        EntityGrant("opportunity", frozenset({"create", "read", "update"}), "own",
                    sharing=(SharingRule("account.name = 'Shared Co'", "read"),
                             SharingRule("next_step = 'team effort'", "edit")),
                    fields=(("description", "hidden"), ("close_date", "read_only"))),
    )),
    Role("manager", "Sales manager", platform=frozenset({"view_audit"}), entities=(
        EntityGrant("opportunity", frozenset(ACTIONS), "subordinates"),
        EntityGrant("*", frozenset({"read", "export"}), "all"),
    )),
    Role("teamlead", "Team lead", entities=(EntityGrant("opportunity", frozenset({"read"}), "team"),)),
    Role("outsider", "No sales", entities=(EntityGrant("contact", frozenset({"read"}), "own"),)),
    # A pack cannot redefine the built-in administrator: this grants nothing more or less.
    Role(ADMINISTRATOR, "Fake admin", entities=()),
)


@dataclass
class World:
    records: RecordsService
    app: Any
    ids: dict[str, int]
    people: dict[str, Principal]
    clients: dict[str, TestClient]
    pinned: list[RecordsService] = dataclasses.field(default_factory=list)

    def service(self, who: str) -> RecordsService:
        return self.pin(self.people[who])

    def pin(self, principal: Principal) -> RecordsService:
        """A service acting as `principal` (one read connection, closed after the test)."""
        pinned = self.records.pinned(principal)
        self.pinned.append(pinned)
        return pinned


def _signed_in_principal(engine: sa.Engine, email: str) -> Principal:
    """The principal authentication makes of `email`'s session (roles, team, manager from the tables)."""
    with engine.connect() as conn:
        loaded = principals.load(conn, user_id(engine, email), "session")
    assert loaded is not None
    return loaded


def _principal(owner: int, name: str, roles: set[str], **more: Any) -> Principal:
    return Principal(user_id=owner, name=name, via="session", roles=frozenset(roles), **more)


@pytest.fixture
def world(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
          pack_templates: PackTemplates) -> Iterator[World]:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    app = make_app(db_url, body_limit=64 * 1024)
    records: RecordsService = app.state.records
    runtime = records.holder.current()
    records.holder._runtime = build_runtime(  # roles are not stored with revisions yet (helper "roles")
        runtime.revision, dataclasses.replace(runtime.metamodel, roles=ROLES), registry, engine.dialect.name)
    boss = user_id(engine, "boss@example.com", roles={"manager"})
    rep = users.add(engine, "rep@example.com", "Rep", manager="boss@example.com").id
    with engine.begin() as conn:
        conn.execute(storage_system.user_roles.insert().values(user_id=rep, role="rep"))
    peer = user_id(engine, "peer@example.com", roles={"teamlead"})
    other = user_id(engine, "other@example.com", roles={"outsider", "no such role"})
    user_id(engine, "fake.admin@example.com", roles={"rep"})
    user_id(engine, "admin@example.com", roles={ADMINISTRATOR})
    memberships.add_team(engine, "East")
    for email in ("peer@example.com", "rep@example.com"):
        memberships.change(engine, email, add_teams=["East"])
    emails = {"rep": "rep@example.com", "boss": "boss@example.com", "lead": "peer@example.com",
              "outsider": "other@example.com", "fake_admin": "fake.admin@example.com",
              "admin": "admin@example.com"}
    people = {who: _signed_in_principal(engine, email) for who, email in emails.items()}
    system = records  # the system: sample data, the CLI
    shared_co = system.create("account", {"name": "Shared Co",
                                          "annual_revenue": {"amount": "777", "currency": "USD"}})
    acme = system.create("account", {"name": "Acme", "annual_revenue": {"amount": "123", "currency": "USD"},
                                     "description": SENTINEL, "billing_address": {"city": "Sentinelville"}})
    jane = system.create("contact", {"name": {"first": "Jane", "last": "Doe"}, "account": acme.id})
    mine = system.create("opportunity", {"name": "Mine deal", "account": acme.id, "owner": rep,
                                         "amount": {"amount": "100", "currency": "USD"},
                                         "description": SENTINEL})
    theirs = system.create("opportunity", {"name": "Secret deal of Other", "account": acme.id,
                                           "owner": other, "amount": {"amount": "5000", "currency": "USD"},
                                           "primary_contact": jane.id})
    shared = system.create("opportunity", {"name": "Shared deal", "account": shared_co.id, "owner": other})
    editable = system.create("opportunity", {"name": "Team effort deal", "account": shared_co.id,
                                             "owner": boss, "next_step": "team effort"})
    activity = system.create("activity", {"subject": "Call about Secret deal of Other", "account": acme.id})
    ids = {"boss": boss, "rep": rep, "peer": peer, "other": other, "shared_co": shared_co.id,
           "acme": acme.id, "jane": jane.id, "mine": mine.id, "theirs": theirs.id, "shared": shared.id,
           "editable": editable.id, "activity": activity.id}
    clients = {who: signed_in(app, email, raise_server_exceptions=False) for who, email in emails.items()}
    with TestClient(app, raise_server_exceptions=False):
        made = World(records, app, ids, people, clients)
        yield made
        for pinned in made.pinned:
            pinned.close()
    app.state.engine.dispose()


def names(page: Any) -> set[str]:
    return {r.values["name"] for r in page.records}


# --- record level, through the service -------------------------------------------------------------
def test_own_scope_and_sharing_rules_select_the_records_a_rep_may_read(world: World) -> None:
    rep = world.service("rep")
    assert names(rep.page("opportunity")) == {"Mine deal", "Shared deal", "Team effort deal"}
    assert rep.get("opportunity", world.ids["mine"]).values["name"] == "Mine deal"
    with pytest.raises(RecordNotFound):
        rep.get("opportunity", world.ids["theirs"])
    with pytest.raises(RecordNotFound):
        rep.history("opportunity", world.ids["theirs"])
    with pytest.raises(RecordNotFound):
        rep.stage_history("opportunity", world.ids["theirs"])
    assert names(rep.page("opportunity", ListQuery(search="Secret"))) == set()
    assert names(rep.related("account", world.ids["acme"], "opportunity")) == {"Mine deal"}


def test_subordinates_and_team_scopes(world: World) -> None:
    assert names(world.service("boss").page("opportunity")) == {"Mine deal", "Team effort deal"}
    assert names(world.service("lead").page("opportunity")) == {"Mine deal"}
    assert names(world.service("admin").page("opportunity")) == {
        "Mine deal", "Secret deal of Other", "Shared deal", "Team effort deal"}
    assert len(world.records.page("opportunity").records) == 4  # the system: unrestricted


def test_an_entity_not_readable_is_unknown_and_unknown_roles_grant_nothing(world: World) -> None:
    outsider = world.service("outsider")
    for entity in ("opportunity", "account", "lead"):
        with pytest.raises(UnknownEntity):
            outsider.page(entity)
    with pytest.raises(UnknownEntity):
        outsider.create("opportunity", {"name": "x", "account": world.ids["acme"]})
    assert outsider.page("contact").records == []  # own contacts only: none
    assert set(outsider.compiled()) == {"contact"}


def test_a_pack_role_named_administrator_is_not_the_administrator(world: World) -> None:
    with pytest.raises(UnknownEntity):
        world.pin(_principal(world.ids["other"], "x", {"nobody"})).page("account")
    assert len(world.service("admin").page("opportunity").records) == 4


# --- field level --------------------------------------------------------------------------------------
def test_hidden_fields_are_absent_and_cannot_be_filtered_sorted_or_written(world: World) -> None:
    rep = world.service("rep")
    record = rep.get("opportunity", world.ids["mine"])
    assert "description" not in record.values
    assert "description" not in rep.as_json(record)
    assert "annual_revenue" not in rep.get("account", world.ids["acme"]).values
    for query in (ListQuery(expression="description = 'x'"), ListQuery(sort=("description",))):
        with pytest.raises(ValidationFailed) as refused:
            rep.page("opportunity", query)
        assert SENTINEL not in str(refused.value)
    with pytest.raises(ValidationFailed) as refused:
        rep.update("opportunity", world.ids["mine"], {"description": "new"}, version=record.version)
    assert refused.value.errors == {"description": ["you cannot change this field"]}
    stored = world.records.get("opportunity", world.ids["mine"]).values["description"]
    assert stored == SENTINEL
    # A change by the rep keeps the hidden value, and its history shows none of it.
    changed = rep.update("opportunity", world.ids["mine"], {"next_step": "call"}, version=record.version)
    assert "description" not in changed.values
    assert world.records.get("opportunity", world.ids["mine"]).values["description"] == SENTINEL
    for entry in rep.history("opportunity", world.ids["mine"]):
        assert "description" not in entry.changes and SENTINEL not in str(entry.changes)


def test_a_search_does_not_confirm_what_a_hidden_field_holds(world: World) -> None:
    rep = world.service("rep")
    assert names(world.records.page("account", ListQuery(search="Sentinelville"))) == {"Acme"}
    assert names(rep.page("account", ListQuery(search="Sentinelville"))) == set()
    assert names(rep.page("account", ListQuery(search="Acme"))) == {"Acme"}
    # The words of the fields the rep sees are still found: a part of an address, a tag (a
    # JSON list, read as its text on PostgreSQL too).
    world.records.update("account", world.ids["acme"], {"shipping_address": {"city": "Shipton"},
                                                        "tags": ["goldtier"]}, version=1)
    assert names(rep.page("account", ListQuery(search="Shipton"))) == {"Acme"}
    assert names(rep.page("account", ListQuery(search="goldtier"))) == {"Acme"}
    assert names(rep.page("account", ListQuery(search="Sentinelville"))) == set()
    assert "Sentinelville" not in world.clients["rep"].get("/e/account/{acme}".format(**world.ids)).text


def test_read_only_fields_are_shown_but_not_changed(world: World) -> None:
    rep = world.service("rep")
    record = rep.get("opportunity", world.ids["mine"])
    assert "close_date" in record.values
    with pytest.raises(ValidationFailed) as refused:
        rep.update("opportunity", world.ids["mine"], {"close_date": "2027-01-31"}, version=record.version)
    assert refused.value.errors == {"close_date": ["is read-only for you"]}
    # Sent unchanged (a form sends every field): accepted.
    rep.update("opportunity", world.ids["mine"], {"close_date": None, "next_step": "x"},
               version=record.version)
    with pytest.raises(ValidationFailed):
        rep.create("opportunity", {"name": "n", "account": world.ids["acme"], "close_date": "2027-01-31"})


def test_a_path_into_records_out_of_reach_cannot_be_filtered_on(world: World) -> None:
    boss = world.service("boss")  # reads every account: a path through account is fine
    assert names(boss.page("opportunity", ListQuery(expression="account.name = 'Acme'"))) == {"Mine deal"}
    rep = world.service("rep")
    with pytest.raises(ValidationFailed) as refused:
        rep.page("account", ListQuery(expression="parent_account.annual_revenue > 0"))
    assert "annual_revenue" in str(refused.value)  # no such field for the rep: confirms nothing


# --- writes ---------------------------------------------------------------------------------------------
def test_object_level_write_refusals_are_403_naming_action_and_entity(world: World) -> None:
    rep = world.service("rep")
    with pytest.raises(WriteRefused) as refused:
        rep.delete("opportunity", world.ids["mine"])
    assert "delete" in str(refused.value) and "opportunit" in str(refused.value)
    with pytest.raises(WriteRefused):
        rep.create("account", {"name": "New"})
    with pytest.raises(RecordNotFound):  # not even readable: as if it did not exist
        rep.update("opportunity", world.ids["theirs"], {"name": "x"}, version=1)
    with pytest.raises(WriteRefused):  # readable (shared for reading) but not editable
        rep.update("opportunity", world.ids["shared"], {"next_step": "x"}, version=1)
    # Shared for editing: the rep may change it.
    assert rep.update("opportunity", world.ids["editable"], {"name": "Renamed"}, version=1).version == 2


def test_bulk_edits_and_bulk_creates_obey_the_same_checks(world: World) -> None:
    rep = world.service("rep")
    chosen = [world.ids["mine"], world.ids["theirs"]]
    done = bulk.update_many(rep, "opportunity", chosen, {"next_step": "bulk"})
    assert done.done == [world.ids["mine"]]
    assert "there is no opportunity with id" in done.refused[world.ids["theirs"]]
    with pytest.raises(WriteRefused):
        rep.create_many("opportunity", [
            {"name": "a", "account": world.ids["acme"]},
            {"name": "b", "account": world.ids["acme"], "owner": world.ids["other"]}])
    assert {"a", "b"}.isdisjoint(names(world.records.page("opportunity")))


def test_a_change_cannot_take_a_record_out_of_reach(world: World) -> None:
    rep = world.service("rep")
    with pytest.raises(WriteRefused) as refused:
        rep.update("opportunity", world.ids["mine"], {"owner": world.ids["other"]}, version=1)
    assert "out of your reach" in str(refused.value)
    with pytest.raises(WriteRefused):  # no longer shared for editing once changed
        rep.update("opportunity", world.ids["editable"], {"next_step": "alone"}, version=1)
    with pytest.raises(WriteRefused):
        rep.create("opportunity", {"name": "Gift", "account": world.ids["acme"], "owner": world.ids["other"]})
    made = rep.create("opportunity", {"name": "New one", "account": world.ids["acme"]})
    assert made.system["owner"] == world.ids["rep"]
    assert world.records.get("opportunity", world.ids["mine"]).system["owner"] == world.ids["rep"]


def test_a_reference_to_a_record_out_of_reach_is_refused_as_missing(world: World) -> None:
    lead = world.pin(_principal(world.ids["peer"], "p", {"rep"}))
    contact = world.service("boss").get("contact", world.ids["jane"])
    assert contact.titles["account"] == "Acme"
    with pytest.raises(ValidationFailed) as refused:
        world.pin(dataclasses.replace(world.people["rep"], roles=frozenset({"rep"}))).update(
            "opportunity", world.ids["mine"], {"primary_contact": 999_999}, version=1)
    assert "there is no contact with id 999999" in str(refused.value)
    assert lead.page("opportunity").records  # the shared ones


def test_titles_of_records_out_of_reach_are_restricted(world: World) -> None:
    boss = world.service("boss")  # reads activities, and only the opportunities below them
    made = world.records.create("activity", {"subject": "About", "account": world.ids["acme"],
                                             "opportunity": world.ids["theirs"]}) \
        if "opportunity" in world.records.entity("activity").fields else None
    if made is not None:
        record = boss.get("activity", made.id)
        assert record.titles["opportunity"] == RESTRICTED
        assert "Secret deal" not in str(boss.as_json(record))
    mine = world.service("rep").get("opportunity", world.ids["mine"])
    assert mine.titles["account"] == "Acme"


def test_tokens_read_scope_refuses_writes(world: World) -> None:
    reader = dataclasses.replace(world.people["rep"], via="token", scopes=frozenset({"read"}))
    service = world.pin(reader)
    assert names(service.page("opportunity"))
    with pytest.raises(WriteRefused):
        service.update("opportunity", world.ids["mine"], {"name": "x"}, version=1)


def test_system_pays_nothing_for_permissions(world: World) -> None:
    assert world.records.access() is None
    assert world.pin(SYSTEM).snapshot() is world.records.snapshot()


# --- over HTTP ------------------------------------------------------------------------------------------
SURFACES = [
    "/api/v1/opportunity", "/api/v1/opportunity?q=Secret", "/api/v1/opportunity?count=true",
    "/api/v1/account", "/api/v1/account/{acme}", "/api/v1/account/{acme}/related/opportunity",
    "/api/v1/account/{acme}/history", "/api/v1/openapi.json", "/api/v1/meta", "/api/v1/contact/{jane}",
    "/e/opportunity", "/e/opportunity?q=deal", "/e/account/{acme}", "/e/opportunity/{mine}",
    "/e/opportunity/board/sales", "/e/opportunity/options?q=deal", "/e/contact/{jane}",
    "/e/opportunity/{mine}/edit", "/e/opportunity/new", "/search?q=Secret", "/search?q=SENTINEL", "/",
]


def test_nothing_hidden_or_out_of_reach_appears_in_any_answer_to_the_rep(world: World) -> None:
    rep = world.clients["rep"]
    for path in SURFACES:
        response = rep.get(path.format(**world.ids))
        assert response.status_code in (200, 404), (path, response.status_code, response.text[:300])
        assert SENTINEL not in response.text, path
        assert "Secret deal" not in response.text, path
        assert "annual_revenue" not in response.text, path


def test_out_of_reach_is_404_never_403_over_http(world: World) -> None:
    rep, outsider = world.clients["rep"], world.clients["outsider"]
    theirs = world.ids["theirs"]
    for path in (f"/api/v1/opportunity/{theirs}", f"/api/v1/opportunity/{theirs}/history",
                 f"/api/v1/opportunity/{theirs}/stages", f"/e/opportunity/{theirs}"):
        assert rep.get(path).status_code == 404, path
    assert rep.patch(f"/api/v1/opportunity/{theirs}", json={"name": "x", "version": 1}).status_code == 404
    assert rep.delete(f"/api/v1/opportunity/{theirs}").status_code == 404
    for path in ("/api/v1/opportunity", "/e/opportunity", "/e/opportunity/board/sales",
                 "/e/opportunity/export.csv", "/e/opportunity/new", "/e/opportunity/options?q=deal"):
        assert outsider.get(path).status_code == 404, path
    assert rep.delete(f"/api/v1/opportunity/{world.ids['mine']}").status_code == 403


def test_export_needs_the_export_action(world: World) -> None:
    assert world.clients["rep"].get("/e/opportunity/export.csv").status_code == 403
    boss = world.clients["boss"].get("/e/opportunity/export.csv")
    assert boss.status_code == 200 and "Mine deal" in boss.text and "Secret deal" not in boss.text


def test_navigation_and_openapi_are_per_user(world: World) -> None:
    outsider = world.clients["outsider"]
    document = outsider.get("/api/v1/openapi.json").json()
    assert not any("opportunity" in path for path in document["paths"])
    assert "/api/v1/opportunity" in world.clients["admin"].get("/api/v1/openapi.json").json()["paths"]
    meta = world.clients["rep"].get("/api/v1/meta").json()
    opportunity = next(e for e in meta["entities"] if e["name"] == "opportunity")
    assert "description" not in {f["name"] for f in opportunity["fields"]}
    assert "Opportunities" not in outsider.get("/").text


def test_metamodel_routes_need_the_right(world: World) -> None:
    body = {"type": "text"}
    answer = world.clients["boss"].put("/api/v1/admin/entities/account/fields/x_note", json=body)
    assert answer.status_code == 403 and "manage metamodel" in answer.text
    assert world.clients["boss"].get("/api/v1/admin/customisations").status_code == 403
    assert world.clients["admin"].get("/api/v1/admin/customisations").status_code == 200



# --- write-time rules see the signed-in user ----------------------------------------------------------
EXPENSE: dict[str, Any] = {
    "label": "Expense", "title_field": "name",
    "fields": {"name": {"type": "text", "required": True}, "amount": {"type": "integer"},
               "approver": {"type": "integer", "default_expression": "current_user.manager"}},
    "validations": [{"name": "limit", "field": "amount", "message": "only an approver spends 1000 or more",
                     "condition": "amount < 1000 or \"approver\" in current_user.roles"}],
}


def test_validations_and_defaults_read_the_writers_roles_and_manager(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    folder = write_pack(tmp_path, "expenses", "1.0.0", {"expense": EXPENSE})
    (folder / "roles").mkdir()
    for name in ("clerk", "approver"):
        (folder / "roles" / f"{name}.yaml").write_text(json.dumps(
            {"kind": "role", "name": name, "entities": {"expense": {"actions": "all", "scope": "own"}}}))
    install(engine, registry, folder)
    app = make_app(db_url)
    boss = user_id(engine, "boss@example.com", roles={"approver"})
    users.add(engine, "clerk@example.com", "Clerk", manager="boss@example.com")
    memberships.change(engine, "clerk@example.com", add_roles=["clerk"])
    try:
        clerk = signed_in(app, "clerk@example.com", raise_server_exceptions=False)
        refused = clerk.post("/api/v1/expense", json={"name": "Car", "amount": 5000})
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"] == {"amount": ["only an approver spends 1000 or more"]}
        made = clerk.post("/api/v1/expense", json={"name": "Lunch", "amount": 20})
        assert made.status_code == 201, made.text
        assert made.json()["approver"] == boss  # the default read the clerk's manager
        approver = signed_in(app, "boss@example.com", raise_server_exceptions=False)
        allowed = approver.post("/api/v1/expense", json={"name": "Car", "amount": 5000})
        assert allowed.status_code == 201, allowed.text
        assert allowed.json()["approver"] is None  # the boss has no manager
        changed = approver.patch(f"/api/v1/expense/{allowed.json()['id']}",
                                 json={"amount": 6000, "version": 1})
        assert changed.status_code == 200, changed.text
        mine = made.json()
        over = clerk.patch(f"/api/v1/expense/{mine['id']}", json={"amount": 2000, "version": mine["version"]})
        assert over.status_code == 422 and "only an approver" in over.text
    finally:
        app.state.engine.dispose()


def test_role_definitions_need_the_manage_metamodel_right(world: World) -> None:
    boss = world.clients["boss"]  # a manager: views the audit, but does not manage the metamodel
    role = {"entities": {"contact": {"actions": ["read"]}}}
    for answer in (boss.put("/api/v1/admin/roles/helper", json=role),
                   boss.put("/api/v1/admin/roles/helper", content=b"{not json",
                            headers={"content-type": "application/json"}),
                   boss.delete("/api/v1/admin/roles/rep")):
        assert answer.status_code == 403 and "manage metamodel" in answer.text, answer.text
    planned = world.clients["admin"].put("/api/v1/admin/roles/helper",
                                         json={"entities": {"contact": {"actions": ["read"]}}})
    assert planned.status_code == 200 and planned.json()["applied"] is False, planned.text


def _token(world: World, email: str, name: str, *scopes: str) -> dict[str, str]:
    engine: sa.Engine = world.app.state.engine
    with engine.begin() as conn:
        _, secret = tokens.create(conn, user_id(engine, email), name, scopes, expires_at=None,
                                  now=datetime.datetime.now(datetime.UTC))
    return {"Authorization": f"Bearer {secret}"}


def test_a_token_without_the_admin_scope_cannot_administer_even_for_an_administrator(world: World) -> None:
    http = TestClient(world.app, raise_server_exceptions=False)
    writer = _token(world, "admin@example.com", "writer", "read", "write")
    role = {"entities": {"contact": {"actions": ["read"]}}}
    field = {"type": "text"}
    for answer in (http.get("/api/v1/admin/customisations", headers=writer),
                   http.put("/api/v1/admin/roles/helper", json=role, headers=writer),
                   http.delete("/api/v1/admin/roles/rep", headers=writer),
                   http.put("/api/v1/admin/entities/account/fields/x_note", json=field, headers=writer),
                   http.get("/api/v1/admin/users", headers=writer)):
        assert answer.status_code == 403, (answer.request.url, answer.text)
    # The same administrator's token with the admin scope may; records are written with `write`.
    admin = _token(world, "admin@example.com", "admin", "read", "write", "admin")
    assert http.get("/api/v1/admin/customisations", headers=admin).status_code == 200
    assert http.put("/api/v1/admin/roles/helper", json=role, headers=admin).status_code == 200
    mine = world.ids["mine"]
    assert http.patch(f"/api/v1/opportunity/{mine}", json={"next_step": "w", "version": 1},
                      headers=writer).status_code == 200


def test_a_read_token_reads_but_writes_nothing(world: World) -> None:
    http = TestClient(world.app, raise_server_exceptions=False)
    reader = _token(world, "admin@example.com", "reader", "read", "admin")
    mine = world.ids["mine"]
    assert http.get(f"/api/v1/opportunity/{mine}", headers=reader).json()["name"] == "Mine deal"
    change = {"name": "x", "version": 1}
    for answer in (http.patch(f"/api/v1/opportunity/{mine}", json=change, headers=reader),
                   http.put("/api/v1/admin/roles/helper", json={"entities": {}}, headers=reader),
                   http.post("/api/v1/opportunity", json={"name": "y", "account": world.ids["acme"]},
                             headers=reader)):
        assert answer.status_code == 403 and "write scope" in answer.text, answer.text
    assert world.records.get("opportunity", mine).values["name"] == "Mine deal"
    rep = _token(world, "rep@example.com", "rep reader", "read")  # and the roles still narrow it
    assert http.get(f"/api/v1/opportunity/{world.ids['theirs']}", headers=rep).status_code == 404


# --- forms ----------------------------------------------------------------------------------------------
def test_forms_show_read_only_fields_as_text_and_leave_hidden_ones_out(world: World) -> None:
    rep, admin = world.clients["rep"], world.clients["admin"]
    mine = world.ids["mine"]
    world.records.update("opportunity", mine, {"close_date": "2027-01-31"}, version=1)
    for path in (f"/e/opportunity/{mine}/edit", "/e/opportunity/new"):
        page = rep.get(path).text
        assert 'id="f-close_date"' in page and 'name="close_date"' not in page, path
        assert 'name="_fields" value="close_date"' not in page, path
        assert 'id="f-description"' not in page and SENTINEL not in page, path
        assert 'name="next_step"' in page, path
    assert "2027-01-31" in rep.get(f"/e/opportunity/{mine}/edit").text  # the value, shown as text
    assert 'name="close_date"' in admin.get(f"/e/opportunity/{mine}/edit").text
    assert 'value="close_date"' not in rep.get("/e/opportunity").text  # no bulk edit of it
    # A form sent with the read-only field anyway (by hand) changes only what the rep may change.
    saved = rep.post(f"/e/opportunity/{mine}/edit", follow_redirects=False, data={
        "version": "2", "_fields": ["next_step", "close_date"], "next_step": "demo",
        "close_date": "2027-12-31"})
    assert saved.status_code == 303, saved.text
    stored = world.records.get("opportunity", mine).values
    assert (stored["next_step"], str(stored["close_date"]), stored["description"]) == (
        "demo", "2027-01-31", SENTINEL)
