"""The address, person_name, emails and phones widgets in a real browser, on SQLite and
PostgreSQL: a person fills the group of inputs and the repeatable rows, saves, and sees the
formatted name and address and the mailto: / tel: links; the rows work without JavaScript."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import conftest
from .browser import HUNG_MS, require_browser, screenshot, serve_pack, sign_in, watch
from .packs import write_pack
from .test_browser import expect, script_errors

pytestmark = pytest.mark.browser


def contacts_pack(root: Path) -> Path:
    return write_pack(root, "folk", "1.0.0", {"person": {
        "label": "Person", "label_plural": "People", "title_field": "name",
        "fields": {"name": {"type": "person_name", "label": "Name"},
                   "home": {"type": "address", "label": "Home", "default_country": "FR"},
                   "emails": {"type": "emails", "label": "E-mails"},
                   "phones": {"type": "phones", "label": "Phones", "default_region": "FR"}}}})


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def folk_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("folk")
    if request.param == "sqlite":
        yield from serve_pack(f"sqlite:///{root / 'folk.db'}", contacts_pack(root))
        return
    for url in conftest._postgres_database():
        yield from serve_pack(url, contacts_pack(root))


def fill_and_save(page: Any) -> None:
    name = page.get_by_role("group", name="Name")
    name.get_by_label("Salutation").select_option("Dr.")
    name.get_by_label("First name").fill("Ada")
    name.get_by_label("Last name").fill("Lovelace")
    home = page.get_by_role("group", name="Home")
    expect(home.get_by_label("Country")).to_have_value("FR")
    home.get_by_label("Street").fill("1 Rue de Rivoli\n3e étage")
    home.get_by_label("City").fill("Paris")
    home.get_by_label("Postal code").fill("75001")
    emails = page.get_by_role("group", name="E-mails")
    expect(emails.get_by_role("textbox")).to_have_count(1)  # one blank row
    emails.get_by_role("textbox").fill("ada@example.com")
    page.get_by_role("group", name="Phones").get_by_role("textbox").fill("01 23 45 67 89")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/person/\d+$"))


def test_the_widgets_save_and_the_page_shows_formatted_values(folk_site: str, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, folk_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{folk_site}/e/person/new")
    screenshot(page, "contact-fields-form")
    fill_and_save(page)
    main = page.locator("main")
    expect(main.get_by_role("heading", name="Dr. Ada Lovelace")).to_be_visible()
    expect(main.locator(".lines-value")).to_have_text("1 Rue de Rivoli3e étage75001 ParisFrance")
    ada = main.get_by_role("link", name="ada@example.com")
    expect(ada).to_have_attribute("href", "mailto:ada@example.com")
    expect(main.get_by_role("link", name="+33 1 23 45 67 89")).to_have_attribute("href", "tel:+33123456789")
    screenshot(page, "contact-fields-record")
    # The edit form shows the saved row and a blank one for another address.
    page.goto(page.url + "/edit")
    emails = page.get_by_role("group", name="E-mails")
    expect(emails.get_by_role("textbox")).to_have_count(2)
    emails.get_by_role("textbox").nth(1).fill("countess@lovelace.org")
    emails.get_by_role("radio").nth(1).check()
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/person/\d+$"))
    links = page.locator("main .several-value a")
    expect(links.first).to_have_text("countess@lovelace.org")  # the primary first
    expect(links.nth(1)).to_have_text("ada@example.com")
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_the_widgets_work_without_javascript(folk_site: str, chromium: Any) -> None:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, folk_site)
    page = context.new_page()
    page.goto(f"{folk_site}/e/person/new")
    fill_and_save(page)
    expect(page.locator("main").get_by_role("link", name="ada@example.com")).to_be_visible()
    context.close()
