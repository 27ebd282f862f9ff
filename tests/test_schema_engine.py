"""The live schema engine on SQLite and PostgreSQL: plan, apply, rename, retire, retype."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import installer
from slatecrm.platform.storage import revisions
from slatecrm.platform.storage.runtime import build_runtime

from .dbstate import drift, platform_rows, schema_snapshot, table_identity
from .packs import install, plan, write_pack

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def vehicle(title: str = "plate", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "plate": {"type": "text", "required": True},
        "mileage": {"type": "text"},
        "colour": {"type": "choice", "options": [{"key": "red"}, {"key": "blue"}]},
    }
    base.update(fields)
    return {"vehicle": {"title_field": title, "fields": {k: v for k, v in base.items() if v}}}


def rows(engine: sa.Engine, table: str, *columns: str) -> list[tuple[Any, ...]]:
    t = sa.table(table, *[sa.column(c) for c in ("id", *columns)])
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c.id)).all()]


def insert(engine: sa.Engine, registry: FieldTypeRegistry, entity: str,
           values: list[dict[str, Any]]) -> None:
    """Insert through the current revision's tables (the records service comes later)."""
    with engine.begin() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        table = build_runtime(number, metamodel, registry).tables[entity]
        keys = {k for v in values for k in v}
        conn.execute(table.insert(), [{"created_at": NOW, "updated_at": NOW,
                                       **dict.fromkeys(keys), **v} for v in values])


def test_default_packs_create_their_tables(engine: sa.Engine, registry: FieldTypeRegistry) -> None:
    number = install(engine, registry, "crm-core", "sales")
    assert number == 1
    snapshot = schema_snapshot(engine)
    for table in ("x_account", "x_contact", "x_activity", "x_lead", "x_opportunity"):
        assert table in snapshot
    columns = [c[0] for c in snapshot["x_opportunity"]["columns"]]
    assert columns[:7] == ["id", "created_at", "updated_at", "created_by", "updated_by", "owner", "version"]
    assert {"amount", "amount__currency", "stage", "account", "close_date"} <= set(columns)
    fks = snapshot["x_activity"]["foreign_keys"]
    assert (("account",), "x_account", "CASCADE") in fks
    assert (("lead",), "x_lead", "CASCADE") in fks  # added by the sales pack's extension
    index_columns = {i[1] for i in snapshot["x_opportunity"]["indexes"]}
    tie = ("id",) if engine.dialect.name == "postgresql" else ()  # tables.IndexSpec.columns_on
    assert {("stage", *tie), ("account", *tie), ("close_date", *tie), ("owner", *tie)} <= index_columns
    # A contact's e-mails are no longer unique (crm-core 0.1.1); a contact's role on an
    # opportunity is: one link per (opportunity, contact).
    assert [i for i in snapshot["x_contact"]["indexes"] if i[2]] == []
    unique = [i for i in snapshot["x_opportunity_contact"]["indexes"] if i[2]]
    assert [i[1] for i in unique] == [("opportunity", "contact")]
    assert drift(engine) == []
    with engine.connect() as conn:
        history = revisions.history(conn)
    assert [r.source for r in history] == ["install crm-core 0.1.2, install sales 0.2.6"]


def test_adding_fields_to_100000_rows_keeps_them_and_does_not_rebuild(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", vehicle()))
    insert(engine, registry, "vehicle", [{"plate": f"P-{i}", "mileage": str(i)} for i in range(100_000)])
    before = table_identity(engine, "x_vehicle")
    upgrade = write_pack(tmp_path, "fleet", "1.1.0", vehicle(
        vin={"type": "text", "indexed": False},
        seats={"type": "integer", "default": 5},
        status={"type": "choice", "default": "active", "options": [{"key": "active"}, {"key": "sold"}]},
        bought={"type": "date"},
        price={"type": "decimal", "precision": 12, "scale": 2, "default": "9.99"},
    ))
    installation = plan(engine, registry, upgrade)
    # vin is searched, but NULL in every row: the search index is redefined, not refilled.
    assert [c.action for c in installation.plan.changes] == [*["add column"] * 5, "redefine search index"]
    assert not any(c.rewrites_table for c in installation.plan.changes)
    assert "the 100,000 existing rows get the default '5'" in installation.plan.changes[1].summary
    installer.install(engine, installation, author="test")
    assert table_identity(engine, "x_vehicle") == before
    with engine.connect() as conn:
        table = build_runtime(*revisions.current_metamodel(conn), registry).tables["vehicle"]
        count, seats, status, price = conn.execute(sa.select(
            sa.func.count(), sa.func.min(table.c.seats), sa.func.max(table.c.status),
            sa.func.min(table.c.price))).one()
        last = conn.execute(sa.select(table.c.plate, table.c.mileage).where(table.c.id == 100_000)).one()
    assert (count, seats, status, price) == (100_000, 5, "active", Decimal("9.99"))
    assert tuple(last) == ("P-99999", "99999")
    assert drift(engine) == []


def test_retype_refused_when_values_do_not_convert(engine: sa.Engine, registry: FieldTypeRegistry,
                                                    tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", vehicle()))
    values = [str(i * 10) for i in range(40)]
    values[6], values[18], values[32] = "12 km", "lots", "1e3"
    insert(engine, registry, "vehicle", [{"plate": f"P{i}", "mileage": v} for i, v in enumerate(values)])
    before = schema_snapshot(engine), platform_rows(engine)
    upgrade = write_pack(tmp_path, "fleet", "2.0.0", vehicle(mileage={"type": "integer"}))
    installation = plan(engine, registry, upgrade)
    assert installation.plan.blocked
    risk = next(c for c in installation.plan.changes if c.action == "retype column").risks[0]
    assert risk.blocking
    assert risk.message.startswith("retype mileage text → integer: 3 of 40 rows do not convert")
    assert risk.message.endswith("ids 7, 19, 33")
    assert "'12 km' is not a whole number" in risk.message
    with pytest.raises(Exception):  # noqa: B017 - apply re-checks every value itself
        installer.install(engine, installation, author="test")
    assert (schema_snapshot(engine), platform_rows(engine)) == before


def test_retype_converts_every_value(engine: sa.Engine, registry: FieldTypeRegistry,
                                     tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", vehicle(
        price={"type": "decimal", "precision": 10, "scale": 2})))
    insert(engine, registry, "vehicle", [
        {"plate": "A", "mileage": " 1200 ", "price": Decimal("10.25")},
        {"plate": "B", "mileage": None, "price": Decimal("-3.10")},
        {"plate": "C", "mileage": "7", "price": None},
    ])
    install(engine, registry, write_pack(tmp_path, "fleet", "2.0.0", vehicle(
        mileage={"type": "integer", "indexed": True},
        price={"type": "decimal", "precision": 12, "scale": 4})))
    assert rows(engine, "x_vehicle", "mileage") == [(1, 1200), (2, None), (3, 7)]
    with engine.connect() as conn:
        table = build_runtime(*revisions.current_metamodel(conn), registry).tables["vehicle"]
        prices = conn.execute(sa.select(table.c.price).order_by(table.c.id)).scalars().all()
        biggest = conn.execute(sa.select(table.c.id).where(table.c.mileage > 100)).scalars().all()
    assert prices == [Decimal("10.2500"), Decimal("-3.1000"), None]
    assert biggest == [1]  # compared as numbers now, not as text
    assert drift(engine) == []


def test_failure_after_second_ddl_statement_changes_nothing(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", vehicle()))
    insert(engine, registry, "vehicle", [{"plate": "A", "mileage": "10"}])
    before = schema_snapshot(engine), platform_rows(engine)
    upgrade = write_pack(tmp_path, "fleet", "1.1.0", vehicle(
        vin={"type": "text", "unique": True}, seats={"type": "integer"},
        mileage={"type": "integer"}, colour=None,
    ), extensions=None)
    statements: list[str] = []

    def fail_on_third(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("ALTER", "CREATE", "DROP")):
            statements.append(statement)
            if len(statements) == 3:
                raise RuntimeError("injected failure")

    installation = plan(engine, registry, upgrade)
    assert len([s for c in installation.plan.changes for s in c.sql if not s.startswith("--")]) > 3
    sa.event.listen(engine, "before_cursor_execute", fail_on_third)
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            installer.install(engine, installation, author="test")
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail_on_third)
    assert len(statements) == 3
    assert (schema_snapshot(engine), platform_rows(engine)) == before
    assert rows(engine, "x_vehicle", "plate", "mileage") == [(1, "A", "10")]
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    installer.install(engine, plan(engine, registry, upgrade), author="test")  # still applies
    assert rows(engine, "x_vehicle", "mileage", "vin") == [(1, 10, None)]


def test_rename_keeps_data(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", vehicle()))
    insert(engine, registry, "vehicle", [{"plate": "A", "mileage": "10"}, {"plate": "B"}])
    identity = table_identity(engine, "x_vehicle")
    upgrade = write_pack(tmp_path, "fleet", "1.1.0", vehicle(
        title="registration", plate=None,
        registration={"type": "text", "required": True, "renamed_from": "plate"}))
    installation = plan(engine, registry, upgrade)
    # The search index keeps its entries (the same words); PostgreSQL's trigger names the
    # column, so it is suspended around the rename.
    suspend = [] if engine.dialect.name == "sqlite" else ["suspend search index"]
    assert [c.action for c in installation.plan.schema_changes] == [
        *suspend, "rename column", "redefine search index"]
    assert re.search(r"RENAME (COLUMN )?plate TO registration",
                     installation.plan.schema_changes[len(suspend)].sql[0])
    installer.install(engine, installation, author="test")
    assert rows(engine, "x_vehicle", "registration", "mileage") == [(1, "A", "10"), (2, "B", None)]
    assert table_identity(engine, "x_vehicle") == identity
    assert drift(engine) == []


def test_retired_field_keeps_its_data_and_gets_it_back(engine: sa.Engine, registry: FieldTypeRegistry,
                                                      tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", vehicle()))
    insert(engine, registry, "vehicle", [{"plate": "A", "mileage": "10", "colour": "red"}])
    install(engine, registry, write_pack(tmp_path, "fleet", "1.1.0", vehicle(mileage=None, colour=None)))
    with engine.connect() as conn:
        metamodel = revisions.current_metamodel(conn)[1]
    entity = metamodel.entity("vehicle")
    assert entity is not None
    assert [f.name for f in entity.active_fields] == ["plate"]
    assert {f.name for f in entity.fields if f.retired} == {"mileage", "colour"}
    assert rows(engine, "x_vehicle", "mileage", "colour") == [(1, "10", "red")]  # column kept
    insert(engine, registry, "vehicle", [{"plate": "B"}])
    installation = plan(engine, registry, write_pack(tmp_path, "fleet", "1.2.0", vehicle(colour=None)))
    assert [c.action for c in installation.plan.changes] == [
        "drop search index", "restore column", "add search index"]
    installer.install(engine, installation, author="test")
    assert rows(engine, "x_vehicle", "plate", "mileage") == [(1, "A", "10"), (2, "B", None)]
    assert drift(engine) == []


def test_purge_drops_a_retired_field_for_good(engine: sa.Engine, registry: FieldTypeRegistry,
                                              tmp_path: Path) -> None:
    install(engine, registry, "crm-core")
    insert(engine, registry, "account", [{"name": "Acme"}])
    insert(engine, registry, "contact", [{"last_name": "Doe", "account": 1}])
    insert(engine, registry, "activity", [{"subject": "Call", "activity_type": "call",
                                           "status": "not_started", "account": 1, "contact": 1}])
    core = installer.default_config_dir() / "crm-core"
    trimmed = tmp_path / "crm-core"
    import shutil

    shutil.copytree(core, trimmed)
    text = (trimmed / "entities" / "activity.yaml").read_text()
    (trimmed / "entities" / "activity.yaml").write_text(text.replace("  contact:\n    type: reference\n"
                                                                     "    target: contact\n"
                                                                     "    on_delete: set_null\n", ""))
    pack_file = trimmed / "pack.yaml"
    pack_file.write_text(pack_file.read_text().replace("version: 0.1.2", "version: 0.1.3", 1))
    install(engine, registry, trimmed)
    with pytest.raises(Exception, match="not a retired field"):
        plan(engine, registry, purge=(("activity", "subject"),))
    installation = plan(engine, registry, purge=(("activity", "contact"),))
    # SQLite rebuilds the table to drop a reference, which loses the search index's triggers.
    rebuilt = ["drop search index", "purge column", "add search index"]
    assert [c.action for c in installation.plan.changes] == (
        rebuilt if engine.dialect.name == "sqlite" else ["purge column"])
    purge = next(c for c in installation.plan.changes if c.action == "purge column")
    assert "purge deletes the values of contact in 1 rows" in purge.risks[0].message
    installer.install(engine, installation, author="test")
    columns = [c[0] for c in schema_snapshot(engine)["x_activity"]["columns"]]
    assert "contact" not in columns
    assert rows(engine, "x_activity", "subject", "account") == [(1, "Call", 1)]
    assert drift(engine) == []


def test_rebuilding_a_parent_table_does_not_cascade(engine: sa.Engine, registry: FieldTypeRegistry,
                                                    tmp_path: Path) -> None:
    """Retyping a reference rebuilds the table on SQLite; with foreign keys on, dropping the
    old table would delete every child row through ON DELETE CASCADE."""
    install(engine, registry, "crm-core")
    insert(engine, registry, "account", [{"name": "Parent"}, {"name": "Child", "parent_account": 1}])
    insert(engine, registry, "activity", [{"subject": "Call", "activity_type": "call",
                                           "status": "not_started", "account": 2}])
    core = tmp_path / "crm-core"
    import shutil

    shutil.copytree(installer.default_config_dir() / "crm-core", core)
    account = core / "entities" / "account.yaml"
    account.write_text(account.read_text().replace(
        "    target: account\n    on_delete: set_null", "    target: account\n    on_delete: cascade"))
    pack_file = core / "pack.yaml"
    pack_file.write_text(pack_file.read_text().replace("version: 0.1.2", "version: 0.2.0", 1))
    installation = plan(engine, registry, core)
    retype = ["drop index", "retype column", "add index"]
    assert [c.action for c in installation.plan.changes] == (  # a rebuild loses the triggers
        ["drop search index", *retype, "add search index"] if engine.dialect.name == "sqlite" else retype)
    installer.install(engine, installation, author="test")
    assert rows(engine, "x_activity", "subject", "account") == [(1, "Call", 2)]
    assert rows(engine, "x_account", "name", "parent_account") == [(1, "Parent", None), (2, "Child", 1)]
    fks = schema_snapshot(engine)["x_account"]["foreign_keys"]
    assert (("parent_account",), "x_account", "CASCADE") in fks
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM x_account WHERE id = 1"))
    assert rows(engine, "x_account", "name") == []  # the new rule cascades
    assert drift(engine) == []


def test_making_a_field_unique_with_duplicates_is_refused(engine: sa.Engine, registry: FieldTypeRegistry,
                                                         tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", vehicle()))
    insert(engine, registry, "vehicle", [{"plate": "A"}, {"plate": "B"}, {"plate": "A"}])
    installation = plan(engine, registry, write_pack(tmp_path, "fleet", "1.1.0", vehicle(
        plate={"type": "text", "required": True, "unique": True})))
    assert installation.plan.blocked
    messages = [r.message for c in installation.plan.changes for r in c.risks]
    assert any("2 rows share a value with another row: ids 1, 3" in m for m in messages)


def test_a_stale_plan_is_refused(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", vehicle()))
    first = plan(engine, registry, write_pack(tmp_path, "fleet", "1.1.0", vehicle(a={"type": "text"})))
    second = plan(engine, registry, write_pack(tmp_path, "fleet", "1.2.0", vehicle(b={"type": "text"})))
    installer.install(engine, first, author="test")
    from slatecrm.platform.storage.apply import StaleSnapshot

    with pytest.raises(StaleSnapshot, match="plan again"):
        installer.install(engine, second, author="test")


def test_pack_versions_are_checked(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    from slatecrm.metamodel.errors import DefinitionError

    install(engine, registry, write_pack(tmp_path, "fleet", "1.1.0", vehicle()))
    with pytest.raises(DefinitionError, match=r"1\.0\.0 is older"):
        plan(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", vehicle()))
    changed = write_pack(tmp_path / "other", "fleet", "1.1.0", vehicle(x={"type": "text"}))
    with pytest.raises(DefinitionError, match="installed with other content"):
        plan(engine, registry, changed)
    assert plan(engine, registry, write_pack(tmp_path / "same", "fleet", "1.1.0", vehicle())).is_empty


def test_new_tables_referencing_each_other(engine: sa.Engine, registry: FieldTypeRegistry,
                                           tmp_path: Path) -> None:
    """A cycle of references between new tables (PostgreSQL adds the last key afterwards)."""
    pack = write_pack(tmp_path, "club", "1.0.0", {
        "member": {"fields": {"name": {"type": "text"},
                              "team": {"type": "reference", "target": "team", "on_delete": "set_null"}}},
        "team": {"fields": {"name": {"type": "text"},
                            "captain": {"type": "reference", "target": "member", "on_delete": "set_null"}}},
    })
    install(engine, registry, pack)
    snapshot = schema_snapshot(engine)
    assert (("team",), "x_team", "SET NULL") in snapshot["x_member"]["foreign_keys"]
    assert (("captain",), "x_member", "SET NULL") in snapshot["x_team"]["foreign_keys"]
    assert drift(engine) == []


def test_rebuild_keeps_on_delete_of_columns_added_later(engine: sa.Engine, registry: FieldTypeRegistry,
                                                        tmp_path: Path) -> None:
    """On SQLite a reference added by an upgrade carries its key inline; a later rebuild of
    the table (here for another field's retype) must keep its ON DELETE CASCADE."""
    dealer = {"type": "reference", "target": "garage", "on_delete": "set_null"}
    garage = {"garage": {"fields": {"name": {"type": "text"}}}}
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", {**vehicle(), **garage}))
    install(engine, registry, write_pack(tmp_path, "fleet", "1.1.0", {**vehicle(
        home={"type": "reference", "target": "garage", "on_delete": "cascade"}, dealer=dealer), **garage}))
    insert(engine, registry, "garage", [{"name": "North"}, {"name": "South"}, {"name": "East"}])
    insert(engine, registry, "vehicle", [{"plate": "A", "home": 1, "dealer": 3}, {"plate": "B", "home": 2}])
    install(engine, registry, write_pack(tmp_path, "fleet", "1.2.0", {**vehicle(
        home={"type": "reference", "target": "garage", "on_delete": "cascade"},
        dealer={**dealer, "on_delete": "restrict"}), **garage}))
    fks = schema_snapshot(engine)["x_vehicle"]["foreign_keys"]
    assert (("home",), "x_garage", "CASCADE") in fks
    assert (("dealer",), "x_garage", "RESTRICT") in fks
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM x_garage WHERE id = 1"))
    assert rows(engine, "x_vehicle", "plate", "home", "dealer") == [(2, "B", 2, None)]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_vehicle SET dealer = 3"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM x_garage WHERE id = 3"))
    assert drift(engine) == []


def test_retype_in_the_same_column_checks_and_rewrites_values(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    """text → choice and text → email keep their column, but not every text is a choice key
    or an e-mail address: labels become keys, domains lower case, and the rest is refused."""
    install(engine, registry, write_pack(tmp_path, "fleet", "1.0.0", vehicle(
        model={"type": "text"}, contact={"type": "text"})))
    insert(engine, registry, "vehicle", [
        {"plate": "A", "model": "Zoe", "contact": "Ann@Example.COM"},
        {"plate": "B", "model": "x308", "contact": None},
        {"plate": "C", "model": "308", "contact": "no address"},
    ])
    models = {"type": "choice", "options": [{"key": "zoe", "label": "Zoe"}, {"key": "x308", "label": "308"}]}
    refused = plan(engine, registry, write_pack(tmp_path, "fleet", "2.0.0", vehicle(
        model=models, contact={"type": "email"})))
    assert refused.plan.blocked
    [message] = [r.message for c in refused.plan.changes for r in c.risks]
    assert message.startswith("retype contact text → email: 1 of 2 rows do not convert")
    assert message.endswith("ids 3")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_vehicle SET contact = 'c@example.org' WHERE id = 3"))
    installation = plan(engine, registry, write_pack(tmp_path, "fleet", "2.0.1", vehicle(
        model=models, contact={"type": "email"})))
    summaries = [c.summary for c in installation.plan.changes]
    assert "retype vehicle.model text → choice in its column: 3 values to check, 2 to rewrite" in summaries
    installer.install(engine, installation, author="test")
    assert rows(engine, "x_vehicle", "model", "contact") == [
        (1, "zoe", "Ann@example.com"), (2, "x308", None), (3, "x308", "c@example.org")]
