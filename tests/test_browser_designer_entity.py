"""The designer's entity lifecycle in a real browser, on SQLite and PostgreSQL: an entity made
in the designer gets a pipeline with two stages, is retired and restored with its records
kept; a pack's field relabelled by the organisation is reverted to the pack's label. Each
change shows its plan before Apply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .browser import SERVED, require_browser, serve_pack_on
from .defaults import signed_in
from .test_browser import expect, script_errors
from .test_browser_designer import opened

pytestmark = pytest.mark.browser

VEHICLE = {"label": "Vehicle", "title_field": "plate",
           "fields": {"plate": {"type": "text", "required": True}, "seats": {"type": "text"}}}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    yield from serve_pack_on(request.param, tmp_path_factory.mktemp("designer_entity"), "fleet",
                             {"vehicle": VEHICLE})


def test_an_entity_gets_a_pipeline_is_retired_and_restored_with_its_records(site: str, chromium: Any) -> None:
    context, page, seen = opened(chromium, site)
    page.goto(f"{site}/admin/entities")
    page.locator("#new-entity").click()
    page.locator("#e-name").fill("boat")
    page.locator("#e-label").fill("Boat")
    page.get_by_role("button", name="Review the change").click()
    expect(page.locator("#plan")).to_contain_text("create table")
    page.locator("#apply").click()
    expect(page.locator("h1")).to_have_text("Boat")
    # A pipeline with two stages, on a field made for it.
    page.locator("#add-pipeline").click()
    expect(page.locator("#p-field")).to_have_value("stage")
    page.locator("#p-name").fill("voyage")
    page.locator("#p-label").fill("Voyage")
    page.get_by_label("Stage 1 key").fill("planned")
    page.get_by_label("Stage 1 label").fill("Planned")
    page.get_by_label("Stage 2 key").fill("sailing")
    page.get_by_label("Stage 2 label").fill("At sea")
    page.locator("#review-pipeline").click()
    expect(page.locator("#plan")).to_contain_text("add column")
    page.locator("#apply").click()
    expect(page.locator("#stage-planned")).to_contain_text("Planned")
    expect(page.locator("#stage-sailing")).to_contain_text("At sea")
    with signed_in(SERVED[site], raise_server_exceptions=False) as api:
        made = api.post("/api/v1/boat", json={"name": "Mary Rose", "stage": "sailing"})
        assert made.status_code == 201, made.text
    # Retired: gone from the entities, listed apart; restored: back with its record.
    page.goto(f"{site}/admin/entities/boat")
    page.get_by_role("button", name="Review retiring Boat").click()
    expect(page.locator("#plan")).to_contain_text("retire entity boat")
    page.locator("#apply").click()
    expect(page.locator("#retired-boat")).to_contain_text("Boat")
    expect(page.locator("#entity-boat")).to_have_count(0)
    page.locator("#restore-boat").click()
    expect(page.locator("#plan")).to_contain_text("restore entity boat with its 1 rows")
    page.locator("#apply").click()
    expect(page.locator("h1")).to_have_text("Boat")
    expect(page.locator("#pipeline-voyage")).to_contain_text("Planned → At sea")
    page.goto(f"{site}/e/boat/board/voyage")
    expect(page.get_by_text("Mary Rose")).to_be_visible()
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_a_relabelled_pack_field_is_reverted_to_the_pack_s(site: str, chromium: Any) -> None:
    context, page, seen = opened(chromium, site)
    page.goto(f"{site}/admin/entities/vehicle/fields/seats")
    expect(page.locator("#revert")).to_have_count(0)
    page.locator("#f-label").fill("Places")
    page.locator("#review").click()
    page.locator("#apply").click()
    expect(page.locator("#field-seats")).to_contain_text("Places")
    expect(page.locator("#field-seats")).to_contain_text("changed by the organisation")
    page.locator("#field-seats a").click()
    page.locator("#revert").click()
    expect(page.locator("#plan")).to_contain_text("revert field vehicle.seats")
    page.locator("#apply").click()
    expect(page.locator("#field-seats")).to_contain_text("Seats")
    expect(page.locator("#field-seats")).not_to_contain_text("changed by the organisation")
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()
