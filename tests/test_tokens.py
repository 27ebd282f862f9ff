"""Personal API tokens, as their users, administrators and operators use them: the CLI,
`/api/v1/me/tokens`, the `/me` page; revocation, expiry, last use, the limit, and what ends
them (a password reset, a disabled user). On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.cli import main
from slatecrm.platform.identity import tokens, users
from slatecrm.platform.storage import system

from .pack_templates import PackTemplates
from .signed_in import Site, site


@pytest.fixture
def web(engine: sa.Engine, db_url: str, pack_templates: PackTemplates,
        registry: FieldTypeRegistry) -> Iterator[Site]:
    yield from site(engine, db_url, pack_templates, registry)


def run(*args: str, database: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database", database], catch_exceptions=False)


def test_token_commands(db_url: str) -> None:
    assert run("init", "--no-default-packs", database=db_url).exit_code == 0
    engine = sa.create_engine(db_url)
    try:
        users.add(engine, "ann@example.com", "Ann Lee")
        made = run("token", "create", "--user", "ANN@example.com", "--name", "nightly export",
                   "--scope", "read", "--scope", "write", "--expires", "30d", database=db_url)
        assert made.exit_code == 0, made.output
        secret = next(line for line in made.output.splitlines() if line.startswith("slc_"))
        assert "will not be shown again" in made.output
        with engine.begin() as conn:
            match = tokens.authenticate(conn, secret, dt.datetime.now(dt.UTC))
            assert match is not None and match.scopes == {"read", "write"}
            stored = conn.execute(sa.select(system.api_tokens)).one()
        assert secret not in json.dumps([str(v) for v in stored])  # only a hash is stored
        as_json = run("token", "create", "--user", "ann@example.com", "--name", "ci", "--scope", "read",
                      "--expires", "never", "--json", database=db_url)
        ci = json.loads(as_json.output)
        assert ci["token"]["expires_at"] is None and ci["secret"].startswith("slc_")
        same_name = run("token", "create", "--user", "ann@example.com", "--name", "ci", "--scope", "read",
                        database=db_url)
        assert same_name.exit_code == 1
        assert "the name 'ci' is already used by a live token" in same_name.output
        for wrong, message in (("yesterday", "is not an expiry"), ("2020-01-01", "in the past")):
            refused = run("token", "create", "--user", "ann@example.com", "--name", "x", "--scope", "read",
                          "--expires", wrong, database=db_url)
            assert refused.exit_code == 1 and message in refused.output, refused.output
        listed = json.loads(run("token", "list", "--user", "ann@example.com", "--json",
                                database=db_url).output)
        assert [t["name"] for t in listed] == ["ci", "nightly export"]
        assert all("secret" not in t and "token_hash" not in t for t in listed)
        table = run("token", "list", database=db_url).output
        assert "active" in table and str(listed[1]["id"]) in table
        token_id = str(listed[1]["id"])
        assert run("token", "revoke", token_id, database=db_url).exit_code == 0
        again = run("token", "revoke", token_id, database=db_url)
        assert again.exit_code == 1 and f"there is no live token {token_id}" in again.output
        with engine.begin() as conn:
            assert tokens.authenticate(conn, secret, dt.datetime.now(dt.UTC)) is None
        every = json.loads(run("token", "list", "--json", database=db_url).output)
        states = {t["name"]: t["state"] for t in every}
        assert states == {"ci": "active", "nightly export": "revoked"}
        with engine.connect() as conn:
            actions = conn.execute(sa.select(system.audit.c.action, system.audit.c.detail)
                                   .where(system.audit.c.action.like("token.%"))).all()
        assert [a for a, _ in actions] == ["token.create", "token.create", "token.revoke"]
        assert secret not in json.dumps([d for _, d in actions])
        assert run("user", "disable", "ann@example.com", database=db_url).exit_code == 0
        disabled = run("token", "create", "--user", "ann@example.com", "--name", "z", "--scope", "read",
                       database=db_url)
        assert disabled.exit_code == 1 and "is disabled" in disabled.output
    finally:
        engine.dispose()


def test_my_tokens_through_the_api(web: Site) -> None:
    ann = web.user("ann@example.com", "Ann Lee")
    me = web.client(ann)
    profile = me.get("/api/v1/me")
    assert profile.status_code == 200, profile.text
    assert profile.json() | {"roles": [], "teams": []} == {
        "id": ann, "name": "Ann Lee", "email": "ann@example.com", "time_zone": "UTC", "locale": "en",
        "roles": [], "teams": [], "attributes": {}, "via": "session", "scopes": ["admin", "read", "write"]}
    made = me.post("/api/v1/me/tokens", json={"name": "script", "scopes": ["read"]})
    assert made.status_code == 201, made.text
    secret, token = made.json()["secret"], made.json()["token"]
    assert secret.startswith(token["prefix"]) and token["state"] == "active"
    expires = dt.datetime.fromisoformat(token["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=89) < expires <= dt.timedelta(days=90)  # the default lifetime
    listed = me.get("/api/v1/me/tokens").json()["data"]
    assert [t["name"] for t in listed] == ["script"] and secret not in json.dumps(listed)
    assert listed[0]["last_used_at"] is None
    # The token works, and its use is noted.
    script = web.client(token=secret)
    assert script.get("/api/v1/me").json()["via"] == "token"
    assert script.get("/api/v1/me").json()["scopes"] == ["read"]
    assert me.get("/api/v1/me/tokens").json()["data"][0]["last_used_at"] is not None
    # A read token cannot make tokens nor revoke them.
    assert script.post("/api/v1/me/tokens", json={"name": "more", "scopes": ["write"]}).status_code == 403
    assert script.delete(f"/api/v1/me/tokens/{token['id']}").status_code == 403
    # Strict bodies, every problem by field.
    wrong = me.post("/api/v1/me/tokens",
                    json={"name": " ", "scopes": ["root"], "expires": "soon", "colour": 1})
    assert wrong.status_code == 422
    assert set(wrong.json()["errors"]) == {"colour"}
    wrong = me.post("/api/v1/me/tokens", json={"name": " ", "scopes": ["root"], "expires": "soon"})
    assert wrong.status_code == 422 and set(wrong.json()["errors"]) == {"name", "scopes", "expires"}
    assert me.post("/api/v1/me/tokens", json={"scopes": ["read"]}).json()["errors"] == {
        "name": ["is required"]}
    broken = me.post("/api/v1/me/tokens", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 400
    duplicate = me.post("/api/v1/me/tokens", json={"name": "script", "scopes": ["read"]})
    assert duplicate.status_code == 409 and "name" in duplicate.json()["errors"]
    nul = me.post("/api/v1/me/tokens", json={"name": "a\u0000b", "scopes": ["read"]})
    assert nul.status_code == 422 and nul.json()["errors"] == {"name": ["must not hold the NUL character"]}
    forever = me.post("/api/v1/me/tokens",
                      json={"name": "forever", "scopes": ["read", "write"], "expires": "never"})
    assert forever.json()["token"]["expires_at"] is None
    # Revoking: mine only; another user's token is a 404 (ids do not leak).
    bob = web.user("bob@example.com", "Bob")
    bobs = web.client(bob).post("/api/v1/me/tokens", json={"name": "b", "scopes": ["read"]}).json()
    assert me.delete(f"/api/v1/me/tokens/{bobs['token']['id']}").status_code == 404
    assert web.client(token=bobs["secret"]).get("/api/v1/me").status_code == 200
    assert me.delete(f"/api/v1/me/tokens/{token['id']}").status_code == 204
    assert me.delete(f"/api/v1/me/tokens/{token['id']}").status_code == 404
    assert script.get("/api/v1/me").status_code == 401
    states = {t["name"]: t["state"] for t in me.get("/api/v1/me/tokens").json()["data"]}
    assert states == {"script": "revoked", "forever": "active"}
    # The name of a revoked token is free again.
    assert me.post("/api/v1/me/tokens", json={"name": "script", "scopes": ["read"]}).status_code == 201
    created = web.audit("token.create")
    assert len(created) == 4 and created[0].user_id == ann and created[0].object_kind == "token"
    assert [r.object_id for r in web.audit("token.revoke")] == [str(token["id"])]
    assert all(secret not in json.dumps(r.detail) for r in created)


def test_anonymous_is_401_with_bearer_and_pages_go_to_login(web: Site) -> None:
    anonymous = web.client()
    for method, path in (("GET", "/api/v1/me"), ("GET", "/api/v1/me/tokens"), ("POST", "/api/v1/me/tokens"),
                         ("DELETE", "/api/v1/me/tokens/1")):
        answer = anonymous.request(method, path, json={})
        assert answer.status_code == 401, (path, answer.text)
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.headers["content-type"] == "application/problem+json"
    page = anonymous.get("/me")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fme"
    assert web.client(token="slc_not-a-token").get("/api/v1/me").status_code == 401


def test_expiry_a_password_reset_and_a_disabled_user_end_tokens(web: Site) -> None:
    ann = web.user("ann@example.com", "Ann Lee")
    me = web.client(ann)
    before = me.post("/api/v1/me/tokens", json={"name": "before", "scopes": ["read"]}).json()
    with web.engine.begin() as conn:  # one that expired a minute ago
        now = dt.datetime.now(dt.UTC)
        _, expired = tokens.create(conn, ann, "old", ["read"], expires_at=now - dt.timedelta(minutes=1),
                                            now=now - dt.timedelta(minutes=2))
    assert web.client(token=expired).get("/api/v1/me").status_code == 401
    assert web.client(token=before["secret"]).get("/api/v1/me").status_code == 200
    users.reset(web.engine, "ann@example.com")
    assert web.client(token=before["secret"]).get("/api/v1/me").status_code == 401
    assert me.get("/api/v1/me").status_code == 401  # the reset ended her sessions too
    me = web.client(ann)  # signed in again
    states = {t["name"]: t["state"] for t in me.get("/api/v1/me/tokens").json()["data"]}
    assert states == {"before": "superseded", "old": "expired"}
    # Its name is free again.
    after = me.post("/api/v1/me/tokens", json={"name": "before", "scopes": ["read"]})
    assert after.status_code == 201, after.text
    assert web.client(token=after.json()["secret"]).get("/api/v1/me").status_code == 200
    users.disable(web.engine, "ann@example.com")
    assert web.client(token=after.json()["secret"]).get("/api/v1/me").status_code == 401
    assert me.get("/api/v1/me").status_code == 401


def test_a_user_holds_at_most_the_limit_of_live_tokens(web: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "LIVE_MAX", 3)
    me = web.client(web.user("ann@example.com", "Ann Lee"))
    made = [me.post("/api/v1/me/tokens", json={"name": f"t{i}", "scopes": ["read"]}).json() for i in range(3)]
    refused = me.post("/api/v1/me/tokens", json={"name": "t3", "scopes": ["read"]})
    assert refused.status_code == 409
    assert refused.json()["errors"] == {"": ["a user holds at most 3 live tokens: revoke one first"]}
    assert me.delete(f"/api/v1/me/tokens/{made[0]['token']['id']}").status_code == 204
    assert me.post("/api/v1/me/tokens", json={"name": "t3", "scopes": ["read"]}).status_code == 201


def _form(html: str, field: str) -> str:
    start = html.index(f'id="{field}"')
    return html[start:html.index(">", start)]


def test_the_me_page(web: Site) -> None:
    ann = web.user("ann@example.com", "Ann Lee")
    me = web.client(ann)
    page = me.get("/me")
    assert page.status_code == 200, page.text
    text = " ".join(page.text.split())
    assert "Ann Lee" in text and "It acts with your roles, narrowed by its scopes" in text
    made = me.post("/me/tokens",
                   data={"name": "from the page", "scopes": ["read", "write"], "expires": "30d"})
    assert made.status_code == 200, made.text
    assert "will not be shown again" in made.text and made.headers["cache-control"] == "no-store"
    secret = _form(made.text, "new-token-secret").split('value="')[1].split('"')[0]
    assert web.client(token=secret).get("/api/v1/me").json()["scopes"] == ["read", "write"]
    shown = me.get("/me").text
    assert secret not in shown and "from the page" in shown  # the secret was shown once
    refused = me.post("/me/tokens", data={"name": "", "scopes": ["read"], "expires": "other",
                                          "expires_other": "2001-01-01"})
    assert refused.status_code == 422 and "give the token a name" in refused.text
    assert "the expiry is in the past" in refused.text
    token_id = me.get("/api/v1/me/tokens").json()["data"][0]["id"]
    revoked = me.post(f"/me/tokens/{token_id}/revoke")
    assert revoked.status_code == 303 and revoked.headers["location"] == "/me#tokens"
    assert web.client(token=secret).get("/api/v1/me").status_code == 401
    assert me.post(f"/me/tokens/{token_id}/revoke").status_code == 404
    assert web.client().post("/me/tokens", data={"name": "x"}).status_code == 303  # to the login page


def test_the_openapi_document_has_the_identity_routes(web: Site) -> None:
    """Every route of /api/v1/me and /api/v1/admin/users is in the document with each of its methods
    (tests/test_openapi.py validates the whole document)."""
    from slatecrm.platform.web import me_api, users_api

    admin = web.client(web.user("root@example.com", "Root", roles=("administrator",)))
    document: dict[str, Any] = admin.get("/api/v1/openapi.json").json()

    for route in [*me_api.routes, *users_api.routes]:
        path = route.path.replace(":recordid", "")
        assert path in document["paths"], path
        documented = {m.upper() for m in document["paths"][path] if m != "parameters"}
        assert documented == set(route.methods or ()) - {"HEAD"}, path
    answer = admin.get("/api/v1/me")
    schema = document["components"]["schemas"]["Me"]
    assert set(schema["required"]) <= set(answer.json())
