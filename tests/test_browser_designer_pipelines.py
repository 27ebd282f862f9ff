"""The designer's pipeline and pack pages in a real browser: drag a stage to a new place,
review the plan, Apply, and the board shows the new order; upload a pack .zip, review its
plan, Install, and the packs page lists it. With SLATECRM_SCREENSHOTS=1 the pages are saved
as docs/images/designer-pipeline.png and designer-packs.png."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slatecrm.platform import customisation
from slatecrm.platform.storage.engine import create_engine

from .browser import HUNG_MS, ServerThread, drag, require_browser, sign_in, watch
from .defaults import field_types, make_app
from .packs import install
from .test_designer_packs import GADGET, pack_zip
from .test_designer_pipelines import VEHICLE

pytestmark = pytest.mark.browser

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
VIEWPORT = {"width": 1100, "height": 700}


def docs_screenshot(page: Any, name: str) -> None:
    """The page as docs/images/<name>.png, only when SLATECRM_SCREENSHOTS=1."""
    if os.environ.get("SLATECRM_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / f"{name}.png"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server over crm-core and the organisation's own vehicle entity (its pipeline is the
    organisation's, so every stage can move)."""
    require_browser()
    root = tmp_path_factory.mktemp("designer-pipelines")
    url = f"sqlite:///{root / 'ui.db'}"
    engine = create_engine(url)
    install(engine, field_types(), "crm-core")
    planned = customisation.plan_edit(engine, field_types(), "define vehicle",
                                      customisation.put_entity("vehicle", VEHICLE))
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


def test_drag_a_stage_apply_and_the_board_follows(site: str, page: Any) -> None:
    from playwright.sync_api import expect

    pipeline = f"{site}/admin/entities/vehicle/pipelines/lifecycle"
    page.goto(pipeline)
    rows = page.locator("#stage-order li")
    expect(rows).to_have_count(3)
    docs_screenshot(page, "designer-pipeline")
    drag(page, page.locator("#stage-sold .drag-handle"), page.locator("#stage-ordered"), right=None, down=2)
    # Dropping submits the new order: its plan is shown, nothing changed yet.
    expect(page.locator("#plan h2")).to_contain_text("reorder the stages of vehicle.lifecycle")
    expect(page.locator("#apply")).to_be_visible()
    page.locator("#apply").click()
    expect(page.locator("#stage-order li").first).to_have_attribute("data-key", "sold")
    page.locator("#open-board").click()
    expect(page.locator(".board-column h2").first).to_have_text("Sold")
    expect(page.locator(".board-column h2")).to_have_text(["Sold", "Ordered", "In service"])


def test_the_entry_condition_is_checked_as_typed(site: str, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{site}/admin/entities/vehicle/pipelines/lifecycle/stages/sold")
    condition = page.locator("#s-condition")
    condition.fill("price > 'x'")
    expect(page.locator("#condition-check .field-error")).to_contain_text("column")
    expect(page.locator("#condition-check pre.caret")).to_contain_text("^")
    condition.fill("price > 3")
    expect(page.locator("#condition-check")).to_contain_text("reads well")


def test_upload_a_pack_and_install_it(site: str, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    archive = tmp_path / "gadgets.zip"
    archive.write_bytes(pack_zip(tmp_path, GADGET, requires={"crm-core": ">=0.1.0"}))
    page.goto(f"{site}/admin/packs")
    expect(page.locator("#pack-crm-core")).to_be_visible()
    page.locator("#pack-file").set_input_files(str(archive))
    page.get_by_role("button", name="Check and plan").click()
    expect(page.locator("#pack-changes")).to_contain_text("Install gadgets 1.0.0")
    expect(page.locator("#plan")).to_contain_text("CREATE TABLE")
    docs_screenshot(page, "designer-packs")
    page.locator("#apply").click()
    expect(page.locator("#packs-installed")).to_contain_text("gadgets")
    expect(page.locator("#pack-gadgets")).to_contain_text("gadget")
