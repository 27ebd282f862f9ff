"""Bulk create through the records service, with full validation, vs executemany by hand.

The service gets the rows as a client sends them (dates as text, choices as keys) in
batches of 1,000 — what `POST /api/v1/{entity}` with a list does — and coerces, checks
required fields and references, numbers, inserts, writes history and reads the records
back. The baseline inserts the same rows, already typed, with executemany in the same
batches. Both write into the large entity's table, with its indexes.
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
GOAL = 50_000


def rows(sizes: Sizes, start: int) -> list[dict[str, Any]]:
    return [{"name": f"Bulk deal {x}", "company": x % sizes.small_rows + 1, "status": dataset.status_of(x),
             "amount": dataset.amount_of(x), "close_date": dataset.close_date_of(x).isoformat(),
             "note": f"bulk {x}"} for x in range(start, start + sizes.bulk_rows)]


def run(engine: sa.Engine, records: RecordsService, sizes: Sizes) -> list[Figure]:
    db = engine.dialect.name
    deal = records.holder.current().tables["deal"]
    given = rows(sizes, 10 * sizes.rows)
    records.create_many("deal", given[:10])  # warm the compiled entity; not counted
    started = time.perf_counter()
    made = 0
    for i in range(0, len(given), BATCH):
        made += len(records.create_many("deal", given[i:i + BATCH]))
    service = time.perf_counter() - started
    assert made == len(given)

    now = dt.datetime.now(dt.UTC)
    typed = [{**r, "close_date": dt.date.fromisoformat(r["close_date"]), "created_at": now,
              "updated_at": now, "version": 1} for r in rows(sizes, 20 * sizes.rows)]
    started = time.perf_counter()
    for i in range(0, len(typed), BATCH):
        with engine.begin() as conn:
            conn.execute(deal.insert(), typed[i:i + BATCH])
    hand = time.perf_counter() - started
    measured, baseline = len(given) / service, len(typed) / hand
    sqlite = db == "sqlite"
    return [Figure("bulk create with full validation (records service)", db, sizes.bulk_rows, measured,
                   baseline, "rows/s", f"≥ {GOAL:,} rows/s on SQLite" if sqlite else "— (goal is for SQLite)",
                   measured >= GOAL if sqlite else None,
                   f"batches of {BATCH:,} into the {sizes.rows:,}-row table; service includes history rows "
                   "and reading the records back; baseline: executemany of the same rows, typed")]
