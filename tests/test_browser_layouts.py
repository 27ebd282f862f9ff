"""Layouts in a real browser, on SQLite and PostgreSQL: a person fills a new record's form
across its tabs (a field on the second tab too), saves, and switches the record page's tabs;
without scripts every panel is shown and the form saves the same. With SLATECRM_SCREENSHOTS=1
the record page is saved as docs/images/layout.png."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import conftest
from .browser import HUNG_MS, require_browser, sign_in, watch
from .test_browser import expect, script_errors
from .test_layouts import helpdesk

pytestmark = pytest.mark.browser

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def helpdesk_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    from .browser import serve_pack

    root = tmp_path_factory.mktemp("helpdesk")
    if request.param == "sqlite":
        yield from serve_pack(f"sqlite:///{root / 'helpdesk.db'}", helpdesk(root))
        return
    for url in conftest._postgres_database():
        yield from serve_pack(url, helpdesk(root))


def fill_across_tabs(context: Any, site: str, subject: str, *, scripts: bool) -> Any:
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{site}/e/ticket/new")
    more = page.get_by_role("tab", name="More")
    details = page.locator("#f-details")
    if scripts:
        expect(details).to_be_hidden()  # the second tab's panel waits for its tab
        expect(page.locator("#f-internal_code")).to_have_count(0)  # not placed: not in the form
        page.locator("#f-subject").fill(subject)
        page.locator("#f-priority").fill("4")
        more.click()
        expect(more).to_have_attribute("aria-selected", "true")
        expect(page.locator("#f-subject")).to_be_hidden()
    else:
        expect(details).to_be_visible()  # no script: every panel shown, the tabs link to them
        page.locator("#f-subject").fill(subject)
        page.locator("#f-priority").fill("4")
    details.fill("The paper jams")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/ticket/\d+$"))
    main = page.locator("main")
    expect(main.get_by_role("heading", name=subject)).to_be_visible()
    if scripts:
        expect(main.locator(".tab-panel").get_by_text("The paper jams", exact=True)).to_be_hidden()
        expect(main.locator("#tab-1").get_by_text("Essentials")).to_be_visible()
        page.get_by_role("tab", name="More").click()
        expect(main.locator(".tab-panel").get_by_text("The paper jams", exact=True)).to_be_visible()
        expect(main.locator("#tab-1")).to_be_hidden()
        page.get_by_role("tab", name="Summary").click()
        expect(main.locator("#tab-1")).to_be_visible()
    else:
        expect(main.locator(".tab-panel").get_by_text("The paper jams", exact=True)).to_be_visible()
    assert script_errors(seen) == [] and seen.dialogs == []
    return page


def test_a_form_is_filled_across_tabs_and_the_record_page_switches_them(helpdesk_site: str,
                                                                          chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1100, "height": 700})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, helpdesk_site)
    page = fill_across_tabs(context, helpdesk_site, "Printer jams", scripts=True)
    # A reference's hover preview: the client's compact layout, loaded on hover.
    ticket_url = page.url
    page.goto(f"{helpdesk_site}/e/client/new")
    page.locator("#f-name").fill("Acme")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/client/\d+$"))
    page.goto(ticket_url + "/edit")
    page.locator("#f-client").select_option(label="Acme")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(ticket_url)
    link = page.locator("#tab-1").get_by_role("link", name="Acme")
    link.hover()
    card = page.locator("#tab-1 .preview-card")
    expect(card).to_be_visible()
    expect(card).to_contain_text("City:")
    if os.environ.get("SLATECRM_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / "layout.png"))
    context.close()


def test_the_tabs_work_without_javascript(helpdesk_site: str, chromium: Any) -> None:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1100, "height": 700})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, helpdesk_site)
    fill_across_tabs(context, helpdesk_site, "Scanner jams", scripts=False)
    context.close()
