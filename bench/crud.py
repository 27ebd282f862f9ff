"""Get, create and update through the records service vs the same work by hand (lists: lists.py).

The baseline is what a developer would write with SQLAlchemy Core for this one entity, on
the same tables, returning the same information: reads join the company for its name (as the
service's read path does), writes check the reference,
insert or update with the version check, write the history row, and read the record back.
Both sides return plain Python values; neither builds JSON.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from typing import Any

import sqlalchemy as sa

from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage import system

from . import dataset
from .common import Sizes, interleaved, median, ms
from .report import Figure

GOAL = 1.3
AMOUNT_BASE = 10_000_000


class HandWritten:
    """The hand-written data access for deals, as one would write it for a fixed schema."""

    def __init__(self, engine: sa.Engine, metadata: sa.MetaData):
        self.engine = engine
        self.deal = metadata.tables["x_deal"]
        self.company = metadata.tables["x_company"]
        d, c = self.deal, self.company
        self.read = sa.select(d, c.c.name.label("company_name")).select_from(
            d.outerjoin(c, d.c.company == c.c.id))
        self.sqlite = engine.dialect.name == "sqlite"

    def _begin(self) -> sa.Connection:
        options = {"sqlite_begin": "IMMEDIATE"} if self.sqlite else {}
        return self.engine.connect().execution_options(**options)

    def get(self, record_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return dict(conn.execute(self.read.where(self.deal.c.id == record_id)).mappings().one())

    def create(self, values: dict[str, Any]) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        d = self.deal
        with self._begin() as conn, conn.begin():
            if conn.execute(sa.select(self.company.c.id).where(
                    self.company.c.id == values["company"])).first() is None:
                raise ValueError("no such company")
            new_id = conn.execute(d.insert().values(created_at=now, updated_at=now, version=1, **values)
                                  .returning(d.c.id)).scalar_one()
            conn.execute(system.history.insert().values(
                entity="deal", record_id=new_id, version=1, action="create", changed_at=now,
                changes={k: [None, v.isoformat() if isinstance(v, dt.date) else v]
                         for k, v in values.items()}))
            return dict(conn.execute(self.read.where(d.c.id == new_id)).mappings().one())

    def update(self, record_id: int, version: int, amount: int) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        d = self.deal
        with self._begin() as conn, conn.begin():
            query = sa.select(d.c.amount, d.c.version).where(d.c.id == record_id)
            row = conn.execute(query if self.sqlite else query.with_for_update()).one()
            if row.version != version:
                raise ValueError("version conflict")
            done = conn.execute(d.update().where(d.c.id == record_id, d.c.version == version)
                                .values(amount=amount, updated_at=now, version=version + 1))
            if done.rowcount != 1:
                raise ValueError("version conflict")
            conn.execute(system.history.insert().values(
                entity="deal", record_id=record_id, version=version + 1, action="update",
                changed_at=now, changes={"amount": [row.amount, amount]}))
            return dict(conn.execute(self.read.where(d.c.id == record_id)).mappings().one())


def run(engine: sa.Engine, records: RecordsService, sizes: Sizes) -> list[Figure]:
    runtime = records.holder.current()
    hand = HandWritten(engine, runtime.metadata)
    db = engine.dialect.name
    pick = random.Random(6)
    ids = [pick.randint(1, sizes.rows) for _ in range(sizes.ops * 3)]
    figures = []

    def figure(label: str, a: list[float], b: list[float], what: str) -> None:
        measured, baseline = ms(median(a)), ms(median(b))
        figures.append(Figure(label, db, sizes.rows, measured, baseline, "ms", f"≤ {GOAL}×",
                              measured <= GOAL * baseline,
                              f"median of {len(a)} calls each; baseline: {what}"))

    a, b = interleaved(lambda i: records.get("deal", ids[i]), lambda i: hand.get(ids[i]), sizes.ops)
    figure("get by id (records service)", a, b, "one SELECT joined to the company for its name")

    def new_deal(i: int) -> dict[str, Any]:
        x = sizes.rows + 10 + i
        return {**dataset.values_of(x, sizes.small_rows), "note": f"created by the bench {i}"}

    def service_create(i: int) -> object:
        values = new_deal(i)
        close = values["close_date"]
        return records.create("deal", {**values, "close_date": None if close is None else close.isoformat()})

    a, b = interleaved(service_create, lambda i: hand.create(new_deal(i)), sizes.ops)
    figure("create (records service)", a, b,
           "check the company, INSERT … RETURNING, history row, read back; one transaction")

    # Each update is based on the version the record has then: distinct records per side.
    service_ids = [ids[i] for i in range(0, len(ids), 2)]
    hand_ids = [ids[i] for i in range(1, len(ids), 2) if ids[i] not in set(service_ids)]
    versions: dict[int, int] = {}
    amounts = itertools.count(AMOUNT_BASE)  # every update changes the amount

    def version_of(record_id: int) -> int:
        if record_id not in versions:
            with engine.connect() as conn:
                versions[record_id] = conn.execute(sa.select(hand.deal.c.version).where(
                    hand.deal.c.id == record_id)).scalar_one()
        return versions[record_id]

    def service_update(i: int) -> object:
        record_id = service_ids[i % len(service_ids)]
        done = records.update("deal", record_id, {"amount": next(amounts)}, version=version_of(record_id))
        versions[record_id] = done.version
        return done

    def hand_update(i: int) -> object:
        record_id = hand_ids[i % len(hand_ids)]
        done = hand.update(record_id, version_of(record_id), next(amounts))
        versions[record_id] = done["version"]
        return done

    for record_id in service_ids + hand_ids:
        version_of(record_id)
    a, b = interleaved(service_update, hand_update, sizes.ops)
    figure("update (records service)", a, b,
           "SELECT (FOR UPDATE), UPDATE … WHERE version, history row, read back; one transaction")
    return figures
