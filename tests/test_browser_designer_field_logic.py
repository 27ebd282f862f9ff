"""Form logic set in the designer, in a real browser on SQLite and PostgreSQL: a broken
`visible_if` typed into a pack field's form shows the rule language's error with a caret as it
is typed; fixed, it is reviewed and applied (the organisation's override of the pack's field);
the record form then shows the field only when the condition holds, answered by the server as
another input changes.

With SLATECRM_SCREENSHOTS=1 it writes docs/images/designer-form-logic.png for docs/designer.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .browser import HUNG_MS, sign_in, watch
from .test_browser import expect, script_errors
from .test_browser_form_logic import deals_site  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


def test_visible_if_typed_in_the_designer_shows_the_field_when_it_holds(
        deals_site: str, chromium: Any) -> None:  # noqa: F811 (the fixture)
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, deals_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{deals_site}/e/deal/new")
    expect(page.locator("#f-company")).to_be_visible()  # no logic yet: always there
    page.goto(f"{deals_site}/admin/entities/deal/fields/company")
    rule = page.locator("#r-visible_if")
    rule.fill("stauts = 'lost'")
    caret = page.locator("#check-visible_if pre.caret")
    expect(caret).to_contain_text("stauts = 'lost'")
    assert caret.inner_text().split("\n")[1] == "^"
    expect(page.locator("#check-visible_if")).to_contain_text("did you mean 'status'")
    if os.environ.get("SLATECRM_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.locator("#form-logic").scroll_into_view_if_needed()
        page.screenshot(path=str(DOCS_IMAGES / "designer-form-logic.png"))
    rule.fill("status = 'lost'")
    expect(page.locator("#check-visible_if")).to_contain_text("valid")
    expect(page.locator("#check-visible_if pre.caret")).to_have_count(0)
    page.locator("#review").click()
    expect(page.locator("#plan")).to_contain_text("deal.company")
    page.locator("#apply").click()
    expect(page.locator("h1")).to_have_text("Deal")
    page.goto(f"{deals_site}/admin/entities/deal/fields/company")
    expect(page.locator("#r-visible_if")).to_have_value("status = 'lost'")
    page.goto(f"{deals_site}/e/deal/new")
    page.locator("#f-name").fill("Acme renewal")
    expect(page.locator("#f-company")).to_have_count(0)
    page.locator("#f-status").select_option("lost")
    expect(page.locator("#f-company")).to_be_visible()  # the server's answer to the change
    page.locator("#f-status").select_option("won")
    expect(page.locator("#f-company")).to_have_count(0)
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()
