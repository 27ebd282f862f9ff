"""Issue 15's acceptance test: a consultant's journey through the pack lifecycle, end to end,
on SQLite and PostgreSQL. The consultant configures a sandbox in the designer (browser),
exports it as a pack, a customer installs it (browser, /admin/packs) and customises it, the
consultant ships version 1.1.0, the upgrade keeps the customer's changes and adds the new
version's, and an uninstall retires the pack while its data stays.

With SLATECRM_SCREENSHOTS=1 the key steps are saved as docs/images/journey-*.png (the
pictures of docs/packs.md, "A consultant's journey")."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.storage.engine import create_engine

from .browser import HUNG_MS, ServerThread, require_browser, sign_in, watch
from .defaults import make_app, signed_in
from .pack_templates import PackTemplates
from .test_browser import expect, script_errors
from .test_pack_upgrade import Customer, run

pytestmark = pytest.mark.browser

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


def docs_picture(page: Any, name: str) -> None:
    """docs/images/journey-<name>.png, only when SLATECRM_SCREENSHOTS=1 (the viewport only)."""
    if os.environ.get("SLATECRM_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / f"journey-{name}.png"))


@contextmanager
def site(url: str, browser: Any) -> Iterator[tuple[str, Any, TestClient]]:
    """A server over `url` that sees every revision at once (the CLI applies some), an
    administrator's browser page on it and an administrator's API client."""
    app = make_app(url)
    app.state.records.holder.poll_interval = 0
    with ServerThread(app) as server, signed_in(app, raise_server_exceptions=False) as api:
        context = browser.new_context(viewport={"width": 1100, "height": 700})
        context.set_default_timeout(HUNG_MS)
        sign_in(context, server.url)
        page = context.new_page()
        seen = watch(page)
        yield server.url, page, api
        assert script_errors(seen) == [] and seen.dialogs == []
        context.close()
    app.state.engine.dispose()


def review_and_apply(page: Any, shows: str) -> None:
    """The designer's way: Review shows the plan (nothing changed yet), Apply applies it."""
    page.locator("#review").click()
    expect(page.locator("#plan")).to_contain_text(shows)
    page.locator("#apply").click()


def add_field(page: Any, url: str, entity: str, name: str, kind: str, **settings: Any) -> None:
    page.goto(f"{url}/admin/entities/{entity}/new-field")
    page.locator("#f-name").fill(name)
    page.locator("#f-label").fill(name.replace("_", " ").capitalize())
    page.locator("#f-type").select_option(kind)  # the type's settings come in (htmx)
    if kind == "choice":
        rows = page.locator("#option-rows li.option-row")
        for i, (key, label) in enumerate(settings["options"]):
            if i:
                page.locator("#add-option").click()
            expect(rows).to_have_count(i + 1)
            rows.nth(i).locator('input[name="option_key"]').fill(key)
            rows.nth(i).locator('input[name="option_label"]').fill(label)
    if kind == "reference":
        expect(page.locator("#f-target")).to_be_visible()
        page.locator("#f-target").select_option(settings["target"])
    review_and_apply(page, name)
    expect(page.locator(f"#field-{name}")).to_contain_text(kind)


def configure_the_sandbox(url: str, page: Any) -> None:
    """Step 1, in the designer: a new entity `project` (title, a choice, a reference to the
    pack entity account), a field on account, a stage added to the sales pipeline."""
    page.goto(f"{url}/admin/new-entity")
    page.locator("#e-name").fill("project")
    page.locator("#e-label").fill("Project")
    page.locator("#e-plural").fill("Projects")
    page.locator("#e-title").fill("title")
    page.get_by_role("button", name="Review the change").click()
    expect(page.locator("#plan pre.sql").first).to_contain_text("CREATE TABLE")
    docs_picture(page, "1-new-entity")
    page.locator("#apply").click()
    expect(page.locator("h1")).to_have_text("Project")
    add_field(page, url, "project", "phase", "choice",
              options=[("planned", "Planned"), ("running", "Running")])
    add_field(page, url, "project", "client", "reference", target="account")
    add_field(page, url, "account", "vat_number", "text")
    page.goto(f"{url}/admin/entities/opportunity/pipelines/sales")
    page.locator("#new-key").fill("review")
    page.locator("#new-label").fill("Review")
    page.locator("#new-after").select_option("proposal")
    page.get_by_role("button", name="Review adding it").click()
    expect(page.locator("#plan-form")).to_be_visible()
    page.locator("#apply").click()
    expect(page.locator("#stage-review")).to_contain_text("Review")
    page.goto(f"{url}/admin/entities/project")
    docs_picture(page, "2-sandbox-entity")


def install_in_the_browser(url: str, page: Any, archive: Path) -> None:
    """Step 3: the customer's administrator uploads the .zip, reads its plan, installs."""
    page.goto(f"{url}/admin/packs")
    page.locator("#pack-file").set_input_files(str(archive))
    page.get_by_role("button", name="Check and plan").click()
    expect(page.locator("#pack-changes")).to_contain_text("Install acme 1.0.0")
    expect(page.locator("#plan")).to_contain_text("CREATE TABLE")
    docs_picture(page, "3-install-plan")
    page.locator("#apply").click()
    expect(page.locator("#packs-installed")).to_contain_text("acme")


def version_two(archive: Path, root: Path) -> Path:
    """Step 5's edit of the exported files: 1.1.0 adds a field to project and an option to
    its phase choice."""
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(root)
    [pack] = [p.parent for p in root.rglob("pack.yaml")]
    meta = pack / "pack.yaml"
    meta.write_text(meta.read_text().replace("1.0.0", "1.1.0"))
    project = pack / "entities" / "project.yaml"
    text = project.read_text()
    assert "running" in text and "fields:" in text, text
    project.write_text(v2_project(text))
    return pack


def v2_project(text: str) -> str:
    """The project entity's YAML with a `deadline` date field and a `done` phase option."""
    import yaml

    document = yaml.safe_load(text)
    document["fields"]["deadline"] = {"type": "date", "label": "Deadline"}
    document["fields"]["phase"]["options"].append({"key": "done", "label": "Done"})
    return str(yaml.safe_dump(document, sort_keys=False))


def test_a_consultants_journey(db_url: str, other_db_url: str, engine: sa.Engine, registry: FieldTypeRegistry,
                               pack_templates: PackTemplates, chromium: Any, tmp_path: Path) -> None:
    require_browser()
    # 1. The consultant's sandbox: the default packs, configured in the designer.
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    with site(db_url, chromium) as (url, page, _):
        configure_the_sandbox(url, page)

    # 2. Exported as a pack.
    archive = tmp_path / "acme-1.0.0.zip"
    exported = run("pack", "export", "--name", "acme", "--version", "1.0.0", str(archive), database=db_url)
    assert exported.exit_code == 0, exported.output
    assert "requires crm-core" in exported.output and "sales" in exported.output

    # 3. The customer's database, default packs: the pack installed in the browser, records made.
    assert run("init", database=other_db_url).exit_code == 0
    with site(other_db_url, chromium) as (url, page, api):
        install_in_the_browser(url, page, archive)
        account = api.post("/api/v1/account", json={"name": "Globex", "vat_number": "GB123"})
        assert account.status_code == 201, account.text
        account_id = account.json()["id"]
        made = api.post("/api/v1/project",
                        json={"title": "Website", "phase": "running", "client": account_id})
        assert made.status_code == 201, made.text
        project = made.json()

        # 4. The customer customises: a field of their own on the pack's entity (designer) and
        # a new label for the pack's stage (admin API: the designer shows a pack's stage, read-only).
        add_field(page, url, "project", "budget", "integer")
        customer_db = create_engine(other_db_url)
        customer = Customer(other_db_url, api, customer_db, tmp_path)
        customer.customise("PUT", "/api/v1/admin/entities/opportunity/pipelines/sales/stages/review",
                           {"label": "Legal review"})
        budgeted = api.patch(f"/api/v1/project/{project['id']}", json={"budget": 5000,
                                                                          "version": project["version"]})
        assert budgeted.status_code == 200, budgeted.text
        before = api.get(f"/api/v1/project/{project['id']}").json()

        # 5. The consultant ships 1.1.0; the upgrade's plan keeps the customer's customisations.
        v2 = version_two(archive, tmp_path / "v2")
        shown = run("pack", "upgrade", str(v2), database=other_db_url)
        assert shown.exit_code == 2, shown.output  # not confirmed: nothing changed
        assert customer.installed()[0] == ("acme", "1.0.0")
        done = run("pack", "upgrade", str(v2), "--yes", database=other_db_url)
        assert done.exit_code == 0, done.output
        text = " ".join(done.output.split())
        assert "upgrade acme 1.0.0 → 1.1.0" in text
        assert "project.deadline: new date field" in text
        assert "project.phase.options.done: new option 'Done'" in text
        assert "= project.budget (extension/project)" in text
        assert "= opportunity.sales.review.label" in text
        assert customer.installed()[0] == ("acme", "1.1.0")

        metamodel = customer.metamodel()
        entity = metamodel.entity("project")
        assert entity is not None
        assert {"title", "phase", "client", "budget", "deadline"} <= {f.name for f in entity.fields}
        phase = entity.field("phase")
        assert phase is not None
        assert [(o.key, o.label) for o in phase.choices] == [
            ("planned", "Planned"), ("running", "Running"), ("done", "Done")]
        opportunity = metamodel.entity("opportunity")
        assert opportunity is not None
        stages = {s.key: s.label for s in opportunity.pipelines[0].stages}
        assert stages["review"] == "Legal review"

        after = api.get(f"/api/v1/project/{project['id']}").json()
        assert {k: after[k] for k in ("title", "phase", "client", "budget")} == {
            k: before[k] for k in ("title", "phase", "client", "budget")}
        assert api.get(f"/api/v1/account/{account_id}").json()["vat_number"] == "GB123"
        finished = api.patch(f"/api/v1/project/{project['id']}", json={
            "phase": "done", "deadline": "2027-01-31", "version": after["version"]})
        assert finished.status_code == 200, finished.text
        page.goto(f"{url}/admin/entities/project")
        expect(page.locator("#field-deadline")).to_contain_text("acme")
        expect(page.locator("#field-budget")).to_contain_text("organisation")
        docs_picture(page, "4-upgraded-entity")

        # 6. Uninstalled: refused while the customer's own layer extends the pack's entity
        # (it would be left extending nothing); once that is removed, retired, the rows kept.
        refused = run("pack", "uninstall", "acme", "--yes", database=other_db_url)
        assert refused.exit_code == 1
        assert ("the organisation's customisations extension/project extend entities of pack 'acme'"
                in " ".join(refused.output.split()))
        customer.customise("DELETE", "/api/v1/admin/entities/project/fields/budget", None)
        refused = run("pack", "uninstall", "acme", "--yes", database=other_db_url)
        assert refused.exit_code == 1
        assert ("override what pack 'acme' adds to other packs' entities (opportunity.sales.review in "
                "extension/opportunity)") in " ".join(refused.output.split())
        customer.customise("DELETE", "/api/v1/admin/entities/opportunity/pipelines/sales/stages/review", None)
        gone = run("pack", "uninstall", "acme", "--yes", database=other_db_url)
        assert gone.exit_code == 0, gone.output
        assert "retire entity project" in gone.output and "1 rows are kept" in gone.output
        assert "acme" not in [name for name, _ in customer.installed()]
        assert api.get(f"/api/v1/project/{project['id']}").status_code == 404
        with customer_db.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM x_project")).scalar_one() == 1
            assert conn.execute(sa.text("SELECT vat_number FROM x_account")).scalar_one() == "GB123"
        customer_db.dispose()
