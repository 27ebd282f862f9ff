"""The users admin, as an administrator uses it through the API and the pages; everyone
else is refused (403 on every admin route, 401 or the login page when not signed in); each
change is in the audit log with what changed. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.cli import main
from slatecrm.platform.identity import users
from slatecrm.platform.web import users_api, users_pages

from .pack_templates import PackTemplates
from .signed_in import PASSWORD, Site, site
from .test_api_live_editing import confirmed

STRONG = "copper lantern violet 77"


@pytest.fixture
def web(engine: sa.Engine, db_url: str, pack_templates: PackTemplates,
        registry: FieldTypeRegistry) -> Iterator[Site]:
    yield from site(engine, db_url, pack_templates, registry)


def _concrete(path: str, user_id: int) -> str:
    return path.replace("{user_id:recordid}", str(user_id)).replace("{token_id:recordid}", "1")


def test_every_admin_route_refuses_a_user_without_manage_users(web: Site) -> None:
    admin = web.user("root@example.com", "Root", roles=("administrator",))
    plain = web.client(web.user("ann@example.com", "Ann", roles=("sales_rep",)))
    anonymous = web.client()
    admin_token = web.client(admin).post("/api/v1/me/tokens", json={"name": "r", "scopes": ["read", "write"]})
    narrow = web.client(token=admin_token.json()["secret"])  # an administrator's token without admin scope
    checked = 0
    for route in [*users_api.routes, *users_pages.routes]:
        path = _concrete(route.path, admin)
        for method in sorted(set(route.methods or ()) - {"HEAD"}):
            body = {"json": {}} if path.startswith("/api/") and method in ("POST", "PATCH") else {}
            for who in (plain, narrow):
                answer = who.request(method, path, **body)
                assert answer.status_code == 403, (method, path, answer.text)
                assert "manage users" in answer.text
                assert "root@example.com" not in answer.text
            refused = anonymous.request(method, path, **body)
            if path.startswith("/api/"):
                assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            else:
                assert refused.status_code == 303 and refused.headers["location"].startswith("/login?next=")
            checked += 1
    assert checked == 16
    assert web.audit("user.update") == []


def test_the_users_admin_api(web: Site) -> None:
    root = web.user("root@example.com", "Root", roles=("administrator",))
    admin = web.client(root)
    made = admin.post("/api/v1/admin/users", json={"email": "Ann@Example.com", "name": "  Ann   Lee ",
                                                "time_zone": "Europe/Paris"})
    assert made.status_code == 201, made.text
    ann = made.json()
    assert made.headers["location"] == f"/api/v1/admin/users/{ann['id']}"
    assert ann | {"created_at": "", "updated_at": "", "password_changed_at": ""} == {
        "id": ann["id"], "email": "Ann@example.com", "name": "Ann Lee", "active": True,
        "time_zone": "Europe/Paris", "locale": "en", "manager": None, "manager_id": None,
        "has_password": False, "roles": [], "teams": [], "attributes": {}, "created_at": "",
        "updated_at": "", "password_changed_at": ""}
    # An administrator does not choose someone else's password (`slatecrm user set-password`).
    assert admin.post("/api/v1/admin/users",
                      json={"email": "p@example.com", "name": "P", "password": STRONG}).json()["errors"] == {
        "password": ["unknown field; this body takes email, name, time_zone, locale, manager, "
                     "roles, teams, attributes"]}
    users.set_password(web.engine, "ann@example.com", STRONG)
    # Every wrong value by field, at once; unknown keys refused.
    wrong = admin.post("/api/v1/admin/users", json={"email": "nope", "name": "", "time_zone": "Mars/Base",
                                                 "locale": "english!!"})
    assert wrong.status_code == 422
    assert set(wrong.json()["errors"]) == {"email", "name", "time_zone", "locale"}
    assert admin.post("/api/v1/admin/users", json={"email": "x@example.com", "name": "X", "role": "boss"}) \
        .json()["errors"] == {"role": ["unknown field; this body takes email, name, time_zone, locale, "
                                       "manager, roles, teams, attributes"]}
    assert admin.post("/api/v1/admin/users", json={"name": "X"}).json()["errors"] == {
        "email": ["is required"]}
    taken = admin.post("/api/v1/admin/users", json={"email": "ANN@example.com", "name": "Other"})
    assert taken.status_code == 409 and set(taken.json()["errors"]) == {"email"}
    nul = admin.post("/api/v1/admin/users", json={"email": "n@example.com", "name": "N\u0000"})
    assert nul.status_code == 422 and nul.json()["errors"] == {"name": ["must not hold the NUL character"]}
    nobody = admin.post("/api/v1/admin/users",
                        json={"email": "m@example.com", "name": "M", "manager": "no@x.io"})
    assert nobody.status_code == 422 and set(nobody.json()["errors"]) == {"manager"}
    # Read, list with a filter, change.
    assert admin.get(f"/api/v1/admin/users/{ann['id']}").json()["name"] == "Ann Lee"
    assert admin.get("/api/v1/admin/users/999999").status_code == 404
    names = [u["name"] for u in admin.get("/api/v1/admin/users").json()["data"]]
    assert names == ["Ann Lee", "Root"]
    assert [u["name"] for u in admin.get("/api/v1/admin/users?q=ANN").json()["data"]] == ["Ann Lee"]
    assert admin.get("/api/v1/admin/users?active=maybe").status_code == 422
    changed = admin.patch(f"/api/v1/admin/users/{ann['id']}",
                          json={"name": "Ann Smith", "locale": "fr", "manager": "root@example.com"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["manager"] == "root@example.com" and changed.json()["manager_id"] == root
    circle = admin.patch(f"/api/v1/admin/users/{root}", json={"manager": "ann@example.com"})
    assert circle.status_code == 409 and "circle" in circle.json()["errors"]["manager"][0]
    assert admin.patch(f"/api/v1/admin/users/{ann['id']}",
                       json={"email": "new@example.com"}).status_code == 422
    assert admin.post(f"/api/v1/admin/users/{root}/password-reset").status_code == 409
    yourself = admin.patch(f"/api/v1/admin/users/{root}", json={"active": False})
    assert yourself.status_code == 409 and yourself.json()["errors"] == {
        "active": ["you cannot disable yourself: ask another administrator"]}
    # Disable, enable, reset: the user's sessions and tokens end with it.
    own = web.client(ann["id"]).post("/api/v1/me/tokens", json={"name": "s", "scopes": ["read"]}).json()
    assert admin.get(f"/api/v1/admin/users/{ann['id']}/tokens").json()["data"][0]["name"] == "s"
    assert admin.patch(f"/api/v1/admin/users/{ann['id']}", json={"active": False}).json()["active"] is False
    assert web.client(token=own["secret"]).get("/api/v1/me").status_code == 401
    assert admin.patch(f"/api/v1/admin/users/{ann['id']}", json={"active": True}).json()["active"] is True
    assert web.client(token=own["secret"]).get("/api/v1/me").status_code == 200
    reset = admin.post(f"/api/v1/admin/users/{ann['id']}/password-reset")
    assert reset.status_code == 200 and reset.json()["has_password"] is False
    assert reset.json()["password_changed_at"] > changed.json()["password_changed_at"]
    assert web.client(token=own["secret"]).get("/api/v1/me").status_code == 401
    assert admin.get(f"/api/v1/admin/users/{ann['id']}/tokens").json()["data"][0]["state"] == "superseded"
    # An administrator revokes another user's token.
    again = web.client(ann["id"]).post("/api/v1/me/tokens", json={"name": "s", "scopes": ["read"]}).json()
    assert admin.delete(f"/api/v1/admin/users/{root}/tokens/{again['token']['id']}").status_code == 404
    assert admin.delete(f"/api/v1/admin/users/{ann['id']}/tokens/{again['token']['id']}").status_code == 204
    assert web.client(token=again["secret"]).get("/api/v1/me").status_code == 401
    # The audit log: who, what, before and after; never a password or its hash.
    updates = web.audit("user.update")
    assert updates[0].user_id == root and updates[0].object_id == str(ann["id"])
    assert updates[0].detail["changes"] == {"name": ["Ann Lee", "Ann Smith"], "locale": ["en", "fr"],
                                            "manager_id": [None, root]}
    assert [r.detail["changes"] for r in web.audit("user.disable")] == [{"active": [True, False]}]
    assert len(web.audit("user.enable")) == 1 and web.audit("user.password_reset")[0].user_id == root
    added = next(r for r in web.audit("user.add") if r.object_id == str(ann["id"]))
    assert added.user_id == root and added.detail["after"]["password"] is None
    assert web.audit("user.password_set")[0].user_name == "system"
    with web.engine.connect() as conn:
        details = conn.execute(sa.text("select detail from slate_audit")).scalars().all()
    everything = json.dumps(details, default=str)
    assert STRONG not in everything and "argon2" not in everything
    assert len(web.audit("token.revoke")) == 1 and web.audit("token.revoke")[0].user_id == root


def test_the_users_admin_pages(web: Site) -> None:
    root = web.user("root@example.com", "Root", roles=("administrator",))
    web.user("bob@example.com", "Bob Stone")
    admin = web.client(root)
    listing = admin.get("/admin/users")
    assert listing.status_code == 200 and "Bob Stone" in listing.text and "Root" in listing.text
    filtered = admin.get("/admin/users?q=bob")
    assert "Bob Stone" in filtered.text and "root@example.com" not in filtered.text
    assert "Bob Stone" not in admin.get("/admin/users?active=false").text
    assert admin.get("/admin/users/new").status_code == 200
    refused = admin.post("/admin/users/new", data={"email": "not an address", "name": ""})
    assert refused.status_code == 422 and "is required" in refused.text
    refused = admin.post("/admin/users/new", data={"email": "not an address", "name": "Cy"})
    assert refused.status_code == 422 and "is not an e-mail address" in refused.text
    made = admin.post("/admin/users/new", data={"email": "cy@example.com", "name": "Cy Young",
                                                "time_zone": "UTC", "locale": "en", "manager": ""})
    assert made.status_code == 303, made.text
    page_path = made.headers["location"]
    page = admin.get(page_path)
    assert page.status_code == 200 and "Cy Young" in page.text and "Reset password" in page.text
    edited = admin.post(page_path, data={"name": "Cy Old", "time_zone": "Mars/Base", "locale": "en"})
    assert edited.status_code == 422 and "is not a time zone" in edited.text
    edited = admin.post(page_path, data={"name": "Cy Old", "time_zone": "Europe/Paris", "locale": "en",
                                         "manager": "bob@example.com"})
    assert edited.status_code == 303
    assert "Cy Old" in admin.get(page_path).text
    assert admin.post(f"{page_path}/disable").status_code == 303
    assert "Enable" in admin.get(page_path).text
    assert admin.post(f"{page_path}/enable").status_code == 303
    assert admin.post(f"{page_path}/password-reset").status_code == 303
    assert "password not set" in admin.get(page_path).text
    assert admin.post(f"/admin/users/{root}/disable").status_code == 409  # not yourself
    assert admin.get("/admin/users/99999").status_code == 404
    assert [r.detail["changes"]["name"] for r in web.audit("user.update")] == [["Cy Young", "Cy Old"]]


def test_the_cli_user_commands_are_audited_too(db_url: str) -> None:
    def run(*args: str, stdin: str | None = None) -> None:
        result = CliRunner().invoke(main, [*args, "--database", db_url], input=stdin, catch_exceptions=False)
        assert result.exit_code == 0, result.output

    run("init", "--no-default-packs")
    run("user", "add", "ann@example.com", "--name", "Ann", "--password-stdin", stdin=PASSWORD + "\n")
    run("user", "update", "ann@example.com", "--time-zone", "Europe/Paris")
    run("user", "disable", "ann@example.com")
    run("user", "reset", "ann@example.com")
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select action, user_name, detail from slate_audit "
                                        "where action like 'user.%' order by id")).all()
    finally:
        engine.dispose()
    assert [(r.action, r.user_name) for r in rows] == [
        ("user.add", "system"), ("user.update", "system"), ("user.disable", "system"),
        ("user.password_reset", "system")]
    detail = rows[1].detail if isinstance(rows[1].detail, dict) else json.loads(rows[1].detail)
    assert detail["changes"] == {"time_zone": ["UTC", "Europe/Paris"]}
    assert PASSWORD not in json.dumps([str(r.detail) for r in rows])


def _header(html: str) -> str:
    return html[html.index('<header class="top">'):html.index("</header>")]


def test_the_header_links_to_your_profile_and_to_the_admin_pages_you_may_open(web: Site) -> None:
    root = web.user("root@example.com", "Root", roles=("administrator",))
    admin = web.client(root)
    auditor_role = {"label": "Auditor", "entities": {"account": {"actions": ["read"], "scope": "own"}},
                    "platform": ["view_audit"]}
    confirmed(admin, "PUT", "/api/v1/admin/roles/auditor", auditor_role)
    people = {"admin": admin, "plain": web.client(web.user("ann@example.com", "Ann", roles=("sales_rep",))),
              "auditor": web.client(web.user("aud@example.com", "Aud", roles=("auditor",)))}
    expected = {"admin": {"/admin/users", "/admin/audit"}, "plain": set(), "auditor": {"/admin/audit"}}
    for who, http in people.items():
        header = _header(http.get("/").text)
        assert 'href="/me"' in header, who
        shown = {path for path in ("/admin/users", "/admin/audit") if f'href="{path}"' in header}
        assert shown == expected[who], who
        for path in ("/admin/users", "/admin/audit"):  # a link shown opens; one not shown is refused
            assert http.get(path).status_code == (200 if path in shown else 403), (who, path)
    assert "/admin/" not in web.client().get("/login").text  # not signed in: no header links


def test_an_entity_cannot_be_named_me(web: Site) -> None:
    """`/api/v1/me` would shadow its collection."""
    admin = web.client(web.user("root@example.com", "Root", roles=("administrator",)))
    refused = admin.put("/api/v1/admin/entities/me", json={"label": "Me", "fields": {"x": {"type": "text"}}})
    assert refused.status_code == 422
    assert "'me' is reserved for a route of the web interface" in refused.text
    assert admin.get("/api/v1/me").json()["email"] == "root@example.com"
