"""A manual workflow in a real browser (Chromium through Playwright): the record page's
Automation panel offers the workflow's button; clicking it queues a run (htmx swaps the panel,
which says so); a worker round then runs it, and after a reload the panel shows the run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette

from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.workflows.worker import Worker

from .browser import HUNG_MS, ServerThread, require_browser, screenshot, sign_in, watch
from .defaults import field_types, make_app
from .packs import install
from .test_workflow_web import handwork

pytestmark = pytest.mark.browser


@dataclass
class Site:
    url: str
    app: Starlette


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_browser()
    root = tmp_path_factory.mktemp("workflows-ui")
    url = f"sqlite:///{root / 'ui.db'}"
    engine = create_engine(url)
    registry = field_types()
    install(engine, registry, handwork(root / "packs"))
    engine.dispose()
    app = make_app(url)
    with ServerThread(app) as server:
        yield Site(server.url, app)
    app.state.engine.dispose()


@pytest.fixture
def context(site: Site, chromium: Any) -> Iterator[Any]:
    ctx = chromium.new_context(viewport={"width": 1360, "height": 900})
    ctx.set_default_timeout(HUNG_MS)  # a failure detector: actions wait on conditions
    sign_in(ctx, site.url)
    yield ctx
    ctx.close()


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def test_the_manual_button_runs_a_workflow_and_the_panel_shows_its_run(site: Site, context: Any) -> None:
    records = site.app.state.records
    ticket = records.create("ticket", {"requester": "Bluth", "subject": "Bluth Company"}).id
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{site.url}/e/ticket/{ticket}")
    panel = page.locator("#automation")
    expect(panel).to_contain_text("No workflow has run on this record yet")
    page.get_by_role("button", name="Escalate").click()
    expect(panel).to_contain_text("“Escalate” queued")  # the panel swapped in place

    # The worker, as `slatecrm worker` would run it, against the same database.
    assert Worker(site.app.state.engine, records, name="browser-worker").run_until_idle() == 1
    page.reload()
    panel = page.locator("#automation")
    run = panel.locator("li.run").first
    expect(run).to_contain_text("Escalate")
    expect(run).to_contain_text("manual")
    expect(run.locator(".status").first).to_have_text("done")
    expect(run).to_contain_text("update: done")
    expect(page.locator("main")).to_contain_text("High")  # the update it made
    expect(page.locator("main")).to_contain_text("Escalated by hand: Bluth Company")  # its note
    assert records.get("ticket", ticket).values["priority"] == "high"
    screenshot(page, "automation-panel")
    assert seen.console_errors == [] and seen.dialogs == []

