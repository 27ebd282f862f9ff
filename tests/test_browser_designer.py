"""The admin designer in a real browser, on SQLite and PostgreSQL (issue 15): a field added
through the form (options dragged into order) shows its plan, is applied and appears in the
entity's record form; a type change that would lose data is refused with the rows at risk
and no Apply; a change applied from another browser meanwhile makes Apply refuse and offer
the new plan; a formula is checked as it is typed, with a caret under the fault.

With SLATECRM_SCREENSHOTS=1 the tests save the docs' pictures (docs/images/designer-*.png)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from .browser import HUNG_MS, SERVED, docs_picture, require_browser, serve_pack_on, sign_in, watch
from .defaults import signed_in
from .test_browser import expect, script_errors

pytestmark = pytest.mark.browser

VEHICLE = {"label": "Vehicle", "title_field": "plate",
           "fields": {"plate": {"type": "text", "required": True}, "seats": {"type": "text"}}}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    yield from serve_pack_on(request.param, tmp_path_factory.mktemp("designer"), "fleet",
                             {"vehicle": VEHICLE})


def opened(browser: Any, site: str) -> tuple[Any, Any, Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, site)
    page = context.new_page()
    return context, page, watch(page)


def test_a_field_added_in_the_designer_appears_in_the_form(site: str, chromium: Any) -> None:
    context, page, seen = opened(chromium, site)
    page.goto(f"{site}/admin/entities")
    docs_picture(page, "designer-entities")
    page.get_by_role("link", name="Vehicle", exact=True).first.click()
    expect(page.locator("h1")).to_have_text("Vehicle")
    page.locator("#add-field").click()
    page.locator("#f-name").fill("trim")
    page.locator("#f-label").fill("Trim")
    page.locator("#f-type").select_option("choice")  # the type's settings come in (htmx)
    rows = page.locator("#option-rows li.option-row")
    expect(rows).to_have_count(1)
    rows.nth(0).locator('input[name="option_key"]').fill("basic")
    rows.nth(0).locator('input[name="option_label"]').fill("Basic")
    page.locator("#add-option").click()
    expect(rows).to_have_count(2)
    rows.nth(1).locator('input[name="option_key"]').fill("luxury")
    rows.nth(1).locator('input[name="option_label"]').fill("Luxury")
    rows.nth(1).locator("input.colour").fill("#aa3377")
    # Luxury dragged above Basic by its handle: the posted order is the rows' order.
    rows.nth(1).locator(".handle").drag_to(rows.nth(0).locator(".handle"))
    expect(rows.nth(0).locator('input[name="option_key"]')).to_have_value("luxury")
    page.locator("#review").click()
    plan = page.locator("#plan")
    expect(plan).to_contain_text("add column")
    expect(plan.locator("pre.sql")).to_contain_text(re.compile("ALTER TABLE", re.I))
    docs_picture(page, "designer-plan")
    page.locator("#apply").click()
    expect(page.locator("#field-trim")).to_contain_text("choice")
    page.goto(f"{site}/e/vehicle/new")
    options = page.locator("#f-trim option")
    expect(options.filter(has_text="Luxury")).to_have_count(1)
    labels = [t.strip() for t in options.all_inner_texts() if t.strip() and t.strip() != "—"]
    assert labels[:2] == ["Luxury", "Basic"], labels
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_a_type_change_that_loses_data_is_refused(site: str, chromium: Any) -> None:
    with signed_in(SERVED[site], raise_server_exceptions=False) as api:
        truck = {"label": "Truck", "title_field": "name",
                 "fields": {"name": {"type": "text", "required": True}, "load": {"type": "text"}}}
        dry = api.put("/api/v1/admin/entities/truck", json=truck)
        assert dry.status_code == 200, dry.text
        done = api.put("/api/v1/admin/entities/truck", params={"confirm": dry.json()["base_revision"]},
                       json=truck)
        assert done.status_code == 200, done.text
        made = api.post("/api/v1/truck", json=[{"name": "A", "load": "heavy"}, {"name": "B", "load": "2"}])
        assert made.status_code in (200, 201), made.text
    context, page, seen = opened(chromium, site)
    page.goto(f"{site}/admin/entities/truck/fields/load")
    page.locator("#f-type").select_option("integer")
    page.locator("#review").click()
    plan = page.locator("#plan")
    expect(plan.locator("h3")).to_contain_text("Refused")
    expect(plan.locator(".risk.blocking")).to_contain_text("1 of 2 rows")
    expect(page.locator("#apply")).to_have_count(0)
    docs_picture(page, "designer-refused")
    page.locator("#cancel").click()
    expect(page.locator("#f-type")).to_have_value("text")
    assert script_errors(seen) == []
    context.close()


def test_apply_after_a_change_made_meanwhile_offers_the_new_plan(site: str, chromium: Any) -> None:
    context_a, a, seen = opened(chromium, site)
    context_b, b, _ = opened(chromium, site)
    a.goto(f"{site}/admin/entities/vehicle/new-field")
    a.locator("#f-name").fill("doors")
    a.locator("#f-type").select_option("integer")
    a.locator("#review").click()
    expect(a.locator("#plan")).to_contain_text("doors")
    shown = int(a.locator("#plan-revision").inner_text())
    # Another admin adds a field meanwhile.
    b.goto(f"{site}/admin/entities/vehicle/new-field")
    b.locator("#f-name").fill("wheels")
    b.locator("#f-type").select_option("integer")
    b.locator("#review").click()
    b.locator("#apply").click()
    expect(b.locator("#field-wheels")).to_be_visible()
    a.locator("#apply").click()
    expect(a.locator("#plan-notice")).to_contain_text("the metamodel changed since this plan was shown")
    expect(a.locator("#plan-revision")).to_have_text(str(shown + 1))
    docs_picture(a, "designer-stale")
    a.locator("#apply").click()
    expect(a.locator("#field-doors")).to_be_visible()
    expect(a.locator("#field-wheels")).to_be_visible()
    assert script_errors(seen) == []
    context_a.close()
    context_b.close()


def test_a_formula_is_checked_as_it_is_typed(site: str, chromium: Any) -> None:
    context, page, seen = opened(chromium, site)
    page.goto(f"{site}/admin/entities/vehicle/new-field")
    page.locator("#f-name").fill("shout")
    formula = page.locator("#r-formula")
    formula.fill("plate + + 1")
    caret = page.locator("#check-formula pre.caret")
    expect(caret).to_contain_text("plate + + 1")
    mark = caret.inner_text().split("\n")[1]
    assert mark.strip() == "^" and len(mark) > 1
    caret.scroll_into_view_if_needed()
    docs_picture(page, "designer-rule-check")
    formula.fill("plate")
    expect(page.locator("#check-formula")).to_contain_text("valid")
    formula.fill("plaet")
    expect(page.locator("#check-formula")).to_contain_text("plaet")
    assert script_errors(seen) == []
    context.close()
