"""The `rating` field in a real browser, on SQLite and PostgreSQL: a person picks stars in
the form's radio group, saves, and sees the stars (with their spoken "3 of 5") on the record
page and in the list."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from . import conftest
from .browser import HUNG_MS, require_browser, screenshot, serve_pack, sign_in, watch
from .test_browser import expect, script_errors
from .test_rating_field import reviews_pack

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def critics_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("critics")
    if request.param == "sqlite":
        yield from serve_pack(f"sqlite:///{root / 'critics.db'}", reviews_pack(root))
        return
    for url in conftest._postgres_database():
        yield from serve_pack(url, reviews_pack(root))


def test_a_rating_picked_in_the_form_shows_as_stars(critics_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, critics_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{critics_site}/e/review/new")
    page.locator("#f-title").fill("Middlemarch")
    group = page.get_by_role("group", name="Score")
    expect(group.get_by_role("radio")).to_have_count(6)  # none, then 1 to 5
    expect(group.get_by_role("radio", name="none")).to_be_checked()
    group.get_by_role("radio", name="3 of 5").check()
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/review/\d+$"))
    stars = page.locator("main .rating-value")
    expect(stars).to_have_text("★★★☆☆")
    expect(page.get_by_role("img", name="3 of 5")).to_be_visible()
    screenshot(page, "rating-record")
    # The edit form starts from the saved rating; "none" clears it.
    page.goto(page.url + "/edit")
    score = page.get_by_role("group", name="Score")
    expect(score.get_by_role("radio", name="3 of 5")).to_be_checked()
    score.get_by_role("radio", name="5 of 5").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("main .rating-value")).to_have_text("★★★★★")
    page.goto(f"{critics_site}/e/review")
    expect(page.locator("table.records").get_by_role("img", name="5 of 5")).to_be_visible()
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_the_widget_works_without_javascript(critics_site: str, browser_without_js: Any) -> None:
    """The radio group is a plain form: with scripts off, a pick is still saved."""
    context = browser_without_js
    sign_in(context, critics_site)
    page = context.new_page()
    page.goto(f"{critics_site}/e/review/new")
    page.locator("#f-title").fill("Silent")
    page.get_by_role("group", name="Score").get_by_role("radio", name="4 of 5").check()
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/review/\d+$"))
    expect(page.get_by_role("img", name="4 of 5")).to_have_text("★★★★☆")
    context.close()


@pytest.fixture
def browser_without_js(chromium: Any) -> Any:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    return context
