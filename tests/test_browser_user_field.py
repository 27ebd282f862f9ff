"""The `user` field in a real browser, on SQLite and PostgreSQL: a person picks a user in the
form's select, saves, and sees the user's name on the record page and in the list; the
select is a plain form control, so it works with scripts off too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from . import conftest
from .browser import HUNG_MS, SERVED, require_browser, screenshot, serve_pack, sign_in, watch
from .defaults import user_id
from .test_browser import expect, script_errors
from .test_user_field import tasks_pack

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("desk")
    urls = [f"sqlite:///{root / 'desk.db'}"] if request.param == "sqlite" else conftest._postgres_database()
    for url in urls:
        for site in serve_pack(url, tasks_pack(root)):
            engine = SERVED[site].state.engine
            user_id(engine, "ann@example.com", roles=(), name="Ann Archer")
            user_id(engine, "bob@example.com", roles=(), name="Bob Baker")
            yield site


def test_a_user_picked_in_the_form_shows_by_name(desk_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, desk_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{desk_site}/e/task/new")
    page.locator("#f-title").fill("Call the supplier")
    assigned = page.get_by_label("Assigned to")
    expect(assigned.locator("option", has_text="Ann Archer")).to_have_count(1)
    assigned.select_option(label="Ann Archer")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/task/\d+$"))
    expect(page.locator("main")).to_contain_text("Ann Archer")
    screenshot(page, "user-field-record")
    # The edit form starts from the saved user; another pick replaces it.
    page.goto(page.url + "/edit")
    assigned = page.get_by_label("Assigned to")
    expect(assigned.locator("option:checked")).to_have_text("Ann Archer")
    assigned.select_option(label="Bob Baker")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/task/\d+$"))
    expect(page.locator("main")).to_contain_text("Bob Baker")
    page.goto(f"{desk_site}/e/task")
    expect(page.locator("table.records")).to_contain_text("Bob Baker")
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_the_widget_works_without_javascript(desk_site: str, chromium: Any) -> None:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, desk_site)
    page = context.new_page()
    page.goto(f"{desk_site}/e/task/new")
    page.locator("#f-title").fill("Silent")
    page.get_by_label("Reviewed by").select_option(label="Ann Archer")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/task/\d+$"))
    expect(page.locator("main")).to_contain_text("Ann Archer")
    context.close()
