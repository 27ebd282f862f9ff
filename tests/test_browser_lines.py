"""The `lines` field in a real browser, on SQLite and PostgreSQL: a person fills blank rows of
the form's line table, saves, sees the lines as a table on the record page, then reorders and
removes lines in the edit form; with scripts on and off."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from . import conftest
from .browser import HUNG_MS, require_browser, sign_in, watch
from .test_browser import expect, script_errors
from .test_lines_field import quotes_pack

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def quotes_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    from .browser import serve_pack

    root = tmp_path_factory.mktemp("quotes")
    if request.param == "sqlite":
        yield from serve_pack(f"sqlite:///{root / 'quotes.db'}", quotes_pack(root))
        return
    for url in conftest._postgres_database():
        yield from serve_pack(url, quotes_pack(root))


def fill_and_reorder(context: Any, site: str) -> None:
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{site}/e/quote/new")
    page.locator("#f-name").fill("Office")
    items = page.get_by_role("group", name="Items")
    items.get_by_label("Product, line 1", exact=True).fill("Desk")
    items.get_by_label("Qty, line 1", exact=True).fill("2")
    items.get_by_label("Unit price, line 1", exact=True).fill("100")
    items.get_by_label("Product, line 2", exact=True).fill("Lamp")
    items.get_by_label("Qty, line 2", exact=True).fill("1")
    items.get_by_label("Unit price, line 2", exact=True).fill("9.99")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/quote/\d+$"))
    table = page.locator("main table.line-items")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").first).to_contain_text("Desk")
    expect(page.locator("main")).to_contain_text("209.99")  # the roll-up over the lines
    page.goto(page.url + "/edit")
    items = page.get_by_role("group", name="Items")
    items.get_by_label("Position of line 2", exact=True).fill("0")  # Lamp first
    items.get_by_label("Remove line 1", exact=True).check()  # Desk removed
    items.get_by_label("Product, line 3", exact=True).fill("Rug")
    items.get_by_label("Qty, line 3", exact=True).fill("1")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/quote/\d+$"))
    rows = page.locator("main table.line-items tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Lamp")
    expect(rows.nth(1)).to_contain_text("Rug")
    assert script_errors(seen) == [] and seen.dialogs == []


def test_lines_are_added_reordered_and_removed_in_the_form(quotes_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, quotes_site)
    fill_and_reorder(context, quotes_site)
    context.close()


def test_the_line_table_works_without_javascript(quotes_site: str, chromium: Any) -> None:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, quotes_site)
    fill_and_reorder(context, quotes_site)
    context.close()


def test_add_a_line_reveals_more_rows_with_a_script(quotes_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, quotes_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{quotes_site}/e/quote/new")
    page.locator("#f-name").fill("Many")
    items = page.get_by_role("group", name="Items")
    expect(items.get_by_label("Product, line 4", exact=True)).to_be_hidden()  # three blank rows to start
    for line in range(1, 6):
        if line > 3:
            items.get_by_role("button", name="Add a line").click()
        items.get_by_label(f"Product, line {line}", exact=True).fill(f"Item {line}")
        items.get_by_label(f"Qty, line {line}", exact=True).fill("1")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/quote/\d+$"))
    expect(page.locator("main table.line-items tbody tr")).to_have_count(5)
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_no_add_button_without_a_script(quotes_site: str, chromium: Any) -> None:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, quotes_site)
    page = context.new_page()
    page.goto(f"{quotes_site}/e/quote/new")
    items = page.get_by_role("group", name="Items")
    expect(items.get_by_role("button", name="Add a line")).to_have_count(0)
    expect(items.get_by_label("Product, line 3", exact=True)).to_be_visible()
    context.close()
