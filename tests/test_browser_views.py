"""Views in a real browser (Chromium through Playwright): the list page's view switcher
applies a pack's list view (its columns, filter and page size), the filter box narrows it,
"Save view…" keeps the result as a personal view that the switcher then offers, and its
owner deletes it again. With SLATECRM_SCREENSHOTS=1 the page is saved as docs/images/views.png."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from slatecrm.platform.storage.engine import create_engine

from .browser import HUNG_MS, ServerThread, require_browser, sign_in, watch
from .defaults import field_types, make_app, signed_in
from .packs import install, write_files_pack
from .test_views_http import VIEWS, deal

pytestmark = pytest.mark.browser

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


@dataclass
class Site:
    url: str
    app: Starlette


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_browser()
    root = tmp_path_factory.mktemp("views-ui")
    url = f"sqlite:///{root / 'ui.db'}"
    engine = create_engine(url)
    install(engine, field_types(), "crm-core", "sales", write_files_pack(root, VIEWS, name="views-pack"))
    engine.dispose()
    app = make_app(url)
    with signed_in(app) as admin:  # the administrator's deals (the browser signs in as them too)
        account = admin.post("/api/v1/account", json={"name": "Acme"}).json()["id"]
        deal(admin, account, "Admin late", "5000", "2027-03-01")
        deal(admin, account, "Admin early", "200", "2027-01-01")
        deal(admin, account, "Admin mid", "3000", "2027-02-01")
        deal(admin, account, "Admin won", "9000", "2026-12-01", "closed_won")
    with ServerThread(app) as server:
        yield Site(server.url, app)
    app.state.engine.dispose()


@pytest.fixture
def context(site: Site, chromium: Any) -> Iterator[Any]:
    ctx = chromium.new_context(viewport={"width": 1100, "height": 700})
    ctx.set_default_timeout(HUNG_MS)  # a failure detector: actions wait on conditions
    sign_in(ctx, site.url)
    yield ctx
    ctx.close()


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def test_the_switcher_applies_a_view_and_the_list_is_saved_as_a_personal_view(site: Site,
                                                                              context: Any) -> None:
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{site.url}/e/opportunity")
    switcher = page.locator("#view-switcher")
    expect(switcher.get_by_role("link", name="All")).to_have_attribute("aria-current", "page")
    rows = page.locator("#results table.records tbody tr")
    expect(rows).to_have_count(4)

    mine_open = switcher.get_by_role("link", name="My open opportunities")
    mine_open.click()
    expect(mine_open).to_have_attribute("aria-current", "page")
    headers = ["Select", "Name", "Amount", "Close date ▲", "Sales stage"]  # the view's columns, in order
    expect(page.locator("#results thead th")).to_have_text(headers)
    expect(rows).to_have_count(2)  # the view's page size, by close date
    expect(rows.nth(0)).to_contain_text("Admin early")
    expect(page.locator("#view-filter")).to_contain_text("owner = current_user.id")

    # The filter box narrows the view (its filter still holds); htmx swaps the results.
    page.locator("#list-filter").fill("amount > 1000")
    page.locator("#list-filters").get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Admin mid")
    expect(rows.nth(1)).to_contain_text("Admin late")
    assert "view=my_open_opportunities" in page.url

    page.locator("#save-view summary").click()
    page.locator("#save-view-name").fill("Mid and late")
    page.locator("#save-view-button").click()
    mine = switcher.get_by_role("link", name="Mid and late")
    expect(mine).to_have_attribute("aria-current", "page")
    assert "view=saved-" in page.url
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Admin mid")
    expect(page.locator("#view-manage")).to_be_visible()
    if os.environ.get("SLATECRM_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / "views.png"))

    page.locator("#delete-view").click()
    expect(switcher.get_by_role("link", name="All")).to_have_attribute("aria-current", "page")
    expect(switcher.get_by_role("link", name="Mid and late")).to_have_count(0)
    assert seen.console_errors == [] and seen.dialogs == []
