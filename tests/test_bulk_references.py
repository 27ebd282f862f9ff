"""Bulk create checks every reference of a batch with one query per field, and still names
each record whose reference points nowhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records.errors import ValidationFailed
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.runtime import RuntimeHolder

from .pack_templates import PackTemplates


@pytest.fixture
def records(engine: sa.Engine, registry: FieldTypeRegistry,
            pack_templates: PackTemplates) -> Iterator[RecordsService]:
    pack_templates.copy_to(engine, registry, "crm-core")
    yield RecordsService(engine, RuntimeHolder(engine, registry), registry)


def test_a_batch_with_good_references_is_created_with_their_titles(records: RecordsService) -> None:
    accounts = records.create_many("account", [{"name": f"Account {i}"} for i in range(3)])
    made = records.create_many("contact", [
        {"name": {"last": f"Doe {i}"}, "account": accounts[i % 3].id} for i in range(2500)])
    assert len(made) == 2500
    assert {m.titles["account"] for m in made} == {"Account 0", "Account 1", "Account 2"}


def test_every_record_pointing_nowhere_is_named(records: RecordsService,
                                                engine: sa.Engine) -> None:
    acme = records.create("account", {"name": "Acme"})
    with pytest.raises(ValidationFailed) as refused:
        records.create_many("contact", [
            {"name": {"last": "A"}, "account": acme.id},
            {"name": {"last": "B"}, "account": 999},
            {"name": {"last": "C"}},
            {"name": {"last": "D"}, "account": 998},
        ])
    assert refused.value.errors == {"[1].account": ["there is no account with id 999"],
                                    "[3].account": ["there is no account with id 998"]}
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM x_contact").scalar() == 0  # all or nothing


def test_an_owner_id_beyond_64_bits_is_a_field_error(records: RecordsService) -> None:
    """Found by the API fuzz test: the lookup overflowed the driver and answered 500."""
    with pytest.raises(ValidationFailed) as refused:
        records.create("account", {"name": "Acme", "owner": 2**63})
    assert refused.value.errors == {"owner": [f"there is no user with id {2**63}"]}
