"""The `time`, `duration` and `date_or_datetime` widgets in a real browser, on SQLite and
PostgreSQL: a person picks a day (all day) or a day and a time, a time of day and types a
duration, saves, and sees them on the record page and in the list; with scripts off too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from . import conftest
from .browser import HUNG_MS, require_browser, screenshot, serve_pack, sign_in, watch
from .test_browser import expect, script_errors
from .test_temporal_fields import diary_pack

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def diary_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("diary")
    if request.param == "sqlite":
        yield from serve_pack(f"sqlite:///{root / 'diary.db'}", diary_pack(root))
        return
    for url in conftest._postgres_database():
        yield from serve_pack(url, diary_pack(root))


def test_a_day_a_time_and_a_duration_entered_in_the_form(diary_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, diary_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{diary_site}/e/event/new")
    page.locator("#f-title").fill("Offsite")
    starts = page.get_by_role("group", name="Starts")
    starts.get_by_label("Starts date").fill("2026-12-07")
    starts.get_by_label("Starts time").fill("09:30")
    starts.get_by_label("All day").check()
    page.get_by_label("At", exact=True).fill("14:30")
    page.locator("#f-length").fill("1h 30m")
    screenshot(page, "temporal-form")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/event/\d+$"))
    main = page.locator("main")
    expect(main).to_contain_text("2026-12-07 (all day)")
    expect(main).to_contain_text("14:30")
    expect(main).to_contain_text("1h 30m")
    screenshot(page, "temporal-record")
    # The edit form starts from the saved values; unticking "all day" keeps the time typed.
    page.goto(page.url + "/edit")
    starts = page.get_by_role("group", name="Starts")
    expect(starts.get_by_label("All day")).to_be_checked()
    expect(starts.get_by_label("Starts date")).to_have_value("2026-12-07")
    expect(page.locator("#f-length")).to_have_value("1h 30m")
    starts.get_by_label("All day").uncheck()
    starts.get_by_label("Starts time").fill("16:45")
    page.locator("#f-length").fill("2d 3h")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("main")).to_contain_text("2026-12-07 16:45 UTC")
    expect(page.locator("main")).to_contain_text("2d 3h")
    page.goto(f"{diary_site}/e/event")
    row = page.locator("table.records tbody tr", has_text="Offsite")
    expect(row).to_contain_text("2026-12-07 16:45 UTC")
    expect(row).to_contain_text("2d 3h")
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_a_bad_duration_is_shown_next_to_its_field(diary_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, diary_site)
    page = context.new_page()
    page.goto(f"{diary_site}/e/event/new")
    page.locator("#f-title").fill("Vague")
    page.locator("#f-length").fill("90")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#error-length")).to_contain_text("has no unit")
    expect(page.locator("#f-length")).to_have_value("90")  # what was typed is kept
    context.close()


def test_the_widgets_work_without_javascript(diary_site: str, browser_without_js: Any) -> None:
    """Plain inputs and a checkbox: with scripts off, a day and a moment are still saved."""
    context = browser_without_js
    sign_in(context, diary_site)
    page = context.new_page()
    page.goto(f"{diary_site}/e/event/new")
    page.locator("#f-title").fill("Quiet")
    starts = page.get_by_role("group", name="Starts")
    starts.get_by_label("Starts date").fill("2026-12-24")
    starts.get_by_label("Starts time").fill("18:00")
    page.get_by_label("At", exact=True).fill("07:15")
    page.locator("#f-length").fill("45m")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/event/\d+$"))
    expect(page.locator("main")).to_contain_text("2026-12-24 18:00 UTC")
    expect(page.locator("main")).to_contain_text("45m")
    context.close()


@pytest.fixture
def browser_without_js(chromium: Any) -> Any:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    return context
