"""Field-level permissions in a real browser (issue 12, tests): for a user whose role makes a
field read-only, the edit form shows its value but offers no way to change it, and saving
the form leaves it as it was; a hidden field appears nowhere: not in the form, the record
page, the list nor the board."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from slatecrm.platform.records.service import RecordsService

from .browser import HUNG_MS, SERVED, require_browser, serve_pack, sign_in, watch
from .packs import write_pack

pytestmark = pytest.mark.browser

#: A value only the hidden field holds: the clerk's pages must never show it.
SENTINEL = "SENTINEL-browser-4d21"
DEAL: dict[str, Any] = {
    "label": "Deal", "title_field": "name",
    "fields": {"name": {"type": "text", "required": True}, "amount": {"type": "integer"},
               "approved_by": {"type": "text"}, "secret": {"type": "text"}},
    "pipelines": {"flow": {"field": "status",
                           "stages": [{"key": "open"}, {"key": "won", "category": "won"}]}},
}
CLERK = {"kind": "role", "name": "clerk", "entities": {"deal": {
    "actions": ["create", "read", "update"], "scope": "all",
    "fields": {"approved_by": "read_only", "secret": "hidden"}}}}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("field-access")
    pack = write_pack(root, "dealing", "1.0.0", {"deal": DEAL})
    (pack / "roles").mkdir()
    (pack / "roles" / "clerk.yaml").write_text(json.dumps(CLERK))
    yield from serve_pack(f"sqlite:///{root / 'ui.db'}", pack)


def test_read_only_fields_are_shown_not_editable_and_hidden_ones_absent(site: str, chromium: Any) -> None:
    from playwright.sync_api import expect

    records: RecordsService = SERVED[site].state.records
    deal = records.create("deal", {"name": "Big deal", "amount": 10, "approved_by": "Boss",
                                   "secret": SENTINEL, "status": "open"})
    context = chromium.new_context()
    context.set_default_timeout(HUNG_MS)  # a failure detector: actions wait on conditions
    sign_in(context, site, "clerk@example.com", roles=("clerk",))
    page = context.new_page()
    seen = watch(page)

    page.goto(f"{site}/e/deal/{deal.id}/edit")
    approved = page.locator("#f-approved_by")
    expect(approved).to_have_value("Boss")
    expect(approved).to_be_disabled()
    expect(page.locator("#f-secret")).to_have_count(0)
    expect(page.get_by_label("Amount")).to_be_editable()
    assert SENTINEL not in page.content()
    page.get_by_label("Amount").fill("25")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text("Big deal")
    expect(page.locator(".fields").first).to_contain_text("25")
    expect(page.locator(".fields").first).to_contain_text("Boss")
    assert SENTINEL not in page.content()
    stored = records.get("deal", deal.id).values
    assert (stored["amount"], stored["approved_by"], stored["secret"]) == (25, "Boss", SENTINEL)

    page.goto(f"{site}/e/deal")
    expect(page.get_by_role("link", name="Big deal")).to_be_visible()
    assert SENTINEL not in page.content() and "Secret" not in page.content()
    page.goto(f"{site}/e/deal/board/flow")
    expect(page.get_by_text("Big deal")).to_be_visible()
    assert SENTINEL not in page.content()
    page.goto(f"{site}/e/deal/new")
    expect(page.locator("#f-approved_by")).to_be_disabled()
    expect(page.locator("#f-secret")).to_have_count(0)
    assert not seen.dialogs and not seen.console_errors, seen
    context.close()

    # An administrator's form offers both fields: the clerk's form is narrowed by the role.
    admin = chromium.new_context()
    admin.set_default_timeout(HUNG_MS)
    sign_in(admin, site)
    page = admin.new_page()
    page.goto(f"{site}/e/deal/{deal.id}/edit")
    expect(page.locator("#f-approved_by")).to_be_editable()
    expect(page.locator("#f-secret")).to_have_value(SENTINEL)
    admin.close()
