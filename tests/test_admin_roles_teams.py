"""Roles and teams in the admin API and the admin pages (issue 12): the roles a user can be
given with what they grant, a user's roles and teams set with its other values (all or
nothing, the last administrator kept), teams made, changed and removed, each change in the
audit log. On SQLite and PostgreSQL (the `web` fixture's database)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.identity import memberships, users

from .defaults import make_app, signed_in
from .pack_templates import PackTemplates
from .signed_in import Site, site
from .test_api_live_editing import confirmed

AUDITOR = {"label": "Auditor", "description": "Reads the audit log.", "platform": ["view_audit"],
           "entities": {"account": {"actions": ["read"], "scope": "all",
                                    "sharing": [{"where": "name = 'x'", "access": "read"}],
                                    "fields": {"website": "hidden"}}}}


@pytest.fixture
def web(engine: sa.Engine, db_url: str, pack_templates: PackTemplates,
        registry: FieldTypeRegistry) -> Iterator[Site]:
    yield from site(engine, db_url, pack_templates, registry)


def roles_of(web: Site, user_id: int) -> tuple[list[str], list[str]]:
    return users.roles_and_teams(web.engine, user_id)


# --- roles ---------------------------------------------------------------------------------------
def test_the_roles_a_user_can_be_given_with_what_they_grant(web: Site) -> None:
    admin = web.client(web.user("root@example.com", "Root", roles=("administrator",)))
    web.user("ann@example.com", "Ann", roles=("sales_rep",))
    confirmed(admin, "PUT", "/api/v1/admin/roles/auditor", AUDITOR)
    listed = admin.get("/api/v1/admin/roles")
    assert listed.status_code == 200, listed.text
    roles = listed.json()["data"]
    # The built-in administrator first, then the packs' roles, then the organisation's.
    assert [(r["name"], r["defined_by"], r["pack"]) for r in roles] == [
        ("administrator", "built-in", None), ("sales_manager", "pack", "sales"),
        ("sales_rep", "pack", "sales"),
        ("auditor", "organisation", None)]
    by_name = {r["name"]: r for r in roles}
    assert by_name["administrator"]["platform"] == ["manage_metamodel", "install_packs", "manage_users",
                                                    "view_audit"]
    assert by_name["administrator"]["entities"][0]["scope"] == "all"
    assert by_name["administrator"]["users"] == 1 and by_name["sales_rep"]["users"] == 1
    rep = by_name["sales_rep"]
    assert {g["entity"] for g in rep["entities"]} >= {"lead", "account"}
    lead = next(g for g in rep["entities"] if g["entity"] == "lead")
    assert lead["scope"] == "own" and "delete" not in lead["actions"] and "read" in lead["actions"]
    auditor = admin.get("/api/v1/admin/roles/auditor").json()
    assert auditor["platform"] == ["view_audit"] and auditor["description"] == "Reads the audit log."
    assert auditor["entities"] == [{"entity": "account", "actions": ["read"], "scope": "all",
                                    "sharing": [{"where": "name = 'x'", "access": "read"}],
                                    "fields": {"website": "hidden"}}]
    # The definition is what PUT takes: sent back unchanged, the plan changes nothing.
    again = admin.put("/api/v1/admin/roles/auditor", json=auditor["definition"])
    assert again.status_code == 200, again.text
    assert admin.get("/api/v1/admin/roles/administrator").json()["definition"] is None
    unknown = admin.get("/api/v1/admin/roles/sales_rpe")
    assert unknown.status_code == 404
    assert "there is no role 'sales_rpe' (did you mean 'sales_rep'?)" in unknown.json()["detail"]
    assert "roles: administrator, sales_manager, sales_rep, auditor" in unknown.json()["detail"]


def test_reading_roles_needs_manage_users_or_manage_metamodel(web: Site) -> None:
    admin = web.client(web.user("root@example.com", "Root", roles=("administrator",)))
    confirmed(admin, "PUT", "/api/v1/admin/roles/people",
              {"label": "People", "platform": ["manage_users"], "entities": {}})
    confirmed(admin, "PUT", "/api/v1/admin/roles/auditor", AUDITOR)
    people = web.client(web.user("hr@example.com", "Hr", roles=("people",)))
    assert people.get("/api/v1/admin/roles").status_code == 200
    assert people.get("/admin/roles").status_code == 200
    for who in (web.client(web.user("aud@example.com", "Aud", roles=("auditor",))),
                web.client(web.user("ann@example.com", "Ann", roles=("sales_rep",)))):
        refused = who.get("/api/v1/admin/roles/sales_rep")
        assert refused.status_code == 403 and "manage metamodel" in refused.text
        assert who.get("/admin/roles").status_code == 403
    anonymous = web.client()
    assert anonymous.get("/api/v1/admin/roles").status_code == 401
    assert anonymous.get("/admin/roles").headers["location"].startswith("/login?next=")


# --- a user's roles and teams ----------------------------------------------------------------------
def test_a_users_roles_and_teams_through_the_api(web: Site) -> None:
    root = web.user("root@example.com", "Root", roles=("administrator",))
    admin = web.client(root)
    memberships.add_team(web.engine, "North")
    memberships.add_team(web.engine, "South")
    made = admin.post("/api/v1/admin/users", json={"email": "ann@example.com", "name": "Ann",
                                                   "roles": ["sales_rep"], "teams": ["North"]})
    assert made.status_code == 201, made.text
    ann = made.json()
    assert ann["roles"] == ["sales_rep"] and ann["teams"] == ["North"]
    assert admin.get(f"/api/v1/admin/users/{ann['id']}").json()["teams"] == ["North"]
    # The whole list: the user's roles and teams become exactly these.
    changed = admin.patch(f"/api/v1/admin/users/{ann['id']}",
                          json={"roles": ["sales_manager", "sales_rep"], "teams": ["South"], "locale": "fr"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["roles"], changed.json()["teams"], changed.json()["locale"]) == (
        ["sales_manager", "sales_rep"], ["South"], "fr")
    # Signed in, Ann holds them on her next request.
    assert web.client(ann["id"]).get("/api/v1/me").json()["roles"] == ["sales_manager", "sales_rep"]
    # Unknown names: 422 naming the field, the name and the known ones; every error at once;
    # nothing of the same PATCH applied.
    wrong = admin.patch(f"/api/v1/admin/users/{ann['id']}",
                        json={"name": "Ann Changed", "roles": ["sales_rpe"], "teams": ["Nort"],
                              "time_zone": "Mars/Base"})
    assert wrong.status_code == 422, wrong.text
    errors = wrong.json()["errors"]
    assert set(errors) == {"roles", "teams", "time_zone"}
    assert ("there is no role named 'sales_rpe' (did you mean 'sales_rep'?); roles: administrator"
            in errors["roles"][0])
    assert "there is no team 'Nort' (did you mean 'North'?); teams: North, South" in errors["teams"][0]
    assert admin.get(f"/api/v1/admin/users/{ann['id']}").json()["name"] == "Ann"
    assert admin.post("/api/v1/admin/users", json={"email": "bo@example.com", "name": "Bo",
                                                   "roles": ["nobody"]}).status_code == 422
    assert "bo@example.com" not in str(admin.get("/api/v1/admin/users").json())
    typed = admin.patch(f"/api/v1/admin/users/{ann['id']}", json={"roles": "sales_rep", "teams": [1]})
    assert typed.status_code == 422 and typed.json()["errors"] == {"roles": ["must be a list of text"],
                                                                   "teams": ["must be a list of text"]}
    # A manager that closes a circle refuses the whole PATCH, roles included.
    admin.patch(f"/api/v1/admin/users/{root}", json={"manager": "ann@example.com"})
    circle = admin.patch(f"/api/v1/admin/users/{ann['id']}",
                         json={"manager": "root@example.com", "roles": []})
    assert circle.status_code == 409
    assert roles_of(web, ann["id"])[0] == ["sales_manager", "sales_rep"]
    # Empty lists: no roles, no teams.
    cleared = admin.patch(f"/api/v1/admin/users/{ann['id']}", json={"roles": [], "teams": []})
    assert (cleared.json()["roles"], cleared.json()["teams"]) == ([], [])
    # The audit log: who, before and after, added and removed.
    role_events = [e for e in web.audit("user.roles") if e.object_id == str(ann["id"])]
    assert [e.detail["after"] for e in role_events] == [["sales_rep"], ["sales_manager", "sales_rep"], []]
    assert role_events[1].user_id == root and role_events[1].detail["added"] == ["sales_manager"]
    assert role_events[1].detail["email"] == "ann@example.com"
    team_events = [e.detail for e in web.audit("user.teams") if e.object_id == str(ann["id"])]
    assert [(d["added"], d["removed"]) for d in team_events] == [(["North"], []), (["South"], ["North"]),
                                                                 ([], ["South"])]


def test_a_role_no_longer_defined_may_stay_where_it_is(web: Site) -> None:
    admin = web.client(web.user("root@example.com", "Root", roles=("administrator",)))
    ann = web.user("ann@example.com", "Ann", roles=("retired_role",))
    kept = admin.patch(f"/api/v1/admin/users/{ann}", json={"roles": ["retired_role", "sales_rep"]})
    assert kept.status_code == 200 and kept.json()["roles"] == ["retired_role", "sales_rep"]
    assert admin.patch(f"/api/v1/admin/users/{ann}", json={"roles": ["other_gone"]}).status_code == 422


def test_the_last_administrator_keeps_the_role(web: Site) -> None:
    root = web.user("root@example.com", "Root", roles=("administrator",))
    admin = web.client(root)
    yourself = admin.patch(f"/api/v1/admin/users/{root}", json={"roles": ["sales_rep"]})
    assert yourself.status_code == 409 and yourself.json()["errors"] == {
        "roles": ["you cannot take the administrator role from yourself: ask another administrator"]}
    deputy = web.user("deputy@example.com", "Deputy", roles=("administrator",))
    # The deputy takes the role from the root: allowed, another administrator remains.
    assert web.client(deputy).patch(f"/api/v1/admin/users/{root}", json={"roles": []}).status_code == 200
    # The root (now without rights) cannot; a third administrator, disabled, does not count.
    third = web.user("third@example.com", "Third", roles=("administrator",))
    users.disable(web.engine, "third@example.com")
    last = web.client(third)  # disabled: its session no longer works
    assert last.get("/api/v1/me").status_code == 401
    helper = web.user("helper@example.com", "Helper")
    with web.engine.begin() as conn:  # manage_users through a role of its own, not administrator
        conn.execute(sa.text("insert into slate_user_role (user_id, role) values (:u, 'people')"),
                     {"u": helper})
    confirmed(web.client(deputy), "PUT", "/api/v1/admin/roles/people",
              {"label": "People", "platform": ["manage_users"], "entities": {}})
    hr = web.client(helper)
    # (Reading the roles loads the new revision: the users API checks its right on the event
    # loop, against the revision this process loaded last.)
    assert hr.get("/api/v1/admin/roles/people").status_code == 200
    refused = hr.patch(f"/api/v1/admin/users/{deputy}", json={"roles": ["sales_rep"], "name": "Dep"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["errors"]["roles"][0].startswith(
        "deputy@example.com is the last active administrator")
    assert users.get_by_id(web.engine, deputy).name == "Deputy"  # nothing of the PATCH applied
    disabled = hr.patch(f"/api/v1/admin/users/{deputy}", json={"active": False})
    assert disabled.status_code == 409 and set(disabled.json()["errors"]) == {"active"}
    assert roles_of(web, deputy)[0] == ["administrator"]


# --- teams -----------------------------------------------------------------------------------------
def test_teams_through_the_api(web: Site) -> None:
    root = web.user("root@example.com", "Root", roles=("administrator",))
    admin = web.client(root)
    ann = web.user("ann@example.com", "Ann")
    web.user("bob@example.com", "Bob")
    made = admin.post("/api/v1/admin/teams", json={"name": "  North  ", "description": "the north",
                                                   "members": ["ANN@example.com"]})
    assert made.status_code == 201, made.text
    north = made.json()
    assert made.headers["location"] == f"/api/v1/admin/teams/{north['id']}"
    assert north == {"id": north["id"], "name": "North", "description": "the north",
                     "members": ["ann@example.com"]}
    assert roles_of(web, ann)[1] == ["North"]
    taken = admin.post("/api/v1/admin/teams", json={"name": "North"})
    assert taken.status_code == 409
    assert taken.json()["errors"] == {"name": ["a team named 'North' exists already"]}
    wrong = admin.post("/api/v1/admin/teams", json={"name": " ", "description": "x" * 1001,
                                                    "members": ["nobody@example.com"], "colour": "red"})
    assert wrong.status_code == 422 and set(wrong.json()["errors"]) == {"colour"}
    wrong = admin.post("/api/v1/admin/teams", json={"name": " ", "description": "x" * 1001})
    assert wrong.status_code == 422 and set(wrong.json()["errors"]) == {"name", "description"}
    nobody = admin.post("/api/v1/admin/teams", json={"name": "East", "members": ["bob@example.com",
                                                                                 "anne@example.com"]})
    assert nobody.status_code == 422
    assert nobody.json()["errors"]["members"] == [
        "there is no user with the e-mail 'anne@example.com' (did you mean 'ann@example.com'?)"]
    assert [t["name"] for t in admin.get("/api/v1/admin/teams").json()["data"]] == ["North"]  # East not made
    south = admin.post("/api/v1/admin/teams", json={"name": "South"}).json()
    # Change: rename, members as the whole list; a name taken is refused with nothing changed.
    changed = admin.patch(f"/api/v1/admin/teams/{north['id']}",
                          json={"name": "Northern", "members": ["bob@example.com", "ann@example.com"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["members"] == ["ann@example.com", "bob@example.com"]
    clash = admin.patch(f"/api/v1/admin/teams/{north['id']}", json={"name": "South", "members": []})
    assert clash.status_code == 409
    assert admin.get(f"/api/v1/admin/teams/{north['id']}").json()["members"] == ["ann@example.com",
                                                                                "bob@example.com"]
    assert admin.get("/api/v1/admin/teams/999999").status_code == 404
    assert admin.patch("/api/v1/admin/teams/999999", json={"name": "X"}).status_code == 404
    # Remove: its members stay users, outside it.
    assert admin.delete(f"/api/v1/admin/teams/{north['id']}").status_code == 204
    assert admin.get(f"/api/v1/admin/teams/{north['id']}").status_code == 404
    assert admin.delete(f"/api/v1/admin/teams/{north['id']}").status_code == 404
    assert roles_of(web, ann)[1] == [] and users.get_by_id(web.engine, ann).active
    assert [t["name"] for t in admin.get("/api/v1/admin/teams").json()["data"]] == ["South"]
    # The audit log.
    assert [e.detail["name"] for e in web.audit("team.add")] == ["North", "South"]
    assert web.audit("team.add")[0].detail["members"] == ["ann@example.com"]
    update = web.audit("team.update")
    assert len(update) == 1 and update[0].user_id == root and update[0].detail["changes"] == {
        "name": ["North", "Northern"], "members": {"added": ["bob@example.com"], "removed": []}}
    removed = web.audit("team.remove")
    assert removed[0].object_id == str(north["id"]) and removed[0].detail == {
        "name": "Northern", "members": ["ann@example.com", "bob@example.com"]}
    assert south["members"] == []


def test_teams_and_roles_need_manage_users(web: Site) -> None:
    web.user("root@example.com", "Root", roles=("administrator",))
    team = memberships.add_team(web.engine, "North")
    plain = web.client(web.user("ann@example.com", "Ann", roles=("sales_rep",)))
    anonymous = web.client()
    for method, path in (("GET", "/api/v1/admin/teams"), ("POST", "/api/v1/admin/teams"),
                         ("GET", f"/api/v1/admin/teams/{team.id}"),
                         ("PATCH", f"/api/v1/admin/teams/{team.id}"),
                         ("DELETE", f"/api/v1/admin/teams/{team.id}")):
        body = {"json": {"name": "Stolen"}} if method in ("POST", "PATCH") else {}
        refused = plain.request(method, path, **body)
        assert refused.status_code == 403 and "manage users" in refused.text, (method, path)
        assert anonymous.request(method, path, **body).status_code == 401
    for method, path in (("GET", "/admin/teams"), ("POST", "/admin/teams"),
                         ("GET", f"/admin/teams/{team.id}"),
                         ("POST", f"/admin/teams/{team.id}"), ("POST", f"/admin/teams/{team.id}/delete")):
        assert plain.request(method, path, data={"name": "Stolen"}).status_code == 403, (method, path)
        assert anonymous.request(method, path).headers["location"].startswith("/login?next=")
    assert memberships.team(web.engine, "North").name == "North"
    assert web.audit("team.update") == [] and web.audit("team.remove") == []


def test_the_cli_memberships_are_audited_as_the_system(web: Site) -> None:
    web.user("ann@example.com", "Ann")
    memberships.add_team(web.engine, "North")
    memberships.change(web.engine, "ann@example.com", add_roles=["sales_rep"], add_teams=["North"])
    memberships.remove_team(web.engine, "North")
    assert [(e.user_id, e.detail["after"]) for e in web.audit("user.roles")] == [(None, ["sales_rep"])]
    assert web.audit("user.teams")[0].detail["added"] == ["North"]
    assert web.audit("team.remove")[0].detail["members"] == ["ann@example.com"]


# --- pages -----------------------------------------------------------------------------------------
def _csrf_field(html: str) -> bool:
    return bool(re.search(r'<input type="hidden" name="csrftoken" value="[^"]+"', html))


def test_the_roles_pages(web: Site) -> None:
    admin = web.client(web.user("root@example.com", "Root", roles=("administrator",)))
    confirmed(admin, "PUT", "/api/v1/admin/roles/auditor", AUDITOR)
    listing = admin.get("/admin/roles")
    assert listing.status_code == 200
    for text in ("Administrator", "Sales representative", "pack sales", "organisation",
                 'href="/admin/roles/auditor"'):
        assert text in listing.text, text
    page = admin.get("/admin/roles/sales_rep")
    assert page.status_code == 200 and "Defined by pack <strong>sales</strong>" in page.text
    auditor = admin.get("/admin/roles/auditor").text
    for text in ("Auditor", "view audit", "name = &#39;x&#39;", "website", "hidden", "all records"):
        assert text in auditor, text
    assert "built in" in admin.get("/admin/roles/administrator").text.lower()
    # The form holds the role's definition as YAML: posted back as it is, it is read and planned.
    text = re.search(r'<textarea id="role-definition"[^>]*>([^<]*)</textarea>', page.text)
    assert text is not None and "actions: [" in text.group(1)
    planned = admin.post("/admin/roles/sales_rep", data={"definition": html.unescape(text.group(1))})
    assert planned.status_code == 200 and 'id="role-plan"' in planned.text, planned.text
    missing = admin.get("/admin/roles/sales_rpe")
    assert missing.status_code == 404 and "did you mean" in missing.text
    assert 'href="/admin/roles"' in admin.get("/").text and 'href="/admin/teams"' in admin.get("/").text


def test_a_users_roles_and_teams_on_the_user_page(web: Site) -> None:
    root = web.user("root@example.com", "Root", roles=("administrator",))
    admin = web.client(root)
    memberships.add_team(web.engine, "North")
    ann = web.user("ann@example.com", "Ann", roles=("sales_rep",))
    page = admin.get(f"/admin/users/{ann}")
    assert page.status_code == 200 and _csrf_field(page.text)
    assert re.search(r'name="roles" value="sales_rep"[^>]*checked', page.text)
    assert re.search(r'name="roles" value="sales_manager"(?![^>]*checked)', page.text)
    assert 'name="teams" value="North"' in page.text
    form = {"name": "Ann", "time_zone": "UTC", "locale": "en", "memberships": "1",
            "roles": ["sales_manager"], "teams": ["North"]}
    saved = admin.post(f"/admin/users/{ann}", data=form)
    assert saved.status_code == 303, saved.text
    assert roles_of(web, ann) == (["sales_manager"], ["North"])
    # Unchecking everything takes every role and team away.
    assert admin.post(f"/admin/users/{ann}", data={"name": "Ann", "memberships": "1"}).status_code == 303
    assert roles_of(web, ann) == ([], [])
    # The last administrator, on the page: the refusal next to the roles, nothing changed.
    refused = admin.post(f"/admin/users/{root}", data={"name": "Root Renamed", "memberships": "1",
                                                       "roles": ["sales_rep"]})
    assert refused.status_code == 409 and "administrator role from yourself" in refused.text
    assert users.get_by_id(web.engine, root).name == "Root"


def test_the_teams_pages(web: Site) -> None:
    admin = web.client(web.user("root@example.com", "Root", roles=("administrator",)))
    web.user("ann@example.com", "Ann")
    listing = admin.get("/admin/teams")
    assert listing.status_code == 200 and _csrf_field(listing.text)
    made = admin.post("/admin/teams", data={"name": "North", "description": "the north"})
    assert made.status_code == 303, made.text
    team_path = made.headers["location"]
    assert "North" in admin.get("/admin/teams").text
    twice = admin.post("/admin/teams", data={"name": "North"})
    assert twice.status_code == 409 and "a team named &#39;North&#39; exists already" in twice.text
    page = admin.get(team_path)
    assert page.status_code == 200 and "the north" in page.text and _csrf_field(page.text)
    edited = admin.post(team_path, data={"name": "Northern", "description": "d",
                                         "members": "ann@example.com\nnobody@example.com"})
    assert edited.status_code == 422 and "nobody@example.com" in edited.text
    assert memberships.team(web.engine, "North").members == ()
    edited = admin.post(team_path, data={"name": "Northern", "description": "d",
                                         "members": "ann@example.com"})
    assert edited.status_code == 303
    assert memberships.team(web.engine, "Northern").members == ("ann@example.com",)
    assert "ann@example.com" in admin.get(team_path).text
    assert admin.post(f"{team_path}/delete").status_code == 303
    assert admin.get(team_path).status_code == 404
    assert memberships.list_teams(web.engine) == []


def test_an_organisation_role_defined_changed_and_removed_from_the_pages(web: Site) -> None:
    root = web.user("root@example.com", "Root", roles=("administrator",))
    admin = web.client(root)
    form = admin.get("/admin/roles/new")
    assert form.status_code == 200 and _csrf_field(form.text)
    text = "label: Auditor\nplatform: [view_audit]\nentities:\n  account: {actions: [read], scope: all}\n"
    # Errors next to their field, nothing changed.
    bad_name = admin.post("/admin/roles/new", data={"name": "Auditor!", "definition": text})
    assert bad_name.status_code == 422 and 'id="error-name" role="status">give a name' in bad_name.text
    taken = admin.post("/admin/roles/new", data={"name": "sales_rep", "definition": text})
    assert taken.status_code == 422 and "exists already" in taken.text
    broken = admin.post("/admin/roles/new", data={"name": "auditor", "definition": "label: [x\n"})
    assert broken.status_code == 422 and 'id="error-definition" role="status">' in broken.text
    assert "YAML syntax error" in broken.text
    wrong = admin.post("/admin/roles/new", data={"name": "auditor", "definition": text.replace("account",
                                                                                              "acount")})
    assert wrong.status_code == 422 and "acount" in wrong.text and "did you mean" in wrong.text
    # The plan first (a dry run), then applied on confirmation.
    planned = admin.post("/admin/roles/new", data={"name": "auditor", "definition": text})
    assert planned.status_code == 200 and 'id="role-plan"' in planned.text
    assert admin.get("/api/v1/admin/roles/auditor").status_code == 404
    revision = re.search(r'name="confirm" value="(\d+)"', planned.text)
    assert revision is not None
    applied = admin.post("/admin/roles/new", data={"name": "auditor", "definition": text,
                                                   "confirm": revision.group(1)})
    assert applied.status_code == 303 and applied.headers["location"] == "/admin/roles/auditor"
    shown = admin.get("/admin/roles/auditor").text
    assert "Defined by the <strong>organisation</strong>" in shown and "view audit" in shown
    # Changed from its own page: the form holds its definition as YAML.
    assert "label: Auditor" in shown and "view_audit" in shown
    changed_text = text.replace("scope: all", "scope: own")
    planned = admin.post("/admin/roles/auditor", data={"definition": changed_text})
    revision = re.search(r'name="confirm" value="(\d+)"', planned.text)
    assert revision is not None
    stale = admin.post("/admin/roles/auditor", data={"definition": changed_text, "confirm": "1"})
    assert stale.status_code == 409 and "review the plan again" in stale.text
    assert admin.post("/admin/roles/auditor", data={"definition": changed_text,
                                                    "confirm": revision.group(1)}).status_code == 303
    assert admin.get("/api/v1/admin/roles/auditor").json()["entities"][0]["scope"] == "own"
    # Removed.
    planned = admin.post("/admin/roles/auditor", data={"definition": changed_text, "remove": "1"})
    revision = re.search(r'name="confirm" value="(\d+)"', planned.text)
    assert revision is not None and "Remove the role" in planned.text
    removed = admin.post("/admin/roles/auditor", data={"definition": changed_text, "remove": "1",
                                                       "confirm": revision.group(1)})
    assert removed.status_code == 303 and removed.headers["location"] == "/admin/roles"
    assert admin.get("/api/v1/admin/roles/auditor").status_code == 404
    # Each applied change is a metamodel change of the administrator's, in the audit log.
    changes = [e for e in web.audit("metamodel.change") if "role auditor" in e.detail["summary"]]
    assert [e.detail["summary"] for e in changes] == ["define role auditor", "define role auditor",
                                                      "remove role auditor"]
    assert all(e.user_id == root for e in changes)
    # The built-in role cannot be edited; a user who may only assign roles sees no form.
    assert 'id="role-form"' not in admin.get("/admin/roles/administrator").text
    refused = admin.post("/admin/roles/administrator", data={"definition": text})
    assert refused.status_code == 422 and "built-in role" in refused.text


def test_the_new_routes_are_in_the_live_openapi_document(web: Site) -> None:
    admin = web.client(web.user("root@example.com", "Root", roles=("administrator",)))
    document = admin.get("/api/v1/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/api/v1/admin/roles"]) == {"get"}
    assert set(paths["/api/v1/admin/roles/{role}"]) == {"parameters", "get", "put", "delete"}
    assert set(paths["/api/v1/admin/teams"]) == {"get", "post"}
    assert set(paths["/api/v1/admin/teams/{team_id}"]) == {"parameters", "get", "patch", "delete"}
    schemas = document["components"]["schemas"]
    for body in ("UserPatch", "UserInput"):
        assert {"roles", "teams"} <= set(schemas[body]["properties"])
    assert set(schemas["Role"]["required"]) >= {"name", "defined_by", "pack", "platform", "entities"}
    # What the API answers matches the schema's required keys.
    role = admin.get("/api/v1/admin/roles/sales_rep").json()
    assert set(schemas["Role"]["required"]) == set(role)
    team = admin.post("/api/v1/admin/teams", json={"name": "North"}).json()
    assert set(schemas["Team"]["required"]) == set(team)


def test_the_forms_post_from_a_plain_browser_with_their_csrf_field(web: Site) -> None:
    """A form posted without htmx (no x-csrftoken header) passes with the page's hidden field,
    and is refused without it."""
    admin = web.client(web.user("root@example.com", "Root", roles=("administrator",)))
    ann = web.user("ann@example.com", "Ann")
    del admin.headers["x-csrftoken"]
    page = admin.get("/admin/teams").text
    token = re.search(r'name="csrftoken" value="([^"]+)"', page)
    assert token is not None
    assert admin.post("/admin/teams", data={"name": "North"}).status_code == 403
    made = admin.post("/admin/teams", data={"name": "North", "csrftoken": token.group(1)})
    assert made.status_code == 303, made.text
    user_page = admin.get(f"/admin/users/{ann}").text
    assert f'name="csrftoken" value="{token.group(1)}"' in user_page
    saved = admin.post(f"/admin/users/{ann}", data={"name": "Ann", "memberships": "1", "teams": ["North"],
                                                    "csrftoken": token.group(1)})
    assert saved.status_code == 303 and roles_of(web, ann) == ([], ["North"])


def test_a_right_taken_from_a_role_in_another_worker_counts_at_the_next_poll(web: Site, db_url: str) -> None:
    """A route guarded by a right reads the role definitions of the request's own revision (off
    the event loop), not the revision this worker loaded last, however long ago that was."""
    root = web.user("root@example.com", "Root", roles=("administrator",))
    reader = web.user("ann@example.com", "Ann", roles=("auditor",))
    confirmed(web.client(root), "PUT", "/api/v1/admin/roles/auditor", AUDITOR)
    ann = web.client(reader)
    assert ann.get("/api/v1/admin/audit").status_code == 200
    web.app.state.records.holder.poll_interval = 0  # this worker sees a new revision at once...
    other = make_app(db_url)  # ...once it looks: the change is made by another worker
    try:
        with signed_in(other, "root@example.com", raise_server_exceptions=False) as elsewhere:
            confirmed(elsewhere, "PUT", "/api/v1/admin/roles/auditor", {**AUDITOR, "platform": []})
    finally:
        other.state.engine.dispose()
    refused = ann.get("/api/v1/admin/audit")
    assert refused.status_code == 403, refused.text
    assert "the right to view audit" in refused.text
