"""Rules at work in the records service and the API: validation rules, computed fields,
defaults by expression, stage entry conditions and list filters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.rules import RuleContext, RuleError
from slatecrm.platform.cli import main
from slatecrm.platform.records.errors import ValidationFailed
from slatecrm.platform.records.listing import ListQuery
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.runtime import RuntimeHolder

from ..packs import install, write_pack

ORDER: dict[str, Any] = {
    "title_field": "reference",
    "fields": {
        "reference": {"type": "text", "required": True},
        "quantity": {"type": "integer"},
        "unit_price": {"type": "decimal", "precision": 10, "scale": 2},
        "discount": {"type": "percent"},
        "total": {"type": "decimal", "precision": 12, "scale": 2,
                  "formula": "round(quantity * unit_price * (100 - coalesce(discount, 0)) / 100, 2)"},
        "label": {"type": "text", "formula": "upper(concat(reference, \" / \", customer.name))"},
        "due": {"type": "date", "default_expression": "add_days(today(), 30)"},
        "customer": {"type": "reference", "target": "customer", "on_delete": "set_null"},
        "notes": {"type": "long_text"},
    },
    "validations": [
        {"name": "positive_quantity", "condition": "quantity > 0", "message": "order at least one",
         "field": "quantity"},
        {"name": "discount_needs_notes",
         "condition": "discount is blank or discount <= 10 or notes is not blank",
         "message": "a discount above 10% needs a note", "field": "notes"},
        {"condition": "not changed(reference) or is_new()", "message": "the reference cannot change"},
    ],
    "pipelines": {"flow": {"field": "status", "stages": [
        {"key": "draft"},
        {"key": "confirmed", "condition": "total >= 100 and customer is not blank",
         "condition_message": "confirm orders of 100 or more, with a customer"},
        {"key": "shipped", "category": "won"}]}},
}
CUSTOMER: dict[str, Any] = {"title_field": "name", "fields": {"name": {"type": "text"},
                                                               "vip": {"type": "boolean"}}}


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return write_pack(tmp_path, "shop", "1.0.0", {"customer": CUSTOMER, "purchase": ORDER})


@pytest.fixture
def records(engine: sa.Engine, registry: FieldTypeRegistry, shop: Path) -> Iterator[RecordsService]:
    install(engine, registry, shop)
    yield RecordsService(engine, RuntimeHolder(engine, registry), registry)


def test_computed_fields_are_stored_recomputed_and_read_only(records: RecordsService) -> None:
    acme = records.create("customer", {"name": "Acme"})
    order = records.create("purchase", {"reference": "o-1", "quantity": 3, "unit_price": "19.99",
                                     "discount": "5", "customer": acme.id})
    assert order.values["total"] == Decimal("56.97")  # 3 × 19.99 × 0.95 = 56.9715
    assert order.values["label"] == "O-1 / ACME"
    changed = records.update("purchase", order.id, {"quantity": 10}, version=order.version)
    assert changed.values["total"] == Decimal("189.91")
    with pytest.raises(ValidationFailed) as refused:
        records.update("purchase", order.id, {"total": 1}, version=changed.version)
    assert refused.value.errors == {"total": ["is computed by its formula and cannot be set"]}
    stored = records.page("purchase", ListQuery(expression="total > 189.90")).records
    assert [r.id for r in stored] == [order.id]  # stored: SQL filters see it


def test_default_by_expression(records: RecordsService) -> None:
    order = records.create("purchase", {"reference": "o-2", "quantity": 1})
    assert order.values["due"] == dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)
    given = records.create("purchase", {"reference": "o-3", "quantity": 1, "due": "2030-01-01"})
    assert given.values["due"] == dt.date(2030, 1, 1)


def test_validation_rules_show_their_message_on_their_field(records: RecordsService) -> None:
    with pytest.raises(ValidationFailed) as refused:
        records.create("purchase", {"reference": "o-4", "quantity": 0, "discount": "20"})
    assert refused.value.errors == {"quantity": ["order at least one"],
                                    "notes": ["a discount above 10% needs a note"]}
    # unknown passes, like an SQL CHECK: a blank quantity is not "not > 0"
    order = records.create("purchase", {"reference": "o-4", "discount": "20", "notes": "loyal customer"})
    with pytest.raises(ValidationFailed) as renamed:
        records.update("purchase", order.id, {"reference": "o-5"}, version=order.version)
    assert renamed.value.errors == {"": ["the reference cannot change"]}


def test_stage_entry_condition(records: RecordsService) -> None:
    order = records.create("purchase", {"reference": "o-6", "quantity": 1, "unit_price": "50"})
    with pytest.raises(ValidationFailed) as refused:
        records.update("purchase", order.id, {"status": "confirmed"}, version=order.version)
    assert refused.value.errors == {"status": [
        "cannot enter stage 'Confirmed': confirm orders of 100 or more, with a customer"]}
    acme = records.create("customer", {"name": "Acme"})
    moved = records.update("purchase", order.id, {"status": "confirmed", "quantity": 2, "customer": acme.id},
                           version=order.version)
    assert moved.values["status"] == "confirmed"



def test_api_filter_in_the_rule_language(client: TestClient) -> None:
    acme = client.post("/api/v1/account", json={"name": "Acme", "industry": "technology"}).json()
    globex = client.post("/api/v1/account", json={"name": "Globex", "industry": "retail"}).json()
    deals = [("Small", "500", "prospecting", acme), ("Big", "5000", "proposal", acme),
             ("Huge", "90000", "negotiation", globex), ("Other", "2000", "qualification", globex)]
    # A deal's primary contact is one of its account's (the sales pack's options_if).
    contacts = {a["id"]: client.post("/api/v1/contact",
                                     json={"name": {"last": "Doe"}, "account": a["id"]}).json()
                for a in (acme, globex)}
    for name, amount, stage, account in deals:
        made = client.post("/api/v1/opportunity", json={
            "name": name, "amount": amount, "account": account["id"],
            "primary_contact": contacts[account["id"]]["id"],
            "close_date": "2027-01-31"})
        assert made.status_code == 201, made.text
        if stage != "prospecting":
            moved = client.patch(f"/api/v1/opportunity/{made.json()['id']}",
                                 json={"stage": stage, "version": 1})
            assert moved.status_code == 200, moved.text
    found = client.get("/api/v1/opportunity", params={
        "filter": 'amount > 1000 and stage in ("proposal", "negotiation")', "sort": "name",
        "count": "true"}).json()
    assert [r["name"] for r in found["data"]] == ["Big", "Huge"] and found["count"] == 2
    through = client.get("/api/v1/opportunity", params={
        "filter": 'account.industry = "retail" and stage >= "qualification"', "sort": "name"}).json()
    assert [r["name"] for r in through["data"]] == ["Huge", "Other"]
    combined = client.get("/api/v1/opportunity", params={"filter": "amount < 3000", "name": "Other"}).json()
    assert [r["name"] for r in combined["data"]] == ["Other"]
    related = client.get(f"/api/v1/account/{acme['id']}/related/opportunity",
                         params={"filter": "amount >= 5000"}).json()
    assert [r["name"] for r in related["data"]] == ["Big"]
    bad = client.get("/api/v1/opportunity", params={"filter": "amout > 1000"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"] == {"filter": [
        "unknown field 'amout' on opportunity (did you mean 'amount'?) (line 1, column 1)"]}
    spec = client.get("/api/v1/openapi.json").json()
    listed = spec["paths"]["/api/v1/opportunity"]["get"]["parameters"]
    assert any(p["name"] == "filter" for p in listed) and not any(p["name"] == "filter__eq" for p in listed)
    broken = client.get("/api/v1/opportunity", params={"filter": "amount > 1000 and"})
    assert broken.status_code == 400
    assert broken.json()["errors"]["filter"][0].endswith("(line 1, column 18)")


def test_a_pack_with_a_bad_rule_fails_validate_with_its_place(tmp_path: Path) -> None:
    order = {**ORDER, "validations": [{"condition": "quantity > 0 and quantty < 5", "message": "no"}]}
    pack = write_pack(tmp_path, "shop", "1.0.0", {"customer": CUSTOMER, "purchase": order})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)])
    assert result.exit_code == 1
    text = result.output
    assert "entities/purchase.yaml:" in text
    assert ("validation 'rule_1': unknown field 'quantty' on purchase (did you mean 'quantity'?) "
            "(line 1, column 18 of the expression)") in text
    assert "quantity > 0 and quantty < 5\n" in text and "                     ^" in text


def test_the_entry_point_for_later_features(records: RecordsService) -> None:
    """What workflows and permissions will use: one condition, tested on a record in Python
    and as a WHERE clause, with the same answer."""
    acme = records.create("customer", {"name": "Acme", "vip": True})
    big = records.create("purchase", {"reference": "o-7", "quantity": 10, "unit_price": "20",
                                      "customer": acme.id})
    small = records.create("purchase", {"reference": "o-8", "quantity": 1, "unit_price": "20"})
    condition = records.rules().condition("purchase", "total >= 100 and customer.vip")
    context = RuleContext()
    lookup = {acme.id: acme.values}
    context.lookup = lambda entity, key: lookup.get(key)
    assert condition.holds(big.values, context) and not condition.holds(small.values, context)
    assert [r.id for r in records.page("purchase", ListQuery(expression=condition.text)).records] == [big.id]
    with records.engine.connect() as conn:
        table = records.entity("purchase").table
        assert conn.execute(sa.select(table.c.id).where(condition.where(context))).scalars().all() == [big.id]
    with pytest.raises(RuleError) as refused:
        records.rules().condition("purchase", "total >= 100 and customer.vipp")
    assert refused.value.describe().endswith("total >= 100 and customer.vipp\n                          ^")
    changes = records.rules().condition("purchase", "changed(total)", changes=True)
    with pytest.raises(ValueError, match="reads a change"):
        changes.where(context)
