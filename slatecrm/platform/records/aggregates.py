"""Totals per stage (or per option of any choice field) for boards: a count and a sum.

Built from the same SELECT a list page runs (`listing.build`), without its order and
limit, so a board's totals always agree with its filters, whatever they are.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from . import listing
from .errors import BadQuery
from .listing import ListQuery
from .service import RecordsService

#: Field types whose values can be summed on a board.
SUMMABLE = frozenset({"integer", "decimal", "percent", "currency"})


@dataclass(frozen=True)
class GroupTotal:
    key: str | None
    count: int
    total: Decimal | int | None


def group_totals(records: RecordsService, entity: str, field: str, sum_field: str | None,
                 query: ListQuery | None = None) -> dict[str | None, GroupTotal]:
    ce = records.entity(entity)
    errors: dict[str, list[str]] = {}
    if field not in ce.fields or ce.fields[field].field.type not in ("stage", "choice"):
        errors["group"] = [f"{entity} has no stage or choice field {field!r}"]
    if sum_field is not None and (sum_field not in ce.fields
                                  or ce.fields[sum_field].field.type not in SUMMABLE):
        errors["sum"] = [f"{entity} has no number field {sum_field!r} to add up"]
    if errors:
        raise BadQuery(errors)
    base = replace(query or ListQuery(), after=None, sort=(), limit=1)
    rows = listing.build(ce, base, records.expression_conditions(entity, base)).select \
        .limit(None).order_by(None).subquery()
    key = rows.c[ce.fields[field].column]
    columns: list[Any] = [key, sa.func.count()]
    if sum_field is not None:
        columns.append(sa.func.sum(rows.c[ce.fields[sum_field].column]))
    out = {}
    with records.engine.connect() as conn:
        for row in conn.execute(sa.select(*columns).group_by(key)):
            out[row[0]] = GroupTotal(row[0], row[1], row[2] if sum_field is not None else None)
    return out
