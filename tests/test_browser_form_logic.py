"""Form logic in a real browser, on SQLite and PostgreSQL (issue 15's acceptance): a field
appears when another input changes (the server answers, through htmx, no rule runs in the
browser), becomes required, and saving without it shows the error; then with it, it saves.
Without JavaScript the same form works: the save is refused with the field shown and its
error, and saves once filled in.

With SLATECRM_SCREENSHOTS=1 it writes docs/images/form-logic.png for docs/ui.md."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import conftest
from .browser import HUNG_MS, require_browser, serve_pack, sign_in, watch
from .test_browser import expect, script_errors
from .test_form_logic import deal_pack

pytestmark = pytest.mark.browser

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def deals_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("deals")
    if request.param == "sqlite":
        yield from serve_pack(f"sqlite:///{root / 'deals.db'}", deal_pack(root))
        return
    for url in conftest._postgres_database():
        yield from serve_pack(url, deal_pack(root))


def test_a_field_appears_becomes_required_and_is_enforced_on_save(deals_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1100, "height": 700})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, deals_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{deals_site}/e/deal/new")
    page.locator("#f-name").fill("Acme renewal")
    expect(page.locator("#f-loss_reason")).to_have_count(0)
    expect(page.locator("#row-loss_reason")).to_be_hidden()
    page.locator("#f-status").select_option("lost")
    reason = page.locator("#f-loss_reason")
    expect(reason).to_be_visible()  # the server's answer to the change
    expect(page.locator("#row-loss_reason .req")).to_be_visible()  # and required now
    if os.environ.get("SLATECRM_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / "form-logic.png"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#error-loss_reason")).to_contain_text("is required when status = 'lost'")
    expect(page.locator("#form-errors")).to_contain_text("Loss reason")
    page.locator("#f-loss_reason").fill("Price")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/deal/\d+$"))
    expect(page.locator("main dl.fields").first).to_contain_text("Price")
    # Back to open: the field is hidden again, on the form and on the record page.
    page.goto(page.url + "/edit")
    expect(page.locator("#f-loss_reason")).to_have_value("Price")
    page.locator("#f-status").select_option("open")
    expect(page.locator("#f-loss_reason")).to_have_count(0)
    page.locator("#f-status").select_option("lost")
    expect(page.locator("#f-loss_reason")).to_have_value("Price")  # shown again as it was
    page.locator("#f-status").select_option("open")
    expect(page.locator("#f-loss_reason")).to_have_count(0)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/deal/\d+$"))
    expect(page.locator("main dl.fields").first).not_to_contain_text("Loss reason")
    page.goto(page.url + "/edit")
    page.locator("#f-status").select_option("lost")
    expect(page.locator("#f-loss_reason")).to_have_value("Price")  # the stored value was kept
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_without_javascript_the_server_refuses_and_shows_the_field(deals_site: str, chromium: Any) -> None:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1100, "height": 700})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, deals_site)
    page = context.new_page()
    page.goto(f"{deals_site}/e/deal/new")
    page.locator("#f-name").fill("Quiet loss")
    page.locator("#f-status").select_option("lost")
    expect(page.locator("#f-loss_reason")).to_have_count(0)  # nothing asks the server before saving
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#error-loss_reason")).to_contain_text("is required when status = 'lost'")
    page.locator("#f-loss_reason").fill("Timing")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/deal/\d+$"))
    expect(page.locator("main dl.fields").first).to_contain_text("Timing")
    context.close()
