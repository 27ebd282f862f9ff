"""Sessions: rotation at login, idle and absolute expiry (the clock moved by hand), logging
out everywhere, password changes and disabled users; API tokens beside them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from slatecrm.platform.identity import sessions, tokens, users
from slatecrm.platform.storage import system
from slatecrm.platform.web.authsettings import SESSION_COOKIE

from .defaults import bearer, session_for
from .signin import Site, add_user, audit_actions, form_token, login, site_fixture  # noqa: F401

EMAIL = "sam@example.com"


def signed_in(site: Site, email: str = EMAIL):  # type: ignore[no-untyped-def]
    http = site.anonymous()
    assert login(http, email).status_code == 303
    return http


def test_a_login_replaces_the_session_the_browser_came_with(site: Site) -> None:
    add_user(site.engine, EMAIL)
    planted = session_for(site.app, "other@example.com")[SESSION_COOKIE]  # e.g. set by an attacker
    http = site.anonymous()
    http.cookies.set(SESSION_COOKIE, planted, domain="testserver.local")
    assert http.get("/").status_code == 200
    done = login(http, EMAIL)
    assert done.status_code == 303 and planted not in done.headers["set-cookie"]
    assert http.cookies[SESSION_COOKIE] != planted
    assert "Pat Doe" in http.get("/").text
    assert site.anonymous(cookies={SESSION_COOKIE: planted}).get("/").status_code == 303


def test_idle_sessions_end_and_use_keeps_them_alive(site: Site) -> None:
    add_user(site.engine, EMAIL)
    http = signed_in(site)
    idle = site.app.state.auth.lifetimes.idle
    for _ in range(3):  # each request within the idle time keeps it going
        site.clock.advance(seconds=idle.total_seconds() - 60)
        assert http.get("/").status_code == 200
    site.clock.advance(seconds=idle.total_seconds() + 1)
    assert http.get("/").status_code == 303


def test_a_session_ends_after_its_lifetime_however_used(site: Site) -> None:
    add_user(site.engine, EMAIL)
    http = signed_in(site)
    lifetimes = site.app.state.auth.lifetimes
    step = lifetimes.idle - dt.timedelta(minutes=1)
    used = dt.timedelta()
    while used + step < lifetimes.absolute:
        site.clock.advance(seconds=step.total_seconds())
        used += step
        assert http.get("/").status_code == 200
    site.clock.advance(seconds=(lifetimes.absolute - used).total_seconds())
    assert http.get("/").status_code == 303


def test_last_seen_is_written_at_most_once_a_minute(site: Site) -> None:
    add_user(site.engine, EMAIL)
    http = signed_in(site)

    def last_seen() -> dt.datetime:
        with site.engine.connect() as conn:
            return conn.execute(sa.select(system.sessions.c.last_seen_at)).scalar_one()

    first = last_seen()
    site.clock.advance(seconds=30)
    http.get("/")
    assert last_seen() == first
    site.clock.advance(seconds=31)
    http.get("/")
    assert last_seen() > first


def test_log_out_everywhere_ends_every_session_of_the_user(site: Site) -> None:
    add_user(site.engine, EMAIL)
    laptop, phone = signed_in(site), signed_in(site)
    add_user(site.engine, "else@example.com", name="Someone Else")
    other = signed_in(site, "else@example.com")
    assert laptop.post("/logout-everywhere", data={"csrftoken": form_token(laptop, "/")}).status_code == 303
    assert laptop.get("/").status_code == 303 and phone.get("/").status_code == 303
    assert other.get("/").status_code == 200  # only that user's
    assert ("logout_everywhere", {"sessions": 2}) in audit_actions(site.engine)


def test_a_password_change_or_reset_ends_the_sessions_before_it(site: Site) -> None:
    add_user(site.engine, EMAIL)
    before = signed_in(site)
    users.set_password(site.engine, EMAIL, "another-long-passphrase-7")
    assert before.get("/").status_code == 303
    after = site.anonymous()
    assert login(after, EMAIL, "another-long-passphrase-7").status_code == 303
    users.reset(site.engine, EMAIL)
    assert after.get("/").status_code == 303


def test_a_disabled_users_sessions_and_tokens_stop_working(site: Site) -> None:
    add_user(site.engine, EMAIL)
    add_user(site.engine, "second.admin@example.com")  # the last administrator cannot be disabled
    http = signed_in(site)
    token = bearer(site.engine, EMAIL)
    api = site.anonymous(headers=token)
    assert api.get("/api/v1/account").status_code == 200
    users.disable(site.engine, EMAIL)
    assert http.get("/").status_code == 303
    assert api.get("/api/v1/account").status_code == 401


def test_api_tokens_need_no_csrf_token_and_read_tokens_only_read(site: Site) -> None:
    writer = site.anonymous(headers=bearer(site.engine, EMAIL))
    made = writer.post("/api/v1/account", json={"name": "Acme"})  # no CSRF token: a bearer call
    assert made.status_code == 201, made.text
    reader = site.anonymous(headers=bearer(site.engine, EMAIL, scopes=("read",)))
    assert reader.get(f"/api/v1/account/{made.json()['id']}").status_code == 200
    refused = reader.patch(f"/api/v1/account/{made.json()['id']}", json={"name": "X", "version": 1})
    assert refused.status_code == 403 and "write scope" in refused.json()["detail"]
    with site.engine.begin() as conn:
        token_id = conn.execute(sa.select(system.api_tokens.c.id).order_by(system.api_tokens.c.id)).scalar()
        assert token_id is not None and tokens.revoke(conn, token_id, dt.datetime.now(dt.UTC))
    assert writer.get("/api/v1/account").status_code == 401
    bogus = site.anonymous(headers={"Authorization": "Bearer slc_not-a-token"}).get("/api/v1/account")
    assert bogus.status_code == 401 and bogus.headers["www-authenticate"].startswith("Bearer")


def test_session_rows_hold_only_a_hash_of_the_cookie(site: Site) -> None:
    add_user(site.engine, EMAIL)
    http = signed_in(site)
    cookie = http.cookies[SESSION_COOKIE]
    with site.engine.connect() as conn:
        stored = conn.execute(sa.select(system.sessions.c.token_hash)).scalars().all()
    assert cookie not in stored and len(stored) == 1 and stored[0] != cookie
    assert cookie.startswith(sessions.SESSION_PREFIX)
