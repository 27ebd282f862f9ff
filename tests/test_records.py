"""The records service on SQLite and PostgreSQL, driven only by the metamodel."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records.errors import (
    RecordInUse,
    RecordNotFound,
    UnknownEntity,
    ValidationFailed,
    VersionConflict,
)
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.runtime import RuntimeHolder

from .pack_templates import PackTemplates


@pytest.fixture
def records(engine: sa.Engine, registry: FieldTypeRegistry,
            pack_templates: PackTemplates) -> Iterator[RecordsService]:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    yield RecordsService(engine, RuntimeHolder(engine, registry), registry)


def test_create_and_get_with_defaults_titles_and_auto_numbers(records: RecordsService) -> None:
    acme = records.create("account", {"name": "Acme", "industry": "Technology", "annual_revenue": "1200 EUR"})
    assert acme.version == 1 and acme.title == "Acme"
    assert acme.values["industry"] == "technology"  # the label, typed by a person, became the key
    assert acme.values["type"] == "prospect"  # the field's default
    assert acme.values["account_number"] == "ACC-000001"
    assert acme.values["annual_revenue"] == {"amount": Decimal("1200"), "currency": "EUR"}
    second = records.create("account", {"name": "Globex"})
    assert second.values["account_number"] == "ACC-000002"
    deal = records.create("opportunity", {"name": "Big deal", "account": acme.id})
    assert deal.values["stage"] == "prospecting"  # the pipeline's first stage
    shown = records.as_json(records.get("opportunity", deal.id))
    assert shown["account"] == {"id": acme.id, "title": "Acme"}
    assert shown["stage"] == "prospecting" and shown["version"] == 1


def test_every_problem_of_a_record_at_once(records: RecordsService) -> None:
    jane = records.create("contact", {"name": {"last": "Doe"}, "emails": ["jane@example.com"]})
    with pytest.raises(ValidationFailed) as refused:
        records.create("contact", {"tags": [f"t{i}" for i in range(21)], "emails": ["jane@"],
                                   "account": 999, "birthdate": "2024-02-30", "nickname": "JD"})
    errors = refused.value.errors
    assert errors["name"] == ["is required"]
    assert errors["tags"] == ["has more than 20 tags; at most 20 are allowed"]
    assert errors["emails"] == ["item 1: value: 'jane@' is not an e-mail address"]
    assert errors["account"] == ["there is no account with id 999"]
    assert errors["birthdate"][0].startswith("'2024-02-30' is not a date")
    assert errors["nickname"][0].startswith("contact has no field 'nickname'")
    # a record breaking a unique rule is told so together with its other problems
    acme = records.create("account", {"name": "Acme"})
    deal = records.create("opportunity", {"name": "Deal", "account": acme.id})
    records.create("opportunity_contact", {"opportunity": deal.id, "contact": jane.id})
    with pytest.raises(ValidationFailed) as twice:
        records.create("opportunity_contact", {"opportunity": deal.id, "contact": jane.id, "role": "boss",
                                               "nickname": "JD"})
    errors = twice.value.errors
    assert errors["contact"] == errors["opportunity"] == [
        "opportunity_contact 1 already has this combination of Opportunity and Contact"]
    assert errors["role"][0].startswith("'boss' is not an option")
    assert errors["nickname"][0].startswith("opportunity_contact has no field 'nickname'")
    with pytest.raises(UnknownEntity, match="did you mean 'contact'"):
        records.create("contacts", {})


def test_versioned_updates_and_conflicts(records: RecordsService) -> None:
    acme = records.create("account", {"name": "Acme"})
    renamed = records.update("account", acme.id, {"name": "Acme Inc", "employees": 50}, version=1)
    assert (renamed.version, renamed.values["name"], renamed.values["employees"]) == (2, "Acme Inc", 50)
    with pytest.raises(VersionConflict) as conflict:
        records.update("account", acme.id, {"phone": "+1 555 0100"}, version=1)
    assert conflict.value.changed == ["employees", "name"]
    assert "changed: employees, name" in str(conflict.value)
    assert records.get("account", acme.id).values["phone"] is None  # nothing was overwritten
    same = records.update("account", acme.id, {"name": "Acme Inc"}, version=2)
    assert same.version == 2  # no change, no new version
    with pytest.raises(ValidationFailed, match="give the version"):
        records.update("account", acme.id, {"name": "X"}, version=None)
    history = records.history("account", acme.id)
    assert [(h.version, h.action) for h in history] == [(1, "create"), (2, "update")]
    assert history[1].changes == {"name": ["Acme", "Acme Inc"], "employees": [None, 50]}


def test_stage_moves_are_gated_and_recorded(records: RecordsService) -> None:
    acme = records.create("account", {"name": "Acme"})
    deal = records.create("opportunity", {"name": "Deal", "account": acme.id})
    with pytest.raises(ValidationFailed) as refused:
        records.update("opportunity", deal.id, {"stage": "proposal"}, version=1)
    errors = refused.value.errors
    assert errors["stage"] == ["stage 'Proposal' requires Primary contact, Amount, Close date"]
    assert errors["amount"] == ["is required to enter stage 'Proposal'"]
    jane = records.create("contact", {"name": {"last": "Doe"}, "account": acme.id})
    moved = records.update("opportunity", deal.id, {"stage": "proposal", "primary_contact": jane.id,
                                                    "amount": 5000, "close_date": "2027-03-01"}, version=1)
    assert moved.values["stage"] == "proposal"
    won = records.update("opportunity", deal.id, {"stage": "closed_won"}, version=2)
    assert won.values["close_date"] == dt.date(2027, 3, 1)  # won keeps the close date already set
    visits = records.stage_history("opportunity", deal.id)
    assert [(v.stage, v.left_at is None) for v in visits] == [
        ("prospecting", False), ("proposal", False), ("closed_won", True)]
    assert all(v.seconds is not None and v.seconds >= 0 for v in visits[:2])
    lead = records.create("lead", {"last_name": "Roe", "company": "Initech"})
    with pytest.raises(ValidationFailed) as skipped:
        records.update("lead", lead.id, {"status": "qualified"}, version=1)
    assert skipped.value.errors["status"][0] == (
        "cannot move from 'New' to 'Qualified'; allowed next stages: 'Suspect', 'Disqualified'")


def test_delete_respects_on_delete(records: RecordsService) -> None:
    acme = records.create("account", {"name": "Acme"})
    child = records.create("account", {"name": "Acme EU", "parent_account": acme.id})
    deal = records.create("opportunity", {"name": "Deal", "account": acme.id})
    task = records.create("activity", {"subject": "Call", "account": acme.id})
    with pytest.raises(RecordInUse, match=r"opportunities \(account: ids 1\)"):
        records.delete("account", acme.id)
    records.delete("opportunity", deal.id)
    records.delete("account", acme.id)
    orphan = records.get("account", child.id)
    assert orphan.values["parent_account"] is None and orphan.version == 2  # set_null, a new version
    assert records.history("account", child.id)[-1].changes == {"parent_account": [acme.id, None]}
    with pytest.raises(RecordNotFound):
        records.get("activity", task.id)  # cascade
    assert records.history("activity", task.id)[-1].action == "delete"  # audited like any delete
    assert records.history("account", acme.id)[-1].action == "delete"
    with pytest.raises(VersionConflict):  # a client holding the child's old version must reload
        records.update("account", child.id, {"name": "Acme Europe"}, version=1)


def test_bulk_create_reports_errors_per_record(records: RecordsService) -> None:
    made = records.create_many("account", [{"name": f"A{i}"} for i in range(500)])
    assert len(made) == 500 and made[-1].values["account_number"] == "ACC-000500"
    with pytest.raises(ValidationFailed) as refused:
        records.create_many("account", [{"name": "ok"}, {"employees": -1}])
    assert refused.value.errors == {"[1].name": ["is required"], "[1].employees": ["must be at least 0"]}


def test_concurrent_versioned_updates(records: RecordsService) -> None:
    """8 threads × 200 updates: each applies or gets a conflict; the end state is the applied ones."""
    ids = [records.create("account", {"name": f"R{i}", "employees": 0}).id for i in range(4)]
    applied: list[int] = []
    conflicts: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(200):
            record_id = ids[(n + i) % len(ids)]
            current = records.get("account", record_id)
            try:
                records.update("account", record_id, {"employees": current.values["employees"] + 1},
                               version=current.version)
                with lock:
                    applied.append(record_id)
            except VersionConflict:
                with lock:
                    conflicts.append(record_id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(applied) + len(conflicts) == 1600
    for record_id in ids:
        final = records.get("account", record_id)
        assert final.values["employees"] == applied.count(record_id)
        assert final.version == 1 + applied.count(record_id)
