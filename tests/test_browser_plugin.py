"""A plugin's field type in a real browser: the `color` type of the example plugin
(tests/plugins/slatecrm_example_plugin) in the form (its own widget template), the list
(its value template), the record page, search and the rule-language filter."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import HUNG_MS, require_browser, screenshot, serve_pack, sign_in, watch
from .test_browser import expect, script_errors
from .test_plugin_fieldtype import palette_pack

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def paint_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("paint")
    url = f"sqlite:///{root / 'paint.db'}"
    yield from serve_pack(url, palette_pack(Path(root)))


@pytest.fixture(scope="module")
def paint_browser(paint_site: str, chromium: Any) -> Any:
    return chromium  # the process's browser (conftest), once the site is up


def test_a_plugin_type_in_form_list_record_search_and_filter(paint_site: str, paint_browser: Any) -> None:
    context = paint_browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)  # a failure detector: actions wait on conditions
    sign_in(context, paint_site)
    page = context.new_page()
    seen = watch(page)
    for name, shade in (("Sky", "87CEEB"), ("Grass", "#0f0")):
        page.goto(f"{paint_site}/e/swatch/new")
        expect(page.locator(".color-widget")).to_be_visible()  # the plugin's widget template
        page.locator("#f-name").fill(name)
        page.locator("#f-shade").fill(shade)
        page.get_by_role("button", name="Save").click()
        expect(page).to_have_url(re.compile(r"/e/swatch/\d+$"))
    # The record page shows the value with the type's own template (a swatch and the hex).
    expect(page.locator("main .color-value")).to_have_text("#00ff00")
    screenshot(page, "plugin-record")
    # An invalid colour is refused inline, naming the field, and the text typed stays.
    page.goto(f"{paint_site}/e/swatch/new")
    page.locator("#f-name").fill("Mud")
    page.locator("#f-shade").fill("brown")
    page.locator("#f-shade").press("Tab")
    expect(page.locator("#error-shade")).to_contain_text("'brown' is not a colour")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#form-errors")).to_contain_text("Shade")
    expect(page.locator("#f-shade")).to_have_value("brown")
    # The list: a cell per colour, found by search and by a rule-language filter.
    page.goto(f"{paint_site}/e/swatch")
    rows = page.locator("table.records tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("table.records .color-value").first).to_be_visible()
    page.locator("#list-q").fill("87ceeb")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Sky")
    expect(rows.first).to_contain_text("#87ceeb")
    page.locator("#list-q").fill("")
    expect(rows).to_have_count(2)
    page.locator("#list-filter").fill('shade = "#00ff00"')
    page.locator("#list-filter").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Grass")
    screenshot(page, "plugin-list")
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()
