"""Totals per stage (or per option of any choice field) for boards: a count and a sum.

Built from the same SELECT a list page runs (`listing.build`, through the read path's
`Reader.list_select`, so the read filter applies), without its order and limit, so a
board's totals always agree with its filters, whatever they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .compiled import CompiledEntity
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
    with records.reading() as reader:
        ce = reader.entity(entity)
        _check(ce, entity, field, sum_field)
        summed = ce.fields[sum_field] if sum_field is not None else None
        rows = reader.totals(ce, ce.fields[field].column, summed, query or ListQuery())
    counts: dict[str | None, int] = {}
    totals: dict[str | None, list[Any]] = {}
    for key, count, group, total in rows:
        counts[key] = counts.get(key, 0) + count
        if summed is not None and total is not None:
            totals.setdefault(key, []).append(summed.type.total(total, group, summed.field))
    return {k: GroupTotal(k, n, tuple(totals.get(k, ()))) for k, n in counts.items()}


def _check(ce: CompiledEntity, entity: str, field: str, sum_field: str | None) -> None:
    errors: dict[str, list[str]] = {}
    if field not in ce.fields or not ce.fields[field].type.groupable:
        errors["group"] = [f"{entity} has no stage or choice field {field!r}"]
    if sum_field is not None and (sum_field not in ce.fields
                                  or not ce.fields[sum_field].type.summable):
        errors["sum"] = [f"{entity} has no number field {sum_field!r} to add up"]
    if errors:
        raise BadQuery(errors)
