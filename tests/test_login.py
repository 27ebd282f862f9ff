"""Signing in and out through the login page, throttling, and login required everywhere."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from slatecrm.platform.cli import main
from slatecrm.platform.identity import users
from slatecrm.platform.storage import system
from slatecrm.platform.web.authsettings import SESSION_COOKIE

from .defaults import make_app
from .signin import PASSWORD, Site, add_user, audit_actions, form_token, login, site_fixture  # noqa: F401

EMAIL = "pat@example.com"


def test_login_then_logout(site: Site) -> None:
    add_user(site.engine, EMAIL)
    http = site.anonymous()
    first = http.get("/e/account?sort=name")
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=%2Fe%2Faccount%3Fsort%3Dname"
    page = http.get(first.headers["location"])
    assert page.status_code == 200 and 'type="password"' in page.text
    assert "Accounts" not in page.text  # no navigation (entity names) before signing in
    done = login(http, EMAIL, next="/e/account?sort=name")
    assert done.status_code == 303 and done.headers["location"] == "/e/account?sort=name"
    cookie = next(v for k, v in done.headers.multi_items()
                  if k == "set-cookie" and v.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
    home = http.get("/")
    assert home.status_code == 200 and "Signed in as" in home.text and "Pat Doe" in home.text
    token = http.cookies[SESSION_COOKIE]
    out = http.post("/logout", data={"csrftoken": form_token(http, "/")})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert http.get("/").status_code == 303
    replayed = site.anonymous(cookies={SESSION_COOKIE: token})
    assert replayed.get("/").status_code == 303  # the ended session stays ended
    assert [a for a, _ in audit_actions(site.engine)] == ["login", "logout"]


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(site: Site) -> None:
    add_user(site.engine, EMAIL)
    http = site.anonymous()
    wrong = login(http, EMAIL, "not-the-password-at-all")
    unknown = login(http, "nobody@example.com", "not-the-password-at-all")
    assert wrong.status_code == unknown.status_code == 401
    message = re.compile(r'<p class="form-error"[^>]*>([^<]+)</p>')
    assert message.findall(wrong.text) == message.findall(unknown.text) == [
        "The e-mail address or the password is not right."]
    assert SESSION_COOKIE not in http.cookies
    failed = [d for a, d in audit_actions(site.engine) if a == "login_failed"]
    assert failed == [{"email": EMAIL}, {"email": "nobody@example.com"}]  # never the password


def test_the_sixth_wrong_password_within_a_minute_is_throttled(site: Site) -> None:
    add_user(site.engine, EMAIL)
    http = site.anonymous()
    for _ in range(5):
        assert login(http, EMAIL, "wrong-password-again").status_code == 401
        site.clock.advance(seconds=5)
    held = login(http, EMAIL)  # even the right password waits: it is not checked
    assert held.status_code == 429 and "Too many failed sign-ins" in held.text
    assert int(held.headers["retry-after"]) > 0
    # An unknown e-mail is held back the same way, so throttling tells nothing either.
    for _ in range(5):
        login(http, "nobody@example.com", "wrong-password-again")
    assert login(http, "nobody@example.com", "wrong-password-again").status_code == 429
    site.clock.advance(seconds=31)  # the first back-off is 30 s
    assert login(http, EMAIL).status_code == 303
    actions = [a for a, _ in audit_actions(site.engine)]
    assert actions.count("login_throttled") == 2 and actions[-1] == "login"


def test_next_only_leads_to_this_site(site: Site) -> None:
    add_user(site.engine, EMAIL)
    for given, landing in (("https://evil.example/", "/"), ("//evil.example/x", "/"),
                           ("/\\evil.example", "/"), ("javascript:alert(1)", "/"),
                           ("/e/lead?q=a", "/e/lead?q=a"), ("/login", "/")):
        done = login(site.anonymous(), EMAIL, next=given)
        assert done.headers["location"] == landing, given


def test_the_login_form_needs_its_csrf_token(site: Site) -> None:
    add_user(site.engine, EMAIL)
    forged = site.anonymous().post("/login", data={"email": EMAIL, "password": PASSWORD})
    assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]


def test_a_disabled_user_cannot_sign_in_and_is_signed_out(site: Site) -> None:
    add_user(site.engine, EMAIL)
    add_user(site.engine, "second.admin@example.com")  # the last administrator cannot be disabled
    http = site.anonymous()
    assert login(http, EMAIL).status_code == 303
    users.disable(site.engine, EMAIL)
    assert http.get("/").status_code == 303
    assert login(site.anonymous(), EMAIL).status_code == 401


def _sample(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: "1" if m.group(2) == ":recordid" else "account", path)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_route_needs_a_login_but_the_public_ones(site: Site) -> None:
    """Walks the app's route table: a route added later is covered without naming it here."""
    http = site.anonymous()
    # Inbound webhooks are signed instead (web/workflow_hooks.py, tests/test_workflow_hooks.py).
    public = {"/login", "/health", "/static", "/hooks/workflows/{name}"}
    checked = 0
    for route in site.app.routes:
        if isinstance(route, Mount):
            assert route.path in public, route.path
            assert http.get(route.path + "/app.css").status_code == 200
            continue
        assert isinstance(route, Route)
        for method in sorted(route.methods or ()):
            if method == "HEAD" or route.path in public:
                continue
            path = _sample(route.path)
            answer = http.request(method, path)
            if path.startswith("/api/"):
                assert answer.status_code == 401, (method, path, answer.text)
                assert answer.headers["www-authenticate"].startswith("Bearer")
                assert answer.headers["content-type"] == "application/problem+json"
            else:
                assert answer.status_code == 303, (method, path)
                assert unquote(answer.headers["location"]) == f"/login?next={path}"
            checked += 1
    assert checked > 20
    health = http.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert http.get("/login").status_code == 200
    assert http.post("/hooks/workflows/unknown", json={}).status_code == 404  # no login asked for


def test_the_first_administrator_signs_in_with_the_administrator_role(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    made = CliRunner().invoke(main, ["init", "--no-default-packs", "--admin-email", "root@example.com",
                                     "--database", url], input=PASSWORD + "\n", catch_exceptions=False)
    assert made.exit_code == 0, made.output
    app = make_app(url)
    with TestClient(app, follow_redirects=False) as http:
        assert login(http, "root@example.com").status_code == 303
        assert "Signed in as" in http.get("/").text
    with app.state.engine.connect() as conn:
        roles = conn.execute(sa.select(system.user_roles.c.role)).scalars().all()
    assert roles == ["administrator"]
    app.state.engine.dispose()
