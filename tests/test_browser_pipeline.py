"""The write pipeline in a real browser: the form's validation on change shows what saving
would refuse, validation rules included (issue 10, section 1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .browser import HUNG_MS, require_browser, serve_pack, sign_in, watch
from .packs import write_pack
from .test_write_pipeline import CUSTOMER, JOB, TASK

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("pipeline")
    url = f"sqlite:///{root / 'ui.db'}"
    yield from serve_pack(url, write_pack(root, "workshop", "1.0.0",
                                          {"customer": CUSTOMER, "job": JOB, "task": TASK}))


@pytest.fixture(scope="module")
def browser(site: str, chromium: Any) -> Any:
    return chromium  # the process's browser (conftest), once the site is up


def test_the_form_shows_the_validation_rules_saving_applies(site: str, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    context.set_default_timeout(HUNG_MS)  # a failure detector: actions wait on conditions
    sign_in(context, site)
    page = context.new_page()
    watch(page)
    page.goto(f"{site}/e/job/new")
    page.locator("#f-name").fill("Fix the roof")
    amount = page.locator("#f-amount")
    amount.fill("150")
    amount.press("Tab")
    expect(page.locator("#error-amount")).to_have_text("keep the amount under 100")
    page.locator("#f-email").fill("a@example.com")
    phone = page.locator("#f-phone")
    phone.fill("555")
    phone.press("Tab")  # the rule names the e-mail field: its message shows though the phone changed
    expect(page.locator("#error-email")).to_have_text("give a phone or an e-mail, not both")
    phone.fill("")
    phone.press("Tab")
    expect(page.locator("#error-email")).to_have_text("")
    amount.fill("50")
    amount.press("Tab")
    expect(page.locator("#error-amount")).to_have_text("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text("Fix the roof")
    context.close()
