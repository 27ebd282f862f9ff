"""Bulk create through the records service, with full validation, vs executemany by hand.

The service gets the rows as a client sends them (dates as text, choices as keys) in
batches of 1,000 — what `POST /api/v1/{entity}` with a list does — and coerces, checks
required fields and references, numbers, inserts (executemany on SQLite, COPY on
PostgreSQL), writes history and reads the records back. The baseline inserts the same
rows, already typed, with SQLAlchemy's executemany in the same batches. Both write into
the large entity's table, with its indexes, in alternating batches, so load from other
processes on a shared machine falls on both alike. A second figure uses batches of 10,000
(an import's size; a request's bulk create is capped at 1,000). The note gives the rate
in the process's own CPU time too: on a busy machine the wall clock counts the waits for
a core.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import sqlalchemy as sa

from slatecrm.platform.records.service import RecordsService

from . import dataset
from .common import Sizes
from .report import Figure

BATCH = 1_000
LARGE_BATCH = 10_000
GOALS = {"sqlite": 50_000, "postgresql": 100_000}


def rows(sizes: Sizes, start: int) -> list[dict[str, Any]]:
    return [{"name": f"Bulk deal {x}", "company": x % sizes.small_rows + 1, "status": dataset.status_of(x),
             "amount": dataset.amount_of(x), "close_date": dataset.close_date_of(x).isoformat(),
             "note": f"bulk {x}"} for x in range(start, start + sizes.bulk_rows)]


def typed(given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    return [{**r, "close_date": dt.date.fromisoformat(r["close_date"]), "created_at": now,
             "updated_at": now, "version": 1} for r in given]


def run(engine: sa.Engine, records: RecordsService, sizes: Sizes) -> list[Figure]:
    records.create_many("deal", rows(sizes, 5 * sizes.rows)[:10])  # warm the compiled entity; not counted
    figures = [_measure(engine, records, sizes, BATCH, 10 * sizes.rows, 20 * sizes.rows)]
    if sizes.bulk_rows >= LARGE_BATCH:
        figures.append(_measure(engine, records, sizes, LARGE_BATCH, 30 * sizes.rows, 40 * sizes.rows))
    return figures


def _measure(engine: sa.Engine, records: RecordsService, sizes: Sizes, batch: int, start: int,
             baseline_start: int) -> Figure:
    db = engine.dialect.name
    deal = records.holder.current().tables["deal"]
    given = rows(sizes, start)
    by_hand = typed(rows(sizes, baseline_start))
    service = cpu = hand = 0.0
    made = 0
    for i in range(0, len(given), batch):
        started, used = time.perf_counter(), time.process_time()
        made += len(records.create_many("deal", given[i:i + batch]))
        service += time.perf_counter() - started
        cpu += time.process_time() - used
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(deal.insert(), by_hand[i:i + batch])
        hand += time.perf_counter() - started
    assert made == len(given)
    measured, baseline = len(given) / service, len(by_hand) / hand
    goal = GOALS.get(db)
    path = "COPY" if db == "postgresql" else "executemany"
    name = "bulk create with full validation (records service)"
    if batch != BATCH:
        name = f"bulk create with full validation, batches of {batch:,} (records service)"
    return Figure(name, db, sizes.bulk_rows, measured, baseline, "rows/s",
                  f"≥ {goal:,} rows/s" if goal else "—", measured >= goal if goal else None,
                  f"batches of {batch:,} into the {sizes.rows:,}-row table ({path}); service includes "
                  f"history rows and reading the records back; {len(given) / cpu:,.0f} rows/s in the "
                  "process's own CPU time; baseline: SQLAlchemy executemany of the same rows, typed, "
                  "in alternating batches")
