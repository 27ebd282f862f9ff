"""The designer's layout editor in a real browser, on SQLite and PostgreSQL: drag a field
chip into another section, the YAML and the form preview follow; review the plan, Apply, and
the record form shows the field in its new section. Add a tab, type in the YAML, drag a
section to the new tab and a field into its new section: each drop is applied by the server
to the text as typed (the typed edit is kept); Apply, and the record page shows the new
arrangement. Screenshot docs/images/designer-layout.png with SLATECRM_SCREENSHOTS=1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from slatecrm.platform import customisation
from slatecrm.platform.storage.engine import create_engine

from . import conftest
from .browser import HUNG_MS, ServerThread, require_browser, sign_in, watch
from .defaults import field_types, make_app
from .packs import install
from .test_browser_designer_pipelines import VIEWPORT, docs_screenshot
from .test_designer_pipelines import VEHICLE

pytestmark = pytest.mark.browser

LAYOUT = {"sections": [{"label": "Main", "columns": 2, "fields": ["plate", "price"]},
                       {"label": "Dates", "fields": ["registered"]}]}


def serve(url: str) -> Iterator[str]:
    """A server over crm-core and the organisation's vehicle entity laid out in two sections."""
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


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    if request.param == "sqlite":
        yield from serve(f"sqlite:///{tmp_path_factory.mktemp('designer-layouts') / 'ui.db'}")
        return
    for url in conftest._postgres_database():
        yield from serve(url)


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
    dates = page.locator("#layout-preview fieldset.card").nth(1)
    expect(dates.locator("[data-field=price]")).to_have_count(1)
    docs_screenshot(page, "designer-layout")
    page.locator("#review-layout").click()
    expect(page.locator("#plan h2")).to_contain_text("change layout vehicle")
    page.locator("#apply").click()
    expect(page.locator("#zone-0-1 .chip")).to_have_count(2)
    page.goto(f"{site}/e/vehicle/new")
    dates = page.locator("fieldset", has=page.locator("legend", has_text="Dates"))
    expect(dates.locator("#f-price")).to_have_count(1)
    expect(dates.locator("#f-registered")).to_have_count(1)


def drop(page: Any, item: Any, target: Any, moved: Any, *, last: bool = False) -> None:
    """Press on `item`, move a little until Sortable has started the drag (the item is its
    ghost), move onto `target`, wait while held until Sortable has moved it (`moved` is
    there), and let go: the server then answers the editor again. The page is scrolled to
    its top first (the mouse moves within the viewport, tall enough for both). `last`: onto
    the target list's room below its last item (Sortable appends there)."""
    from playwright.sync_api import expect

    page.evaluate("window.scrollTo(0, 0)")
    box, goal = item.bounding_box(), target.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 4, y + 4, steps=2)
    expect(page.locator(".sortable-ghost")).to_have_count(1)
    gx = goal["x"] + goal["width"] * 0.75
    gy = goal["y"] + goal["height"] - 4 if last else goal["y"] + goal["height"] / 2
    page.mouse.move(gx, gy, steps=12)
    expect(moved).to_have_count(1)
    page.mouse.up()


def test_sections_and_fields_dragged_to_a_new_tab_keep_the_typed_yaml(site: str, page: Any) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1280, "height": 1600})
    page.goto(f"{site}/admin/entities/vehicle/layout")
    area = page.locator("#layout-yaml")
    area.fill(json.dumps({"sections": LAYOUT["sections"]}))  # the starting arrangement, typed
    expect(page.locator("#layout-preview legend")).to_have_count(2)
    page.locator("#add-tab").click()  # a server action on the typed text
    expect(page.locator("#tab-1 .layout-section")).to_have_count(1)
    expect(area).to_have_value(re.compile(r"New tab"))
    # Typed meanwhile, not saved: the Dates section is now "When" in the text only.
    area.fill(area.input_value().replace("label: Dates", "label: When"))
    expect(page.locator("#layout-preview legend", has_text="When")).to_have_count(1)
    # Drag the When section (tab 1, its second section) to the new tab.
    drop(page, page.locator("#section-0-1 .section-handle"), page.locator("#tab-1 .layout-sections"),
         page.locator("#tab-1 #section-0-1"), last=True)
    expect(page.locator("#tab-1 .layout-section")).to_have_count(2)
    expect(page.locator("#tab-0 .layout-section")).to_have_count(1)
    expect(page.locator("#tab-1 .layout-label[value=When]")).to_have_count(1)  # the typed label kept
    # Drag price into the new (empty) section of the new tab.
    empty = page.locator("#tab-1 .layout-section", has=page.locator("input[value='New section']"))
    drop(page, page.locator("#chip-price"), empty.locator(".layout-zone"), empty.locator("#chip-price"))
    expect(page.locator("#tab-1 .layout-section", has=page.locator("input[value='New section']"))
           .locator("#chip-price")).to_have_count(1)
    # Sortable moved the chip at once; the server's answer rewrites the text (a label typed
    # before it came would be replaced with the editor).
    expect(area).to_have_value(re.compile(r"- label: New section\n +columns: 1\n +fields:\n +- price\n"))
    # Rename the new tab from its label (Enter sends it).
    label = page.locator("#tab-1 input.layout-label[name='label.1']")
    label.fill("Later")
    label.press("Enter")
    expect(area).to_have_value(re.compile(r"- label: Later\n"))  # the server's text now
    expect(area).to_have_value(re.compile(r"- label: When\n"))  # the typed edit is still there
    assert "Dates" not in area.input_value()
    page.locator("#review-layout").click()
    expect(page.locator("#plan h2")).to_contain_text("change layout vehicle")
    page.locator("#apply").click()
    expect(page.locator("#tab-1 input.layout-label[name='label.1']")).to_have_value("Later")
    page.goto(f"{site}/e/vehicle/new")
    page.locator("#f-plate").fill("LATER-1")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/vehicle/\d+$"))
    later = page.get_by_role("tab", name="Later")
    expect(later).to_be_visible()
    later.click()
    panel = page.locator(".tab-panel", has=page.locator("h2", has_text="When"))
    expect(panel.locator("h2", has_text="New section")).to_have_count(1)
    expect(panel).to_be_visible()
    expect(page.get_by_role("tab", name="Main")).to_have_count(1)
