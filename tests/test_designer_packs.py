"""The designer's pack pages over HTTP (web/designer_packs.py): the installed packs listed;
an uploaded pack .zip shows its problems at file:line, or its plan, and installs on
confirmation (an installed name is an upgrade from its version); unsafe archives are
refused before anything is read from them."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import customisation
from slatecrm.platform.web.designer_packs import Refused, checked_archive

from .defaults import make_app, signed_in
from .pack_templates import PackTemplates
from .packs import write_files_pack

GADGET = """\
kind: entity
name: gadget
label: Gadget
title_field: name
fields:
  name: {type: text, required: true}
  weight: {type: integer}
"""
GADGET_V2 = GADGET + "  colour_name: {type: text}\n"
BROKEN = GADGET.replace("weight: {type: integer}", "weight: {type: heavy}")


@pytest.fixture
def client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
           pack_templates: PackTemplates) -> Iterator[TestClient]:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def pack_zip(tmp_path: Path, gadget: str, version: str = "1.0.0",
             requires: dict[str, str] | None = None) -> bytes:
    """The gadgets pack (requiring the sales pack unless told) zipped under one top folder,
    as a pack is usually downloaded."""
    folder = write_files_pack(tmp_path / version, {"entities/gadget.yaml": gadget}, name="gadgets",
                              version=version, requires=requires)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"gadgets/{path.relative_to(folder).as_posix()}")
    return out.getvalue()


def raw_zip(members: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return out.getvalue()


def upload(client: TestClient, data: bytes, name: str = "gadgets.zip") -> Any:
    return client.post("/admin/packs/upload", files={"pack": (name, data, "application/zip")})


def install_form(html: str) -> dict[str, str]:
    found = dict(re.findall(r'<input type="hidden" name="(archive|filename|confirm)" value="([^"]*)"', html))
    assert "archive" in found, html
    return found


def test_the_installed_packs_are_listed(client: TestClient) -> None:
    page = client.get("/admin/packs")
    assert page.status_code == 200, page.text
    assert 'id="pack-sales"' in page.text and 'id="pack-crm-core"' in page.text
    packs = {p["name"]: p for p in client.get("/admin/packs.json").json()["data"]}
    assert packs["sales"]["requires"][0].startswith("crm-core")
    assert "opportunity" in packs["sales"]["defines"]["entities"]
    assert packs["sales"]["version"] and packs["sales"]["title"]


def test_a_good_pack_is_planned_then_installed(client: TestClient, tmp_path: Path) -> None:
    plan = upload(client, pack_zip(tmp_path, GADGET))
    assert plan.status_code == 200, plan.text
    assert "Install <strong>gadgets</strong> 1.0.0" in plan.text
    assert "CREATE TABLE" in plan.text
    assert client.get("/api/v1/gadget").status_code == 404  # nothing installed yet
    done = client.post("/admin/packs/install", data=install_form(plan.text), follow_redirects=False)
    assert done.status_code == 303, done.text
    assert 'id="pack-gadgets"' in client.get(done.headers["location"]).text
    made = client.post("/api/v1/gadget", json={"name": "Sprocket", "weight": 3})
    assert made.status_code == 201, made.text
    # A new version of it: the upgrade page (tests/test_designer_pack_lifecycle.py), then applied.
    plan = upload(client, pack_zip(tmp_path, GADGET_V2, "1.1.0"))
    assert plan.status_code == 200, plan.text
    assert "Upgrade <strong>gadgets</strong> from 1.0.0 to 1.1.0" in plan.text
    upgraded = client.post("/admin/packs/upgrade", data=install_form(plan.text), follow_redirects=False)
    assert upgraded.status_code == 303, upgraded.text
    again = client.get(f"/api/v1/gadget/{made.json()['id']}").json()
    assert again["name"] == "Sprocket" and "colour_name" in again
    same = upload(client, pack_zip(tmp_path / "again", GADGET_V2, "1.1.0"))
    assert "nothing to do" in same.text and 'name="confirm"' not in same.text
    older = upload(client, pack_zip(tmp_path / "older", GADGET, "1.0.0"))
    assert older.status_code == 422, older.text
    assert "downgrades are refused" in older.text
    assert "gadgets.zip/pack.yaml" in older.text and "/tmp" not in older.text


def test_a_broken_pack_shows_its_problems_at_file_and_line(client: TestClient, tmp_path: Path) -> None:
    page = upload(client, pack_zip(tmp_path, BROKEN))
    assert page.status_code == 422, page.text
    assert re.search(r"gadgets\.zip/entities/gadget\.yaml:7:\d+", page.text), page.text
    assert "heavy" in page.text and "is not a field type" in page.text
    assert 'id="pack-gadgets"' not in page.text


def test_unsafe_or_damaged_archives_are_refused(client: TestClient) -> None:
    climbing = upload(client, raw_zip({"pack.yaml": "name: x\n", "../evil.yaml": "kind: entity\n"}))
    assert climbing.status_code == 422
    assert "gadgets.zip/../evil.yaml" in climbing.text and "leaves the pack folder" in climbing.text
    absolute = upload(client, raw_zip({"/etc/evil.yaml": "x"}))
    assert absolute.status_code == 422 and "/etc/evil.yaml" in absolute.text
    assert upload(client, b"not a zip at all").status_code == 422
    nothing = client.post("/admin/packs/upload", files={"other": ("x.txt", b"x", "text/plain")})
    assert nothing.status_code == 422 and "choose a pack .zip" in nothing.text
    damaged = client.post("/admin/packs/install", data={"archive": "@@@", "confirm": "1"})
    assert damaged.status_code == 422


def test_an_archive_past_the_limits_is_refused() -> None:
    big = raw_zip({"pack.yaml": "x" * 200_000})  # compresses to a few hundred bytes
    with pytest.raises(Refused, match="upload limit"):
        checked_archive(big, "big.zip", 100)
    with pytest.raises(Refused, match="unpacks to more than"):
        checked_archive(big, "big.zip", len(big) + 10)


def test_install_refuses_a_plan_made_before_another_change(
        client: TestClient, tmp_path: Path, engine: sa.Engine, registry: FieldTypeRegistry) -> None:
    plan = upload(client, pack_zip(tmp_path, GADGET))
    shown = install_form(plan.text)
    meanwhile = customisation.plan_edit(engine, registry, "a field meanwhile",
                                        customisation.put_field("account", "tier", {"type": "text"}))
    customisation.apply_edit(engine, meanwhile, author="someone else")
    stale = client.post("/admin/packs/install", data=shown)
    assert stale.status_code == 409, stale.text
    assert "Another change was applied meanwhile" in stale.text
    fresh = install_form(stale.text)
    assert fresh["confirm"] != shown["confirm"]
    done = client.post("/admin/packs/install", data=fresh, follow_redirects=False)
    assert done.status_code == 303, done.text


def test_only_metamodel_managers_and_csrf(client: TestClient, tmp_path: Path) -> None:
    app: Any = client.app
    with signed_in(app, "rep@example.com", roles=("sales_rep",), raise_server_exceptions=False) as rep:
        assert rep.get("/admin/packs").status_code == 403
        assert upload(rep, pack_zip(tmp_path, GADGET)).status_code == 403
    del client.headers["x-csrftoken"]
    assert upload(client, pack_zip(tmp_path / "b", GADGET)).status_code == 403
