"""The designer's layout editor in a real browser: drag a field chip into another section,
the YAML and the form preview follow; review the plan, Apply, and the record form shows the
field in its new section. Screenshot docs/images/designer-layout.png with
SLATECRM_SCREENSHOTS=1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from slatecrm.platform import customisation
from slatecrm.platform.storage.engine import create_engine

from .browser import HUNG_MS, ServerThread, require_browser, sign_in, watch
from .defaults import field_types, make_app
from .packs import install
from .test_browser_designer_pipelines import VIEWPORT, docs_screenshot
from .test_designer_pipelines import VEHICLE

pytestmark = pytest.mark.browser

LAYOUT = {"sections": [{"label": "Main", "columns": 2, "fields": ["plate", "price"]},
                       {"label": "Dates", "fields": ["registered"]}]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server over crm-core and the organisation's vehicle entity laid out in two sections."""
    require_browser()
    root = tmp_path_factory.mktemp("designer-layouts")
    url = f"sqlite:///{root / 'ui.db'}"
    engine = create_engine(url)
    install(engine, field_types(), "crm-core")
    for summary, edit in (("define vehicle", customisation.put_entity("vehicle", VEHICLE)),
                          ("lay out vehicle",
                           customisation.put_layout("vehicle", {"entity": "vehicle", **LAYOUT}))):
        planned = customisation.plan_edit(engine, field_types(), summary, edit)
        customisation.apply_edit(engine, planned, author="test")
    engine.dispose()
    app = make_app(url)
    with ServerThread(app) as server:
        yield server.url
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def browser(site: str, chromium: Any) -> Any:
    return chromium


@pytest.fixture
def page(site: str, browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(HUNG_MS)  # a failure detector: actions wait on conditions
    sign_in(context, site)
    opened = context.new_page()
    seen = watch(opened)
    yield opened
    assert not seen.console_errors, seen.console_errors
    context.close()


def hold(page: Any, item: Any, target: Any) -> None:
    """Press on `item` and move, as a person would, onto `target`'s right half (the mouse is
    left down: Sortable's fallback moves the item on its next tick over the target)."""
    box, goal = item.bounding_box(), target.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    gx, gy = goal["x"] + goal["width"] * 0.75, goal["y"] + goal["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    steps = 12
    for i in range(1, steps + 1):
        page.mouse.move(x + (gx - x) * i / steps, y + (gy - y) * i / steps)


def test_drag_a_field_into_another_section_apply_and_the_form_follows(site: str, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{site}/admin/entities/vehicle/layout")
    expect(page.locator("#zone-0-1 .chip")).to_have_count(1)
    hold(page, page.locator("#chip-price"), page.locator("#chip-registered"))
    # Sortable moves the chip while the mouse is held over its new place; then it is dropped.
    expect(page.locator("#zone-0-1 .chip")).to_have_count(2)
    page.mouse.up()
    # The preview follows the drop: price is in the Dates section of the form.
    expect(page.locator("#layout-preview fieldset").nth(1).locator("[data-field=price]")).to_have_count(1)
    docs_screenshot(page, "designer-layout")
    page.locator("#review-layout").click()
    expect(page.locator("#plan h2")).to_contain_text("change layout vehicle")
    page.locator("#apply").click()
    expect(page.locator("#zone-0-1 .chip")).to_have_count(2)
    page.goto(f"{site}/e/vehicle/new")
    dates = page.locator("fieldset", has=page.locator("legend", has_text="Dates"))
    expect(dates.locator("#f-price")).to_have_count(1)
    expect(dates.locator("#f-registered")).to_have_count(1)
