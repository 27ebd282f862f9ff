"""`slatecrm pack upgrade`: a new version of a pack the organisation has customised, merged
three ways (installed version, new version, the organisation's layer), as a consultant
runs it (CLI) and as the customer sees it afterwards (admin API, records API)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import Metamodel
from slatecrm.platform import customisation, installer, packupgrade
from slatecrm.platform.cli import main
from slatecrm.platform.layers import documents
from slatecrm.platform.storage import revisions as revision_store

from .defaults import make_app, signed_in
from .packs import write_files_pack

VEHICLE = """\
kind: entity
name: vehicle
title_field: registration
fields:
  registration: {type: text, required: true}
  fuel:
    type: choice
    options:
      - {key: petrol, label: Petrol}
      - {key: diesel, label: Diesel}
  notes: {type: text, label: %(notes)s}
%(extra)s
pipelines:
  lifecycle:
    field: status
    stages:
      - {key: ordered, label: Ordered}
      - {key: in_service, label: In service}
      - {key: sold, label: Sold, category: won}
"""

def fleet(root: Path, version: str, *, notes: str = "Notes", v2: bool = False) -> Path:
    """The `fleet` pack; `v2`: adds mileage, relabels the diesel option and adds electric."""
    text = VEHICLE % {"notes": notes, "extra": "  mileage: {type: integer, label: Mileage}" if v2 else ""}
    if v2:
        text = text.replace("{key: diesel, label: Diesel}\n", "{key: diesel, label: Diesel (B7)}\n"
                            "      - {key: electric, label: Electric}\n")
    return write_files_pack(root / version, {"entities/vehicle.yaml": text}, name="fleet", version=version,
                            requires={})


def run(*args: str, database: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database", database], catch_exceptions=False)


@dataclass
class Customer:
    """A customer database with fleet 1.0.0 installed, and an admin's API client."""

    url: str
    http: TestClient
    engine: sa.Engine
    root: Path

    def customise(self, method: str, url: str, body: Any) -> None:
        """An admin edit through the API: the dry run, then confirmed against its revision."""
        dry = self.http.request(method, url, json=body)
        assert dry.status_code == 200, dry.text
        done = self.http.request(method, url, json=body, params={"confirm": dry.json()["base_revision"]})
        assert done.status_code == 200 and done.json()["applied"] is True, done.text

    def metamodel(self) -> Metamodel:
        with self.engine.connect() as conn:
            return revision_store.current_metamodel(conn)[1]

    def documents(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self.engine.connect() as conn:
            return documents(conn)

    def installed(self) -> list[tuple[str, str]]:
        listed = json.loads(run("pack", "list", "--json", database=self.url).output)
        return [(p["name"], p["version"]) for p in listed]


@pytest.fixture
def customer(db_url: str, engine: sa.Engine, tmp_path: Path) -> Iterator[Customer]:
    assert run("init", "--no-default-packs", database=db_url).exit_code == 0
    installed = run("pack", "install", str(fleet(tmp_path, "1.0.0")), "--yes", database=db_url)
    assert installed.exit_code == 0, installed.output
    app = make_app(db_url)
    app.state.records.holder.poll_interval = 0  # sees each revision the CLI applies at once
    with signed_in(app, raise_server_exceptions=False) as http:
        yield Customer(db_url, http, engine, tmp_path)
    app.state.engine.dispose()


def customised(customer: Customer) -> int:
    """The customer's usual customisations, and a record using them; its id."""
    customer.customise("PUT", "/api/v1/admin/entities/vehicle/fields/insurer", {"type": "text"})
    customer.customise("PUT", "/api/v1/admin/entities/vehicle/fields/fuel",
                       {"options": [{"key": "lpg", "label": "LPG"}]})
    customer.customise("PUT", "/api/v1/admin/entities/vehicle/pipelines/lifecycle/stages/in_service",
                       {"label": "On the road"})
    made = customer.http.post("/api/v1/vehicle", json={"registration": "AB-123", "fuel": "lpg",
                                                       "insurer": "Axa", "status": "in_service"})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_an_upgrade_keeps_the_customisations_and_adds_the_new_version(customer: Customer) -> None:
    record = customised(customer)
    v2 = str(fleet(customer.root, "1.1.0", v2=True))

    shown = run("pack", "upgrade", v2, "--json", database=customer.url)
    assert shown.exit_code == 2  # not confirmed: nothing applied, whatever the plan
    assert customer.installed() == [("fleet", "1.0.0")]

    done = run("pack", "upgrade", v2, "--yes", database=customer.url)
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "upgrade fleet 1.0.0 → 1.1.0" in text
    for change in ("vehicle.mileage: new integer field",
                   "vehicle.fuel.options.diesel.label: 'Diesel' → 'Diesel (B7)'",
                   "vehicle.fuel.options.electric: new option 'Electric'"):
        assert change in text, change
    for kept in ("vehicle.insurer", "vehicle.fuel.options.lpg", "vehicle.lifecycle.in_service.label"):
        assert f"= {kept} (extension/vehicle)" in text, kept
    assert "ALTER TABLE x_vehicle ADD COLUMN mileage" in text
    assert "Applied as revision" in text
    assert customer.installed() == [("fleet", "1.1.0")]

    vehicle = customer.metamodel().entity("vehicle")
    assert vehicle is not None
    names = {f.name for f in vehicle.fields}
    assert {"registration", "fuel", "notes", "insurer", "mileage", "status"} <= names
    fuel = vehicle.field("fuel")
    assert fuel is not None
    assert [(o.key, o.label) for o in fuel.choices] == [
        ("petrol", "Petrol"), ("diesel", "Diesel (B7)"), ("electric", "Electric"), ("lpg", "LPG")]
    assert [(s.key, s.label) for s in vehicle.pipelines[0].stages] == [
        ("ordered", "Ordered"), ("in_service", "On the road"), ("sold", "Sold")]

    # The record written before reads back; the new version's field and option take values.
    before = customer.http.get(f"/api/v1/vehicle/{record}").json()
    assert (before["registration"], before["fuel"], before["insurer"], before["status"]) == (
        "AB-123", "lpg", "Axa", "in_service")
    changed = customer.http.patch(f"/api/v1/vehicle/{record}", json={"mileage": 12000, "fuel": "electric",
                                                                       "version": before["version"]})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["mileage"], changed.json()["insurer"]) == (12000, "Axa")


def test_a_conflict_refuses_the_upgrade_until_resolved(customer: Customer) -> None:
    customised(customer)
    customer.customise("PUT", "/api/v1/admin/entities/vehicle/fields/notes", {"label": "Comments"})
    v2 = str(fleet(customer.root, "1.1.0", v2=True, notes="Remarks"))

    refused = run("pack", "upgrade", v2, "--yes", database=customer.url)
    assert refused.exit_code == 3, refused.output
    text = " ".join(refused.output.split())
    assert "✗ vehicle.notes.label (extension/vehicle)" in text
    assert "installed: 'Notes' new: 'Remarks' organisation: 'Comments'" in text
    assert "--resolve vehicle.notes.label=new or --resolve vehicle.notes.label=mine" in text
    assert "1 conflict(s)" in text and "nothing was changed" in text
    assert customer.installed() == [("fleet", "1.0.0")]

    # `pack install` of the new version would hide it under the organisation's: refused too.
    installed = run("pack", "install", v2, "--yes", database=customer.url)
    assert installed.exit_code == 1
    assert ("the organisation's customisations conflict with fleet 1.1.0 at vehicle.notes.label (the "
            "organisation and the new version both changed it, differently): upgrade it with `slatecrm pack "
            "upgrade`") in " ".join(installed.output.split())

    as_json = json.loads(run("pack", "upgrade", v2, "--json", database=customer.url).output)
    assert as_json["ok"] is False and as_json["plan"] is None
    assert [(c["path"], c["installed"], c["new"], c["organisation"], c["resolutions"])
            for c in as_json["merge"]["conflicts"]] == [
        ("vehicle.notes.label", "Notes", "Remarks", "Comments", ["new", "mine"])]

    unknown = run("pack", "upgrade", v2, "--resolve", "vehicle.nope.label=new", "--yes",
                  database=customer.url)
    assert unknown.exit_code == 1
    assert "there is no conflict at vehicle.nope.label (conflicts: vehicle.notes.label)" in unknown.output
    bad = run("pack", "upgrade", v2, "--resolve", "vehicle.notes.label=theirs", database=customer.url)
    assert bad.exit_code == 2 and "write PATH=new or PATH=mine" in bad.output

    done = run("pack", "upgrade", v2, "--resolve", "vehicle.notes.label=new", "--yes", database=customer.url)
    assert done.exit_code == 0, done.output
    assert "✓ vehicle.notes.label (extension/vehicle): resolved new" in " ".join(done.output.split())
    vehicle = customer.metamodel().entity("vehicle")
    assert vehicle is not None and vehicle.field("notes").label == "Remarks"  # type: ignore[union-attr]
    # The resolution edited the organisation's document; its other customisations stay.
    extension = customer.documents()[("extension", "vehicle")]
    assert "notes" not in extension["field_overrides"] and "fuel" in extension["field_overrides"]
    assert customer.http.get("/api/v1/vehicle").json()["data"][0]["insurer"] == "Axa"


def test_keeping_the_organisations_value(customer: Customer) -> None:
    customer.customise("PUT", "/api/v1/admin/entities/vehicle/fields/notes", {"label": "Comments"})
    v2 = str(fleet(customer.root, "1.1.0", v2=True, notes="Remarks"))
    done = run("pack", "upgrade", v2, "--resolve", "vehicle.notes.label=mine", "--yes", "--json",
               database=customer.url)
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    resolved = [(r["path"], r["resolution"]) for r in result["merge"]["resolved"]]
    assert resolved == [("vehicle.notes.label", "mine")]
    vehicle = customer.metamodel().entity("vehicle")
    assert vehicle is not None and vehicle.field("notes").label == "Comments"  # type: ignore[union-attr]
    assert customer.installed() == [("fleet", "1.1.0")]


def test_a_field_both_define_is_resolved_for_the_new_version_with_its_data(customer: Customer) -> None:
    customer.customise("PUT", "/api/v1/admin/entities/vehicle/fields/mileage", {"type": "integer"})
    made = customer.http.post("/api/v1/vehicle", json={"registration": "CD-456", "mileage": 5300})
    assert made.status_code == 201, made.text
    v2 = str(fleet(customer.root, "1.1.0", v2=True))

    refused = run("pack", "upgrade", v2, "--yes", database=customer.url)
    assert refused.exit_code == 3
    assert "✗ vehicle.mileage (extension/vehicle): the new version now defines this name" in " ".join(
        refused.output.split())
    mine = run("pack", "upgrade", v2, "--resolve", "vehicle.mileage=mine", "--yes", database=customer.url)
    assert mine.exit_code == 1 and "resolve it with vehicle.mileage=new" in " ".join(mine.output.split())

    done = run("pack", "upgrade", v2, "--resolve", "vehicle.mileage=new", "--yes", database=customer.url)
    assert done.exit_code == 0, done.output
    assert "ADD COLUMN mileage" not in done.output  # the organisation's column is the pack's now
    vehicle = customer.metamodel().entity("vehicle")
    assert vehicle is not None and vehicle.field("mileage").pack == "fleet"  # type: ignore[union-attr]
    assert ("extension", "vehicle") not in customer.documents()
    assert customer.http.get(f"/api/v1/vehicle/{made.json()['id']}").json()["mileage"] == 5300


def test_what_is_not_an_upgrade_is_refused(customer: Customer) -> None:
    same = run("pack", "upgrade", str(fleet(customer.root / "again", "1.0.0")), database=customer.url)
    assert same.exit_code == 1 and "fleet 1.0.0 is installed already: nothing to upgrade" in same.output
    older = run("pack", "upgrade", str(fleet(customer.root, "0.9.0")), database=customer.url)
    assert older.exit_code == 1 and "0.9.0 is older (downgrades are refused)" in older.output
    other = write_files_pack(customer.root, {"entities/boat.yaml": "kind: entity\nname: boat\nfields: {}\n"},
                             name="harbour", requires={})
    missing = run("pack", "upgrade", str(other), database=customer.url)
    assert missing.exit_code == 1
    assert "pack harbour is not installed here" in missing.output
    assert "slatecrm pack install" in missing.output


def test_the_merge_as_a_function(customer: Customer, registry: FieldTypeRegistry) -> None:
    """What the designer calls: a stage the new version removes, which the organisation
    relabelled, and an override of a removed field, are conflicts only `new` resolves."""
    customer.customise("PUT", "/api/v1/admin/entities/vehicle/pipelines/lifecycle/stages/sold",
                       {"label": "Gone", "colour": "#ff0000"})
    customer.customise("PUT", "/api/v1/admin/entities/vehicle/fields/notes", {"help": "Anything"})
    text = (customer.root / "1.0.0" / "fleet" / "entities" / "vehicle.yaml").read_text()
    v2 = write_files_pack(customer.root / "v2", {"entities/vehicle.yaml": text.replace(
        "      - {key: sold, label: Sold, category: won}\n", "").replace(
        "  notes: {type: text, label: Notes}\n", "")}, name="fleet", version="2.0.0", requires={})
    [pack] = installer.load_packs([str(v2)], registry)
    upgrade = packupgrade.plan_upgrade(customer.engine, pack, registry)
    assert upgrade.refused and upgrade.plan is None
    assert sorted((c.path, c.kind, c.choices) for c in upgrade.conflicts) == [
        ("vehicle.lifecycle.sold", "gone", ("new",)), ("vehicle.notes", "gone", ("new",))]
    assert "vehicle.notes: removed (retired, its data kept)" in upgrade.changes
    with pytest.raises(DefinitionError):
        packupgrade.apply_upgrade(customer.engine, upgrade, author="test")

    resolved = packupgrade.plan_upgrade(customer.engine, pack, registry,
                                        {"vehicle.lifecycle.sold": "new", "vehicle.notes": "new"})
    assert not resolved.refused and resolved.plan is not None
    assert resolved.changed == (("extension", "vehicle"),)
    assert ("extension", "vehicle") not in resolved.documents
    packupgrade.apply_upgrade(customer.engine, resolved, author="test")
    vehicle = customer.metamodel().entity("vehicle")
    assert vehicle is not None and [s.key for s in vehicle.pipelines[0].stages] == ["ordered", "in_service"]
    assert customer.documents() == {}


def test_stage_overrides_in_a_pack(tmp_path: Path, registry: FieldTypeRegistry) -> None:
    """An extension relabels another pack's stage (the organisation's layer does it through
    the same key); a stage the pipeline lacks is reported at its line."""
    base = fleet(tmp_path, "1.0.0")
    extension = textwrap.dedent("""\
        kind: extension
        entity: vehicle
        pipelines:
          lifecycle:
            stage_overrides:
              in_service: {label: On the road}
              scrapped: {label: Scrapped}
        """)
    extra = write_files_pack(tmp_path, {"entities/vehicle.yaml": extension}, name="fleet-extra",
                             requires={"fleet": "^1.0.0"})
    with pytest.raises(DefinitionError) as error:
        merge(installer.load_packs([str(base), str(extra)], registry), registry)
    [problem] = error.value.problems
    assert str(problem).endswith("fleet-extra/entities/vehicle.yaml:7:7: pipelines.lifecycle.stage_overrides"
                                 ".scrapped: pipeline 'lifecycle' has no stage 'scrapped'")
    (extra / "entities" / "vehicle.yaml").write_text(extension.replace("  scrapped: {label: Scrapped}\n", ""))
    vehicle = merge(installer.load_packs([str(base), str(extra)], registry), registry).entity("vehicle")
    assert vehicle is not None
    assert [s.label for s in vehicle.pipelines[0].stages] == ["Ordered", "On the road", "Sold"]
    status = vehicle.field("status")
    assert status is not None and status.choices[1].label == "On the road"  # the stage field follows


def test_removing_the_relabel_of_a_packs_stage_brings_the_packs_label_back(customer: Customer) -> None:
    """DELETE of a pack's stage the organisation relabelled removes the relabel (as for a
    field override); the pack's own stage stays, and a second DELETE is refused by name."""
    stage = "/api/v1/admin/entities/vehicle/pipelines/lifecycle/stages/in_service"
    customer.customise("PUT", stage, {"label": "On the road"})
    customer.customise("DELETE", stage, None)
    vehicle = customer.metamodel().entity("vehicle")
    assert vehicle is not None
    assert [(s.key, s.label) for s in vehicle.pipelines[0].stages] == [
        ("ordered", "Ordered"), ("in_service", "In service"), ("sold", "Sold")]
    assert customer.documents() == {}
    again = customer.http.delete(stage)
    assert again.status_code == 422, again.text
    assert "stage 'in_service' of vehicle.lifecycle is not the organisation's" in again.text


VIEW = """\
kind: view
name: vehicles
entity: vehicle
label: All vehicles
columns: %(columns)s
page_size: %(page_size)s
"""
POSITIVE = "validations:\n  - {name: positive, condition: 'mileage > 0', message: Give the mileage}\n"


def fleet_viewed(root: Path, version: str, *, v2: bool = False) -> Path:
    """The `fleet` pack with a list view; `v2`: a colour field shown in the view instead of
    the notes, 50 a page, and a validation named `positive`."""
    extra = "  mileage: {type: integer}" + ("\n  colour: {type: text}" if v2 else "")
    entity = VEHICLE % {"notes": "Notes", "extra": extra} + (POSITIVE if v2 else "")
    view = VIEW % ({"columns": "[registration, colour]", "page_size": 50} if v2 else
                   {"columns": "[registration, notes]", "page_size": 25})
    return write_files_pack(root / version, {"entities/vehicle.yaml": entity, "views/vehicles.yaml": view},
                            name="fleet", version=version, requires={})


@pytest.fixture
def viewer(db_url: str, engine: sa.Engine, tmp_path: Path) -> Iterator[Customer]:
    """A customer database with the fleet pack's 1.0.0 that has a view."""
    assert run("init", "--no-default-packs", database=db_url).exit_code == 0
    installed = run("pack", "install", str(fleet_viewed(tmp_path, "1.0.0")), "--yes", database=db_url)
    assert installed.exit_code == 0, installed.output
    app = make_app(db_url)
    app.state.records.holder.poll_interval = 0
    with signed_in(app, raise_server_exceptions=False) as http:
        yield Customer(db_url, http, engine, tmp_path)
    app.state.engine.dispose()


def test_a_view_and_a_validation_both_changed_are_listed_refused_and_resolved(
        viewer: Customer, registry: FieldTypeRegistry) -> None:
    """The organisation's replacement of a pack's view (other columns) and its own validation
    meet a new version that changed the view's columns and page size and now has a
    validation of that name: both are conflicts, the page size (left as it was) is taken."""
    viewer.customise("PUT", "/api/v1/admin/views/vehicles", {
        "entity": "vehicle", "label": "All vehicles", "columns": ["registration", "mileage"],
        "page_size": 25})
    rule = customisation.put_validation("vehicle", "positive",
                                        {"condition": "mileage >= 0", "message": "Not negative"})
    edit = customisation.plan_edit(viewer.engine, registry, "validation positive", rule)
    customisation.apply_edit(viewer.engine, edit, author="test")
    v2 = str(fleet_viewed(viewer.root, "1.1.0", v2=True))

    refused = run("pack", "upgrade", v2, "--yes", database=viewer.url)
    assert refused.exit_code == 3, refused.output
    text = " ".join(refused.output.split())
    assert ("✗ view:vehicles.columns (view/vehicles): the organisation and the new version both changed it, "
            "differently") in text
    assert ("installed: ['registration', 'notes'] new: ['registration', 'colour'] "
            "organisation: ['registration', 'mileage']") in text
    assert "✗ vehicle.validations.positive (extension/vehicle): the new version now defines this name" in text
    assert "resolve: --resolve vehicle.validations.positive=new" in text
    assert ("= view:vehicles.page_size (view/vehicles): 25 → 50 — the organisation's replacement left "
            "it") in text
    assert "2 conflict(s)" in text and "nothing was changed" in text
    assert viewer.installed() == [("fleet", "1.0.0")]
    assert run("pack", "install", v2, "--yes", database=viewer.url).exit_code == 1  # install refuses too

    mine = run("pack", "upgrade", v2, "--resolve", "vehicle.validations.positive=mine", database=viewer.url)
    assert mine.exit_code == 1 and "resolve it with vehicle.validations.positive=new" in " ".join(
        mine.output.split())
    done = run("pack", "upgrade", v2, "--resolve", "view:vehicles.columns=mine",
               "--resolve", "vehicle.validations.positive=new", "--yes", "--json", database=viewer.url)
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert [(k["path"], k["installed"], k["new"], k["organisation"]) for k in result["merge"]["kept"]
            if k.get("adopted")] == [("view:vehicles.page_size", 25, 50, 25)]
    assert sorted((r["path"], r["resolution"]) for r in result["merge"]["resolved"]) == [
        ("vehicle.validations.positive", "new"), ("view:vehicles.columns", "mine")]
    assert viewer.installed() == [("fleet", "1.1.0")]
    metamodel = viewer.metamodel()
    view = metamodel.view("vehicles")
    assert view is not None and view.pack == "organisation"
    assert (view.columns, view.page_size) == (("registration", "mileage"), 50)
    vehicle = metamodel.entity("vehicle")
    assert vehicle is not None and [(v.name, v.pack) for v in vehicle.validations] == [("positive", "fleet")]
    assert ("extension", "vehicle") not in viewer.documents()
    # The pack's validation now decides: a record without mileage is refused with its message.
    refused_record = viewer.http.post("/api/v1/vehicle", json={"registration": "EF-789", "mileage": 0})
    assert refused_record.status_code == 422 and "Give the mileage" in refused_record.text


def test_an_export_of_every_layer_is_not_upgraded_alongside_its_source_packs(customer: Customer) -> None:
    """`export --layer all` claims its source packs' definitions as its own: next to them (or a
    new version of one next to it) the merge would define an entity twice. The upgrade says
    so by name instead of advising an install; the way that works, a new export of the
    upgraded packs, upgrades the export."""
    def export(version: str) -> str:
        folder = customer.root / f"all-{version}"
        made = run("pack", "export", str(folder), "--layer", "all", "--name", "fleet-all",
                   "--version", version, database=customer.url)
        assert made.exit_code == 0, made.output
        return str(folder)

    first = export("1.0.0")
    here = run("pack", "upgrade", first, "--yes", database=customer.url)
    text = " ".join(here.output.split())
    assert here.exit_code == 1, here.output
    assert ("pack fleet-all is an `export --layer all` holding the definitions of fleet, installed here: it "
            "claims them as its own") in text
    assert "upgrade fleet with their new versions" in text and "install it with" not in text

    fresh = f"sqlite:///{customer.root / 'fresh.db'}"
    assert run("init", "--no-default-packs", database=fresh).exit_code == 0
    assert run("pack", "install", first, "--yes", database=fresh).exit_code == 0
    v2 = str(fleet(customer.root, "1.1.0", v2=True))
    refused = run("pack", "upgrade", v2, "--yes", database=fresh)
    text = " ".join(refused.output.split())
    assert refused.exit_code == 1, refused.output
    assert ("pack fleet is not installed here: its definitions were installed as part of pack fleet-all "
            "1.0.0, an `export --layer all` that claims them as its own") in text
    assert "export --layer all again from a database where fleet 1.1.0 is installed" in text

    assert run("pack", "upgrade", v2, "--yes", database=customer.url).exit_code == 0
    done = run("pack", "upgrade", export("1.1.0"), "--yes", database=fresh)
    assert done.exit_code == 0, done.output
    listed = json.loads(run("pack", "list", "--json", database=fresh).output)
    assert [(p["name"], p["version"]) for p in listed] == [("fleet-all", "1.1.0")]
    assert "ADD COLUMN mileage" in done.output
