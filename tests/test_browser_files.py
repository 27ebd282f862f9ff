"""File fields in a real browser, on SQLite and PostgreSQL: a person picks a photo and two
papers in the form's file inputs, saves, and sees the photo's thumbnail (loaded, made by
the server) and the papers' links on the record page and in the list; the same with
JavaScript off, since the form is a plain multipart form."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from slatecrm.platform.files.backends import STORAGE_VARIABLE

from . import conftest
from .browser import HUNG_MS, require_browser, screenshot, serve_pack, sign_in, watch
from .test_browser import expect, script_errors
from .test_file_fields import dossiers_pack

pytestmark = pytest.mark.browser


def picture(path: Path) -> Path:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), "orange").save(out, "PNG")
    path.write_bytes(out.getvalue())
    return path


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def archive_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("archive")
    before = os.environ.get(STORAGE_VARIABLE)
    os.environ[STORAGE_VARIABLE] = str(root / "files")  # read when the app is built
    try:
        if request.param == "sqlite":
            yield from serve_pack(f"sqlite:///{root / 'archive.db'}", dossiers_pack(root))
            return
        for url in conftest._postgres_database():
            yield from serve_pack(url, dossiers_pack(root))
    finally:
        if before is None:
            os.environ.pop(STORAGE_VARIABLE, None)
        else:
            os.environ[STORAGE_VARIABLE] = before


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paper = tmp_path / "minutes.txt"
    paper.write_text("minutes of the meeting\n")
    offer = tmp_path / "offer.pdf"
    offer.write_bytes(b"%PDF-1.4\n%%EOF\n")
    return {"photo": picture(tmp_path / "portrait.png"), "paper": paper, "offer": offer}


def test_files_picked_in_the_form_show_as_a_thumbnail_and_links(archive_site: str, chromium: Any,
                                                                files: dict[str, Path]) -> None:
    context = chromium.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, archive_site)
    page = context.new_page()
    seen = watch(page)
    page.goto(f"{archive_site}/e/dossier/new")
    page.locator("#f-title").fill("Portrait")
    page.locator("#f-photo").set_input_files(str(files["photo"]))
    page.locator("#f-papers").set_input_files([str(files["paper"]), str(files["offer"])])
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/dossier/\d+$"))
    thumbnail = page.locator("main img.thumbnail")
    expect(thumbnail).to_have_attribute("alt", "portrait.png")
    expect(thumbnail).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())
    assert thumbnail.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 48]
    expect(page.get_by_role("link", name="minutes.txt")).to_be_visible()
    expect(page.get_by_role("link", name="offer.pdf")).to_be_visible()
    screenshot(page, "files-record")
    # Downloading a paper gives its bytes, as an attachment.
    with page.expect_download() as download:
        page.get_by_role("link", name="minutes.txt").click()
    assert download.value.suggested_filename == "minutes.txt"
    assert Path(download.value.path()).read_text() == "minutes of the meeting\n"
    # The edit form keeps them; unticking a paper removes it.
    page.goto(page.url + "/edit")
    group = page.get_by_role("group", name="Papers")
    expect(group.get_by_role("checkbox")).to_have_count(2)
    group.get_by_role("checkbox", name="offer.pdf").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/dossier/\d+$"))
    expect(page.get_by_role("link", name="offer.pdf")).to_have_count(0)
    expect(page.locator("main img.thumbnail")).to_be_visible()
    page.goto(f"{archive_site}/e/dossier?columns=title,photo,papers")
    expect(page.locator("table.records img.thumbnail")).to_have_count(1)
    assert script_errors(seen) == [] and seen.dialogs == []
    context.close()


def test_the_upload_works_without_javascript(archive_site: str, chromium: Any,
                                             files: dict[str, Path]) -> None:
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 800})
    context.set_default_timeout(HUNG_MS)
    sign_in(context, archive_site)
    page = context.new_page()
    page.goto(f"{archive_site}/e/dossier/new")
    page.locator("#f-title").fill("Silent")
    page.locator("#f-attachment").set_input_files(str(files["offer"]))
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/e/dossier/\d+$"))
    expect(page.get_by_role("link", name="offer.pdf")).to_be_visible()
    context.close()
