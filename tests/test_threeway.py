"""The three-way comparison of a pack upgrade (platform/threeway.py), without a database:
the organisation's documents against the installed and the new version's metamodels."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import Metamodel
from slatecrm.platform import installer
from slatecrm.platform.layers import Documents
from slatecrm.platform.threeway import leaves, take_new

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
