"""The pack lifecycle past install, as a consultant runs it: `pack export` of a configured
database installs on another one with the same metamodel, `pack diff` says what changes
between two versions, `pack uninstall` retires (or, confirmed by its row counts, purges)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import customisation as org
from slatecrm.platform import packdiff
from slatecrm.platform.cli import main
from slatecrm.platform.services import records_service
from slatecrm.platform.storage import revisions as revision_store
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.storage.system import audit as audit_table

from .defaults import plugin_manager
from .pack_templates import PackTemplates
from .packs import write_pack


def run(*args: str, database: str | None = None) -> Result:
    extra = ["--database", database] if database else []
    return CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)


def customise(engine: sa.Engine, registry: FieldTypeRegistry) -> None:
    """An organisation's layer touching every kind the export carries."""
    edits = [
        org.put_field("account", "tier", {"type": "choice", "label": "Tier", "options": [
            {"key": "gold", "label": "Gold"}, {"key": "silver", "label": "Silver"}]}),
        org.put_field("account", "name", {"label": "Company name"}),
        org.put_entity("project", {"label": "Project", "label_plural": "Projects", "fields": {
            "title": {"type": "text", "label": "Title", "required": True},
            "account": {"type": "reference", "label": "Account", "target": "account"}}}),
        org.put_stage("opportunity", "sales", "review", {"label": "Review", "after": "proposal",
                                                         "probability": 60}),
        org.put_role("auditor", {"label": "Auditor", "entities": {
            "account": {"actions": ["read"], "scope": "all"}}}),
        org.put_workflow("tier_note", {"label": "Note tier changes", "entity": "account",
                                       "trigger": {"kind": "updated", "fields": ["tier"]},
                                       "actions": [{"kind": "note", "text": "Tier: {{ record.tier }}"}]}),
    ]
    for edit in edits:
        org.apply_edit(engine, org.plan_edit(engine, registry, "test", edit), author="test")


def shape(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return packdiff.metamodel_shape(revision_store.current_metamodel(conn)[1])
    finally:
        engine.dispose()


@pytest.fixture
def sandbox(engine: sa.Engine, registry: FieldTypeRegistry, pack_templates: PackTemplates) -> sa.Engine:
    """The consultant's database: the default packs and a customised organisation layer."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    customise(engine, registry)
    return engine


# --- export --------------------------------------------------------------------------------
def test_the_organisation_layer_exports_and_installs_with_the_same_metamodel(
        sandbox: sa.Engine, db_url: str, other_db_url: str, tmp_path: Path) -> None:
    exported = run("pack", "export", "--name", "acme", "--version", "1.0.0", str(tmp_path / "acme"),
                   database=db_url)
    assert exported.exit_code == 0, exported.output
    assert "requires crm-core ^0.1.2, sales ^0.2.6" in exported.output
    files = sorted(p.relative_to(tmp_path / "acme").as_posix() for p in (tmp_path / "acme").rglob("*.yaml"))
    assert files == ["entities/project.yaml", "extensions/account.yaml", "extensions/opportunity.yaml",
                     "pack.yaml", "roles/auditor.yaml", "workflows/tier_note.yaml"]
    assert run("init", database=other_db_url).exit_code == 0
    installed = run("pack", "install", str(tmp_path / "acme"), "--yes", database=other_db_url)
    assert installed.exit_code == 0, installed.output
    source, target = shape(db_url), shape(other_db_url)
    assert packdiff.differences(source, target) == []
    stages = list(target["entities"]["opportunity"]["pipelines"]["sales"]["stages"])
    assert stages[2:4] == ["proposal", "review"]
    assert target["entities"]["account"]["fields"]["name"]["label"] == "Company name"
    assert list(target["entities"]["account"]["fields"]["tier"]["choices"]) == ["gold", "silver"]
    assert "auditor" in target["roles"] and "tier_note" in target["workflows"]
    listed = json.loads(run("pack", "list", "--json", database=other_db_url).output)
    assert [p["name"] for p in listed] == ["acme", "crm-core", "sales"]


def test_everything_exports_as_one_zip_for_an_empty_database(
        sandbox: sa.Engine, db_url: str, other_db_url: str, tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    exported = run("pack", "export", "--layer", "all", "--name", "acme-all", "--version", "2.0.0",
                   str(archive), "--json", database=db_url)
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["requires"] == {}
    with zipfile.ZipFile(archive) as zipped:
        assert "acme-all-2.0.0/pack.yaml" in zipped.namelist()
    assert run("init", "--no-default-packs", database=other_db_url).exit_code == 0
    installed = run("pack", "install", str(archive), "--yes", database=other_db_url)
    assert installed.exit_code == 0, installed.output
    assert packdiff.differences(shape(db_url), shape(other_db_url)) == []


def test_an_export_that_would_not_install_is_refused_by_name(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, pack_templates: PackTemplates,
        tmp_path: Path) -> None:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    nothing = run("pack", "export", "--name", "acme", "--version", "1.0.0", str(tmp_path / "a"),
                  database=db_url)
    assert nothing.exit_code == 1 and "no customisations to export" in nothing.output
    org.apply_edit(engine, org.plan_edit(engine, registry, "test", org.put_role(
        "sales_rep", {"label": "Our reps", "entities": {"account": {"actions": ["read"], "scope": "all"}}})),
        author="test")
    replaced = run("pack", "export", "--name", "acme", "--version", "1.0.0", str(tmp_path / "a"),
                   database=db_url)
    assert replaced.exit_code == 1
    assert "replaces role 'sales_rep' of pack 'sales'" in replaced.output
    assert not (tmp_path / "a").exists()
    bad = run("pack", "export", "--layer", "all", "--name", "acme", "--version", "1.0", str(tmp_path / "b"),
              database=db_url)
    assert bad.exit_code == 1 and "pack.yaml" in bad.output and not (tmp_path / "b").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    taken = run("pack", "export", "--layer", "all", "--name", "acme", "--version", "1.0.0",
                str(tmp_path / "full"), database=db_url)
    assert taken.exit_code == 2 and "not an empty directory" in taken.output


def test_a_zip_naming_files_outside_the_pack_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("pack.yaml", json.dumps({"name": "evil", "namespace": "evil", "version": "1.0.0",
                                                 "title": "Evil"}))
        zipped.writestr("../outside.yaml", "kind: entity\n")
    result = run("pack", "validate", str(archive))
    assert result.exit_code == 1
    assert "names a file outside the pack (../outside.yaml)" in result.output


# --- diff ----------------------------------------------------------------------------------
def fleet(root: Path, version: str, mileage: str, colours: list[str], *, extra: bool = False) -> Path:
    fields: dict[str, Any] = {
        "plate": {"type": "text", "label": "Plate"}, "mileage": {"type": mileage},
        "colour": {"type": "choice", "options": [{"key": c, "label": c.title()} for c in colours]}}
    if extra:
        fields["vin"] = {"type": "text", "label": "VIN"}
    return write_pack(root, "fleet", version, {"vehicle": {"label": "Vehicle", "fields": fields}},
                      requires={"crm-core": "^0.1.0"},
                      extensions=[{"entity": "account", "fields": {"fleet_size": {"type": "integer"}}}])


def test_diff_lists_what_changes_between_two_versions(tmp_path: Path) -> None:
    one = fleet(tmp_path, "1.0.0", "text", ["red", "blue"])
    two = fleet(tmp_path, "1.1.0", "integer", ["red", "green"], extra=True)
    text = run("pack", "diff", str(one), str(two))
    assert text.exit_code == 0, text.output
    assert "fleet 1.0.0" in text.output and "fleet 1.1.0" in text.output
    assert "+ field vehicle.vin" in text.output
    assert "~ field vehicle.mileage: type: 'text' → 'integer'" in text.output
    assert "- option vehicle.colour.blue" in text.output and "+ option vehicle.colour.green" in text.output
    assert "~ pack: version: '1.0.0' → '1.1.0'" in text.output
    as_json = json.loads(run("pack", "diff", str(one), str(two), "--json").output)
    changes = {(d["change"], d["kind"], d["name"], d.get("attribute")) for d in as_json["differences"]}
    assert {("added", "field", "vehicle.vin", None), ("changed", "field", "vehicle.mileage", "type"),
            ("removed", "option", "vehicle.colour.blue", None)} <= changes
    assert as_json["summary"] == {"added": 2, "removed": 1, "changed": 2}
    same = json.loads(run("pack", "diff", str(one), str(one), "--json").output)
    assert same["differences"] == []
    assert run("pack", "diff", str(one)).exit_code == 2


def test_diff_against_the_installed_version(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
                                            pack_templates: PackTemplates, tmp_path: Path) -> None:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    one = fleet(tmp_path, "1.0.0", "text", ["red"])
    assert run("pack", "install", str(one), "--yes", database=db_url).exit_code == 0
    two = fleet(tmp_path, "1.1.0", "text", ["red"], extra=True)
    result = run("pack", "diff", str(two), "--installed", "--json", database=db_url)
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["from"] == {"name": "fleet", "version": "1.0.0", "origin": "installed"}
    assert [(d["change"], d["name"]) for d in found["differences"] if d["kind"] == "field"] == [
        ("added", "vehicle.vin")]
    missing = run("pack", "diff", "sales", "--installed", database=db_url)
    assert missing.exit_code == 0  # sales is installed: the same version, no differences
    assert "0 added, 0 removed, 0 changed" in missing.output


# --- uninstall -----------------------------------------------------------------------------
@pytest.fixture
def with_fleet(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, pack_templates: PackTemplates,
               tmp_path: Path) -> Path:
    """The default packs and fleet 1.0.0 with two vehicles, one account with a fleet size."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    path = fleet(tmp_path, "1.0.0", "text", ["red"])
    assert run("pack", "install", str(path), "--yes", database=db_url).exit_code == 0
    records = records_service(engine, plugin_manager())
    records.create("vehicle", {"plate": "AB-123", "colour": "red"})
    records.create("vehicle", {"plate": "CD-456"})
    records.create("account", {"name": "Acme", "fleet_size": 2})
    return path


def columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def test_uninstall_is_refused_while_another_pack_requires_it(with_fleet: Path, db_url: str) -> None:
    result = run("pack", "uninstall", "crm-core", "--yes", database=db_url)
    assert result.exit_code == 1
    assert "required by the installed pack(s) fleet, sales: uninstall those first" in result.output
    unknown = run("pack", "uninstall", "nope", "--yes", database=db_url)
    assert unknown.exit_code == 1 and "'nope' is not installed" in unknown.output


def test_uninstall_retires_and_keeps_the_data_until_installed_again(
        with_fleet: Path, engine: sa.Engine, db_url: str) -> None:
    result = run("pack", "uninstall", "fleet", "--yes", database=db_url)
    assert result.exit_code == 0, result.output
    assert "retire entity vehicle (table x_vehicle and its 2 rows are kept, hidden)" in result.output
    assert "retire field account.fleet_size" in result.output
    listed = json.loads(run("pack", "list", "--json", database=db_url).output)
    assert "fleet" not in [p["name"] for p in listed]
    history = json.loads(run("revisions", "--json", database=db_url).output)
    assert history[-1]["source"] == "uninstall fleet 1.0.0" and history[-1]["author"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM x_vehicle")).scalar_one() == 2
        event = conn.execute(sa.select(audit_table.c.action, audit_table.c.object_id)
                             .order_by(audit_table.c.id.desc()).limit(1)).one()
    assert tuple(event) == ("pack.uninstall", "fleet")
    assert "fleet_size" in columns(engine, "x_account")
    api = records_service(engine, plugin_manager())
    assert "vehicle" not in api.compiled()
    again = run("pack", "install", str(with_fleet), "--yes", database=db_url)
    assert again.exit_code == 0, again.output
    records = records_service(engine, plugin_manager())
    assert sorted(r.values["plate"] for r in records.page("vehicle").records) == ["AB-123", "CD-456"]
    accounts = records.page("account").records
    assert [r.values["fleet_size"] for r in accounts if r.values["name"] == "Acme"] == [2]


def test_purge_needs_the_row_count_and_then_deletes(with_fleet: Path, engine: sa.Engine, db_url: str) -> None:
    asked = run("pack", "uninstall", "fleet", "--purge", "--yes", database=db_url)
    assert asked.exit_code == 2
    assert "purge deletes the 2 rows of vehicle for good" in asked.output
    assert "confirm with --confirm-rows 3" in asked.output
    wrong = run("pack", "uninstall", "fleet", "--purge", "--confirm-rows", "2", database=db_url)
    assert wrong.exit_code == 2 and "deletes 3 row(s), not 2" in wrong.output
    assert sa.inspect(engine).has_table("x_vehicle")
    done = run("pack", "uninstall", "fleet", "--purge", "--confirm-rows", "3", "--json", database=db_url)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["deleted_rows"] == 3
    engine.dispose()
    assert not sa.inspect(engine).has_table("x_vehicle")
    assert "fleet_size" not in columns(engine, "x_account")
    again = run("pack", "install", str(with_fleet), "--yes", database=db_url)
    assert again.exit_code == 0, again.output
    assert records_service(engine, plugin_manager()).page("vehicle").records == []


def test_uninstall_is_refused_while_the_organisation_extends_the_pack(
        with_fleet: Path, engine: sa.Engine, db_url: str, registry: FieldTypeRegistry) -> None:
    org.apply_edit(engine, org.plan_edit(engine, registry, "test", org.put_field(
        "vehicle", "seats", {"type": "integer", "label": "Seats"})), author="test")
    result = run("pack", "uninstall", "fleet", "--yes", database=db_url)
    assert result.exit_code == 1
    assert "customisations extension/vehicle extend entities of pack 'fleet'" in result.output


def test_purge_drops_linked_tables_whatever_their_order(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, pack_templates: PackTemplates,
        tmp_path: Path) -> None:
    """A pack entity referencing another (garage ← vehicle), and links to another pack's entity
    stored in a table apart: PostgreSQL drops none of them while something references it."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    path = write_pack(tmp_path, "depots", "1.0.0", {
        "garage": {"fields": {"name": {"type": "text"}}},
        "vehicle": {"fields": {"plate": {"type": "text"},
                               "garage": {"type": "reference", "target": "garage"},
                               "drivers": {"type": "many_to_many", "target": "contact"}}}},
        requires={"crm-core": "^0.1.0"})
    assert run("pack", "install", str(path), "--yes", database=db_url).exit_code == 0
    records = records_service(engine, plugin_manager())
    garage = records.create("garage", {"name": "North"})
    driver = records.create("contact", {"name": {"first": "Ann", "last": "Lee"}})
    records.create("vehicle", {"plate": "AB-1", "garage": garage.id, "drivers": [driver.id]})
    result = run("pack", "uninstall", "depots", "--purge", "--confirm-rows", "3", database=db_url)
    assert result.exit_code == 0, result.output
    engine.dispose()
    tables = set(sa.inspect(engine).get_table_names())
    assert not {t for t in tables if t.startswith(("x_garage", "x_vehicle"))}
    assert records_service(engine, plugin_manager()).get("contact", driver.id).values["name"]["last"] == "Lee"


def test_uninstall_is_refused_while_the_organisation_overrides_what_the_pack_added(
        with_fleet: Path, engine: sa.Engine, db_url: str, registry: FieldTypeRegistry) -> None:
    """A relabel of the field the pack added to another pack's entity would override nothing
    without the pack: refused naming it, until the override is removed."""
    org.apply_edit(engine, org.plan_edit(engine, registry, "test", org.put_field(
        "account", "fleet_size", {"label": "Vehicles"})), author="test")
    refused = run("pack", "uninstall", "fleet", "--yes", database=db_url)
    assert refused.exit_code == 1
    assert ("the organisation's customisations override what pack 'fleet' adds to other packs' entities "
            "(account.fleet_size in extension/account): remove those overrides first") in " ".join(
                refused.output.split())
    org.apply_edit(engine, org.plan_edit(engine, registry, "test", org.delete_field("account", "fleet_size")),
                   author="test")
    done = run("pack", "uninstall", "fleet", "--yes", database=db_url)
    assert done.exit_code == 0, done.output
