"""Merging packs into one metamodel: extensions, overrides, stages, dependency order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.packs import load_pack
from slatecrm.platform import installer

from .packs import write_pack


def default_packs(registry: FieldTypeRegistry) -> Metamodel:
    return merge(installer.load_packs(["sales", "crm-core"], registry), registry)


def test_default_configuration(registry: FieldTypeRegistry) -> None:
    metamodel = default_packs(registry)
    assert [p.name for p in metamodel.packs] == ["crm-core", "sales"]  # dependency order
    lead = metamodel.entity("lead")
    assert lead is not None and lead.pack == "sales"
    pipeline = lead.pipelines[0]
    assert [s.key for s in pipeline.stages] == [
        "new", "suspect", "prospect", "qualified", "converted", "disqualified"]
    assert [(s.key, s.category) for s in pipeline.stages if s.category != "open"] == [
        ("converted", "won"), ("disqualified", "lost")]
    status = lead.field("status")
    assert status is not None and status.type == "stage"
    assert [o.key for o in status.choices] == [s.key for s in pipeline.stages]
    opportunity = metamodel.entity("opportunity")
    assert opportunity is not None
    stages = opportunity.pipelines[0].stages
    assert [(s.key, s.probability) for s in stages] == [
        ("prospecting", 10), ("qualification", 20), ("proposal", 50), ("negotiation", 80),
        ("closed_won", 100), ("closed_lost", 0)]
    activity = metamodel.entity("activity")
    assert activity is not None and activity.extended_by == ("sales",)
    assert [f.name for f in activity.fields][-3:] == ["lead", "opportunity", "related_to"]


def test_metamodel_survives_its_storage_form(registry: FieldTypeRegistry) -> None:
    metamodel = default_packs(registry)
    assert Metamodel.from_dict(json.loads(json.dumps(metamodel.as_dict()))) == metamodel


def test_an_extension_adds_overrides_and_places_stages(registry: FieldTypeRegistry, tmp_path: Path) -> None:
    pack = write_pack(tmp_path, "sales-plus", "1.0.0", {}, requires={"sales": "^0.2.0"}, extensions=[{
        "entity": "lead",
        "label": "Prospect",
        "fields": {"linkedin": {"type": "url", "label": "LinkedIn"}},
        "field_overrides": {
            "source": {"label": "Origin", "options": [{"key": "web", "label": "Website"},
                                                       {"key": "webinar", "label": "Webinar"}]},
            "email": {"help": "Work address, please"},
        },
        "pipelines": {
            "qualification": {"stages": [{"key": "nurturing", "after": "suspect", "requires": ["linkedin"]}]},
            "onboarding": {"field": "onboarding_stage", "stages": [{"key": "kickoff"}, {"key": "live"}]},
        },
    }])
    metamodel = merge([*installer.load_packs(["crm-core", "sales"], registry),
                       load_pack(pack, registry)], registry)
    lead = metamodel.entity("lead")
    assert lead is not None
    assert lead.label == "Prospect" and lead.extended_by == ("sales-plus",)
    source = lead.field("source")
    assert source is not None and source.label == "Origin"
    assert [(o.key, o.label) for o in source.choices][:1] == [("web", "Website")]
    assert source.choices[-1].key == "webinar"
    email = lead.field("email")
    assert email is not None and email.help == "Work address, please" and email.type == "email"
    keys = [s.key for s in lead.pipelines[0].stages]
    assert keys[:4] == ["new", "suspect", "nurturing", "prospect"]
    status = lead.field("status")
    assert status is not None and [o.key for o in status.choices] == keys
    onboarding = lead.field("onboarding_stage")
    assert onboarding is not None and onboarding.type == "stage" and onboarding.pack == "sales-plus"


def test_redefining_an_entity_names_both_packs(registry: FieldTypeRegistry, tmp_path: Path) -> None:
    pack = write_pack(tmp_path, "my-accounts", "1.0.0", {"account": {"fields": {"name": {"type": "text"}}}},
                      requires={"crm-core": "^0.1.0"})
    with pytest.raises(DefinitionError) as error:
        merge([*installer.load_packs(["crm-core"], registry), load_pack(pack, registry)], registry)
    message = str(error.value)
    assert "entity 'account' is already defined by pack 'crm-core'" in message
    assert "pack 'my-accounts' may extend it with kind: extension" in message
    assert "entities/account.yaml:2:" in message
