"""A polymorphic reference in a real browser, on SQLite and PostgreSQL: the picker lists the
records of every target grouped by entity, its search looks across the targets, the saved
value shows as the record's title linked to its page with the entity's label, and the
record's page lists what points to it. With scripts off the grouped select still works."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from . import conftest
from .browser import HUNG_MS, require_browser, screenshot, serve_pack, sign_in, watch
from .test_browser import expect, script_errors
from .test_polymorphic_reference import crm_pack

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def crm_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("crm")
    urls = [f"sqlite:///{root / 'crm.db'}"] if request.param == "sqlite" else conftest._postgres_database()
    for url in urls:
        yield from serve_pack(url, crm_pack(root))


def make(context: Any, site: str, entity: str, name: str) -> None:
    page = context.new_page()
    page.goto(f"{site}/e/{entity}/new")
    page.locator("#f-name").fill(name)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(rf"/e/{entity}/\d+$"))
    page.close()


def test_the_picker_searches_across_targets_and_the_page_links_the_record(crm_site: str,
                                                                         chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, crm_site)
    make(context, crm_site, "account", "Acme Works")
    make(context, crm_site, "contact", "Zoe Quill")
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{crm_site}/e/activity/new")
    page.locator("#f-name").fill("Kick-off")
    picker = page.locator("#f-related_to")
    expect(picker.locator("optgroup[label=Account] option")).to_have_text(["Acme Works"])
    expect(picker.locator("optgroup[label=Contact] option")).to_have_text(["Zoe Quill"])
    page.get_by_label("Search Related to").fill("quill")
    expect(picker.locator("option", has_text="Acme Works")).to_have_count(0)  # the search answered
    expect(picker.locator("optgroup[label=Contact] option")).to_have_text(["Zoe Quill"])
    picker.select_option(label="Zoe Quill")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/activity/\d+$"))
    link = page.locator("main").get_by_role("link", name="Zoe Quill")
    expect(link).to_be_visible()
    expect(page.locator("main .entity-label")).to_have_text("Contact")
    screenshot(page, "polymorphic-reference-record")
    link.click()
    expect(page).to_have_url(re.compile(r"/e/contact/\d+$"))
    expect(page.locator("section.related", has_text="Activitys")).to_contain_text("Kick-off")
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_the_grouped_select_works_without_javascript(crm_site: str, chromium: Any) -> None:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, crm_site)
    make(context, crm_site, "deal", "Quiet deal")
    page = context.new_page()
    page.goto(f"{crm_site}/e/activity/new")
    page.locator("#f-name").fill("Silent")
    page.locator("#f-related_to").select_option(label="Quiet deal")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/activity/\d+$"))
    expect(page.locator("main").get_by_role("link", name="Quiet deal")).to_be_visible()
    expect(page.locator("main .entity-label")).to_have_text("Deal")
    context.close()
