"""PostgreSQL search pages by word class, the plain key walk against the bounded walk with
its fallback (records/searchwalk.py), in alternating rounds through the app:
`python -m bench.search_words --database postgresql+psycopg://…/db [--rows 1000000]`.

The database is the bench's CRM data set (bench/dataset.py); it is loaded first when it
has no deals, and kept, so that later runs reuse it (drop it yourself when done). Prints
p50 and p95 per class and side. Not part of `make bench`: it compares two plans, where the
bench measures the product.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.platform.records import searchwalk
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.web.app import create_app
from slatecrm.plugins.manager import field_types, make_plugin_manager

from . import dataset
from .common import authorization

#: Words of the bench's deals by how many they match (a real vocabulary's rare word is
#: absent here: its cost is that of `zzz`, a short index entry).
CLASSES = {"common": ("the", "renewal", "ren"), "medium": ("cleaning", "pay"),
           "rare": ("cleaning tender", "pilot cleaning tender"),
           "absent": ("zzz", "expanded strategic", "qx"),
           "filtered": ("renewal", "cleaning tender", "zzz")}
FILTER = {"status": "open"}


def plain_walk(table: sa.Table, select: sa.Select[Any], *, descending: bool, start: Any,
               rows: int) -> tuple[sa.Select[Any], None]:
    """The plan before the bounded walk: `ORDER BY id` over every match (no fallback)."""
    return select.order_by(table.c.id.desc() if descending else table.c.id.asc()).limit(rows), None


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.search_words", description=__doc__)
    p.add_argument("--database", required=True, help="a PostgreSQL URL (the database must exist)")
    p.add_argument("--rows", type=int, default=1_000_000, help="deals to load into an empty database")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    engine = create_engine(args.database)
    registry = field_types(make_plugin_manager())
    if not sa.inspect(engine).has_table("x_deal"):
        dataset.install(engine, registry)
        dataset.fill(engine, args.rows, 1_000)
    sides: dict[str, Callable[..., Any]] = {"old": plain_walk, "new": searchwalk.walk_then_sort}
    real = searchwalk.walk_then_sort
    times: dict[tuple[str, str], list[float]] = {(s, c): [] for s in sides for c in CLASSES}
    with TestClient(create_app(engine, make_plugin_manager()), base_url="http://localhost",
                    headers=authorization(engine)) as client:
        try:
            for number in range(args.rounds):
                for side in (list(sides) if number % 2 == 0 else list(sides)[::-1]):
                    searchwalk.walk_then_sort = sides[side]
                    for kind, words in CLASSES.items():
                        for word in words:
                            for sort in ("id", "-id"):
                                params = {"q": word, "sort": sort, **(FILTER if kind == "filtered" else {})}
                                started = time.perf_counter()
                                answer = client.get("/api/v1/deal", params=params)
                                times[(side, kind)].append((time.perf_counter() - started) * 1000)
                                answer.raise_for_status()
        finally:
            searchwalk.walk_then_sort = real
    for kind in CLASSES:
        for side in sides:
            found = sorted(times[(side, kind)])
            p50, p95 = statistics.median(found), found[round(0.95 * (len(found) - 1))]
            print(f"{kind:8} {side}: {len(found)} pages, p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
