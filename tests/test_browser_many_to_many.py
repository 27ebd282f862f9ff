"""The `many_to_many` field in a real browser, on SQLite and PostgreSQL: a person picks
several records in the form's multi-select (its search keeps what was picked), saves, sees
the links on the record page, and links / unlinks from the other side's page; with scripts
off the multi-select is a plain form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from . import conftest
from .browser import HUNG_MS, require_browser, screenshot, serve_pack, sign_in, watch
from .test_browser import expect, script_errors
from .test_many_to_many import deals_pack

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sales_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("sales")
    if request.param == "sqlite":
        yield from serve_pack(f"sqlite:///{root / 'sales.db'}", deals_pack(root))
        return
    for url in conftest._postgres_database():
        yield from serve_pack(url, deals_pack(root))


def add_person(page: Any, site: str, name: str) -> None:
    page.goto(f"{site}/e/person/new")
    page.locator("#f-name").fill(name)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/person/\d+$"))


def test_several_people_picked_with_search_are_linked_both_ways(sales_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, sales_site)
    page = context.new_page()
    seen = watch(page)
    for name in ("Ada Byron", "Grace Hopper", "Alan Turing"):
        add_person(page, sales_site, name)
    page.goto(f"{sales_site}/e/deal/new")
    page.locator("#f-name").fill("Compilers")
    picker = page.locator("#f-people")
    picker.select_option(label="Ada Byron")
    page.locator("#f-people__search").fill("Grace")
    # The search answers with Grace, and Ada stays picked.
    expect(picker.locator("option")).to_have_count(2)
    expect(picker.locator("option", has_text="Ada Byron")).to_have_js_property("selected", True)
    picker.select_option(label=["Ada Byron", "Grace Hopper"])
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/deal/\d+$"))
    deal_url = page.url
    linked = page.locator("#linked-people")
    expect(linked.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_role("link", name="Grace Hopper").first).to_be_visible()
    screenshot(page, "many-to-many-record")
    # From Alan's page (the other side): link him to the deal, then unlink Ada from the deal's.
    page.get_by_role("link", name="Grace Hopper").first.click()
    expect(page.locator("#linked-deals tbody tr")).to_have_count(1)
    page.goto(f"{sales_site}/e/person")
    page.get_by_role("link", name="Alan Turing").click()
    page.locator("#link-deals").select_option(label="Compilers")
    page.locator("#linked-deals").get_by_role("button", name="Link").click()
    expect(page.locator("#linked-deals tbody tr")).to_have_count(1)
    page.goto(deal_url)
    expect(page.locator("#linked-people tbody tr")).to_have_count(3)
    page.get_by_role("button", name="Unlink Ada Byron").click()
    expect(page.locator("#linked-people tbody tr")).to_have_count(2)
    expect(page.locator("#linked-people tbody")).not_to_contain_text("Ada Byron")
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_the_multi_select_works_without_javascript(sales_site: str, chromium: Any) -> None:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, sales_site)
    page = context.new_page()
    for name in ("Silent One", "Silent Two"):
        add_person(page, sales_site, name)
    page.goto(f"{sales_site}/e/deal/new")
    page.locator("#f-name").fill("Quiet deal")
    page.locator("#f-people").select_option(label=["Silent One", "Silent Two"])
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/deal/\d+$"))
    expect(page.locator("#linked-people tbody tr")).to_have_count(2)
    context.close()
