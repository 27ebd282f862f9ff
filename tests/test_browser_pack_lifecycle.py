"""The designer's pack upgrade in a real browser: the organisation relabelled a pack's field,
the pack's new version relabels it too; uploading the new version shows the conflict with the
three values, Apply without a choice is refused, choosing "keep mine" and Apply upgrades the
pack with the organisation's label kept. With SLATECRM_SCREENSHOTS=1 the upgrade page is
saved as docs/images/designer-upgrade.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slatecrm.platform import customisation
from slatecrm.platform.storage import revisions as revision_store
from slatecrm.platform.storage.engine import create_engine

from .browser import HUNG_MS, ServerThread, require_browser, sign_in, watch
from .defaults import field_types, make_app
from .packs import install
from .test_browser_designer_pipelines import VIEWPORT, docs_screenshot
from .test_designer_pack_lifecycle import GADGET_V2
from .test_designer_packs import GADGET, pack_zip

pytestmark = pytest.mark.browser

CORE = {"crm-core": ">=0.1.0"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server over crm-core and gadgets 1.0.0, whose weight field the organisation
    relabelled "Heft"; yields its URL and the database's."""
    require_browser()
    root = tmp_path_factory.mktemp("pack-lifecycle")
    url = f"sqlite:///{root / 'ui.db'}"
    engine = create_engine(url)
    registry = field_types()
    install(engine, registry, "crm-core")
    archive = root / "gadgets-1.0.0.zip"
    archive.write_bytes(pack_zip(root / "v1", GADGET, requires=CORE))
    install(engine, registry, archive)
    planned = customisation.plan_edit(engine, registry, "relabel weight",
                                      customisation.put_field("gadget", "weight", {"label": "Heft"}))
    customisation.apply_edit(engine, planned, author="test")
    engine.dispose()
    app = make_app(url)
    with ServerThread(app) as server:
        yield server.url, url
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def browser(site: tuple[str, str], chromium: Any) -> Any:
    return chromium


@pytest.fixture
def page(site: tuple[str, str], browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(HUNG_MS)  # a failure detector: actions wait on conditions
    sign_in(context, site[0])
    opened = context.new_page()
    seen = watch(opened)
    yield opened
    # The refused Apply answers 409 (the page with the conflict left), which the browser logs.
    unexpected = [e for e in seen.console_errors if "status of 409" not in e]
    assert not unexpected, unexpected
    context.close()


def test_upload_a_new_version_choose_and_apply(site: tuple[str, str], page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    base, url = site
    archive = tmp_path / "gadgets-1.1.0.zip"
    archive.write_bytes(pack_zip(tmp_path, GADGET_V2, "1.1.0", requires=CORE))
    page.goto(f"{base}/admin/packs")
    page.locator("#pack-file").set_input_files(str(archive))
    page.get_by_role("button", name="Check and plan").click()
    expect(page.locator("#pack-summary")).to_contain_text("from 1.0.0 to 1.1.0")
    conflict = page.locator('tr.conflict[data-path="gadget.weight.label"]')
    expect(conflict.locator("td.base")).to_have_text("Weight")
    expect(conflict.locator("td.new")).to_have_text("Mass")
    expect(conflict.locator("td.mine")).to_have_text("Heft")
    conflict.scroll_into_view_if_needed()
    docs_screenshot(page, "designer-upgrade")

    page.locator("#upgrade-apply").click()  # no choice made: refused, nothing changed
    expect(page.locator("#plan-notice")).to_contain_text("1 conflict left unresolved")
    conflict.get_by_label("keep mine").check()
    page.locator("#upgrade-apply").click()
    expect(page.locator("#packs-upgraded")).to_contain_text("gadgets")
    expect(page.locator("#pack-gadgets")).to_contain_text("1.1.0")

    engine = create_engine(url)
    with engine.connect() as conn:
        gadget = revision_store.current_metamodel(conn)[1].entity("gadget")
    engine.dispose()
    assert gadget is not None and gadget.field("weight").label == "Heft"  # type: ignore[union-attr]
    assert gadget.field("colour_name") is not None
