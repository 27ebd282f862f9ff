"""Filter + sort and group-by on the large entity: real columns vs EAV vs a JSON column.

The bench builds the two other layouts of the same deals inside the database (INSERT …
SELECT from the entity's table), each with the indexes such a design would have:

- EAV, as older CRMs store custom fields: one row per (record, attribute), a typed value
  column per kind, an index on (record_id, attribute) and on (attribute, value) per kind.
- A JSON document per record: JSONB with a GIN index on PostgreSQL; JSON text on SQLite,
  which has no index for it short of one expression index per field.

Every side answers the same list: a page of 50 (all fields) and the capped count.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from slatecrm.platform.records.listing import COUNT_CAP, Filter, ListQuery
from slatecrm.platform.records.service import RecordsService

from . import dataset
from .common import Sizes, median, ms, timings
from .report import Figure

EAV_ATTRIBUTES = {"name": "value_text", "company": "value_number", "status": "value_text",
                  "amount": "value_number", "close_date": "value_date", "note": "value_text"}


def build_eav(conn: sa.Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE eav_value (record_id BIGINT NOT NULL, attribute VARCHAR(64) NOT NULL, "
                         "value_text VARCHAR, value_number BIGINT, value_date DATE)")
    for attribute, column in EAV_ATTRIBUTES.items():
        conn.exec_driver_sql(f"INSERT INTO eav_value (record_id, attribute, {column}) "
                             f"SELECT id, '{attribute}', {attribute} FROM x_deal")
    conn.exec_driver_sql("CREATE UNIQUE INDEX eav_record ON eav_value (record_id, attribute)")
    for column in ("value_text", "value_number", "value_date"):
        conn.exec_driver_sql(f"CREATE INDEX eav_{column} ON eav_value (attribute, {column})")


def build_json(conn: sa.Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("CREATE TABLE json_deal (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        pairs = ", ".join(f"'{a}', {a}" for a in EAV_ATTRIBUTES)
        conn.exec_driver_sql(f"INSERT INTO json_deal SELECT id, json_object({pairs}) FROM x_deal")
    else:
        conn.exec_driver_sql("CREATE TABLE json_deal (id BIGINT PRIMARY KEY, data JSONB NOT NULL)")
        pairs = ", ".join(f"'{a}', {a}" for a in EAV_ATTRIBUTES)
        conn.exec_driver_sql(f"INSERT INTO json_deal SELECT id, jsonb_build_object({pairs}) FROM x_deal")
        conn.exec_driver_sql("CREATE INDEX json_deal_data ON json_deal USING GIN (data jsonb_path_ops)")


EAV_PAGE = """
WITH page AS (
  SELECT s.record_id AS id, d.value_date AS close_date
  FROM eav_value s
  JOIN eav_value a ON a.record_id = s.record_id AND a.attribute = 'amount'
  LEFT JOIN eav_value d ON d.record_id = s.record_id AND d.attribute = 'close_date'
  WHERE s.attribute = 'status' AND s.value_text = :status AND a.value_number >= :minimum
  ORDER BY d.value_date DESC, s.record_id LIMIT 51)
SELECT v.record_id, v.attribute, v.value_text, v.value_number, v.value_date
FROM page JOIN eav_value v ON v.record_id = page.id
ORDER BY page.close_date DESC, page.id"""
EAV_COUNT = f"""
SELECT count(*) FROM (SELECT 1 FROM eav_value s
  JOIN eav_value a ON a.record_id = s.record_id AND a.attribute = 'amount'
  WHERE s.attribute = 'status' AND s.value_text = :status AND a.value_number >= :minimum
  LIMIT {COUNT_CAP + 1}) AS capped"""
EAV_GROUP = """
SELECT s.value_text, count(*), sum(a.value_number) FROM eav_value s
LEFT JOIN eav_value a ON a.record_id = s.record_id AND a.attribute = 'amount'
WHERE s.attribute = 'status' GROUP BY s.value_text"""

JSON_SQL = {
    "sqlite": {
        "where": "json_extract(data, '$.status') = :status AND json_extract(data, '$.amount') >= :minimum",
        "order": "json_extract(data, '$.close_date') DESC, id",
        "group": "SELECT json_extract(data, '$.status'), count(*), sum(json_extract(data, '$.amount')) "
                 "FROM json_deal GROUP BY 1",
    },
    "postgresql": {
        "where": "data @> jsonb_build_object('status', CAST(:status AS text)) "
                 "AND (data->>'amount')::bigint >= :minimum",
        "order": "data->>'close_date' DESC, id",
        "group": "SELECT data->>'status', count(*), sum((data->>'amount')::bigint) FROM json_deal GROUP BY 1",
    },
}


def run(engine: sa.Engine, records: RecordsService, sizes: Sizes) -> list[Figure]:
    db = engine.dialect.name
    with engine.begin() as conn:
        build_eav(conn)
        build_json(conn)
    dataset.analyze(engine)
    sql = JSON_SQL[db]
    json_page = sa.text(f"SELECT id, data FROM json_deal WHERE {sql['where']} "
                        f"ORDER BY {sql['order']} LIMIT 51")
    json_count = sa.text(f"SELECT count(*) FROM (SELECT 1 FROM json_deal WHERE {sql['where']} "
                         f"LIMIT {COUNT_CAP + 1}) AS capped")
    pick = random.Random(2)
    queries: list[dict[str, Any]] = [
        {"status": pick.choice(dataset.STATUSES), "minimum": pick.randrange(dataset.AMOUNTS // 2)}
        for _ in range(100)]

    def service(i: int, *, counted: bool = True) -> object:
        q = queries[i % len(queries)]
        return records.page("deal", ListQuery(sort=("-close_date",), filters=(
            Filter("status", "eq", (q["status"],)), Filter("amount", "gte", (str(q["minimum"]),))),
            counted=counted))

    def service_uncounted(i: int) -> object:
        return service(i, counted=False)

    def by_sql(page: str | sa.TextClause, count: str | sa.TextClause) -> Callable[[int], object]:
        def call(i: int) -> object:
            q = queries[i % len(queries)]
            with engine.connect() as conn:
                rows = conn.execute(sa.text(page) if isinstance(page, str) else page, q).all()
                total = conn.execute(sa.text(count) if isinstance(count, str) else count, q).scalar()
            return rows, total
        return call

    def group(statement: str) -> Callable[[int], object]:
        def call(_: int) -> object:
            with engine.connect() as conn:
                return conn.execute(sa.text(statement)).all()
        return call

    deal = records.holder.current().tables["deal"]
    columns_group = sa.select(deal.c.status, sa.func.count(), sa.func.sum(deal.c.amount)).group_by(
        deal.c.status)

    def real_group(_: int) -> object:
        with engine.connect() as conn:
            return conn.execute(columns_group).all()

    # Blanks where the database's index keeps them, as the records service orders (docs/api.md):
    # on SQLite any NULLS clause keeps the planner off the index.
    newest = deal.c.close_date.desc() if db == "sqlite" else deal.c.close_date.desc().nulls_first()
    ordered = sa.select(deal).order_by(newest, deal.c.id.desc()).limit(51)

    def real_page(i: int) -> object:
        q = queries[i % len(queries)]
        with engine.connect() as conn:
            return conn.execute(ordered.where(deal.c.status == q["status"],
                                              deal.c.amount >= q["minimum"])).all()

    def eav_page(i: int) -> object:
        with engine.connect() as conn:
            return conn.execute(sa.text(EAV_PAGE), queries[i % len(queries)]).all()

    slow_reps = 3 if sizes.rows >= 200_000 else 5
    service(0)
    real = timings(service, 20)
    eav = timings(by_sql(EAV_PAGE, EAV_COUNT), slow_reps)
    json = timings(by_sql(json_page, json_count), slow_reps)
    real_page(0)
    page_only, eav_page_only = timings(real_page, 20), timings(eav_page, slow_reps)
    service_uncounted(0)
    real_uncounted = timings(service_uncounted, 20)
    real_group(0)
    real_g = timings(real_group, slow_reps)
    eav_g = timings(group(EAV_GROUP), slow_reps)
    json_g = timings(group(sql["group"]), slow_reps)
    what = "page of 50 with status = x and amount ≥ y, sorted by close date, and its capped count"
    figures = [
        Figure("filter + sort: real columns (records service) vs EAV", db, sizes.rows, ms(median(real)),
               ms(median(eav)), "ms", "≥ 100× faster (ratio ≤ 0.01×)", median(real) * 100 <= median(eav),
               f"{what}; median of {len(real)} service calls and {len(eav)} EAV queries"),
        Figure("filter + sort, no count (an API list's default): real columns (records service) vs EAV",
               db, sizes.rows, ms(median(real_uncounted)), ms(median(eav_page_only)), "ms",
               "≥ 100× faster (ratio ≤ 0.01×)", median(real_uncounted) * 100 <= median(eav_page_only),
               "the same page without its count (what `GET /api/v1/deal` answers unless asked for "
               f"`count=true`) against the EAV page query; median of {len(real_uncounted)} service calls "
               f"and {len(eav_page_only)} EAV queries"),
        Figure("filter + sort, page query only: real columns vs EAV", db, sizes.rows,
               ms(median(page_only)), ms(median(eav_page_only)), "ms", "— (reported)", None,
               "the page's SELECT alone, hand-written on both layouts: what the capped count adds above"),
        Figure("filter + sort: real columns (records service) vs JSON column", db, sizes.rows,
               ms(median(real)), ms(median(json)), "ms", "— (reported)", None,
               "the same list; JSON side: " + ("JSON text, no index" if db == "sqlite"
                                               else "JSONB with a GIN index for the equality")),
        Figure("group-by status (count, sum): real columns vs EAV", db, sizes.rows, ms(median(real_g)),
               ms(median(eav_g)), "ms", "— (reported)", None,
               "hand-written GROUP BY on the entity's table (the records service has no aggregates yet)"),
        Figure("group-by status (count, sum): real columns vs JSON column", db, sizes.rows,
               ms(median(real_g)), ms(median(json_g)), "ms", "— (reported)", None, ""),
    ]
    with engine.begin() as conn:  # the layouts are big; the scenarios after do not need them
        conn.exec_driver_sql("DROP TABLE eav_value")
        conn.exec_driver_sql("DROP TABLE json_deal")
    return figures
