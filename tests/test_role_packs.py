"""`kind: role` in packs: read, checked against the merged metamodel with every problem at
its file:line, stored with each revision, and layered (the organisation may add a role or
replace a pack's by name, through the admin API too)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.roles import ACTIONS
from slatecrm.platform import customisation, installer
from slatecrm.platform.storage import revisions

from .pack_templates import PackTemplates

REGIONAL = """\
kind: role
name: regional_rep
label: Regional representative
platform: [view_audit]
entities:
  lead:
    actions: all
    scope: subordinates
    sharing:
      - where: "status = 'new' and owner = current_user.manager"
        access: edit
    fields:
      budget: read_only
      need: hidden
  "*": {actions: [read], scope: team}
"""


def role_pack(root: Path, files: dict[str, str], *, name: str = "regional",
              requires: dict[str, str] | None = None) -> Path:
    folder = root / name
    (folder / "roles").mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "namespace": name.replace("-", "")[:16], "version": "1.0.0",
                "title": name.title(), "requires": requires if requires is not None else {"sales": "^0.2.0"}}
    (folder / "pack.yaml").write_text(json.dumps(manifest))
    for file, text in files.items():
        (folder / "roles" / file).write_text(textwrap.dedent(text))
    return folder


def merged(registry: FieldTypeRegistry, *paths: Path | str) -> Metamodel:
    return merge(installer.load_packs(["crm-core", "sales", *map(str, paths)], registry), registry)


def problems(registry: FieldTypeRegistry, *paths: Path | str) -> list[str]:
    with pytest.raises(DefinitionError) as error:
        merged(registry, *paths)
    return [str(p) for p in error.value.problems]


def test_a_role_file_reads_into_a_role(tmp_path: Path, registry: FieldTypeRegistry) -> None:
    metamodel = merged(registry, role_pack(tmp_path, {"regional.yaml": REGIONAL}))
    role = metamodel.role("regional_rep")
    assert role is not None and role.pack == "regional" and role.platform == {"view_audit"}
    lead = role.grant("lead")
    assert lead is not None and lead.actions == frozenset(ACTIONS) and lead.scope == "subordinates"
    assert dict(lead.fields) == {"budget": "read_only", "need": "hidden"}
    assert [(s.condition, s.access) for s in lead.sharing] == [
        ("status = 'new' and owner = current_user.manager", "edit")]
    every = role.grant("account")  # not named: the * grant
    assert every is not None and every.actions == {"read"} and every.scope == "team"
    assert {r.name for r in metamodel.roles} == {"sales_rep", "sales_manager", "regional_rep"}


@pytest.mark.parametrize(("text", "place", "expected"), [
    ("entities:\n  leed: {actions: [read]}\n", "roles/bad.yaml:5:3:",
     "role 'bad' grants entity 'leed', which no pack given, installed or required defines "
     "(did you mean 'lead'?)"),
    ("entities:\n  lead:\n    actions: [read]\n    fields: {budgte: hidden}\n", "roles/bad.yaml:7:14:",
     "'lead' has no field 'budgte' (did you mean 'budget'?)"),
    ("entities:\n  lead: {actions: [read, erase]}\n", "roles/bad.yaml:5:", "'erase'"),
    ("entities:\n  lead: {actions: [read], scope: region}\n", "roles/bad.yaml:5:", "'region'"),
    ("platform: [manage_everything]\n", "roles/bad.yaml:4:", "'manage_everything'"),
    ("entities:\n  lead:\n    actions: [read]\n    sharing:\n      - where: \"stauts = 'new'\"\n",
     "roles/bad.yaml:8:16:", "sharing condition: unknown field 'stauts' on lead (did you mean 'status'?)"),
    ("entities:\n  lead:\n    actions: [read]\n    sharing:\n      - where: \"previous(status) = 'new'\"\n",
     "roles/bad.yaml:8:16:", "sharing condition:"),
    ("entities:\n  '*':\n    actions: [read]\n    fields: {name: hidden}\n",
     "roles/bad.yaml:5:3:", "fields: field access needs a named entity, not *"),
])
def test_every_problem_of_a_role_is_told_at_its_line(tmp_path: Path, registry: FieldTypeRegistry,
                                                     text: str, place: str, expected: str) -> None:
    pack = role_pack(tmp_path, {"bad.yaml": "kind: role\nname: bad\nlabel: Bad\n" + text})
    found = problems(registry, pack)
    assert any(place in p and expected in p for p in found), found


def test_unknown_actions_scopes_and_rights_name_the_choices(tmp_path: Path,
                                                            registry: FieldTypeRegistry) -> None:
    pack = role_pack(tmp_path, {"bad.yaml": "kind: role\nname: bad\nplatform: [manage_everything]\n"
                                            "entities:\n  lead: {actions: [erase], scope: region}\n"})
    found = "\n".join(problems(registry, pack))
    assert "'manage_everything' is not one of 'manage_metamodel'" in found
    assert "'region' is not one of 'own', 'team', 'subordinates', 'all'" in found
    assert "'erase'" in found


def test_names_taken_by_the_platform_or_another_pack_are_refused(tmp_path: Path,
                                                                  registry: FieldTypeRegistry) -> None:
    pack = role_pack(tmp_path, {"admin.yaml": "kind: role\nname: administrator\n"})
    found = "\n".join(problems(registry, pack))
    assert "roles/admin.yaml:2:7: name: 'administrator' is the built-in role" in found
    pack = role_pack(tmp_path, {"rep.yaml": "kind: role\nname: sales_rep\n"}, name="other")
    found = "\n".join(problems(registry, pack))
    assert "roles/rep.yaml:2:7: name: role 'sales_rep' is already defined by pack 'sales'" in found


def test_a_role_names_only_entities_of_packs_it_requires(tmp_path: Path, registry: FieldTypeRegistry) -> None:
    pack = role_pack(tmp_path, {"r.yaml": "kind: role\nname: r\nentities:\n  lead: {actions: [read]}\n"},
                     requires={"crm-core": "^0.1.0"})
    found = "\n".join(problems(registry, pack))
    assert "roles/r.yaml:4:3: entities.lead: entity 'lead' is defined by pack 'sales', which pack " \
           "'regional' does not require" in found


def test_roles_are_stored_with_the_revision(engine: sa.Engine, registry: FieldTypeRegistry,
                                            tmp_path: Path) -> None:
    pack = role_pack(tmp_path, {"regional.yaml": REGIONAL})
    installer.create_system_tables(engine)
    installation = installer.plan_install(
        engine, installer.load_packs(["crm-core", "sales", str(pack)], registry), registry)
    installer.install(engine, installation, author="test")
    with engine.connect() as conn:
        _, stored = revisions.current_metamodel(conn)
    assert stored.roles == merged(registry, pack).roles
    regional = stored.role("regional_rep")
    assert regional is not None and regional.grant("lead") is not None
    assert Metamodel.from_dict({"format": 2, "entities": [], "packs": []}).roles == ()


def _apply(engine: sa.Engine, registry: FieldTypeRegistry, edit: Any) -> int:
    planned = customisation.plan_edit(engine, registry, "test", edit)
    return customisation.apply_edit(engine, planned, author="test")


def test_the_organisation_adds_a_role_and_replaces_a_packs_by_name(
        engine: sa.Engine, registry: FieldTypeRegistry, pack_templates: PackTemplates) -> None:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    with engine.connect() as conn:
        before, _ = revisions.current_metamodel(conn)
    _apply(engine, registry, customisation.put_role(
        "auditor", {"label": "Auditor", "platform": ["view_audit"], "entities": {"*": {"actions": ["read"],
                                                                                   "scope": "all"}}}))
    _apply(engine, registry, customisation.put_role(
        "sales_rep", {"label": "Rep", "entities": {"lead": {"actions": ["read"], "scope": "own"}}}))
    with engine.connect() as conn:
        head, metamodel = revisions.current_metamodel(conn)
    assert head == before + 2  # each role change is a revision
    rep = metamodel.role("sales_rep")
    assert rep is not None and rep.pack == "organisation" and rep.grant("opportunity") is None
    assert metamodel.role("auditor") is not None
    _apply(engine, registry, customisation.delete_role("sales_rep"))  # the pack's comes back
    with engine.connect() as conn:
        _, metamodel = revisions.current_metamodel(conn)
    back = metamodel.role("sales_rep")
    assert back is not None and back.pack == "sales" and back.grant("opportunity") is not None
    for edit, message in ((customisation.delete_role("sales_manager"), "defined by pack 'sales'"),
                          (customisation.put_role("administrator", {}), "built-in role"),
                          (customisation.put_role("x", {"entities": {"nothing": {"actions": ["read"]}}}),
                           "grants entity 'nothing'")):
        with pytest.raises(DefinitionError) as refused:
            customisation.plan_edit(engine, registry, "test", edit)
        assert message in str(refused.value.problems[0])


def test_the_admin_api_plans_then_applies_a_role(client: TestClient) -> None:
    body = {"label": "Reader", "entities": {"account": {"actions": ["read"], "scope": "all"}}}
    dry = client.put("/api/v1/admin/roles/reader", json=body)
    assert dry.status_code == 200, dry.text
    assert dry.json()["applied"] is False
    done = client.put("/api/v1/admin/roles/reader", json=body,
                      params={"confirm": dry.json()["base_revision"]})
    assert done.status_code == 200 and done.json()["applied"] is True
    bad = client.put("/api/v1/admin/roles/broken", json={"entities": {"lead": {"actions": ["fly"]}}})
    assert bad.status_code == 422, bad.text
    assert "fly" in bad.text
    gone = client.delete("/api/v1/admin/roles/reader", params={"confirm": done.json()["revision"]})
    assert gone.status_code == 200 and gone.json()["applied"] is True


def test_a_role_change_is_planned_without_sql(engine: sa.Engine, registry: FieldTypeRegistry,
                                              pack_templates: PackTemplates) -> None:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    planned = customisation.plan_edit(engine, registry, "test", customisation.put_role(
        "sales_rep", {"label": "Rep", "entities": {"lead": {"actions": ["read"]}}}))
    assert [(c.action, c.summary, c.sql) for c in planned.plan.changes] == [
        ("change role", "change role sales_rep (Rep)", ())]
