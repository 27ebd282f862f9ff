"""The three-way comparison of a pack upgrade (platform/threeway.py), without a database:
the organisation's documents against the installed and the new version's metamodels."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import Metamodel
from slatecrm.platform import installer
from slatecrm.platform.layers import Documents, layer_pack
from slatecrm.platform.threeway import _shown, leaves, take_new

from .packs import write_files_pack

V1 = """\
kind: entity
name: vehicle
label: Vehicle
fields:
  registration: {type: text}
  fuel:
    type: choice
    options:
      - {key: petrol, label: Petrol}
      - {key: diesel, label: Diesel}
pipelines:
  lifecycle:
    field: status
    stages:
      - {key: ordered, label: Ordered}
      - {key: sold, label: Sold}
"""
V2 = """\
kind: entity
name: vehicle
label: Fleet vehicle
fields:
  registration: {type: text}
  fuel:
    type: choice
    options:
      - {key: petrol, label: Petrol}
      - {key: diesel, label: Diesel (B7)}
      - {key: electric, label: Electric}
pipelines:
  lifecycle:
    field: status
    stages:
      - {key: ordered, label: Ordered}
  maintenance:
    field: maintenance_status
    stages:
      - {key: due, label: Due}
"""
ROLE = "kind: role\nname: driver\nentities:\n  vehicle: {actions: [%s]}\n"


def metamodels(tmp_path: Path, registry: FieldTypeRegistry) -> tuple[Metamodel, Metamodel]:
    packs = []
    for version, entity, actions in (("1.0.0", V1, "read"), ("2.0.0", V2, "read, update")):
        folder = write_files_pack(tmp_path / version, {"entities/vehicle.yaml": entity,
                                                        "roles/driver.yaml": ROLE % actions},
                                  name="fleet", version=version, requires={})
        packs.append(merge(installer.load_packs([str(folder)], registry), registry))
    return packs[0], packs[1]


def extension(**body: Any) -> Documents:
    return {("extension", "vehicle"): {"kind": "extension", "entity": "vehicle", **body}}


def by_path(docs: Documents, before: Metamodel, after: Metamodel) -> dict[str, tuple[Any, ...]]:
    return {leaf.path: (leaf.kind, leaf.conflicting, leaf.base, leaf.new, leaf.mine)
            for leaf in leaves(docs, before, after, "fleet")}


def test_each_customisation_against_both_versions(tmp_path: Path, registry: FieldTypeRegistry) -> None:
    before, after = metamodels(tmp_path, registry)
    docs = extension(
        label="Car",
        field_overrides={"fuel": {"options": [{"key": "diesel", "label": "Gasoil"},
                                              {"key": "electric", "label": "Electric"},
                                              {"key": "lpg", "label": "LPG"}]},
                         "registration": {"help": "As on the papers"}},
        fields={"insurer": {"type": "text"}},
        pipelines={"lifecycle": {"stages": [{"key": "repair", "after": "sold"},
                                            {"key": "scrap", "after": "repair"}]},
                   "maintenance": {"field": "service", "stages": [{"key": "planned"}]}},
    )
    docs[("role", "driver")] = {"kind": "role", "name": "driver",
                                "entities": {"vehicle": {"actions": ["read"]}}}
    found = by_path(docs, before, after)
    assert found["vehicle.label"] == ("value", True, "Vehicle", "Fleet vehicle", "Car")
    assert found["vehicle.fuel.options.diesel"] == ("value", True, "Diesel", "Diesel (B7)", "Gasoil")
    assert found["vehicle.fuel.options.electric"][:2] == ("value", False)  # the new version agrees
    assert found["vehicle.fuel.options.lpg"][:2] == ("value", False)  # the organisation's own: kept
    assert found["vehicle.registration.help"][:2] == ("value", False)  # not changed by the new version
    assert found["vehicle.insurer"][:2] == ("value", False)
    assert found["vehicle.lifecycle.repair.after"][:2] == ("gone", True)  # `sold` is gone
    assert found["vehicle.lifecycle.scrap"][:2] == ("value", False)  # after the organisation's own stage
    assert found["vehicle.pipelines.maintenance"][:2] == ("taken", True)
    assert found["role:driver"][:2] == ("value", True)  # the pack changed the role it replaces

    resolved = copy.deepcopy(docs)
    for leaf in leaves(docs, before, after, "fleet"):
        if leaf.conflicting:
            take_new(resolved, leaf)
    assert resolved == extension(
        field_overrides={"fuel": {"options": [{"key": "electric", "label": "Electric"},
                                              {"key": "lpg", "label": "LPG"}]},
                         "registration": {"help": "As on the papers"}},
        fields={"insurer": {"type": "text"}},
        pipelines={"lifecycle": {"stages": [{"key": "repair"}, {"key": "scrap", "after": "repair"}]}},
    )
    assert not any(leaf.conflicting for leaf in leaves(resolved, before, after, "fleet"))


def test_taking_the_new_version_drops_what_is_left_empty(tmp_path: Path, registry: FieldTypeRegistry) -> None:
    before, after = metamodels(tmp_path, registry)
    docs = extension(field_overrides={"fuel": {"options": [{"key": "diesel", "label": "Gasoil"}]}})
    [leaf] = leaves(docs, before, after, "fleet")
    take_new(docs, leaf)
    assert docs == {}  # the option, its override and the extension, each left empty, go


def test_a_customisation_of_another_pack_is_not_compared(tmp_path: Path, registry: FieldTypeRegistry) -> None:
    before, after = metamodels(tmp_path, registry)
    docs: Documents = {("extension", "boat"): {"kind": "extension", "entity": "boat", "label": "Ship"},
                       ("role", "skipper"): {"kind": "role", "name": "skipper"}}
    assert leaves(docs, before, after, "fleet") == []


def test_customisations_follow_an_entity_the_new_version_renames(tmp_path: Path,
                                                                 registry: FieldTypeRegistry) -> None:
    before, _ = metamodels(tmp_path, registry)
    renamed = V1.replace("name: vehicle\n", "name: car\nrenamed_from: vehicle\n")
    folder = write_files_pack(tmp_path / "3.0.0", {"entities/car.yaml": renamed}, name="fleet",
                              version="3.0.0", requires={})
    after = merge(installer.load_packs([str(folder)], registry), registry)
    docs = extension(field_overrides={"registration": {"help": "As on the papers"}})
    [leaf] = leaves(docs, before, after, "fleet")
    assert (leaf.path, leaf.document) == ("car.registration.help", ("extension", "car"))
    assert not leaf.conflicting


# --- every kind of document, every key: one row per case ---------------------------------------
FLEET = """\
kind: entity
name: vehicle
label: Vehicle
fields:
  registration: {type: text}
  colour: {type: text}
  fuel:
    type: choice
    options:
      - {key: petrol, label: Petrol%(petrol)s}
      - {key: diesel, label: Diesel}
  notes: {type: text%(notes)s}
%(mileage)s
%(more)s
pipelines:
  lifecycle:
    label: %(lifecycle)s
    field: status
    stages:
      - {key: ordered, label: Ordered}
      - {key: sold, label: Sold}
"""
VIEW = """\
kind: view
name: vehicles
entity: vehicle
label: All vehicles
columns: %(columns)s
page_size: %(page_size)s
"""
LAYOUT = """\
kind: layout
entity: vehicle
sections:
  - label: %(section)s
    fields: [registration, fuel]
compact:
  fields: %(compact)s
"""
DRIVER = "kind: role\nname: driver\nentities:\n  vehicle: {actions: [%s]}\n"


def fleet_version(root: Path, version: str, registry: FieldTypeRegistry, *, notes: str = "",
                  mileage: bool = True, more: str = "", lifecycle: str = "Lifecycle",
                  columns: str = "[registration, fuel]", page_size: int = 25, view: bool = True,
                  section: str = "Main", compact: str = "[registration]",
                  actions: str = "read", depot: bool = True, petrol: str = "") -> Any:
    """A version of the `fleet` pack (the installed one with the defaults)."""
    entity = FLEET % {"notes": notes, "mileage": "  mileage: {type: integer}" if mileage else "",
                      "more": more, "lifecycle": lifecycle,
                      "petrol": petrol}
    files = {"entities/vehicle.yaml": entity, "layouts/vehicle.yaml": LAYOUT % {
        "section": section, "compact": compact}, "roles/driver.yaml": DRIVER % actions}
    if depot:
        files["entities/depot.yaml"] = "kind: entity\nname: depot\nfields:\n  city: {type: text}\n"
    if view:
        files["views/vehicles.yaml"] = VIEW % {"columns": columns, "page_size": page_size}
    folder = write_files_pack(root / version, files, name="fleet", version=version, requires={})
    [pack] = installer.load_packs([str(folder)], registry)
    return pack


def view_doc(**changes: Any) -> Documents:
    body = {"kind": "view", "name": "vehicles", "entity": "vehicle", "label": "All vehicles",
            "columns": ["registration", "fuel"], "page_size": 25, **changes}
    return {("view", "vehicles"): body}


def layout_doc(**changes: Any) -> Documents:
    body = {"kind": "layout", "name": "vehicle", "entity": "vehicle",
            "sections": [{"label": "Main", "fields": ["registration", "fuel"]}],
            "compact": {"fields": ["registration"]}, **changes}
    return {("layout", "vehicle"): body}


def role_doc(actions: list[str]) -> Documents:
    return {("role", "driver"): {"kind": "role", "name": "driver",
                                 "entities": {"vehicle": {"actions": actions}}}}


RULE = {"condition": "mileage >= 0", "message": "Mileage cannot be negative"}
#: (id, the new version's differences, the organisation's documents,
#:  {path: (kind, conflicting, installed, new, organisation)} for the leaves expected).
CASES: list[tuple[str, dict[str, Any], Documents, dict[str, tuple[Any, ...]]]] = [
    ("form logic both changed", {"notes": ", visible_if: \"fuel = 'petrol'\""},
     extension(field_overrides={"notes": {"visible_if": "fuel = 'diesel'", "required_if": "colour = 'red'"}}),
     {"vehicle.notes.visible_if": ("value", True, None, "fuel = 'petrol'", "fuel = 'diesel'"),
      "vehicle.notes.required_if": ("value", False, None, None, "colour = 'red'")}),
    ("form logic of a field the new version removes", {"mileage": False},
     extension(field_overrides={"mileage": {"read_only_if": "fuel = 'diesel'"}}),
     {"vehicle.mileage": ("gone", True, "defined", None, "customised by the organisation")}),
    ("option colour both changed", {"petrol": ", colour: '#ff0000'"},
     extension(field_overrides={"fuel": {"options": [
         {"key": "petrol", "label": "Petrol", "colour": "#00ff00"}]}}),
     {"vehicle.fuel.options.petrol": ("value", False, "Petrol", "Petrol", "Petrol"),
      "vehicle.fuel.options.petrol.colour": ("value", True, None, "#ff0000", "#00ff00")}),
    ("pipeline label both changed", {"lifecycle": "Life cycle"},
     extension(pipelines={"lifecycle": {"label": "Journey"}}),
     {"vehicle.lifecycle.label": ("value", True, "Lifecycle", "Life cycle", "Journey")}),
    ("validation kept", {},
     extension(validations=[{"name": "positive", **RULE}]),
     {"vehicle.validations.positive": ("value", False, None, None, RULE)}),
    ("validation name taken by the new version",
     {"more": "validations:\n  - {name: positive, condition: 'mileage > 0', message: No}"},
     extension(validations=[{"name": "positive", **RULE}]),
     {"vehicle.validations.positive": ("taken", True, None,
                                       {"condition": "mileage > 0", "message": "No"}, RULE)}),
    ("validation of a field the new version removes", {"mileage": False},
     extension(validations=[{"name": "positive", **RULE}]),
     {"vehicle.validations.positive": ("gone", True, "fields mileage", None, RULE)}),
    ("composite unique key and indexes", {"more": "unique: [[registration, colour]]", "mileage": False},
     extension(unique=[["registration", "colour"]], indexes=[["fuel", "-mileage"], ["fuel", "colour"]]),
     {"vehicle.unique.registration+colour": ("taken", True, None, "declared by pack fleet",
                                             ["registration", "colour"]),
      "vehicle.indexes.fuel+-mileage": ("gone", True, "fields mileage", None, ["fuel", "-mileage"]),
      "vehicle.indexes.fuel+colour": ("value", False, None, None, ["fuel", "colour"])}),
    ("default sort on a removed field", {"mileage": False},
     extension(default_sort=["-mileage"]),
     {"vehicle.default_sort": ("gone", True, None, None, ["-mileage"])}),
    ("view: both changed the columns, only the new version the page size",
     {"columns": "[registration, fuel, mileage]", "page_size": 50},
     view_doc(columns=["registration", "fuel", "colour"]),
     {"view:vehicles.columns": ("value", True, ["registration", "fuel"], ["registration", "fuel", "mileage"],
                                ["registration", "fuel", "colour"]),
      "view:vehicles.page_size": ("value", False, 25, 50, 25)}),
    ("view: only the organisation changed it", {"section": "Vehicle"},
     view_doc(label="Every vehicle"),
     {"view:vehicles.label": ("value", False, "All vehicles", "All vehicles", "Every vehicle")}),
    ("view the new version removes", {"view": False},
     view_doc(page_size=10),
     {"view:vehicles": ("value", True, "as installed of pack fleet", None,
                        "the organisation's replacement")}),
    ("layout: the new version's sections adopted, compact both changed",
     {"section": "Essentials", "compact": "[registration, colour]"},
     layout_doc(compact={"fields": ["fuel"]}),
     {"layout:vehicle.sections": ("value", False, [{"label": "Main", "fields": ["registration", "fuel"]}],
                                  [{"label": "Essentials", "fields": ["registration", "fuel"]}],
                                  [{"label": "Main", "fields": ["registration", "fuel"]}]),
      "layout:vehicle.compact": ("value", True, {"fields": ["registration"]},
                                 {"fields": ["registration", "colour"]}, {"fields": ["fuel"]})}),
    ("view replacement showing a field the new version removes", {"mileage": False},
     view_doc(columns=["registration", "fuel", "mileage"]),
     {"view:vehicles.columns": ("value", False, ["registration", "fuel"], ["registration", "fuel"],
                                ["registration", "fuel", "mileage"]),
      "view:vehicles.columns.mileage": ("gone", True, "field vehicle.mileage", None, "mileage")}),
    ("the organisation's own view on a field the new version removes", {"mileage": False},
     {("view", "heavy"): {"kind": "view", "name": "heavy", "entity": "vehicle",
                          "columns": ["registration", "mileage"], "sort": ["-mileage"],
                          "filter": "mileage > 10"}},
     {"view:heavy.columns.mileage": ("gone", True, "field vehicle.mileage", None, "mileage"),
      "view:heavy.sort.mileage": ("gone", True, "field vehicle.mileage", None, "mileage"),
      "view:heavy.filter": ("gone", True, "field vehicle.mileage", None, "mileage")}),
    ("layout placing a field the new version removes", {"mileage": False},
     layout_doc(sections=[{"label": "Main", "fields": ["registration", "mileage"]}],
                compact={"fields": ["mileage"]}),
     {"layout:vehicle.sections": ("value", False, [{"label": "Main", "fields": ["registration", "fuel"]}],
                                  [{"label": "Main", "fields": ["registration", "fuel"]}],
                                  [{"label": "Main", "fields": ["registration", "mileage"]}]),
      "layout:vehicle.compact": ("value", False, {"fields": ["registration"]}, {"fields": ["registration"]},
                                 {"fields": ["mileage"]}),
      "layout:vehicle.sections.mileage": ("gone", True, "field vehicle.mileage", None, "mileage"),
      "layout:vehicle.compact.mileage": ("gone", True, "field vehicle.mileage", None, "mileage")}),
    ("references to an entity the new version removes", {"depot": False},
     {**extension(fields={"home": {"type": "reference", "target": "depot"}}),
      ("entity", "trip"): {"kind": "entity", "name": "trip", "fields": {
          "depot": {"type": "reference", "target": "depot"}}}},
     {"vehicle.home": ("gone", True, "entity depot", None, "a reference field of the organisation"),
      "trip.depot": ("gone", True, "entity depot", None, "a reference field of the organisation")}),
    ("a role and a workflow of the organisation on an entity the new version removes", {"depot": False},
     {("role", "dispatcher"): {"kind": "role", "name": "dispatcher", "entities": {
         "depot": {"actions": ["read"]}, "vehicle": {"actions": ["read"]}}},
      ("workflow", "new_depot"): {"kind": "workflow", "name": "new_depot", "entity": "depot",
                                  "trigger": {"kind": "created"},
                                  "actions": [{"kind": "update", "set": {"city": "'Paris'"}}]}},
     {"role:dispatcher.entities.depot": ("gone", True, "entity depot", None, {"actions": ["read"]}),
      "workflow:new_depot": ("gone", True, "entity depot", None, "the organisation's workflow")}),
    ("role: both changed its rights", {"actions": "read, update"},
     role_doc(["read", "create"]),
     {"role:driver.entities": ("value", True, {"vehicle": {"actions": ["read"]}},
                               {"vehicle": {"actions": ["read", "update"]}},
                               {"vehicle": {"actions": ["read", "create"]}})}),
]


@pytest.mark.parametrize(("new_version", "docs", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_every_kind_of_customisation(tmp_path: Path, registry: FieldTypeRegistry, new_version: dict[str, Any],
                                     docs: Documents, expected: dict[str, tuple[Any, ...]]) -> None:
    old = fleet_version(tmp_path, "1.0.0", registry)
    new = fleet_version(tmp_path, "2.0.0", registry, **new_version)
    before, after = merge([old], registry), merge([new], registry)
    docs = copy.deepcopy(docs)
    merge([old, layer_pack(docs, [old], registry)], registry)  # the customisations fit the installed version
    found = leaves(docs, before, after, "fleet", versions=(old, new))
    assert {leaf.path: (leaf.kind, leaf.conflicting, _shown(leaf.base), _shown(leaf.new), _shown(leaf.mine))
            for leaf in found} == expected

    # Every conflict taken for the new version, and every adoption: no conflict is left, and
    # the organisation's documents merge with the new version.
    for leaf in found:
        if leaf.conflicting or leaf.adopts:
            take_new(docs, leaf)
    again = leaves(docs, before, after, "fleet", versions=(old, new))
    assert not any(leaf.conflicting or leaf.adopts for leaf in again)
    layer = layer_pack(docs, [new], registry)
    merge([new, *([layer] if layer else [])], registry)
