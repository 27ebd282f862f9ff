"""Every list page's cost against the same page's hand-written query (issue 11: within 2×).

Each case is one list a user opens: a filter and a sort, through the records service
(`records.page`) and written by hand with SQLAlchemy Core for this schema. Both sides do
the same work: the page of 50 with the company's name joined in, blanks where the
database's index keeps them (docs/api.md, "Blanks in sorts"), and the capped count when
the first page is full. Sides alternate in rounds (common.interleaved).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.platform.records.listing import COUNT_CAP, Filter, ListQuery
from slatecrm.platform.records.service import RecordsService

from . import dataset
from .common import Sizes, interleaved, median, ms, percentile
from .report import Figure

GOAL = 2.0
PAGE = 50


@dataclass(frozen=True)
class Case:
    label: str
    what: str
    #: i → the service's query and the hand-written side's (conditions, sort column, descending)
    make: Callable[[int], tuple[ListQuery, list[sa.ColumnElement[bool]], str, bool]]


class HandWritten:
    def __init__(self, engine: sa.Engine, metadata: sa.MetaData):
        self.engine = engine
        self.deal = d = metadata.tables["x_deal"]
        company = metadata.tables["x_company"]
        self.read = sa.select(d, company.c.name.label("company_name")).select_from(
            d.outerjoin(company, d.c.company == company.c.id))
        self.nulls_largest = engine.dialect.name != "sqlite"

    def page(self, where: list[sa.ColumnElement[bool]], sort: str, descending: bool
             ) -> tuple[list[dict[str, Any]], int]:
        d = self.deal
        column = d.c[sort]
        main = column.desc() if descending else column.asc()
        if self.nulls_largest and sort != "id":  # SQLite: its default NULL order is its index's
            main = main.nulls_first() if descending else main.nulls_last()
        tie = d.c.id.desc() if descending else d.c.id.asc()
        query = self.read.where(*where).order_by(main, tie).limit(PAGE + 1)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            count = len(rows)
            if count > PAGE:
                capped = sa.select(sa.literal(1)).select_from(d).where(*where).limit(COUNT_CAP + 1).subquery()
                count = conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()
        return rows[:PAGE], count


def cases(d: sa.Table, pick: random.Random, n: int) -> list[Case]:
    filters = [(pick.choice(dataset.STATUSES), pick.randrange(dataset.AMOUNTS // 2)) for _ in range(n)]
    words = [pick.choice(dataset.ADJECTIVES).title()[:3] for _ in range(n)]
    weeks = [dataset.EPOCH + dt.timedelta(days=pick.randrange(dataset.DAYS - 7)) for _ in range(n)]

    def sorted_by_date(descending: bool) -> Callable[[int], Any]:
        def make(i: int) -> tuple[ListQuery, list[sa.ColumnElement[bool]], str, bool]:
            status, minimum = filters[i % n]
            query = ListQuery(sort=(("-" if descending else "") + "close_date",), filters=(
                Filter("status", "eq", (status,)), Filter("amount", "gte", (str(minimum),))))
            return query, [d.c.status == status, d.c.amount >= minimum], "close_date", descending
        return make

    def prefix(i: int) -> tuple[ListQuery, list[sa.ColumnElement[bool]], str, bool]:
        word = words[i % n]
        following = word[:-1] + chr(ord(word[-1]) + 1)
        # The database collation is byte order (C) on PostgreSQL and BINARY on SQLite, so the
        # index range is exactly "starts with", case-sensitive like the rule language's.
        return (ListQuery(sort=("name",), expression=f'name starts_with "{word}"'),
                [d.c.name >= word, d.c.name < following], "name", False)

    def week(i: int) -> tuple[ListQuery, list[sa.ColumnElement[bool]], str, bool]:
        start = weeks[i % n]
        end = start + dt.timedelta(days=7)
        return (ListQuery(sort=("-amount",), filters=(Filter("close_date", "gte", (start.isoformat(),)),
                                                      Filter("close_date", "lt", (end.isoformat(),)))),
                [d.c.close_date >= start, d.c.close_date < end], "amount", True)

    return [
        Case("close date descending, blanks", "status = x, amount ≥ y, sort -close_date (open deals have "
             "no close date)", sorted_by_date(True)),
        Case("close date ascending, blanks", "status = x, amount ≥ y, sort close_date",
             sorted_by_date(False)),
        Case("name starts with", 'filter=name starts_with "<3 letters>", sort name (hand-written: the '
             "index range name ≥ 'Exp' AND name < 'Exq')", prefix),
        Case("narrow date range", "close date within one week, sort -amount", week),
    ]


def run(engine: sa.Engine, records: RecordsService, sizes: Sizes) -> list[Figure]:
    db = engine.dialect.name
    hand = HandWritten(engine, records.holder.current().metadata)
    figures = []
    for case in cases(hand.deal, random.Random(11), sizes.ops):
        def service(i: int, case: Case = case) -> object:
            return records.page("deal", case.make(i)[0])

        def by_hand(i: int, case: Case = case) -> object:
            _, where, sort, descending = case.make(i)
            return hand.page(where, sort, descending)

        same(service, by_hand, case)
        a, b = interleaved(service, by_hand, sizes.ops)
        measured, baseline = ms(median(a)), ms(median(b))
        figures.append(Figure(
            f"list page of 50, filter + sort: {case.label} (records service)", db, sizes.rows, measured,
            baseline, "ms", f"≤ {GOAL:g}×", measured <= GOAL * baseline,
            f"{case.what}; median of {len(a)} calls each (p95 {ms(percentile(a, 95)):.1f} ms, hand-written "
            f"{ms(percentile(b, 95)):.1f} ms); baseline: the page's SELECT joined to the company, and the "
            "capped count when the page is full"))
    return figures


def same(service: Callable[[int], Any], by_hand: Callable[[int], Any], case: Case) -> None:
    """Both sides answer the same records and count, or the comparison is of different work."""
    for i in range(3):
        page = service(i)
        rows, count = by_hand(i)
        # The service's count may be cut by its time budget (None: not known); when known it
        # must be the hand-written one.
        if [r.id for r in page.records] != [r["id"] for r in rows] or \
                page.count not in (None, min(count, COUNT_CAP)):
            raise RuntimeError(f"{case.label}: the hand-written page differs from the service's "
                               f"({[r.id for r in page.records][:5]}…, {page.count} vs "
                               f"{[r['id'] for r in rows][:5]}…, {count})")
