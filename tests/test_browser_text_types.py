"""The rich_text, json and tags widgets in a real browser, on SQLite and PostgreSQL: the Squire
editor formats a note (under the app's Content-Security-Policy: no script error), a JSON
value is typed into its textarea, tags are added with suggestions and removed; and with
scripts off every widget is still a plain form that saves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from . import conftest
from .browser import HUNG_MS, require_browser, screenshot, serve_pack, sign_in, watch
from .test_browser import expect, script_errors
from .text_types_pack import articles_pack

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def press_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("press")
    if request.param == "sqlite":
        yield from serve_pack(f"sqlite:///{root / 'press.db'}", articles_pack(root))
        return
    for url in conftest._postgres_database():
        yield from serve_pack(url, articles_pack(root))


@pytest.fixture
def browser_without_js(chromium: Any) -> Any:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(HUNG_MS)
    return context


def test_the_editor_formats_a_note_and_the_page_shows_it(press_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, press_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{press_site}/e/article/new")
    page.locator("#f-title").fill("Launch notes")
    editor = page.get_by_role("textbox", name="Body")
    expect(editor).to_be_visible()
    expect(page.locator("#f-body")).to_be_hidden()  # the textarea stays, as the form's input
    editor.click()
    toolbar = page.get_by_role("toolbar", name="Formatting: Body")
    toolbar.get_by_role("button", name="Bold").click()
    page.keyboard.type("Ship it")
    expect(toolbar.get_by_role("button", name="Bold")).to_have_attribute("aria-pressed", "true")
    toolbar.get_by_role("button", name="Bold").click()
    page.keyboard.type(" on Monday")
    page.keyboard.press("Enter")
    toolbar.get_by_role("button", name="Bulleted list").click()
    page.keyboard.type("check the docs")
    screenshot(page, "rich-text-editor")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/article/\d+$"))
    note = page.locator("main .rich-text")
    expect(note.locator("b")).to_have_text("Ship it")
    expect(note.locator("li")).to_have_text("check the docs")
    screenshot(page, "rich-text-record")
    # The edit form starts from the saved note in the editor.
    page.goto(page.url + "/edit")
    expect(page.get_by_role("textbox", name="Body").locator("b")).to_have_text("Ship it")
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_pasted_markup_is_cleaned_and_never_runs(press_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, press_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{press_site}/e/article/new")
    page.locator("#f-title").fill("Pasted")
    editor = page.get_by_role("textbox", name="Body")
    editor.click()
    page.evaluate("""() => {
        const data = new DataTransfer();
        data.setData("text/html", '<p>Safe <img src=x onerror="alert(1)"><script>alert(2)</script>' +
                     '<a href="javascript:alert(3)">link</a> <span style="color:red">text</span></p>');
        document.querySelector(".rich-text-area").dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
    }""")
    expect(editor).to_contain_text("Safe")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/article/\d+$"))
    expect(page.locator("main .rich-text")).to_contain_text("Safe")
    assert page.locator("main .rich-text img, main .rich-text script, main .rich-text [style]").count() == 0
    assert seen.dialogs == []
    context.close()


def test_tags_are_suggested_added_and_removed(press_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, press_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{press_site}/e/article/new")
    page.locator("#f-title").fill("Tagged")
    page.get_by_label("Add tags").fill("Launch; Partner")
    page.get_by_label("Specs").fill('{"size": 3, "colours": ["red"]}')
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/article/\d+$"))
    tags = page.get_by_role("list", name="Labels")
    expect(tags.get_by_role("link")).to_have_text(["launch", "partner"])
    expect(page.locator("main pre.json-value")).to_contain_text('"size": 3')
    # The next form suggests the tags used so far.
    page.goto(f"{press_site}/e/article/new")
    expect(page.locator("#suggest-labels option")).to_have_count(2)
    # Untick one on edit, and follow a tag to the list of records that have it.
    page.go_back()
    page.goto(page.url + "/edit")
    page.get_by_role("group", name="Labels").get_by_role("checkbox", name="partner").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("list", name="Labels").get_by_role("link")).to_have_text(["launch"])
    page.get_by_role("list", name="Labels").get_by_role("link", name="launch").click()
    expect(page.locator("table.records")).to_contain_text("Tagged")
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_the_widgets_work_without_javascript(press_site: str, browser_without_js: Any) -> None:
    context = browser_without_js
    sign_in(context, press_site)
    page = context.new_page()
    page.goto(f"{press_site}/e/article/new")
    page.locator("#f-title").fill("Silent")
    page.locator("#f-body").fill("<p>Plain <em>form</em></p><script>alert(1)</script>")
    page.get_by_label("Specs").fill('{"size": 1}')
    page.get_by_label("Add tags").fill("quiet")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/article/\d+$"))
    expect(page.locator("main .rich-text em")).to_have_text("form")
    expect(page.get_by_role("list", name="Labels").get_by_role("link")).to_have_text(["quiet"])
    expect(page.locator("main pre.json-value")).to_contain_text('"size": 1')
    # A JSON error names the place inside the value, next to the field.
    page.goto(f"{press_site}/e/article/new")
    page.locator("#f-title").fill("Broken")
    page.get_by_label("Specs").fill('{"size": "big"}')
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#error-specs")).to_contain_text("at $.size: 'big' is not of type 'integer'")
    context.close()
