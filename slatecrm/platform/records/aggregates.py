"""Totals per stage (or per option of any choice field) for boards: a count and a sum.

Built from the same SELECT a list page runs (`listing.build`), without its order and
limit, so a board's totals always agree with its filters, whatever they are.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from . import listing
from .errors import BadQuery
from .listing import ListQuery
from .service import RecordsService


@dataclass(frozen=True)
class GroupTotal:
    key: str | None
    count: int
    #: One sum per group of values that may be added together (one per currency), each
    #: a value of the summed field (`FieldType.total`), in a stable order; () when nothing
    #: was summed or no record has a value.
    totals: tuple[Any, ...] = ()


def group_totals(records: RecordsService, entity: str, field: str, sum_field: str | None,
                 query: ListQuery | None = None) -> dict[str | None, GroupTotal]:
    ce = records.entity(entity)
    errors: dict[str, list[str]] = {}
    if field not in ce.fields or not ce.fields[field].type.groupable:
        errors["group"] = [f"{entity} has no stage or choice field {field!r}"]
    if sum_field is not None and (sum_field not in ce.fields
                                  or not ce.fields[sum_field].type.summable):
        errors["sum"] = [f"{entity} has no number field {sum_field!r} to add up"]
    if errors:
        raise BadQuery(errors)
    base = replace(query or ListQuery(), after=None, sort=(), limit=1)
    rows = listing.build(ce, base, records.expression_conditions(entity, base)).select \
        .limit(None).order_by(None).subquery()
    key = rows.c[ce.fields[field].column]
    # A sum never adds values its type keeps apart (amounts in different currencies):
    # one row per group key and per value of the type's sum groups.
    summed = ce.fields[sum_field] if sum_field is not None else None
    groups = [(suffix, rows.c[summed.column_of(suffix)])
              for suffix in summed.type.sum_groups(summed.field)] if summed else []
    columns: list[Any] = [key, sa.func.count(), *[c for _, c in groups]]
    if summed is not None:
        columns.append(sa.func.sum(rows.c[summed.column]))
    counts: dict[str | None, int] = {}
    totals: dict[str | None, list[Any]] = {}
    with records.engine.connect() as conn:
        grouped = sa.select(*columns).group_by(key, *[c for _, c in groups])
        for row in conn.execute(grouped.order_by(key, *[c for _, c in groups])):
            counts[row[0]] = counts.get(row[0], 0) + row[1]
            if summed is not None and row[-1] is not None:
                group = {suffix: row[2 + i] for i, (suffix, _) in enumerate(groups)}
                totals.setdefault(row[0], []).append(summed.type.total(row[-1], group, summed.field))
    return {k: GroupTotal(k, n, tuple(totals.get(k, ()))) for k, n in counts.items()}
