"""The views designer's structured editor in a real browser, on SQLite and PostgreSQL: a
list view made by adding columns and dragging them into an order, a broken filter shown with
its caret as it is typed and then fixed, the plan reviewed and applied; the list opened with
the view shows the columns in that order. Changing the type brings that type's inputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .browser import HUNG_MS, docs_picture, drag, require_browser, serve_pack_on, sign_in, watch
from .test_browser import expect

pytestmark = pytest.mark.browser


VEHICLE = {"label": "Vehicle", "title_field": "plate",
           "fields": {"plate": {"type": "text", "required": True}, "price": {"type": "integer"},
                      "registered": {"type": "date"}}}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    yield from serve_pack_on(request.param, tmp_path_factory.mktemp("designer-views"), "fleet",
                             {"vehicle": VEHICLE})


@pytest.fixture
def page(site: str, chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(HUNG_MS)  # a failure detector: actions wait on conditions
    sign_in(context, site)
    opened = context.new_page()
    seen = watch(opened)
    yield opened
    assert not seen.console_errors, seen.console_errors
    context.close()


def test_a_list_view_made_in_the_structured_editor(site: str, page: Any) -> None:
    page.goto(f"{site}/admin/entities/vehicle/views")
    page.locator("#vf-name").fill("by_date")
    page.locator("#vf-label").fill("By date")
    chips = page.locator("#vf-columns li.field-chip")
    for name in ("plate", "price", "registered"):
        page.locator("#vf-columns-add").select_option(name)
    expect(chips).to_have_count(3)
    page.locator('#vf-columns li[data-field="price"] .remove-chip').click()
    expect(chips).to_have_count(2)
    page.locator("#vf-columns-add").select_option("price")
    expect(chips).to_have_count(3)
    # Registered dragged before Plate by its handle: the posted order is the chips' order.
    drag(page, page.locator('#vf-columns li[data-field="registered"] .drag-handle'),
         page.locator('#vf-columns li[data-field="plate"]'), right=4, down=8)
    expect(chips.first).to_have_attribute("data-field", "registered")
    order = [chips.nth(i).get_attribute("data-field") for i in range(3)]
    assert order == ["registered", "plate", "price"], order
    # The filter is checked as it is typed: the caret under the fault, then fine once fixed.
    condition = page.locator("#r-filter")
    condition.fill("price >> 3")
    expect(page.locator("#error-filter pre.caret")).to_contain_text("^")
    page.locator("#view-editor-form").scroll_into_view_if_needed()
    docs_picture(page, "designer-view-editor")
    condition.fill("price > 100")
    expect(page.locator("#ok-filter")).to_contain_text("boolean")
    expect(page.locator("#error-filter")).to_have_count(0)
    page.locator("#review-view-editor").click()
    expect(page.locator("#plan")).to_contain_text("change view by_date")
    page.locator("#apply").click()
    expect(page.locator('.view-row[data-view="by_date"]')).to_be_visible()
    page.goto(f"{site}/e/vehicle?view=by_date")
    headers = page.locator("table.records thead th[scope=col]:not(.select)")
    expect(headers).to_have_text(["Registered", "Plate", "Price"])


def test_changing_the_type_brings_its_inputs(site: str, page: Any) -> None:
    page.goto(f"{site}/admin/entities/vehicle/views")
    expect(page.locator("#vf-columns-add")).to_be_visible()
    page.locator("#vf-type").select_option("calendar")
    expect(page.locator("#vf-field")).to_be_visible()
    expect(page.locator("#vf-field option")).to_have_text(["Registered"])
    expect(page.locator("#vf-columns-add")).to_have_count(0)
    page.locator("#vf-type").select_option("list")
    expect(page.locator("#vf-columns-add")).to_be_visible()
