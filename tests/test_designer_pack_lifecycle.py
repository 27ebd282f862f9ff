"""The designer's pack lifecycle over HTTP (web/designer_pack_lifecycle.py), as an admin
uses it: an uploaded newer version of a customised pack shows its conflicts and applies with
the choices made (both ways), refused while one is unresolved or when another change came
meanwhile; uninstall is refused naming what stands in the way, applied keeping the data, or
purged only with the right row count typed; export downloads a pack .zip that installs on
another database."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.cli import main
from slatecrm.platform.storage import revisions as revision_store

from .defaults import make_app, signed_in
from .pack_templates import PackTemplates
from .test_designer_packs import GADGET, install_form, pack_zip, upload

GADGET_V2 = GADGET.replace("weight: {type: integer}", "weight: {type: integer, label: Mass}") + \
    "  colour_name: {type: text}\n"


@pytest.fixture
def client(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
           pack_templates: PackTemplates, tmp_path: Path) -> Iterator[TestClient]:
    """An admin's client on a database with the sales packs and gadgets 1.0.0 installed."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        plan = upload(http, pack_zip(tmp_path / "v1", GADGET))
        done = http.post("/admin/packs/install", data=install_form(plan.text), follow_redirects=False)
        assert done.status_code == 303, done.text
        yield http
    app.state.engine.dispose()


def customise(http: TestClient, url: str, body: dict[str, Any]) -> None:
    """An admin edit through the API: the dry run, then confirmed against its revision."""
    dry = http.put(url, json=body)
    assert dry.status_code == 200, dry.text
    done = http.put(url, json=body, params={"confirm": dry.json()["base_revision"]})
    assert done.status_code == 200 and done.json()["applied"] is True, done.text


def installed(http: TestClient) -> dict[str, str]:
    return {p["name"]: p["version"] for p in http.get("/admin/packs.json").json()["data"]}


def weight_label(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        gadget = revision_store.current_metamodel(conn)[1].entity("gadget")
    assert gadget is not None
    return gadget.field("weight").label  # type: ignore[union-attr]


def hidden(html: str, form_id: str) -> dict[str, str]:
    form = html[html.index(f'id="{form_id}"'):]
    form = form[:form.index("</form>")]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


# --- upgrade ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("choice", "label"), [("new", "Mass"), ("mine", "Heft")])
def test_an_upgrade_with_a_conflict_applies_the_choice_made(
        client: TestClient, engine: sa.Engine, tmp_path: Path, choice: str, label: str) -> None:
    customise(client, "/api/v1/admin/entities/gadget/fields/weight", {"label": "Heft"})
    made = client.post("/api/v1/gadget", json={"name": "Sprocket", "weight": 3})
    assert made.status_code == 201, made.text

    page = upload(client, pack_zip(tmp_path / "v2", GADGET_V2, "1.1.0"))
    assert page.status_code == 200, page.text
    assert "Upgrade <strong>gadgets</strong> from 1.0.0 to 1.1.0" in page.text
    assert "gadget.colour_name: new text field" in page.text  # the new version's changes
    row = re.search(r'<tr class="conflict" data-path="gadget.weight.label">(.*?)</tr>', page.text, re.S)
    assert row, page.text
    cells = re.findall(r'<td class="(base|new|mine)">([^<]*)</td>', row.group(1))
    assert cells == [("base", "Weight"), ("new", "Mass"), ("mine", "Heft")]
    assert 'name="resolve:gadget.weight.label" value="mine"' in row.group(1)
    twin = client.post("/admin/packs/upload.json", files={"pack": ("g.zip", pack_zip(
        tmp_path / "twin", GADGET_V2, "1.1.0"), "application/zip")}).json()
    assert [(c["path"], c["resolutions"]) for c in twin["merge"]["conflicts"]] == [
        ("gadget.weight.label", ["new", "mine"])]

    form = hidden(page.text, "upgrade-form")
    unresolved = client.post("/admin/packs/upgrade", data=form)
    assert unresolved.status_code == 409, unresolved.text
    assert "1 conflict left unresolved" in unresolved.text
    assert installed(client)["gadgets"] == "1.0.0" and weight_label(engine) == "Heft"

    # Another change meanwhile: refused with the merge against the new revision.
    customise(client, "/api/v1/admin/entities/gadget/fields/serial", {"type": "text"})
    stale = client.post("/admin/packs/upgrade", data={**form, "resolve:gadget.weight.label": choice})
    assert stale.status_code == 409, stale.text
    assert "Another change was applied meanwhile" in stale.text
    assert f'value="{choice}" checked' in stale.text  # the choice made is kept on the page
    fresh = hidden(stale.text, "upgrade-form")
    assert fresh["confirm"] != form["confirm"]

    done = client.post("/admin/packs/upgrade", data={**fresh, "resolve:gadget.weight.label": choice},
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    assert "upgraded" in client.get(done.headers["location"]).text
    assert installed(client)["gadgets"] == "1.1.0"
    assert weight_label(engine) == label
    again = client.get(f"/api/v1/gadget/{made.json()['id']}").json()
    assert again["weight"] == 3 and "colour_name" in again and "serial" in again


def test_a_choice_not_allowed_is_refused_naming_it(client: TestClient, tmp_path: Path) -> None:
    customise(client, "/api/v1/admin/entities/gadget/fields/weight", {"label": "Heft"})
    page = upload(client, pack_zip(tmp_path / "v2", GADGET_V2, "1.1.0"))
    form = hidden(page.text, "upgrade-form")
    wrong = client.post("/admin/packs/upgrade", data={**form, "resolve:gadget.nope.label": "new"})
    assert wrong.status_code == 422, wrong.text
    assert "there is no conflict at gadget.nope.label (conflicts: gadget.weight.label)" in wrong.text
    assert installed(client)["gadgets"] == "1.0.0"


# --- uninstall --------------------------------------------------------------------------------
def test_uninstall_is_refused_naming_what_stands_in_the_way(client: TestClient) -> None:
    required = client.get("/admin/packs/sales/uninstall")
    assert required.status_code == 409, required.text
    assert "required by the installed pack(s) gadgets" in required.text
    assert 'id="uninstall-apply"' not in required.text
    customise(client, "/api/v1/admin/entities/gadget/fields/serial", {"type": "text"})
    extended = client.get("/admin/packs/gadgets/uninstall")
    assert extended.status_code == 409
    assert "extension/gadget" in extended.text
    assert client.get("/admin/packs/nothing/uninstall").status_code == 409
    assert set(installed(client)) >= {"sales", "gadgets"}


def test_uninstall_keeps_the_data_and_an_install_brings_it_back(client: TestClient, tmp_path: Path) -> None:
    made = client.post("/api/v1/gadget", json={"name": "Sprocket", "weight": 3})
    listed = client.get("/admin/packs")
    assert 'href="/admin/packs/gadgets/uninstall"' in listed.text
    page = client.get("/admin/packs/gadgets/uninstall")
    assert page.status_code == 200, page.text
    assert "data are kept" in page.text and "uninstall gadgets 1.0.0" in page.text
    done = client.post("/admin/packs/gadgets/uninstall", data=hidden(page.text, "uninstall-form"),
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    assert "gadgets" not in installed(client)
    assert client.get("/api/v1/gadget").status_code == 404
    plan = upload(client, pack_zip(tmp_path / "again", GADGET))
    client.post("/admin/packs/install", data=install_form(plan.text))
    assert client.get(f"/api/v1/gadget/{made.json()['id']}").json()["name"] == "Sprocket"


def test_a_purge_needs_the_row_count_typed(client: TestClient, engine: sa.Engine) -> None:
    for name in ("One", "Two"):
        assert client.post("/api/v1/gadget", json={"name": name}).status_code == 201
    page = client.get("/admin/packs/gadgets/uninstall?purge=1")
    assert page.status_code == 200, page.text
    assert client.get("/admin/packs/gadgets/uninstall.json?purge=1").json()["rows_total"] == 2
    assert "Rows deleted for good: 2" in page.text
    form = hidden(page.text, "uninstall-form")
    assert form["purge"] == "1"
    for wrong in ("", "3"):
        refused = client.post("/admin/packs/gadgets/uninstall", data={**form, "rows": wrong})
        assert refused.status_code == 422, refused.text
        assert "type 2 to confirm" in refused.text
    assert "gadgets" in installed(client)
    stale = client.post("/admin/packs/gadgets/uninstall", data={**form, "confirm": "1", "rows": "2"})
    assert stale.status_code == 409 and "Another change was applied meanwhile" in stale.text
    done = client.post("/admin/packs/gadgets/uninstall", data={**form, "rows": "2"}, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert "gadgets" not in installed(client)
    assert not [t for t in sa.inspect(engine).get_table_names() if "gadget" in t]


# --- export -----------------------------------------------------------------------------------
def test_an_export_downloads_a_pack_that_installs_elsewhere(
        client: TestClient, other_db_url: str, tmp_path: Path) -> None:
    assert client.get("/admin/packs/export").status_code == 200
    customise(client, "/api/v1/admin/entities/gadget/fields/serial", {"type": "text"})
    download = client.post("/admin/packs/export", data={"layer": "all", "name": "acme", "version": "2.0.0"})
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/zip"
    assert 'filename="acme-2.0.0.zip"' in download.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    assert "acme-2.0.0/pack.yaml" in names
    saved = tmp_path / "acme.zip"
    saved.write_bytes(download.content)
    runner = CliRunner()
    init = runner.invoke(main, ["init", "--no-default-packs", "--database", other_db_url])
    assert init.exit_code == 0, init.output
    done = runner.invoke(main, ["pack", "install", str(saved), "--yes", "--database", other_db_url])
    assert done.exit_code == 0, done.output
    other = make_app(other_db_url)
    with signed_in(other, raise_server_exceptions=False) as http:
        made = http.post("/api/v1/gadget", json={"name": "Cog", "serial": "S-1"})
        assert made.status_code == 201, made.text
    other.state.engine.dispose()


def test_an_export_that_would_not_install_is_an_error_in_the_form(client: TestClient) -> None:
    reserved = client.post("/admin/packs/export", data={"layer": "organisation", "name": "organisation",
                                                         "version": "1.0.0"})
    assert reserved.status_code == 422 and "reserved for the organisation" in reserved.text
    nothing = client.post("/admin/packs/export", data={"layer": "organisation", "name": "acme",
                                                        "version": "1.0.0"})
    assert nothing.status_code == 422 and "no customisations to export" in nothing.text
    missing = client.post("/admin/packs/export", data={"layer": "all", "name": "", "version": ""})
    assert missing.status_code == 422 and "give the exported pack a name" in missing.text
    bad = client.post("/admin/packs/export", data={"layer": "all", "name": "acme", "version": "one"})
    assert bad.status_code == 422 and 'id="form-errors"' in bad.text and 'value="one"' in bad.text


def test_only_pack_installers_and_csrf(client: TestClient) -> None:
    app: Any = client.app
    with signed_in(app, "rep@example.com", roles=("sales_rep",), raise_server_exceptions=False) as rep:
        assert rep.get("/admin/packs/gadgets/uninstall").status_code == 403
        assert rep.get("/admin/packs/export").status_code == 403
        assert rep.post("/admin/packs/upgrade", data={}).status_code == 403
    del client.headers["x-csrftoken"]
    page = client.get("/admin/packs/gadgets/uninstall")
    form = {k: v for k, v in hidden(page.text, "uninstall-form").items() if k != "csrftoken"}
    assert client.post("/admin/packs/gadgets/uninstall", data=form).status_code == 403
    assert "gadgets" in installed(client)
