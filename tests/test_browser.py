"""Acceptance tests of the generated UI in a real browser (Chromium through Playwright).

Each test does what a user would: fills forms, drags kanban cards, edits in two tabs, and
looks at what the page shows. Screenshots of the main pages go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from slatecrm.platform.records.listing import ListQuery
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.sampledata import Generator
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.storage.runtime import RuntimeHolder
from slatecrm.platform.web.calendar_spec import date_fields

from .browser import HUNG_MS, ServerThread, drag, require_browser, screenshot, sign_in, watch
from .defaults import field_types, make_app
from .pack_templates import PackTemplates

#: Types whose text is shown as typed (the targets of the XSS tests).
TEXT_LIKE = frozenset({"text", "long_text", "email", "phone", "url"})

pytestmark = pytest.mark.browser

XSS_CORPUS = (
    "<script>alert('xss-script')</script>",
    "\"><img data-xss src=x onerror=alert('xss-img')>",
    "'><svg data-xss onload=alert('xss-svg')>",
    "javascript:alert('xss-url')",
    "{{ 7*7 }}{% raw %}{{ config }}{% endraw %}${7*7}",
    "</textarea><script>alert('xss-textarea')</script>",
    "<a data-xss href=\"javascript:alert('xss-link')\">click</a>",
)


@dataclass
class Site:
    url: str
    records: RecordsService
    engine: sa.Engine


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pack_templates: PackTemplates) -> Iterator[Site]:
    require_browser()
    url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'ui.db'}"
    engine = create_engine(url)
    registry = field_types()
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    records = RecordsService(engine, RuntimeHolder(engine, registry), registry)
    Generator(records, seed=7).run(12)
    app = make_app(url)
    with ServerThread(app) as server:
        yield Site(server.url, records, engine)
    app.state.engine.dispose()
    engine.dispose()


@pytest.fixture(scope="module")
def browser(site: Site, chromium: Any) -> Any:
    return chromium  # the process's browser (conftest), once the site is up


@pytest.fixture
def context(site: Site, browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    ctx.set_default_timeout(HUNG_MS)  # a failure detector: actions wait on conditions
    sign_in(ctx, site.url)
    yield ctx
    ctx.close()


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def script_errors(seen: Any) -> list[str]:
    """Console errors other than the browser's note on a refusal the test asked for
    (a 4xx answer to an invalid form or a refused move)."""
    return [e for e in seen.console_errors
            if not re.search(r"Failed to load resource: the server responded with a status of 4\d\d", e)]


def new_account(site: Site, name: str) -> int:
    return site.records.create("account", {"name": name}).id


# --- forms ------------------------------------------------------------------------------------
def test_create_through_the_form_with_an_invalid_value(site: Site, context: Any) -> None:
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{site.url}/e/contact/new")
    page.locator("#f-name").fill("Lovelace")  # a person name's main part: the last name
    page.locator("#f-name__first").fill("Ada")
    email = page.locator("#f-emails")
    email.fill("ada at example")
    email.press("Tab")  # a change: the server's own validator answers inline
    expect(page.locator("#error-emails")).to_have_text(
        "item 1: value: 'ada at example' is not an e-mail address")
    screenshot(page, "form")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#form-errors")).to_contain_text("E-mail")
    expect(page.locator("#error-emails")).to_contain_text("is not an e-mail address")
    expect(page.locator("#f-name")).to_have_value("Lovelace")  # nothing typed is lost
    expect(page.locator("#f-name__first")).to_have_value("Ada")
    page.locator("#f-emails").fill("ada@example.com")
    page.locator("#f-emails").press("Tab")  # the inline check clears the message before the save
    expect(page.locator("#error-emails")).to_have_text("")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/contact/\d+$"))
    expect(page.locator("h1")).to_have_text("Ada Lovelace")
    expect(page.locator("main")).to_contain_text("ada@example.com")
    screenshot(page, "record")
    assert script_errors(seen) == [] and seen.dialogs == []


def test_a_version_conflict_in_two_tabs_offers_reload_or_reapply(site: Site, context: Any) -> None:
    account = new_account(site, "Two Tabs Ltd")
    first, second = context.new_page(), context.new_page()
    for page in (first, second):
        page.goto(f"{site.url}/e/account/{account}/edit")
    first.locator("#f-phone").fill("+1 555 0101")
    first.get_by_role("button", name="Save").click()
    expect(first).to_have_url(re.compile(rf"/e/account/{account}$"))

    second.get_by_role("tab", name="Notes").click()  # the default account layout's third tab
    second.locator("#f-description").fill("Edited in the second tab")
    second.get_by_role("button", name="Save").click()
    conflict = second.locator("#conflict")
    expect(conflict).to_contain_text("Someone else changed this account")
    expect(conflict).to_contain_text("Phone")
    expect(second.locator("#f-description")).to_have_value("Edited in the second tab")
    second.locator("#conflict-reapply").click()
    expect(second).to_have_url(re.compile(rf"/e/account/{account}$"))
    record = site.records.get("account", account)
    assert record.values["description"] == "Edited in the second tab"
    assert record.values["phone"] == "+1 555 0101"  # the other tab's change survived

    # The other choice: reload drops the stale edit and shows the current values.
    first.goto(f"{site.url}/e/account/{account}/edit")
    second.goto(f"{site.url}/e/account/{account}/edit")
    first.locator("#f-phone").fill("+1 555 0202")
    first.get_by_role("button", name="Save").click()
    second.locator("#f-phone").fill("+1 555 0303")
    second.get_by_role("button", name="Save").click()
    second.locator("#conflict-reload").click()
    expect(second.locator("#f-phone")).to_have_value("+1 555 0202")


# --- lists ------------------------------------------------------------------------------------
def test_search_as_you_type_and_quick_filters(site: Site, context: Any) -> None:
    for name, industry in (("Quasar Search One", "finance"), ("Quasar Search Two", "retail")):
        site.records.create("account", {"name": name, "industry": industry})
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{site.url}/e/account")
    page.locator("#list-q").press_sequentially("Quasar Sea", delay=20)
    expect(page.locator("table.records tbody tr")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"q=Quasar"))
    page.locator("#quick-industry").select_option("retail")
    expect(page.locator("table.records tbody tr")).to_have_count(1)
    expect(page.locator("table.records tbody")).to_contain_text("Quasar Search Two")
    screenshot(page, "list")
    assert seen.console_errors == []


def test_a_bad_filter_expression_shows_its_error_inline(site: Site, context: Any) -> None:
    page = context.new_page()
    page.goto(f"{site.url}/e/opportunity")
    page.locator("#list-filter").fill("amount > ")
    page.locator("#list-filter").press("Enter")
    error = page.locator("#filter-error")
    expect(error).not_to_be_empty()
    expect(page.locator("#list-filter")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#list-filter")).to_have_value("amount > ")


def test_filter_a_list_with_an_expression(site: Site, context: Any) -> None:
    for name, employees in (("Filterprobe small", 50), ("Filterprobe big", 5000)):
        site.records.create("account", {"name": name, "employees": employees})
    page = context.new_page()
    page.goto(f"{site.url}/e/account?q=Filterprobe")
    expect(page.locator("table.records tbody tr")).to_have_count(2)
    page.locator("#list-filter").fill("employees > 1000")
    page.locator("#list-filter").press("Enter")
    expect(page.locator("table.records tbody tr")).to_have_count(1)
    expect(page.locator("table.records tbody")).to_contain_text("Filterprobe big")
    expect(page.locator("#filter-error")).to_be_empty()
    expect(page).to_have_url(re.compile(r"filter=employees"))
    page.locator("#list-filter").fill("employees >> 1000")
    page.locator("#list-filter").press("Enter")
    expect(page.locator("#filter-error")).to_contain_text(re.compile(r"line 1, column \d+"))
    expect(page.locator("#list-filter")).to_have_attribute("aria-invalid", "true")


# --- kanban -----------------------------------------------------------------------------------
def test_kanban_refuses_a_move_until_the_required_fields_are_filled(site: Site, context: Any) -> None:
    account = new_account(site, "Kanban Co")
    contact = site.records.create("contact", {"name": {"first": "Kim", "last": "Board"},
                                              "account": account}).id
    deal = site.records.create("opportunity", {"name": "Kanban deal", "account": account}).id
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{site.url}/e/opportunity/board/sales?q=Kanban+deal")
    card = page.locator(f'li.kanban-card[data-id="{deal}"]')
    proposal = page.locator('ol.cards[data-stage="proposal"]')
    expect(page.locator('ol.cards[data-stage="prospecting"] li.kanban-card')).to_have_count(1)
    drag(page, card, proposal)
    message = page.locator("#board-message")
    expect(message).to_be_visible()
    expect(message).to_contain_text("stage 'Proposal' requires Primary contact, Amount, Close date")
    expect(page.locator(f'ol.cards[data-stage="prospecting"] li[data-id="{deal}"]')).to_have_count(1)
    expect(proposal.locator("li.kanban-card")).to_have_count(0)
    assert site.records.get("opportunity", deal).values["stage"] == "prospecting"
    screenshot(page, "kanban-refused")

    # The refusal's link opens the form at the stage aimed at: filling in what it asks for
    # and saving is the move.
    message.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/e/opportunity/{deal}/edit\?stage=proposal$"))
    expect(page.locator("#f-stage")).to_have_value("proposal")
    page.locator("#f-primary_contact").select_option(str(contact))
    page.locator("#f-amount").fill("12000")
    page.locator("#f-close_date").fill("2027-03-31")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(rf"/e/opportunity/{deal}$"))
    assert site.records.get("opportunity", deal).values["stage"] == "proposal"

    usual = page.viewport_size
    page.set_viewport_size({"width": 2200, "height": 800})  # every column in view, for the mouse
    page.goto(f"{site.url}/e/opportunity/board/sales?q=Kanban+deal")
    expect(page.locator('.column-count[data-stage="proposal"]')).to_have_text("1")
    # Closed lost asks for a loss reason, which the form logic shows only at that stage.
    card = page.locator(f'li.kanban-card[data-id="{deal}"]')
    drag(page, card, page.locator('ol.cards[data-stage="closed_lost"]'))
    expect(message).to_contain_text("Loss reason")
    assert site.records.get("opportunity", deal).values["stage"] == "proposal"
    message.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/e/opportunity/{deal}/edit\?stage=closed_lost$"))
    expect(page.locator("#f-loss_reason")).to_be_visible()
    page.locator("#f-loss_reason").select_option("competitor")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(rf"/e/opportunity/{deal}$"))
    stored = site.records.get("opportunity", deal).values
    assert (stored["stage"], stored["loss_reason"]) == ("closed_lost", "competitor")
    page.goto(f"{site.url}/e/opportunity/board/sales?q=Kanban+deal")
    expect(page.locator('.column-count[data-stage="closed_lost"]')).to_have_text("1")
    expect(page.locator("#board-message")).to_be_hidden()
    page.set_viewport_size(usual)
    page.goto(f"{site.url}/e/opportunity/board/sales")
    screenshot(page, "kanban")
    assert script_errors(seen) == [] and seen.dialogs == []


# --- every page of the demo -------------------------------------------------------------------
def demo_urls(site: Site) -> list[str]:
    urls = ["/", "/search?q=a"]
    for name, ce in site.records.compiled().items():
        first = site.records.page(name).records[0].id
        urls += [f"/e/{name}", f"/e/{name}?sort=-updated_at", f"/e/{name}/new", f"/e/{name}/{first}",
                 f"/e/{name}/{first}/edit", f"/e/{name}/{first}/delete"]
        urls += [f"/e/{name}/board/{p.name}" for p in ce.entity.pipelines]
        urls += [f"/e/{name}/calendar?mode={mode}" for mode in ("month", "week") if date_fields(ce)]
        urls += [f"/e/{name}?{f.name}={f.field.choices[0].key}" for f in ce.fields.values()
                 if f.field.type == "choice" and f.field.choices][:1]
    return urls


def test_every_page_of_the_demo_answers_200_without_console_errors(site: Site, context: Any) -> None:
    page = context.new_page()
    seen = watch(page)
    for url in demo_urls(site):
        response = page.goto(site.url + url)
        assert response is not None and response.status == 200, url
        page.wait_for_load_state("load")
        assert seen.console_errors == [], (url, seen.console_errors)
    # JSON twins of the same pages.
    for url in demo_urls(site)[:6]:
        response = context.request.get(site.url + url, headers={"Accept": "application/json"})
        assert response.status == 200 and response.headers["content-type"] == "application/json", url


# --- XSS --------------------------------------------------------------------------------------
def combination(values: list[Any]) -> str:
    """A `unique` list's values as the sample generator keys them (a reference by its id)."""
    ids = [v["id"] if isinstance(v, dict) and "id" in v else v for v in values]
    return json.dumps(ids, sort_keys=True, default=str)


def store_corpus(site: Site) -> dict[str, list[int]]:
    """One record per payload in every entity, the payload in every text-like field that
    accepts it (e-mail and phone fields refuse most of them, which is also fine)."""
    stored: dict[str, list[int]] = {}
    generator = Generator(site.records, seed=11)
    generator.ensure_users()
    for name in site.records.compiled():
        generator.ids[name] = [r.id for r in site.records.page(name).records]
    for name, ce in site.records.compiled().items():
        # A link entity's pairs are unique: draw pairs that no record holds yet.
        taken = [{combination([r.values.get(n) for n in composite.fields])
                  for r in site.records.page(name).records} for composite in ce.entity.unique]
        for payload in XSS_CORPUS:
            data = generator.fresh_record(ce, taken)
            assert data is not None, name
            for field_name, compiled in ce.fields.items():
                if compiled.field.type in TEXT_LIKE and compiled.type.writable:
                    data[field_name] = payload
            for field_name in site.records.check(name, data):
                if field_name in ce.fields and ce.fields[field_name].field.type in TEXT_LIKE:
                    data.pop(field_name)
            # Keep a stage that needs nothing more, so the record is valid whatever it holds.
            for pipeline in ce.entity.pipelines:
                data[pipeline.field] = pipeline.stages[0].key
            for field_name, compiled in ce.fields.items():
                if compiled.field.required and field_name not in data:
                    data[field_name] = generator.value(ce, compiled)
            stored.setdefault(name, []).append(site.records.create(name, data).id)
    return stored


def calendar_days(site: Site, name: str, record: int) -> list[str]:
    """The calendar's day and month holding the record (by its first date field with a value)."""
    values = site.records.get(name, record).values
    for compiled in date_fields(site.records.compiled()[name]):
        value = values.get(compiled.name)
        if value is not None:
            day = value.isoformat()[:10]
            return [f"/e/{name}/calendar?field={compiled.name}&mode={mode}&date={day}"
                    for mode in ("day", "month")]
    return []


def assert_inert(page: Any, seen: Any, where: str) -> None:
    assert seen.dialogs == [], (where, seen.dialogs)
    assert page.locator("[data-xss]").count() == 0, where
    assert page.locator('a[href^="javascript:" i]').count() == 0, where
    assert page.locator("script:not([src])").count() == 0, where


def test_an_xss_corpus_in_every_text_field_renders_inert(site: Site, context: Any) -> None:
    stored = store_corpus(site)
    page = context.new_page()
    seen = watch(page)
    for name, ids in stored.items():
        ce = site.records.compiled()[name]
        urls = [f"/e/{name}?sort=-id", f"/e/{name}/{ids[0]}", f"/e/{name}/{ids[1]}/edit",
                f"/e/{name}/{ids[2]}"]
        urls += [f"/e/{name}/board/{p.name}" for p in ce.entity.pipelines]
        urls += calendar_days(site, name, ids[0])
        urls += [f"/e/{name}/{i}" for i in ids[3:]]
        for url in urls:
            response = page.goto(site.url + url)
            assert response is not None and response.status == 200, url
            # After the tasks the page had queued by now (a payload's onerror, onload) have run:
            page.evaluate("() => new Promise(resolve => setTimeout(resolve))")
            assert_inert(page, seen, url)
    # The payloads are shown as the text they are.
    page.goto(f"{site.url}/e/account?sort=-id")
    expect(page.locator("table.records")).to_contain_text("<script>alert('xss-script')</script>")
    expect(page.locator("table.records")).to_contain_text("{{ 7*7 }}")
    page.goto(f"{site.url}/search?q=%3Cscript%3E")
    assert_inert(page, seen, "search")
    assert not [e for e in seen.console_errors if "xss" in e.lower()], seen.console_errors


def test_artifacts_are_ignored_by_git() -> None:
    ignored = (Path(__file__).resolve().parent.parent / ".gitignore").read_text().splitlines()
    assert "test-artifacts/" in ignored


def test_select_all_then_bulk_edit(site: Site, context: Any) -> None:
    for i in range(3):
        site.records.create("account", {"name": f"Selectall {i}"})
    page = context.new_page()
    page.goto(f"{site.url}/e/account?q=Selectall")
    page.get_by_label("Select all on this page").check()
    expect(page.locator('#bulk input[name="ids"]:checked')).to_have_count(3)
    page.locator("#bulk-field").select_option("industry")
    page.locator("#bulk-value").fill("Retail")
    page.get_by_role("button", name="Update selected").click()
    expect(page.locator("main")).to_contain_text("3 updated")
    chosen = site.records.page("account", ListQuery(search="Selectall")).records
    assert len(chosen) == 3 and {r.values["industry"] for r in chosen} == {"retail"}


def test_reference_picker_searches_as_you_type(site: Site, context: Any) -> None:
    wanted = new_account(site, "Zanzibar Picker Holdings")
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{site.url}/e/contact/new")
    page.locator("#f-account__search").press_sequentially("Zanzibar", delay=20)
    expect(page.locator("#f-account option")).to_have_count(2)  # the blank choice and the match
    page.locator("#f-account").select_option(str(wanted))
    page.locator("#f-name").fill("Picked")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("main")).to_contain_text("Zanzibar Picker Holdings")
    assert seen.console_errors == []


def test_editing_another_field_keeps_the_stored_currency(site: Site, context: Any) -> None:
    """Regression: the edit form offered a fixed list of currencies, so a JPY amount came
    back as USD when someone edited any other field."""
    account = new_account(site, "Yen Holdings")
    deal = site.records.create("opportunity", {"name": "Osaka", "account": account,
                                               "amount": {"amount": "1500000", "currency": "JPY"}}).id
    page = context.new_page()
    page.goto(f"{site.url}/e/opportunity/{deal}/edit")
    expect(page.locator("#f-amount__currency")).to_have_value("JPY")
    page.locator("#f-name").fill("Osaka (renewal)")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(rf"/e/opportunity/{deal}$"))
    amount = site.records.get("opportunity", deal).values["amount"]
    assert amount["currency"] == "JPY" and amount["amount"] == 1500000
