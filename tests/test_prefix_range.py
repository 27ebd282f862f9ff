"""`starts_with` as an index range (records/rulesql.py `_prefix_range`) where the database
compares text by code point: SQLite, and PostgreSQL with a C or C.UTF-8 collation
(storage/engine.py `text_in_code_point_order`). The range must never change the answer,
whatever the prefix, and must not be used under a collation where it would."""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records.listing import ListQuery
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.engine import create_engine, text_in_code_point_order
from slatecrm.platform.storage.runtime import RuntimeHolder

from .conftest import DROPS, POSTGRES_URL, postgres_problem
from .packs import install, write_pack

NAMES = ["Acme", "Acmf", "acme", "Ac", "ACME", "Acme\U0010ffff", "\U0010ffff", "\U0010ffff\U0010ffff",
         "\U0010ffffa", "Zeta", "Émile", "Emile", "école", "Ébène", "é", "e\u0301cole", "50%", "50% off",
         "5000", "50_x", "50x", "a_b", "axb", "%", "_", "ÿ", "ÿz", "\u0100", "\ud7ff", "\ud7ffa", "\ue000",
         "\uffff", "\U00010000", "日本", "日本語", "日", "a b", "ab", "a", "abd", "Abc", "Abd"]
PREFIXES = ["Acm", "Acme", "acm", "Ac", "A", "a", "Acme\U0010ffff", "\U0010ffff", "\U0010ffff\U0010ffff",
            "É", "é", "e", "E", "50%", "50_", "%", "_", "a_", "ÿ", "\ud7ff", "\uffff", "日本", "Abc", "",
            "zzz"]


def make_items(engine: sa.Engine, registry: FieldTypeRegistry, root: Path) -> RecordsService:
    install(engine, registry, write_pack(root, "kit", "1.0.0", {"item": {"title_field": "name", "fields": {
        "name": {"type": "text", "required": True, "indexed": True}}}}))
    records = RecordsService(engine, RuntimeHolder(engine, registry), registry)
    records.create_many("item", [{"name": name} for name in NAMES])
    return records


def starting(records: RecordsService, prefix: str) -> list[str]:
    query = ListQuery(sort=("name",), expression=f'name starts_with "{prefix}"', limit=100)
    page = records.page("item", query)
    return [r.values["name"] for r in page.records]


def test_the_range_never_changes_what_starts_with_selects(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    records = make_items(engine, registry, tmp_path)
    assert text_in_code_point_order(engine)  # SQLite; the tests' PostgreSQL cluster is C.UTF-8
    for prefix in PREFIXES:
        # Sorted by name in code point order, as Python sorts: the database's own order here.
        assert starting(records, prefix) == sorted(n for n in NAMES if n.startswith(prefix)), prefix


def test_the_database_collation_orders_text_by_code_point(engine: sa.Engine) -> None:
    """What `text_in_code_point_order` claims for C.UTF-8 (and SQLite's BINARY), checked:
    the database sorts a sample of every plane's code points, alone and in pairs, as
    Python does (by code point)."""
    pick = random.Random(11)
    points = [p for p in range(1, 0x110000, 97) if not 0xD800 <= p < 0xE000]
    points += [0xD7FF, 0xE000, 0xFFFF, 0x10FFFF]
    pairs = {chr(pick.choice(points)) + chr(pick.choice(points)) for _ in range(3000)}
    texts = sorted({chr(p) for p in points} | pairs | {"a", "A", "b", "B", "é", "e\u0301", ""})
    shuffled = texts[:]
    pick.shuffle(shuffled)
    sample = sa.Table("slate_test_order", sa.MetaData(), sa.Column("s", sa.String, nullable=False),
                      prefixes=["TEMPORARY"])
    with engine.begin() as conn:
        sample.create(conn)
        conn.execute(sample.insert(), [{"s": s} for s in shuffled])
        ordered = list(conn.execute(sa.select(sample.c.s).order_by(sample.c.s)).scalars())
    assert ordered == texts


def explained(engine: sa.Engine, records: RecordsService, prefix: str) -> str:
    """The plan of the list page's SELECT, with sequential scans off: the table is tiny,
    so only the shape (which conditions the index takes) is under test."""
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "substr" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", keep)
    try:
        starting(records, prefix)
    finally:
        sa.event.remove(engine, "before_cursor_execute", keep)
    statement, parameters = seen[0]
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            return str(conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all())
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())


def test_starts_with_is_an_index_range(engine: sa.Engine, registry: FieldTypeRegistry,
                                       tmp_path: Path) -> None:
    records = make_items(engine, registry, tmp_path)
    plan = explained(engine, records, "Acm")
    if engine.dialect.name == "sqlite":
        assert "ix_x_item_name (name>? AND name<?)" in plan, plan
    else:
        assert re.search(r"Index Cond: .*name.* >= 'Acm'.* AND .*name.* < 'Acn'", plan), plan


@pytest.fixture
def icu_engine() -> Iterator[sa.Engine]:
    """A PostgreSQL database whose default collation is ICU's English one: 'Abc' < 'abd' < 'Abd'."""
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    name = f"slatecrm_test_icu_{secrets.token_hex(6)}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu "
                                 "ICU_LOCALE 'en' LOCALE 'C.UTF-8'")
    except sa.exc.DBAPIError as error:  # a server built without ICU, or older than 15
        admin.dispose()
        pytest.skip(f"no ICU database on this server: {error.orig}")
    engine = create_engine(sa.engine.make_url(POSTGRES_URL).set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        admin.dispose()
        DROPS.drop(name)  # with the run's other drops, off this test's path (never reused: its collation)


@pytest.mark.postgres
def test_under_a_language_collation_starts_with_keeps_its_meaning_without_the_range(
        icu_engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    with icu_engine.connect() as conn:  # where a range 'Abc' ≤ name < 'Abd' would keep 'abd'
        assert conn.execute(sa.text("SELECT 'Abc' < 'abd' AND 'abd' < 'Abd'")).scalar() is True
    records = make_items(icu_engine, registry, tmp_path)
    assert not text_in_code_point_order(icu_engine)
    for prefix in PREFIXES:
        assert sorted(starting(records, prefix)) == sorted(n for n in NAMES if n.startswith(prefix)), prefix
    assert "Index Cond" not in explained(icu_engine, records, "Abc")
