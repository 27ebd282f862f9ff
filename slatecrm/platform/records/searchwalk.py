"""PostgreSQL: a search page in id order that is fast whether the words are common or rare.

`ORDER BY id LIMIT 51` over `_search @@ q` lets the planner walk the primary key and check
each row's stored vector: 51 matches come after a few hundred rows for a common word, but
a rare or absent one walks the whole table (0.7–3 s at a million rows), because PostgreSQL
estimates a prefix it has no statistics for at 0.5% of the rows, so the walk looks short.
The GIN index is the right plan for those, and the wrong one for a common word (a bitmap
of every match, then a sort: 150 ms and more). Neither estimate nor a count of the GIN's
matches tells them apart cheaply (building the bitmap *is* the cost), so the page tries
the cheap plan first, within a bound, and falls back:

1. `walk`: the same page, but walked only over the next `WALK_ROWS` ids after the cursor (an index
   range, its end found by an index-only scan of those ids). A word in more than about one
   row in a hundred fills the page there; then this is the page, exactly (its rows are the
   first matches in key order, as no match before them was skipped).
2. `fallback`, run only when the walk found no next page: every match from the GIN index,
   sorted by `id + 0` (an expression no index serves, so the planner cannot walk the key
   again) and cut to the page. It is the exact page on its own (it covers the walked
   stretch too), and costs what the index costs for a rare word.

Two statements, not one with both branches: PostgreSQL prices a gated branch as if it ran,
and for a common word the unused sort of every match pushed the statement past
`jit_above_cost`, which added 15–40 ms of compilation to a 1 ms page.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .keyset import INT64

#: Ids the walk looks at before it hands over to the GIN index: a word in 1% of the rows
#: fills a page of 50 within them; the walk costs ~1 µs a row when it fails.
WALK_ROWS = 5_000


def walk_then_sort(table: sa.Table, select: sa.Select[Any], *, descending: bool, start: Any,
                   rows: int) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """(the bounded walk, the fallback) for `select` (the search page's SELECT with its
    conditions, the cursor's included, without order or limit) in id order; the page runs
    them in that order (PageQuery.statement, PageQuery.fallback_for)."""
    walked = table.alias("slate_walked")
    ids = sa.select(walked.c.id)
    if start is not None:
        ids = ids.where(walked.c.id < start if descending else walked.c.id > start)
    end = (ids.order_by(walked.c.id.desc() if descending else walked.c.id.asc())
           .offset(WALK_ROWS - 1).limit(1).scalar_subquery())
    key = table.c.id
    # No id at WALK_ROWS: fewer remain, and the walk may go to the end.
    bounded = (key >= sa.func.coalesce(end, -INT64 - 1) if descending
               else key <= sa.func.coalesce(end, INT64))
    walk = select.where(bounded).order_by(key.desc() if descending else key.asc()).limit(rows)
    unindexed = key + 0
    fallback = select.order_by(unindexed.desc() if descending else unindexed.asc()).limit(rows)
    return walk, fallback
