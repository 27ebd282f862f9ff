"""The bench's CRM data: a small `company` entity and a large `deal` entity referring to it.

Rows are generated inside the database (a recursive CTE on SQLite, generate_series on
PostgreSQL) from a deterministic mix of the row number, so both databases hold the same
data and loading a million rows takes seconds: the scenarios measure queries, not loading.
The records service's own write path is measured honestly in `bulk_create`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .common import install_pack

STATUSES = ("open", "qualified", "proposal", "won", "lost")
REGIONS = ("emea", "amer", "apac", "latam")
EPOCH = dt.date(2020, 1, 1)
DAYS = 2000
AMOUNTS = 100_000


def _options(keys: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"key": k, "label": k.title()} for k in keys]


ENTITIES: dict[str, dict[str, Any]] = {
    "company": {"title_field": "name", "fields": {
        "name": {"type": "text", "required": True, "max_length": 200},
        "region": {"type": "choice", "options": _options(REGIONS), "indexed": True},
        "employees": {"type": "integer", "min": 0, "indexed": True},
        "founded": {"type": "date", "indexed": True},
    }},
    "deal": {"title_field": "name", "fields": {
        "name": {"type": "text", "required": True, "max_length": 200},
        "company": {"type": "reference", "target": "company", "on_delete": "set_null"},
        "status": {"type": "choice", "options": _options(STATUSES), "indexed": True},
        "amount": {"type": "integer", "min": 0, "indexed": True},
        "close_date": {"type": "date", "indexed": True},
        "note": {"type": "text"},
    }},
}


# The same pseudo-random mix of x on both databases (64-bit integer arithmetic).
def status_of(x: int) -> str:
    return STATUSES[(x * 2654435761) % 1000003 % 5]


def amount_of(x: int) -> int:
    return (x * 48271) % 2147483647 % AMOUNTS


def close_date_of(x: int) -> dt.date:
    return EPOCH + dt.timedelta(days=(x * 69621) % 100003 % DAYS)


def _case(expression: str, keys: tuple[str, ...]) -> str:
    whens = " ".join(f"WHEN {i} THEN '{k}'" for i, k in enumerate(keys))
    return f"CASE {expression} {whens} END"


def install(engine: sa.Engine, registry: FieldTypeRegistry) -> None:
    install_pack(engine, registry, "bench-crm", "1.0.0", ENTITIES)


def fill(engine: sa.Engine, rows: int, small_rows: int) -> None:
    """`small_rows` companies and `rows` deals, then fresh planner statistics."""
    sqlite = engine.dialect.name == "sqlite"
    now = "'2026-01-01 00:00:00.000000'" if sqlite else "now()"

    def date(days: str) -> str:
        if sqlite:
            return f"date('{EPOCH.isoformat()}', '+' || ({days}) || ' days')"
        return f"(DATE '{EPOCH.isoformat()}' + ({days})::int)"

    def series(n: int) -> str:
        if sqlite:
            return f"(WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {n}) " \
                   "SELECT x FROM s) AS n"
        return f"generate_series(1::bigint, {n}::bigint) AS n(x)"

    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO x_company (created_at, updated_at, version, name, region, employees, founded) "
            f"SELECT {now}, {now}, 1, 'Company ' || x, {_case('x % 4', REGIONS)}, (x * 7919) % 5000, "
            f"{date('(x * 131) % 10000')} FROM {series(small_rows)}"))
        conn.execute(sa.text(
            "INSERT INTO x_deal (created_at, updated_at, version, name, company, status, amount, "
            f"close_date, note) SELECT {now}, {now}, 1, 'Deal ' || x, x % {small_rows} + 1, "
            f"{_case('x * 2654435761 % 1000003 % 5', STATUSES)}, x * 48271 % 2147483647 % {AMOUNTS}, "
            f"{date(f'x * 69621 % 100003 % {DAYS}')}, 'note ' || x FROM {series(rows)}"))
    analyze(engine)


def analyze(engine: sa.Engine) -> None:
    """Planner statistics, as a maintained database has them (PostgreSQL's autovacuum gathers
    them on its own; SQLite only on ANALYZE or PRAGMA optimize)."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:  # ANALYZE in a transaction that commits
            conn.exec_driver_sql("ANALYZE")
        return
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
