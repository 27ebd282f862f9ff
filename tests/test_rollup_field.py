"""Roll-ups (`type: rollup`) on SQLite and PostgreSQL: pack validation, the column and its
first computation at apply, exact values after every child create, update, delete and
re-parent (bulk ones too, a delete's set-null and cascade too), in the write's transaction,
two concurrent writers both counted, read-only in the API and forms, rules, OpenAPI, CSV, the
`recompute` command, and a property test of random child changes against a fresh aggregate."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.cli import main
from slatecrm.platform.records.errors import RecordError
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.services import records_service

from .defaults import make_app, plugin_manager, signed_in
from .packs import install, plan, write_files_pack, write_pack


def entities(**rollups: Any) -> dict[str, dict[str, Any]]:
    """customer ← order (amount, qty, status, ordered_on, price in EUR, campaign) and the
    roll-ups given on customer."""
    return {
        "campaign": {"label": "Campaign", "title_field": "name", "fields": {"name": {"type": "text"}}},
        "customer": {"label": "Customer", "title_field": "name",
                     "fields": {"name": {"type": "text", "required": True}, **rollups}},
        "purchase": {"label": "Order", "title_field": "title", "fields": {
            "title": {"type": "text"},
            "customer": {"type": "reference", "target": "customer", "on_delete": "cascade"},
            "campaign": {"type": "reference", "target": "campaign", "on_delete": "set_null"},
            "amount": {"type": "decimal", "precision": 12, "scale": 2},
            "qty": {"type": "integer"},
            "status": {"type": "choice", "options": [{"key": "open"}, {"key": "won"}, {"key": "lost"}]},
            "ordered_on": {"type": "date"},
            "price": {"type": "currency", "currencies": ["EUR"]},
        }},
    }


ROLLUPS: dict[str, Any] = {
    "orders": {"type": "rollup", "function": "count", "over": "purchase.customer"},
    "open_orders": {"type": "rollup", "function": "count", "over": "purchase.customer",
                    "filter": 'status = "open" and campaign is not blank'},
    "total": {"type": "rollup", "function": "sum", "over": "purchase.customer", "field": "amount"},
    "units": {"type": "rollup", "function": "sum", "over": "purchase.customer", "field": "qty"},
    "biggest": {"type": "rollup", "function": "max", "over": "purchase.customer", "field": "amount"},
    "first_order": {"type": "rollup", "function": "min", "over": "purchase.customer", "field": "ordered_on"},
    "average": {"type": "rollup", "function": "avg", "over": "purchase.customer", "field": "amount"},
    "average_qty": {"type": "rollup", "function": "avg", "over": "purchase.customer", "field": "qty"},
    "revenue": {"type": "rollup", "function": "sum", "over": "purchase.customer", "field": "price"},
}


def shop_pack(root: Path, version: str = "1.0.0", **rollups: Any) -> Path:
    return write_pack(root, "shop", version, entities(**(rollups or ROLLUPS)))


# --- pack validation -------------------------------------------------------------------------
BAD = """\
kind: entity
name: customer
fields:
  name:
    type: text
  lost:
    type: rollup
    function: count
    over: invoice.customer
  wrong_way:
    type: rollup
    function: count
    over: purchase.campaign
  words:
    type: rollup
    function: sum
    over: purchase.customer
    field: title
  no_field:
    type: rollup
    function: avg
    over: purchase.customer
  bad_filter:
    type: rollup
    function: count
    over: purchase.customer
    filter: status = 3
  recent:
    type: rollup
    function: count
    over: purchase.customer
    filter: ordered_on < today()
  dollars:
    type: rollup
    function: sum
    over: purchase.customer
    field: anything
"""
ORDER = """\
kind: entity
name: purchase
fields:
  title:
    type: text
  customer:
    type: reference
    target: customer
  campaign:
    type: reference
    target: campaign
  status:
    type: choice
    options: [{key: open}]
  ordered_on:
    type: date
  anything:
    type: currency
"""
CAMPAIGN = """\
kind: entity
name: campaign
fields:
  name:
    type: text
"""


def test_bad_definitions_are_refused_at_their_file_and_line(tmp_path: Path) -> None:
    pack = write_files_pack(tmp_path, {"entities/customer.yaml": BAD, "entities/purchase.yaml": ORDER,
                                       "entities/campaign.yaml": CAMPAIGN}, name="shop", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    where = "entities/customer.yaml"
    output = " ".join(result.output.split())
    assert f"{where}:6:3: fields.lost: over: 'invoice' is not an entity" in output
    assert (f"{where}:10:3: fields.wrong_way: over: purchase.campaign does not point to customer "
            "(it is a reference field to campaign)") in output
    assert (f"{where}:14:3: fields.words: field: sum needs a number field, and purchase.title "
            "is a text field") in output
    assert f"{where}:19:3: fields.no_field: field: avg needs the child field it aggregates" in output
    assert f"{where}:23:3: fields.bad_filter: filter: " in output and "(line 1, column" in output
    assert (f"{where}:28:3: fields.recent: filter: 'ordered_on < today()' depends on who reads "
            "it or when") in output
    assert f"{where}:33:3: fields.dollars: field: purchase.anything allows several currencies" in output


def test_unknown_settings_and_missing_function_are_refused(tmp_path: Path) -> None:
    pack = write_pack(tmp_path, "shop", "1.0.0", entities(
        odd={"type": "rollup", "over": "purchase.customer", "target": "order"}))
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "function" in result.output and "target" in result.output


def test_good_definitions_validate(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["pack", "validate", str(shop_pack(tmp_path))], catch_exceptions=False)
    assert result.exit_code == 0, result.output


# --- the service ------------------------------------------------------------------------------
@pytest.fixture
def shop(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> RecordsService:
    install(engine, registry, shop_pack(tmp_path))
    return records_service(engine, plugin_manager())


def values(records: RecordsService, customer: int) -> dict[str, Any]:
    return records.get("customer", customer).values


def expected(records: RecordsService, customer: int) -> dict[str, Any]:
    """The roll-ups of `customer` computed here, in Python, from its orders."""
    orders = [r.values for r in records.page("purchase").records if r.values["customer"] == customer]
    amounts = [o["amount"] for o in orders if o["amount"] is not None]
    qtys = [o["qty"] for o in orders if o["qty"] is not None]
    dates = [o["ordered_on"] for o in orders if o["ordered_on"] is not None]
    prices = [o["price"]["amount"] for o in orders if o["price"] is not None]

    def average(numbers: list[Any]) -> Decimal | None:
        if not numbers:
            return None
        return (Decimal(sum(numbers)) / len(numbers)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return {
        "orders": len(orders),
        "open_orders": sum(1 for o in orders if o["status"] == "open" and o["campaign"] is not None),
        "total": sum(amounts, Decimal(0)), "units": sum(qtys), "biggest": max(amounts, default=None),
        "first_order": min(dates, default=None), "average": average(amounts), "average_qty": average(qtys),
        "revenue": {"amount": sum(prices, Decimal(0)), "currency": "EUR"},
    }


def stored(records: RecordsService, customer: int) -> dict[str, Any]:
    got = values(records, customer)
    return {name: got[name] for name in ROLLUPS}


def test_every_kind_of_child_write_keeps_the_rollups_exact(shop: RecordsService) -> None:
    records = shop
    ann = records.create("customer", {"name": "Ann"}).id
    bob = records.create("customer", {"name": "Bob"}).id
    assert stored(records, ann) == expected(records, ann)
    assert values(records, ann)["orders"] == 0 and values(records, ann)["total"] == Decimal(0)
    assert values(records, ann)["biggest"] is None
    spring = records.create("campaign", {"name": "Spring"}).id
    first = records.create("purchase", {"customer": ann, "amount": "10.50", "qty": 2, "status": "open",
                                     "campaign": spring, "ordered_on": "2026-03-01",
                                     "price": {"amount": "5", "currency": "EUR"}})
    records.create_many("purchase", [
        {"customer": ann, "amount": "1.25", "qty": 1, "status": "won", "ordered_on": "2026-01-15"},
        {"customer": bob, "amount": "100", "qty": 5, "status": "open", "campaign": spring},
        {"customer": ann, "amount": "2", "status": "open", "price": "7.25 EUR"}])
    assert stored(records, ann) == expected(records, ann)
    assert values(records, ann)["orders"] == 3 and values(records, ann)["open_orders"] == 1
    assert values(records, ann)["total"] == Decimal("13.75")
    assert values(records, ann)["average"] == Decimal("4.58")  # 13.75 / 3, half up
    assert values(records, ann)["revenue"] == {"amount": Decimal("12.25"), "currency": "EUR"}
    assert values(records, ann)["first_order"].isoformat() == "2026-01-15"
    assert stored(records, bob) == expected(records, bob)

    # An update of an aggregated field, of a field the filter reads, and a re-parent.
    records.update("purchase", first.id, {"amount": "20"}, version=first.version)
    assert values(records, ann)["total"] == Decimal("23.25")
    moved = records.update("purchase", first.id, {"customer": bob}, version=first.version + 1)
    assert stored(records, ann) == expected(records, ann) and stored(records, bob) == expected(records, bob)
    assert values(records, ann)["orders"] == 2 and values(records, bob)["orders"] == 2
    assert values(records, bob)["open_orders"] == 2
    # A delete's set-null on another reference changes what the filter holds for.
    records.delete("campaign", spring)
    assert values(records, bob)["open_orders"] == 0
    assert stored(records, bob) == expected(records, bob)
    # A delete of a child, and of a parent whose children cascade.
    records.delete("purchase", moved.id)
    assert stored(records, bob) == expected(records, bob) and values(records, bob)["orders"] == 1
    records.delete("customer", ann)
    assert stored(records, bob) == expected(records, bob)


def test_a_refused_child_write_changes_no_rollup(shop: RecordsService) -> None:
    records = shop
    ann = records.create("customer", {"name": "Ann"}).id
    with pytest.raises(RecordError):
        records.create_many("purchase", [{"customer": ann, "amount": "1"}, {"customer": ann, "amount": "x"}])
    assert values(records, ann)["orders"] == 0


def test_two_concurrent_writers_both_count(engine: sa.Engine, shop: RecordsService) -> None:
    """A holds the parent's lock (its transaction is open); B adds a child of the same parent
    and must wait for A, then count A's child too."""
    records = shop
    ann = records.create("customer", {"name": "Ann"}).id
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time (BEGIN IMMEDIATE)")
    done = threading.Event()
    failure: list[BaseException] = []
    with engine.connect() as conn:
        transaction = conn.begin()
        bound = records.bound(conn)
        bound.create("purchase", {"customer": ann, "amount": "1"})

        def other() -> None:
            try:
                records_service(engine, plugin_manager()).create("purchase", {"customer": ann, "amount": "2"})
            except BaseException as error:  # reported by the main thread
                failure.append(error)
            finally:
                done.set()
        thread = threading.Thread(target=other)
        thread.start()
        with engine.connect() as watcher:  # wait until B waits for A's lock
            for _ in range(600):
                waiting = watcher.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()")).scalar_one()
                if waiting or done.wait(0.05):
                    break
        transaction.commit()
    thread.join(30)
    assert not failure, failure
    assert values(records, ann)["orders"] == 2
    assert values(records, ann)["total"] == Decimal(3)


# --- the schema: a column, computed when added -------------------------------------------------
def test_a_rollup_added_later_counts_the_existing_children(engine: sa.Engine, registry: FieldTypeRegistry,
                                                           tmp_path: Path) -> None:
    install(engine, registry, shop_pack(tmp_path, orders=ROLLUPS["orders"]))
    records = records_service(engine, plugin_manager())
    ann = records.create("customer", {"name": "Ann"}).id
    records.create_many("purchase", [{"customer": ann, "amount": "3"}, {"customer": ann, "amount": "4.5"}])
    later = plan(engine, registry, shop_pack(tmp_path, "2.0.0", **ROLLUPS))
    summaries = [c.summary for c in later.plan.changes]
    assert "add rollup field customer.total" in summaries
    assert any(s.startswith("compute roll-up customer.total (sum over purchase.customer) for the 1 existing")
               for s in summaries)
    install(engine, registry, shop_pack(tmp_path, "2.0.0", **ROLLUPS))
    records = records_service(engine, plugin_manager())
    assert values(records, ann)["total"] == Decimal("7.50")
    assert stored(records, ann) == expected(records, ann)
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("x_customer")}
    assert isinstance(columns["orders"], sa.BigInteger)
    assert isinstance(columns["first_order"], sa.Date)


def test_recompute_rebuilds_and_reports_the_records_changed(engine: sa.Engine, db_url: str,
                                                            shop: RecordsService) -> None:
    records = shop
    ann = records.create("customer", {"name": "Ann"}).id
    bob = records.create("customer", {"name": "Bob"}).id
    records.create("purchase", {"customer": ann, "amount": "3"})
    with engine.begin() as conn:  # SQL of one's own, bypassing the records service
        conn.execute(sa.text("UPDATE x_customer SET orders = 9"))
    result = CliRunner().invoke(main, ["recompute", "customer.orders", "customer.total",
                                       "--database", db_url])
    assert result.exit_code == 0, result.output
    assert "customer.orders: 2 record(s) changed" in result.output
    assert "customer.total: 0 record(s) changed" in result.output
    assert values(records, ann)["orders"] == 1 and values(records, bob)["orders"] == 0
    again = CliRunner().invoke(main, ["recompute", "customer.orders", "--database", db_url, "--json"])
    assert '"customer.orders": 0' in again.output
    refused = CliRunner().invoke(main, ["recompute", "customer.name", "--database", db_url])
    assert refused.exit_code != 0 and "is not a roll-up field" in refused.output


# --- API, forms, pages, rules, OpenAPI, CSV ------------------------------------------------------
@pytest.fixture
def http(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Iterator[TestClient]:
    install(engine, registry, shop_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as client:
        yield client
    app.state.engine.dispose()


def test_api_shows_rollups_and_refuses_writing_them(http: TestClient) -> None:
    made = http.post("/api/v1/customer", json={"name": "Ann"})
    assert made.status_code == 201, made.text
    ann = made.json()["id"]
    assert made.json()["orders"] == 0 and made.json()["total"] == "0.00"
    bulk = http.post("/api/v1/purchase", json=[{"customer": ann, "amount": "2.50", "price": "3 EUR"},
                                            {"customer": ann, "amount": "1"}])
    assert bulk.status_code == 201, bulk.text
    got = http.get(f"/api/v1/customer/{ann}").json()
    assert (got["orders"], got["total"], got["average"]) == (2, "3.50", "1.75")
    assert got["revenue"] == {"amount": "3.00", "currency": "EUR"}
    refused = http.post("/api/v1/customer", json={"name": "Bob", "orders": 3})
    assert refused.status_code == 422 and refused.json()["errors"]["orders"]
    patched = http.patch(f"/api/v1/customer/{ann}", json={"total": "1", "version": got["version"]})
    assert patched.status_code == 422 and patched.json()["errors"]["total"]
    assert http.get(f"/api/v1/customer/{ann}").json()["total"] == "3.50"


def test_rules_filter_on_rollups(http: TestClient) -> None:
    ids = []
    for name, count in (("A", 0), ("B", 2), ("C", 4)):
        made = http.post("/api/v1/customer", json={"name": name}).json()["id"]
        ids.append(made)
        if count:
            bulk = http.post("/api/v1/purchase", json=[{"customer": made, "amount": "1"}] * count)
            assert bulk.status_code == 201

    def found(**params: str) -> list[int]:
        response = http.get("/api/v1/customer", params=params)
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json()["data"])
    assert found(filter="orders > 3") == [ids[2]]
    assert found(filter="orders >= 2 and total < 3") == [ids[1]]
    assert found(filter="biggest is blank") == [ids[0]]
    assert found(orders="2") == [ids[1]]
    assert [r["id"] for r in http.get("/api/v1/customer", params={"sort": "-orders"}).json()["data"]] == \
        [ids[2], ids[1], ids[0]]


def test_openapi_marks_rollups_read_only(http: TestClient) -> None:
    schemas = http.get("/api/v1/openapi.json").json()["components"]["schemas"]
    shown = schemas["Customer"]["properties"]
    assert shown["orders"].get("readOnly") is True
    assert {"type": "integer"} in shown["orders"]["anyOf"]
    for name in ("CustomerInput", "CustomerPatch"):
        assert "orders" not in schemas[name]["properties"] and "total" not in schemas[name]["properties"]


def test_pages_forms_and_csv(http: TestClient) -> None:
    ann = http.post("/api/v1/customer", json={"name": "Ann"}).json()["id"]
    http.post("/api/v1/purchase", json=[{"customer": ann, "amount": "1234.5", "ordered_on": "2026-02-03"}])
    page = http.get(f"/e/customer/{ann}").text
    assert "1,234.5" in page and "2026" in page
    form = http.get(f"/e/customer/{ann}/edit").text
    assert 'name="orders"' not in form and 'name="total"' not in form
    saved = http.post("/e/customer/new", data={"name": "Bob", "orders": "7"}, follow_redirects=False)
    assert saved.status_code in (303, 422)
    if saved.status_code == 303:  # a form never sets a roll-up
        bob = int(saved.headers["location"].rstrip("/").split("/")[-1])
        assert http.get(f"/api/v1/customer/{bob}").json()["orders"] == 0
    rows = list(csv.DictReader(io.StringIO(http.get("/e/customer/export.csv?sort=name").text)))
    assert rows[0]["Orders"] == "1" and rows[0]["Total"] == "1,234.5"


# --- property test: random child changes against a fresh aggregate -----------------------------
steps = st.lists(st.one_of(
    st.tuples(st.just("create"), st.integers(0, 2), st.integers(-500, 500), st.sampled_from(["open", "won"]),
              st.booleans()),
    st.tuples(st.just("update"), st.integers(0, 20), st.integers(-500, 500),
              st.sampled_from(["open", "lost"]), st.booleans()),
    st.tuples(st.just("move"), st.integers(0, 20), st.integers(0, 2), st.just(""), st.booleans()),
    st.tuples(st.just("delete"), st.integers(0, 20), st.just(0), st.just(""), st.booleans()),
    st.tuples(st.just("bulk"), st.integers(0, 2), st.integers(-50, 50), st.just("open"), st.booleans()),
    st.tuples(st.just("drop campaign"), st.just(0), st.just(0), st.just(""), st.booleans()),
), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sequence=steps)
def test_random_child_changes_keep_stored_rollups_equal_to_a_fresh_aggregate(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path_factory: pytest.TempPathFactory,
        sequence: list[tuple[str, int, int, str, bool]]) -> None:
    if not sa.inspect(engine).has_table("x_customer"):  # once per database, not per example
        install(engine, registry, shop_pack(tmp_path_factory.mktemp("shop")))
    records = records_service(engine, plugin_manager())
    customers = [records.create("customer", {"name": f"C{i}"}).id for i in range(3)]
    campaign = records.create("campaign", {"name": "Now"}).id
    orders: list[int] = []
    for action, a, b, status, flag in sequence:
        cents = Decimal(b) / 100
        try:
            if action == "create":
                orders.append(records.create("purchase", {
                    "customer": customers[a], "amount": str(cents), "qty": b if flag else None,
                    "status": status, "campaign": campaign if flag else None,
                    "price": {"amount": str(abs(cents)), "currency": "EUR"}}).id)
            elif action == "bulk":
                orders += [r.id for r in records.create_many("purchase", [
                    {"customer": customers[a], "amount": str(cents), "qty": b, "status": status,
                     "campaign": campaign}, {"customer": customers[(a + 1) % 3], "ordered_on": "2026-01-0" +
                                             str(1 + abs(b) % 9)}])]
            elif action == "drop campaign":
                records.delete("campaign", campaign)
                campaign = records.create("campaign", {"name": "Next"}).id
            elif orders:
                order = records.get("purchase", orders[a % len(orders)])
                if action == "update":
                    records.update("purchase", order.id, {"amount": str(cents), "status": status,
                                                       "qty": None if flag else b}, version=order.version)
                elif action == "move":
                    records.update("purchase", order.id, {"customer": customers[b] if flag else None},
                                   version=order.version)
                else:
                    records.delete("purchase", order.id)
                    orders.remove(order.id)
        except RecordError:
            pass  # a refused write changes nothing, roll-ups included
        for customer in customers:
            assert stored(records, customer) == expected(records, customer), (action, sequence)
    with engine.begin() as conn:  # the next example starts from nothing
        for table in ("x_purchase", "x_customer", "x_campaign"):
            conn.execute(sa.text(f"DELETE FROM {table}"))


def test_a_redefined_rollup_gets_its_new_column_type_and_is_computed_again(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, shop_pack(tmp_path, figure=ROLLUPS["orders"]))
    records = records_service(engine, plugin_manager())
    ann = records.create("customer", {"name": "Ann"}).id
    records.create_many("purchase", [{"customer": ann, "amount": "3.25"}, {"customer": ann, "amount": "4"}])
    assert values(records, ann)["figure"] == 2
    redefined = plan(engine, registry, shop_pack(tmp_path, "2.0.0", figure=ROLLUPS["total"]))
    assert not redefined.plan.blocked
    assert any(c.action == "compute rollup" and c.field == "figure" for c in redefined.plan.changes)
    install(engine, registry, shop_pack(tmp_path, "2.0.0", figure=ROLLUPS["total"]))
    records = records_service(engine, plugin_manager())
    assert values(records, ann)["figure"] == Decimal("7.25")
    records.create("purchase", {"customer": ann, "amount": "1"})
    assert values(records, ann)["figure"] == Decimal("8.25")
