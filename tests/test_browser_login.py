"""Signing in and out in a real browser: the login page, the page asked for first, the
header's "signed in as", log out, and a session that expires while the tab is open (the
app's clock moved by hand, no waiting)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.web.authsettings import AuthSettings

from .browser import HUNG_MS, ServerThread, require_browser, watch
from .defaults import field_types, make_app
from .pack_templates import PackTemplates
from .signin import PASSWORD, Clock, add_user

pytestmark = pytest.mark.browser

EMAIL = "pat@example.com"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           pack_templates: PackTemplates) -> Iterator[tuple[str, Clock]]:
    require_browser()
    url = f"sqlite:///{tmp_path_factory.mktemp('login') / 'login.db'}"
    engine = create_engine(url)
    pack_templates.copy_to(engine, field_types(), "crm-core", "sales")
    add_user(engine, EMAIL)
    engine.dispose()
    clock = Clock()
    app = make_app(url, auth=AuthSettings(clock=clock))
    with ServerThread(app) as server:
        yield server.url, clock
    app.state.engine.dispose()


def test_login_logout_and_an_expired_session(served: tuple[str, Clock], chromium: Any) -> None:
    from playwright.sync_api import expect

    base, clock = served
    context = chromium.new_context()
    context.set_default_timeout(HUNG_MS)  # a failure detector: actions wait on conditions
    page = context.new_page()
    seen = watch(page)

    def sign_in() -> None:
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_label("E-mail").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

    page.goto(f"{base}/e/account")
    assert "/login?next=" in page.url
    page.get_by_label("E-mail").fill(EMAIL)
    page.get_by_label("Password").fill("not-the-right-one")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_contain_text("not right")
    sign_in()
    expect(page).to_have_url(f"{base}/e/account")
    expect(page.locator(".signed-in")).to_contain_text("Signed in as Pat Doe")
    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page).to_have_url(f"{base}/login")
    page.goto(f"{base}/e/contact")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in()
    expect(page).to_have_url(f"{base}/e/contact")
    clock.advance(hours=2)  # past the idle timeout
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert not seen.dialogs and not [e for e in seen.console_errors if "401" not in e]
    context.close()
