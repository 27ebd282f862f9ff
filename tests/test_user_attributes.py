"""User attributes (`kind: user_attribute`) and `current_user.<attribute>` in sharing rules:
definitions read with every problem at its file:line, layered, stored with each revision;
values set and removed with the CLI and the admin API (checked against the type, audited);
and sharing rules that read them, in SQL and in Python alike, on SQLite and PostgreSQL,
seen through the HTTP API by users of different regions."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.roles import EntityGrant, Role, SharingRule
from slatecrm.platform import customisation, installer
from slatecrm.platform.cli import main
from slatecrm.platform.identity import principals, userattributes, users
from slatecrm.platform.identity.access import Access, RoleAccess, roles_of
from slatecrm.platform.identity.passwords import PROFILE_VARIABLE
from slatecrm.platform.identity.principal import Principal
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage import revisions, system

from .pack_templates import PackTemplates
from .packs import install, write_files_pack
from .signed_in import Site, site

#: A pack over sales: leads get a region, numbers, dates and flags; users get attributes of
#: each type; a role shares the leads of the user's region (and more, by the other types).
REGIONAL: dict[str, str] = {
    "entities/lead-region.yaml": """\
        kind: extension
        entity: lead
        fields:
          lead_region:
            type: choice
            options: [{key: emea}, {key: americas}, {key: apac}]
          score:
            type: decimal
            scale: 2
          seen_on:
            type: date
          vip:
            type: boolean
        """,
    "user_attributes/level.yaml": """\
        kind: user_attribute
        name: level
        type: number
        """,
    "user_attributes/since.yaml": """\
        kind: user_attribute
        name: since
        label: Works here since
        type: date
        """,
    "user_attributes/senior.yaml": """\
        kind: user_attribute
        name: senior
        type: boolean
        """,
    "roles/regional_rep.yaml": """\
        kind: role
        name: regional_rep
        label: Regional representative
        entities:
          lead:
            actions: [read, update]
            scope: own
            sharing:
              - where: "lead_region = current_user.region"
        """,
}


def write_pack(root: Path, files: dict[str, str], *, name: str = "regional") -> Path:
    return write_files_pack(root, files, name=name)


def merged(registry: FieldTypeRegistry, *paths: Path) -> Metamodel:
    return merge(installer.load_packs(["crm-core", "sales", *map(str, paths)], registry), registry)


def problems(registry: FieldTypeRegistry, *paths: Path) -> list[str]:
    with pytest.raises(DefinitionError) as error:
        merged(registry, *paths)
    return [str(p) for p in error.value.problems]


# --- definitions ----------------------------------------------------------------------------------
def test_definitions_are_read_layered_and_stored(tmp_path: Path, registry: FieldTypeRegistry) -> None:
    metamodel = merged(registry, write_pack(tmp_path, REGIONAL))
    region, level = metamodel.user_attribute("region"), metamodel.user_attribute("level")
    assert region is not None and region.pack == "sales" and region.type == "choice"
    assert [(o.key, o.label) for o in region.choices] == [("emea", "EMEA"), ("americas", "Americas"),
                                                          ("apac", "APAC")]
    assert level is not None and level.pack == "regional" and level.label == "Level"
    assert [a.name for a in metamodel.user_attributes] == ["region", "level", "senior", "since"]
    assert Metamodel.from_dict(json.loads(json.dumps(metamodel.as_dict()))) == metamodel


def test_bad_definitions_are_refused_at_their_file_and_line(tmp_path: Path,
                                                            registry: FieldTypeRegistry) -> None:
    found = problems(registry, write_pack(tmp_path, {
        "user_attributes/a.yaml": "kind: user_attribute\nname: manager\ntype: text\n",
        "user_attributes/b.yaml": "kind: user_attribute\nname: unit\ntype: choice\n",
        "user_attributes/c.yaml": "kind: user_attribute\nname: unit\ntype: text\nchoices: [{key: x}]\n",
        "user_attributes/d.yaml": "kind: user_attribute\nname: tier\ntype: colour\n",
    }))
    assert [p.split("/regional/")[1] for p in found] == [
        "user_attributes/a.yaml:2:7: name: 'manager' is already part of current_user (id, roles, teams, "
        "manager); give the attribute another name",
        "user_attributes/b.yaml:2:7: name: user attribute 'unit' is a choice: give its choices",
        "user_attributes/c.yaml:2:7: name: user attribute 'unit' is defined twice in this pack (also at "
        "user_attributes/b.yaml:2:7)",
        "user_attributes/c.yaml:2:7: name: user attribute 'unit' is a text: only a choice has choices",
        "user_attributes/d.yaml:3:7: type: 'colour' is not one of 'text', 'choice', 'number', 'boolean', "
        "'date'"]
    clash = problems(registry, write_pack(tmp_path / "2", {
        "user_attributes/region.yaml": "kind: user_attribute\nname: region\ntype: text\n"}))
    assert len(clash) == 1 and clash[0].split("/regional/")[1].startswith(
        "user_attributes/region.yaml:2:7: name: user attribute 'region' is already defined by pack "
        "'sales'")


def test_a_rule_reading_an_unknown_attribute_is_refused_with_the_known_ones(
        tmp_path: Path, registry: FieldTypeRegistry) -> None:
    found = problems(registry, write_pack(tmp_path, {**REGIONAL, "roles/regional_rep.yaml": """\
        kind: role
        name: regional_rep
        entities:
          lead:
            actions: [read]
            sharing:
              - where: "lead_region = current_user.regoin"
        """}))
    assert len(found) == 1
    assert "roles/regional_rep.yaml:7:" in found[0]
    assert ("current_user has no 'regoin' (did you mean 'region'?); it has id, roles, teams, manager, "
            "region, level, senior, since") in found[0]
    typed = problems(registry, write_pack(tmp_path / "2", {**REGIONAL, "roles/regional_rep.yaml": """\
        kind: role
        name: regional_rep
        entities:
          lead:
            actions: [read]
            sharing:
              - where: "seen_on = current_user.level"
        """}))
    assert "cannot compare" in typed[0] and "roles/regional_rep.yaml:7:" in typed[0]


def test_a_rule_reading_an_attribute_of_a_pack_not_required_is_refused(
        tmp_path: Path, registry: FieldTypeRegistry) -> None:
    """As with entities: removing a pack a role does not know of must not break the role."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "pack.yaml").write_text(json.dumps({"name": "other", "namespace": "other", "version": "1.0.0",
                                                 "title": "Other", "requires": {"crm-core": "^0.1.0"}}))
    (other / "roles").mkdir()
    (other / "roles" / "senior_reader.yaml").write_text(textwrap.dedent("""\
        kind: role
        name: senior_reader
        entities:
          account:
            actions: [read]
            sharing:
              - where: "current_user.senior"
        """))
    found = problems(registry, write_pack(tmp_path, REGIONAL), other)
    assert len(found) == 1, found
    assert "roles/senior_reader.yaml:7:" in found[0]
    assert ("sharing condition reads current_user.senior, a user attribute of pack 'regional', which "
            "pack 'other' does not require: add it to requires in pack.yaml") in found[0]


# --- SQL and Python agree, and the statement is the same for every user ----------------------------
CONDITIONS = (
    "lead_region = current_user.region",
    "lead_region != current_user.region",
    "current_user.region is blank",
    "score > current_user.level",
    "score = current_user.level or current_user.level is blank",
    "seen_on >= current_user.since",
    "vip = current_user.senior",
    "not (vip = current_user.senior) and score < current_user.level + 1",
)
USERS: tuple[dict[str, Any], ...] = (
    {}, {"region": "emea", "level": "2.5", "since": "2026-03-01", "senior": True},
    {"region": "apac", "level": "0", "since": "2025-12-31", "senior": False},
    # values the definitions no longer admit (a removed option, another type): null
    {"region": "antarctica", "level": "many", "since": "soon", "senior": "perhaps"},
)
LEADS: tuple[dict[str, Any], ...] = (
    {"lead_region": "emea", "score": "2.50", "seen_on": "2026-03-01", "vip": True},
    {"lead_region": "apac", "score": "3", "seen_on": "2025-01-01", "vip": False},
    {"lead_region": None, "score": None, "seen_on": None, "vip": None},
    {"lead_region": "americas", "score": "0.01", "seen_on": "2026-06-01", "vip": True},
)


@pytest.fixture
def regional(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, pack_templates: PackTemplates,
             tmp_path: Path) -> Iterator[Site]:
    made = site(engine, db_url, pack_templates, registry)
    web = next(made)
    install(engine, registry, "crm-core", "sales", write_pack(tmp_path, REGIONAL))
    yield web
    next(made, None)


def _records(web: Site) -> RecordsService:
    records: RecordsService = web.app.state.records
    return records


def test_sql_and_python_select_the_same_leads_with_one_statement_for_every_user(regional: Site) -> None:
    records = _records(regional)
    owner = regional.user("owner@example.com", "Owner")
    ids = [records.create("lead", {"last_name": f"L{i}", "company": "C", "owner": owner, **lead}).id
           for i, lead in enumerate(LEADS)]
    full = records.full_snapshot()
    ce = full.entities["lead"]
    for condition in CONDITIONS:
        role = Role("r", "R", entities=(EntityGrant("lead", frozenset({"read"}), "own",
                                                    (SharingRule(condition),)),))
        texts = set()
        for values in USERS:
            principal = Principal(user_id=10_000, name="u", via="session", roles=frozenset({"r"}),
                                  attributes=tuple(sorted(values.items())))
            grants = RoleAccess(roles_of([role], principal.roles), full.rules)
            access = Access(principal, grants, full.dialect)
            where = access.where("lead", ce.table)
            assert where is not None
            statement = sa.select(ce.table.c.id).where(where)
            texts.add(str(statement.compile(records.engine)))
            with records.engine.connect() as conn:
                selected = set(conn.execute(statement).scalars())
                stored = conn.execute(ce.select.where(ce.table.c.id.in_(ids))).mappings().all()
            checked = {row["id"] for row in stored
                       if access.within("lead", {**{n: f.from_row(row) for n, f in ce.fields.items()},
                                                 "id": row["id"], "owner": row["owner"]}, "read")}
            assert selected == checked, (condition, values)
        assert len(texts) == 1, (condition, texts)  # only the parameters differ


# --- end to end: two regions, two views, through HTTP ----------------------------------------------
def test_users_of_two_regions_see_their_regions_leads_through_the_api(regional: Site) -> None:
    records = _records(regional)
    root = regional.user("root@example.com", "Root", roles=("administrator",))
    ann = regional.user("ann@example.com", "Ann", roles=("regional_rep",))
    bob = regional.user("bob@example.com", "Bob", roles=("regional_rep",))
    emea, apac = (records.create("lead", {"last_name": r, "company": "C", "owner": root, "lead_region": r}).id
                  for r in ("emea", "apac"))
    admin = regional.client(root)
    for user, region in ((ann, "EMEA"), (bob, "apac")):  # a label or a key
        changed = admin.patch(f"/api/v1/admin/users/{user}", json={"attributes": {"region": region}})
        assert changed.status_code == 200, changed.text
    assert admin.get(f"/api/v1/admin/users/{ann}").json()["attributes"] == {"region": "emea"}
    as_ann, as_bob = regional.client(ann), regional.client(bob)
    assert as_ann.get("/api/v1/me").json()["attributes"] == {"region": "emea"}
    assert [r["id"] for r in as_ann.get("/api/v1/lead").json()["data"]] == [emea]
    assert [r["id"] for r in as_bob.get("/api/v1/lead").json()["data"]] == [apac]
    assert as_ann.get(f"/api/v1/lead/{emea}").status_code == 200
    assert as_ann.get(f"/api/v1/lead/{apac}").status_code == 404
    assert as_bob.get(f"/api/v1/lead/{emea}").status_code == 404
    # The next request sees a change: no principal is cached.
    assert admin.patch(f"/api/v1/admin/users/{ann}", json={"attributes": {"region": None}}).status_code == 200
    assert as_ann.get("/api/v1/lead").json()["data"] == []
    assert as_ann.get(f"/api/v1/lead/{emea}").status_code == 404
    events = [e.detail["changes"] for e in regional.audit("user.attributes") if e.object_id == str(ann)]
    assert events == [{"region": [None, "emea"]}, {"region": ["emea", None]}]


def test_the_admin_api_refuses_bad_values_and_changes_nothing(regional: Site) -> None:
    root = regional.user("root@example.com", "Root", roles=("administrator",))
    ann = regional.user("ann@example.com", "Ann")
    admin = regional.client(root)
    assert admin.patch(f"/api/v1/admin/users/{ann}",
                       json={"attributes": {"region": "emea", "level": "3"}}).status_code == 200
    refused = admin.patch(f"/api/v1/admin/users/{ann}", json={
        "name": "Ann Changed", "attributes": {"region": "mars", "levle": 1, "since": "yesterday",
                                              "senior": None}})
    assert refused.status_code == 422
    errors = refused.json()["errors"]
    assert errors["attributes.region"] == ["'mars' is not an option; options: emea, americas, apac "
                                           "(Sales region, a choice)"]
    assert errors["attributes.levle"][0].startswith("there is no user attribute 'levle' (did you mean "
                                                    "'level'?); attributes: region, level, senior, since")
    assert "attributes.since" in errors and set(errors) == {"attributes.region", "attributes.levle",
                                                           "attributes.since"}
    after = admin.get(f"/api/v1/admin/users/{ann}").json()
    assert after["name"] == "Ann" and after["attributes"] == {"region": "emea", "level": "3"}
    assert admin.patch(f"/api/v1/admin/users/{ann}", json={"attributes": ["emea"]}).status_code == 422
    made = admin.post("/api/v1/admin/users", json={"email": "cy@example.com", "name": "Cy",
                                                   "attributes": {"senior": True, "since": "2026-01-31"}})
    assert made.status_code == 201, made.text
    assert made.json()["attributes"] == {"since": "2026-01-31", "senior": True}
    bad = admin.post("/api/v1/admin/users", json={"email": "di@example.com", "name": "Di",
                                                  "attributes": {"level": "lots"}})
    assert bad.status_code == 422 and "attributes.level" in bad.json()["errors"]
    assert "di@example.com" not in [u["email"] for u in admin.get("/api/v1/admin/users").json()["data"]]
    # Only someone holding manage_users may set them.
    assert regional.client(ann).patch(f"/api/v1/admin/users/{ann}",
                                      json={"attributes": {"region": "apac"}}).status_code == 403


def test_a_user_and_its_attributes_are_stored_together_or_not_at_all(
        regional: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value refused when it is stored (its definition changed since the request's check, made
    here by failing the second check) leaves no user made and no other value changed."""
    root = regional.user("root@example.com", "Root", roles=("administrator",))
    admin = regional.client(root)
    checks = []
    really_checked = userattributes.checked

    def changed_meanwhile(defined: Any, changes: Any) -> Any:
        checks.append(changes)
        if len(checks) % 2 == 0:  # the second check, in the user change's transaction
            raise userattributes.InvalidAttribute({"region": "is no longer defined"})
        return really_checked(defined, changes)

    monkeypatch.setattr(userattributes, "checked", changed_meanwhile)
    made = admin.post("/api/v1/admin/users", json={"email": "eve@example.com", "name": "Eve",
                                                   "roles": ["sales_rep"], "attributes": {"region": "apac"}})
    assert made.status_code == 422
    assert made.json()["errors"] == {"attributes.region": ["is no longer defined"]}
    assert "eve@example.com" not in [u["email"] for u in admin.get("/api/v1/admin/users").json()["data"]]
    changed = admin.patch(f"/api/v1/admin/users/{root}", json={"name": "Root Renamed",
                                                               "attributes": {"region": "emea"}})
    assert changed.status_code == 422
    assert admin.get(f"/api/v1/admin/users/{root}").json()["name"] == "Root"
    assert len(checks) == 4


def test_a_removed_attribute_keeps_its_values_unused_and_the_organisation_may_redefine_one(
        regional: Site, registry: FieldTypeRegistry) -> None:
    engine = regional.engine
    ann = regional.user("ann@example.com", "Ann")
    userattributes.change(engine, ann, "ann@example.com", {"region": "apac", "level": 7})
    planned = customisation.plan_edit(engine, registry, "test", customisation.put_user_attribute(
        "region", {"type": "choice", "label": "Region", "choices": [{"key": "north"}, {"key": "south"}]}))
    customisation.apply_edit(engine, planned, author="test")
    with engine.connect() as conn:
        _, metamodel = revisions.current_metamodel(conn)
        loaded = principals.load(conn, ann, "session")
    region = metamodel.user_attribute("region")
    assert region is not None and region.pack == "organisation" and region.options == ("north", "south")
    # The stored value is kept (the principal carries it); rules read it as null (test above).
    assert loaded is not None and loaded.attribute_values == {"level": "7", "region": "apac"}
    with pytest.raises(userattributes.InvalidAttribute,
                       match="'apac' is not an option; options: north, south"):
        userattributes.change(engine, ann, "ann@example.com", {"region": "apac"})
    with pytest.raises(DefinitionError, match="user attribute 'level' is defined by pack 'regional'"):
        customisation.plan_edit(engine, registry, "test", customisation.delete_user_attribute("level"))
    # The pack's definition back: the value was kept all along.
    planned = customisation.plan_edit(engine, registry, "test", customisation.delete_user_attribute("region"))
    customisation.apply_edit(engine, planned, author="test")
    with engine.connect() as conn:
        assert userattributes.of_user(conn, ann) == {"region": "apac", "level": "7"}
        stored = conn.execute(sa.select(system.user_attributes.c.value)
                              .where(system.user_attributes.c.name == "region")).scalar_one()
    assert json.loads(stored) == "apac"


# --- the CLI ---------------------------------------------------------------------------------------
def run(*args: str, database: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database", database], catch_exceptions=False)


def test_the_cli_sets_and_unsets_attributes(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILE_VARIABLE, "CHEAPEST")
    assert run("init", database=db_url).exit_code == 0
    added = run("user", "add", "ann@example.com", "--name", "Ann", "--set", "region=EMEA", "--json",
                database=db_url)
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["attributes"] == {"region": "emea"}
    wrong = run("user", "add", "bob@example.com", "--name", "Bob", "--set", "region=Mars", database=db_url)
    assert wrong.exit_code == 1
    assert "region: 'Mars' is not an option; options: emea, americas, apac" in " ".join(wrong.output.split())
    assert "nothing was changed" in wrong.output
    unknown = run("user", "update", "ann@example.com", "--name", "Ann Lee", "--set", "regio=apac",
                  database=db_url)
    assert unknown.exit_code == 1 and "(did you mean 'region'?)" in unknown.output
    malformed = run("user", "update", "ann@example.com", "--set", "region", database=db_url)
    assert malformed.exit_code == 1 and "--set NAME=VALUE" in malformed.output
    engine = sa.create_engine(db_url)
    try:
        assert users.list_users(engine)[0].name == "Ann"  # nothing of the refused update applied
        assert [u.email for u in users.list_users(engine)] == ["ann@example.com"]
        changed = run("user", "update", "ann@example.com", "--set", "region=apac", "--json", database=db_url)
        assert changed.exit_code == 0 and json.loads(changed.output)["attributes"] == {"region": "apac"}
        listed = json.loads(run("user", "list", "--json", database=db_url).output)
        assert listed[0]["attributes"] == {"region": "apac"}
        both = run("user", "update", "ann@example.com", "--set", "region=emea", "--unset", "region",
                   database=db_url)
        assert both.exit_code == 1 and "given to --set and --unset" in both.output
        unset = run("user", "update", "ann@example.com", "--unset", "region", "--json", database=db_url)
        assert unset.exit_code == 0 and json.loads(unset.output)["attributes"] == {}
        with engine.connect() as conn:
            actions = conn.execute(sa.select(system.audit.c.detail)
                                   .where(system.audit.c.action == "user.attributes")
                                   .order_by(system.audit.c.id)).scalars().all()
        assert [a["changes"] for a in actions] == [{"region": [None, "emea"]}, {"region": ["emea", "apac"]},
                                                   {"region": ["apac", None]}]
    finally:
        engine.dispose()


def test_the_admin_user_page_shows_and_edits_attributes(regional: Site) -> None:
    root = regional.user("root@example.com", "Root", roles=("administrator",))
    ann = regional.user("ann@example.com", "Ann")
    admin = regional.client(root)
    page = admin.get(f"/admin/users/{ann}")
    assert page.status_code == 200
    assert 'name="attribute.region"' in page.text and "Sales region" in page.text
    assert 'name="attribute.since"' in page.text and 'type="date"' in page.text
    refused = admin.post(f"/admin/users/{ann}", data={"name": "Ann", "attribute.region": "mars"})
    assert refused.status_code == 422 and "is not an option; options: emea, americas, apac" in refused.text
    saved = admin.post(f"/admin/users/{ann}", data={"name": "Ann", "attribute.region": "apac",
                                                    "attribute.level": "4.25", "attribute.senior": ""})
    assert saved.status_code == 303, saved.text
    shown = admin.get(f"/admin/users/{ann}")
    assert '<option value="apac" selected>' in shown.text and 'value="4.25"' in shown.text
    # A form without the attribute fields changes none of them.
    assert admin.post(f"/admin/users/{ann}", data={"name": "Ann Lee"}).status_code == 303
    assert admin.get(f"/api/v1/admin/users/{ann}").json()["attributes"] == {"region": "apac", "level": "4.25"}
