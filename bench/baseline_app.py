"""The HTTP baseline: the bench's deal list and get written by hand for this one schema.

What a developer would write without a metadata-driven platform: a Starlette app with two
routes, the same queries in SQLAlchemy Core (the company's name joined in, blanks where the
database's index keeps them, and with `count=true` only the capped count on a first page
that is full), the same JSON shape as SlateCRM's API, the query and the encoding in a
worker thread. The bench serves it with the same uvicorn settings as `slatecrm serve` (one
worker), so SlateCRM's figure over this one is what the web layer and the metadata engine
cost (issue 11, goal ≤ 1.5×).

Run by bench/http_load.py as `python -m bench.baseline_app DATABASE_URL PORT`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from typing import Any

import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.platform.storage.engine import connect_for_reading, create_engine

COUNT_CAP = 2_000
PAGE = 50
SYSTEM = ("created_at", "updated_at", "created_by", "updated_by", "owner")
FIELDS = ("name", "status", "amount", "close_date", "note")


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _json(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=_default).encode()


class Deals:
    """The two queries, built once."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        metadata = sa.MetaData()
        self.deal = d = sa.Table("x_deal", metadata, autoload_with=engine)
        company = sa.Table("x_company", metadata, autoload_with=engine)
        self.read = sa.select(d, company.c.name.label("company_name")).select_from(
            d.outerjoin(company, d.c.company == company.c.id))
        # Blanks where each database's index keeps them (docs/api.md, "Blanks in sorts").
        self.nulls_largest = engine.dialect.name == "postgresql"

    def record(self, row: sa.RowMapping) -> dict[str, Any]:
        out: dict[str, Any] = {"id": row["id"], "version": row["version"], "_title": row["name"]}
        out.update((k, row[k]) for k in SYSTEM)
        out["name"] = row["name"]
        out["company"] = None if row["company"] is None else {"id": row["company"],
                                                               "title": row["company_name"]}
        out.update((k, row[k]) for k in FIELDS[1:])
        return out

    def get(self, record_id: int) -> bytes | None:
        with connect_for_reading(self.engine) as conn:
            row = conn.execute(self.read.where(self.deal.c.id == record_id)).mappings().first()
        return None if row is None else _json(self.record(row))

    def page(self, params: dict[str, str], url: str) -> bytes:
        d = self.deal
        where = []
        if "status" in params:
            where.append(d.c.status == params["status"])
        if "amount__gte" in params:
            where.append(d.c.amount >= int(params["amount__gte"]))
        sort = params.get("sort", "id")
        column = d.c[sort.lstrip("-")]
        descending = sort.startswith("-")
        main = column.desc() if descending else column.asc()
        if self.nulls_largest:  # SQLite's default NULL order is its index order: no NULLS clause
            main = main.nulls_first() if descending else main.nulls_last()
        order = [main, d.c.id.desc() if descending else d.c.id.asc()]
        query = self.read.where(*where).order_by(*order).limit(PAGE + 1)
        counted = params.get("count") == "true"  # as SlateCRM's API: the count only when asked
        with connect_for_reading(self.engine) as conn:
            rows = conn.execute(query).mappings().all()
            count = len(rows)
            if counted and count > PAGE:
                capped = sa.select(sa.literal(1)).select_from(d).where(*where).limit(COUNT_CAP + 1).subquery()
                count = conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()
        out: dict[str, Any] = {"data": [self.record(r) for r in rows[:PAGE]]}
        if counted:
            out.update(count=min(count, COUNT_CAP), count_capped=count > COUNT_CAP)
        out["next"] = None
        if len(rows) > PAGE:
            last_row = rows[PAGE - 1]
            kept = [last_row[column.name], last_row["id"], *([count] if counted else [])]
            cursor = base64.urlsafe_b64encode(_json(kept)).decode()
            out["next"] = f"{url}&after={cursor}"
            out["next_cursor"] = cursor
        return _json(out)


def app(database_url: str) -> Starlette:
    deals = Deals(create_engine(database_url))

    async def collection(request: Request) -> Response:
        body = await run_in_threadpool(deals.page, dict(request.query_params), str(request.url))
        return Response(body, media_type="application/json")

    async def item(request: Request) -> Response:
        body = await run_in_threadpool(deals.get, request.path_params["id"])
        if body is None:
            return Response(b'{"title":"Not Found","status":404}', 404, media_type="application/problem+json")
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/api/v1/deal", collection), Route("/api/v1/deal/{id:int}", item)])


def main(argv: list[str]) -> int:
    url, port = argv[0], int(argv[1])
    uvicorn.run(app(url), host="127.0.0.1", port=port, workers=1, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
