"""A list's count within a time budget, right statistics on skewed data, and the pool's size
(issue 11, section 1), on SQLite and PostgreSQL.

The counts that run past their budget are made so by the data, not by the clock: a 1 ms
budget for a count that must read 65,536 rows (a scan that takes tens of milliseconds),
or an endless series, so no test waits on or asserts a time.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.platform.storage import statistics
from slatecrm.platform.storage.engine import create_engine, pool_options, scalar_within_budget

from .defaults import Client

#: Accounts with 7 employees, made first (the lowest ids): a first page of five finds them at once.
FEW = 10
#: 2^DOUBLINGS other accounts: what the count must read past.
DOUBLINGS = 16
LIST = "/api/v1/account?employees=7&sort=id&limit=5&count=true"


def _accounts(http: TestClient, engine: sa.Engine) -> None:
    """FEW accounts with 7 employees, then 2^DOUBLINGS with 1 (copied in SQL)."""
    for i in range(FEW):
        assert http.post("/api/v1/account", json={"name": f"Seven {i}", "employees": 7}).status_code == 201
    assert http.post("/api/v1/account", json={"name": "Acme", "employees": 1}).status_code == 201
    table = http.app.state.records.entity("account").table  # type: ignore[attr-defined]
    copied = [c.name for c in table.columns if c.name != "id"]
    with engine.begin() as conn:
        for _ in range(DOUBLINGS):
            conn.execute(table.insert().from_select(
                copied, sa.select(*[table.c[c] for c in copied]).where(table.c.employees == 1)))


def _statements(http: TestClient) -> list[str]:
    """The SQL the app's engine runs from now on."""
    seen: list[str] = []

    def _seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    sa.event.listen(http.app.state.engine, "before_cursor_execute", _seen)  # type: ignore[attr-defined]
    return seen


def test_a_count_past_its_budget_answers_not_known_and_pages_on(bounded: Client, engine: sa.Engine) -> None:
    http = bounded(count_budget_ms=1)
    _accounts(http, engine)
    first = http.get(LIST)
    assert first.status_code == 200, first.text[:500]
    body = first.json()
    assert body["count"] is None and body["count_capped"] is False
    assert [r["name"] for r in body["data"]] == [f"Seven {i}" for i in range(5)]
    if engine.dialect.name == "postgresql":  # the planner's guess, after the cancelled count
        assert isinstance(body["count_estimate"], int) and body["count_estimate"] >= 1
    else:
        assert body["count_estimate"] is None
    # The next page does not count again (it would run past the budget again): still not known.
    seen = _statements(http)
    second = http.get(body["next"]).json()
    assert [r["name"] for r in second["data"]] == [f"Seven {i}" for i in range(5, 10)]
    assert second["count"] is None
    assert not [s for s in seen if "count(" in s.lower()], seen
    # The HTML list says so, rather than a number.
    text = http.get("/e/account?employees=7&sort=id&limit=5").text
    said = re.search(r'id="list-count">([^<]*)<', text)
    assert said is not None
    if engine.dialect.name == "postgresql":
        assert re.fullmatch(r"about \d+ accounts", said.group(1)), said.group(1)
    else:
        assert said.group(1) == "many accounts"

    # A short first page is its own count, whatever the budget: no count runs.
    short = http.get("/api/v1/account?employees=7&limit=50&count=true").json()
    assert (short["count"], len(short["data"]), "count_estimate" in short) == (FEW, FEW, False)
    # The same list within a budget it can keep is counted exactly, and its cursor carries it.
    roomy = bounded(count_budget_ms=30_000)
    counted = roomy.get(LIST).json()
    assert (counted["count"], counted["count_capped"], "count_estimate" in counted) == (FEW, False, False)
    assert roomy.get(counted["next"]).json()["count"] == FEW


def _endless(conn: sa.Connection) -> sa.Select[Any]:
    """A count that would take minutes on either database."""
    if conn.dialect.name == "postgresql":
        return sa.select(sa.func.count()).select_from(sa.func.generate_series(1, 10**10))
    numbers = sa.select(sa.literal(1).label("n")).cte("numbers", recursive=True)
    numbers = numbers.union_all(sa.select(numbers.c.n + 1).where(numbers.c.n < 10**10))
    return sa.select(sa.func.count()).select_from(numbers)


def test_a_statement_past_its_budget_leaves_the_connection_and_transaction_usable(engine: sa.Engine) -> None:
    """Read connections are autocommit; a count may also run inside a transaction (a
    SAVEPOINT on PostgreSQL): either way the caller goes on, and no setting is left."""
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        before = conn.exec_driver_sql("SHOW statement_timeout").scalar() if postgres else None
        conn.commit()
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE slate_budget_probe (n INTEGER)"))
        assert scalar_within_budget(conn, _endless(conn), 1) is None
        conn.execute(sa.text("INSERT INTO slate_budget_probe VALUES (1)"))  # the transaction still stands
        assert scalar_within_budget(conn, sa.select(sa.func.count()).select_from(
            sa.table("slate_budget_probe")), 1_000) == 1
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT") if postgres else conn
        assert scalar_within_budget(conn, _endless(conn), 1) is None
        assert conn.execute(sa.text("SELECT n FROM slate_budget_probe")).scalar_one() == 1
        if postgres:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == before
        conn.exec_driver_sql("DROP TABLE slate_budget_probe")
        if conn.in_transaction():
            conn.commit()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_count_within_its_budget_keeps_the_connections_prepared_statements(engine: sa.Engine) -> None:
    """A read connection's statements are prepared after a few runs (psycopg), so PostgreSQL
    stops planning them on every request; psycopg forgets them all at a ROLLBACK, so the
    budget's transaction on an autocommit connection commits, its setting ending with it."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        before = conn.exec_driver_sql("SHOW statement_timeout").scalar()
        count = sa.select(sa.func.count()).select_from(sa.func.generate_series(1, 10).table_valued("n"))
        for _ in range(6):
            assert scalar_within_budget(conn, count, 1_000) == 10
        prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
        assert any("generate_series" in text for text in prepared), prepared
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == before


def test_skewed_data_gets_right_statistics(engine: sa.Engine) -> None:
    """20,000 rows: 15,000 of one status (first in the index's order), 4,000 and 1,000 of the
    others. A sample of the index's first rows recorded ~1,000 rows per status."""
    rows = [("a", 15_000), ("b", 4_000), ("c", 1_000)]
    meta = sa.MetaData()
    table = sa.Table("slate_skewed", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("status", sa.String(10), index=True))
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"status": status} for status, n in rows for _ in range(n)])
        assert statistics.analyze(engine, ["slate_skewed"]) == ["slate_skewed"]
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                stat = conn.exec_driver_sql(
                    "SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_slate_skewed_status'").scalar_one()
                total, per_value = map(int, stat.split()[:2])
                assert total == 20_000 and 20_000 / 3 / 2 <= per_value <= 20_000 / 3 * 2, stat
                assert conn.exec_driver_sql("PRAGMA analysis_limit").scalar() == 0  # nothing left set
            else:
                for status, n in rows:
                    where = sa.select(table.c.id).where(table.c.status == status)
                    guess = statistics.planner_rows(conn, where)
                    assert guess is not None and n / 2 <= guess <= n * 2, (status, guess)
    finally:
        meta.drop_all(engine)


def test_the_pool_is_sized_from_the_environment() -> None:
    assert pool_options({}) == {"pool_size": 20, "max_overflow": 10}
    assert pool_options({"SLATECRM_DB_POOL_SIZE": "8", "SLATECRM_DB_MAX_OVERFLOW": "0"}) == {
        "pool_size": 8, "max_overflow": 0}
    with pytest.raises(ValueError, match="SLATECRM_DB_POOL_SIZE='0'"):
        pool_options({"SLATECRM_DB_POOL_SIZE": "0"})
    with pytest.raises(ValueError, match="SLATECRM_DB_MAX_OVERFLOW='-1'"):
        pool_options({"SLATECRM_DB_MAX_OVERFLOW": "-1"})
    engine = create_engine("postgresql://nobody@127.0.0.1:1/none")  # connects to nothing yet
    assert (engine.pool.size(), engine.pool._max_overflow) == (20, 10)  # type: ignore[attr-defined]
