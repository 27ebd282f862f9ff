"""CSRF tokens, the Origin's scheme, the Host allow-list and trusted proxies, and `serve`'s
options for them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from slatecrm.platform.cli import main
from slatecrm.platform.storage import system
from slatecrm.platform.web import hosts
from slatecrm.platform.web.hosts import AllowedHosts
from slatecrm.platform.web.proxies import TrustedProxies

from .defaults import make_app, signed_in
from .signin import Site, add_user, form_token, login, site_fixture  # noqa: F401

EMAIL = "kim@example.com"


@contextmanager
def app_client(db_url: str, *, signed: bool = True, **options: Any) -> Iterator[TestClient]:
    client_options = {k: options.pop(k) for k in ("base_url", "client") if k in options}
    client_options.update(raise_server_exceptions=False, follow_redirects=False)
    app = make_app(db_url, **options)
    http = signed_in(app, **client_options) if signed else TestClient(app, **client_options)
    with http:
        yield http
    app.state.engine.dispose()


def test_changes_with_a_session_need_the_csrf_token(site: Site) -> None:
    http = signed_in(site.app, follow_redirects=False)
    token = http.headers.pop("x-csrftoken")
    refused = http.post("/api/v1/account", json={"name": "Acme"})
    assert refused.status_code == 403 and "x-csrftoken" in refused.json()["detail"]
    accepted = http.post("/api/v1/account", json={"name": "Acme"}, headers={"x-csrftoken": token})
    assert accepted.status_code == 201
    form = {"name": "Globex"}
    assert http.post("/e/account/new", data=form).status_code == 403
    wrong = http.post("/e/account/new", data={**form, "csrftoken": "forged"})
    assert wrong.status_code == 403
    saved = http.post("/e/account/new", data={**form, "csrftoken": form_token(http, "/e/account/new")})
    assert saved.status_code == 303
    # Every unsafe form of a page carries the token (here: the record's move, delete, log out).
    page = http.get(saved.headers["location"]).text
    assert page.count('name="csrftoken"') >= 2 and f'"x-csrftoken": "{token}"' in page


def test_an_origin_with_another_scheme_is_another_site(site: Site) -> None:
    http = signed_in(site.app)
    same = http.post("/api/v1/account", json={"name": "A"}, headers={"Origin": "http://testserver"})
    assert same.status_code == 201
    other = http.post("/api/v1/account", json={"name": "B"}, headers={"Origin": "https://testserver"})
    assert other.status_code == 403 and "another site" in other.json()["detail"]


def test_a_malformed_multipart_body_is_a_400(site: Site) -> None:
    http = signed_in(site.app)
    http.headers.pop("x-csrftoken")
    answer = http.post("/e/account/new", content=b"x", headers={"content-type": "multipart/form-data"})
    assert answer.status_code == 400


def test_a_host_not_on_the_list_is_refused_before_anything(site: Site, db_url: str) -> None:
    listed = AllowedHosts.of(hosts.bound_to("127.0.0.1", 8000))
    with app_client(db_url, allowed_hosts=listed, base_url="http://127.0.0.1:8000") as http:
        assert http.get("/api/v1/account").status_code == 200
        assert http.get("/api/v1/account", headers={"Host": "localhost:8000"}).status_code == 200
        # DNS rebinding: the spoofed name, with an Origin that matches it.
        spoofed = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
        listing = http.get("/api/v1/account?limit=1", headers=spoofed)
        assert listing.status_code == 400 and "evil.example" not in listing.text
        assert http.post("/api/v1/account", json={"name": "X"}, headers=spoofed).status_code == 400
        assert http.get("/health", headers={"Host": "127.0.0.1:9999"}).status_code == 400


def test_forwarded_headers_count_only_from_a_trusted_proxy(site: Site, db_url: str) -> None:
    add_user(site.engine, EMAIL)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    proxies = TrustedProxies.of(["10.0.0.0/8"])
    with app_client(db_url, signed=False, trusted_proxies=proxies, client=("10.1.2.3", 4000)) as http:
        done = login(http, EMAIL, **forwarded)
        assert done.status_code == 303
        cookies = [v for k, v in done.headers.multi_items() if k == "set-cookie"]
        assert cookies and all("Secure" in c for c in cookies)
    with app_client(db_url, signed=False, trusted_proxies=proxies, client=("192.0.2.7", 4000)) as http:
        done = login(http, EMAIL, **forwarded)
        assert done.status_code == 303
        assert not any("Secure" in v for k, v in done.headers.multi_items() if k == "set-cookie")
    with site.engine.connect() as conn:
        addresses = conn.execute(sa.select(system.audit.c.address).where(system.audit.c.action == "login")
                                 .order_by(system.audit.c.id)).scalars().all()
    assert addresses == ["203.0.113.9", "192.0.2.7"]


def test_serve_takes_host_and_proxy_lists_and_refuses_bad_ones() -> None:
    assert hosts.bound_to("0.0.0.0", 8000) == ["localhost:8000", "127.0.0.1:8000", "[::1]:8000"]
    assert hosts.bound_to("crm.example.com", 443)[0] == "crm.example.com:443"
    assert AllowedHosts.parse("crm.example.com").allows("CRM.example.com:8443")
    bad_host = CliRunner().invoke(main, ["serve", "--allowed-host", "crm:port", "--database", "sqlite:///x.db"])
    assert bad_host.exit_code == 2 and "crm:port" in bad_host.output
    bad_proxy = CliRunner().invoke(main, ["serve", "--trusted-proxy", "10.0.0.0/99",
                                          "--database", "sqlite:///x.db"])
    assert bad_proxy.exit_code == 2 and "10.0.0.0/99" in bad_proxy.output
