"""`python -m bench.sqlite_settings`: SQLite connection settings (PRAGMAs) measured on the
bench's CRM data, to choose the defaults of storage/engine.py (issue 11).

One database file is filled once (`--db`, reused when it exists); each variant is an
engine on that file whose connections get the variant's PRAGMAs after the engine's own,
every setting given explicitly, so the variants differ only in what they name. The
variants run in alternating rounds (the first one warms caches and is not counted), so
load from other processes on a shared machine falls on all of them alike. Each round
measures, per variant: get by id (random ids), a list page of 50 with its count, a text
search page, and bulk create (the records service, and executemany by hand, into the
large table with its indexes). Medians per operation are printed as a table.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from slatecrm.platform.records.listing import Filter, ListQuery
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.storage.runtime import RuntimeHolder
from slatecrm.plugins.manager import field_types, make_plugin_manager

from . import bulk_create, dataset
from .common import Sizes

#: SQLite's own defaults (cache 2 MB, no memory map, temporary files on disk, FULL).
BASE = {"cache_size": "-2000", "mmap_size": "0", "temp_store": "DEFAULT", "synchronous": "FULL"}
VARIANTS: dict[str, dict[str, str]] = {
    "sqlite defaults": BASE,
    "cache 64 MB": {**BASE, "cache_size": "-65536"},
    "mmap 256 MB": {**BASE, "mmap_size": str(256 * 2**20)},
    "temp_store MEMORY": {**BASE, "temp_store": "MEMORY"},
    "synchronous NORMAL": {**BASE, "synchronous": "NORMAL"},
    "cache + mmap + temp": {"cache_size": "-65536", "mmap_size": str(256 * 2**20), "temp_store": "MEMORY",
                            "synchronous": "FULL"},
    "all four": {"cache_size": "-65536", "mmap_size": str(256 * 2**20), "temp_store": "MEMORY",
                 "synchronous": "NORMAL"},
}
OPERATIONS = ("get by id", "list page + count", "search page", "bulk create, service",
              "bulk create, by hand")


def variant_engine(path: Path, pragmas: dict[str, str]) -> sa.Engine:
    engine = create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for name, value in pragmas.items():
            cursor.execute(f"PRAGMA {name}={value}")
        cursor.close()
    return engine


def mean_call(calls: list[Callable[[], object]]) -> tuple[float, float]:
    """Mean seconds per call: wall clock, and the process's CPU time (system time included:
    a page read from the OS cache is CPU work, while waits for a core on a busy machine are
    not counted)."""
    started, used = time.perf_counter(), time.process_time()
    for call in calls:
        call()
    return (time.perf_counter() - started) / len(calls), (time.process_time() - used) / len(calls)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sqlite_settings", description=__doc__)
    p.add_argument("--db", default="/tmp/slatecrm-sqlite-settings/bench.db")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--ops", type=int, default=100,
                   help="gets per variant and round (lists and searches: a fifth as many)")
    p.add_argument("--batches", type=int, default=2, help="bulk batches of 1,000 per side, variant and round")
    p.add_argument("--only", help="comma-separated variant names")
    args = p.parse_args(argv)
    registry = field_types(make_plugin_manager())
    path = Path(args.db)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}")
        started = time.perf_counter()
        dataset.install(engine, registry)
        dataset.fill(engine, args.rows, 1_000)
        engine.dispose()
        print(f"filled {args.rows:,} deals in {time.perf_counter() - started:.0f} s", flush=True)
    names = args.only.split(",") if args.only else list(VARIANTS)
    engines = {n: variant_engine(path, VARIANTS[n]) for n in names}
    services = {n: RecordsService(e, RuntimeHolder(e, registry), registry) for n, e in engines.items()}
    pick = random.Random(7)
    sizes = replace(Sizes.default(False), bulk_rows=1_000)  # one batch's rows at a time
    results: dict[str, dict[str, list[tuple[float, float]]]] = {n: {o: [] for o in OPERATIONS} for n in names}
    start = 50 * args.rows
    for round_ in range(args.rounds + 1):
        for name in names if round_ % 2 == 0 else reversed(names):
            records, engine = services[name], engines[name]
            deal = records.holder.current().tables["deal"]
            ids = [pick.randint(1, args.rows) for _ in range(args.ops)]
            lists = [ListQuery(sort=("-close_date",), filters=(
                Filter("status", "eq", (pick.choice(dataset.STATUSES),)),
                Filter("amount", "gte", (str(pick.randrange(dataset.AMOUNTS // 2)),))))
                for _ in range(args.ops // 5)]
            searches = [ListQuery(search=pick.choice(dataset.PRODUCTS)) for _ in range(args.ops // 5)]
            timed = {"get by id": mean_call([partial(records.get, "deal", i) for i in ids]),
                     "list page + count": mean_call([partial(records.page, "deal", q) for q in lists]),
                     "search page": mean_call([partial(records.page, "deal", q) for q in searches])}
            service_rows = hand_rows = service_cpu = hand_cpu = 0.0
            for _ in range(args.batches):
                given = bulk_create.rows(sizes, start)
                by_hand = bulk_create.typed(bulk_create.rows(sizes, start + 1_000))
                start += 2_000
                started, used = time.perf_counter(), time.process_time()
                records.create_many("deal", given)
                service_rows += time.perf_counter() - started
                service_cpu += time.process_time() - used
                started, used = time.perf_counter(), time.process_time()
                with engine.begin() as conn:
                    conn.execute(deal.insert(), by_hand)
                hand_rows += time.perf_counter() - started
                hand_cpu += time.process_time() - used
            rows = args.batches * 1_000
            timed["bulk create, service"] = (rows / service_rows, rows / service_cpu)
            timed["bulk create, by hand"] = (rows / hand_rows, rows / hand_cpu)
            if round_ == 0:
                continue  # warm-up
            for label, value in timed.items():
                results[name][label].append(value)
        print(f"round {round_} done", flush=True)
    print(f"\n{args.rows:,}-row deal table, {args.rounds} alternating rounds (after a warm-up), medians "
          f"of the rounds; gets: mean ms of {args.ops} calls per round, lists and searches of "
          f"{args.ops // 5}, bulk: rows/s of {args.batches} batches of 1,000 per round; each cell: wall "
          "clock (CPU time of the process)\n")
    header = "| variant | " + " | ".join(OPERATIONS) + " |"
    print(header)
    print("|" + "---|" * (len(OPERATIONS) + 1))
    for name in names:
        cells = []
        for label in OPERATIONS:
            wall = statistics.median(w for w, _ in results[name][label])
            cpu = statistics.median(c for _, c in results[name][label])
            cells.append(f"{wall:,.0f} ({cpu:,.0f}) rows/s" if label.startswith("bulk")
                         else f"{wall * 1000:.2f} ({cpu * 1000:.2f}) ms")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for engine in engines.values():
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
