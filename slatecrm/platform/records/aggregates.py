"""Totals per stage (or per option of any choice field) for boards: a count and a sum.

Built from the same SELECT a list page runs (`listing.build`, through the read path's
`Reader.list_select`, so the read filter applies), without its order and limit, so a
board's totals always agree with its filters, whatever they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .compiled import CompiledEntity
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
    with records.reading() as reader:
        ce = reader.entity(entity)
        _check(ce, entity, field, sum_field)
        rows = reader.totals(ce, ce.fields[field].column,
                             ce.fields[sum_field].column if sum_field is not None else None,
                             query or ListQuery())
    return {key: GroupTotal(key, count, total) for key, count, total in rows}


def _check(ce: CompiledEntity, entity: str, field: str, sum_field: str | None) -> None:
    errors: dict[str, list[str]] = {}
    if field not in ce.fields or ce.fields[field].field.type not in ("stage", "choice"):
        errors["group"] = [f"{entity} has no stage or choice field {field!r}"]
    if sum_field is not None and (sum_field not in ce.fields
                                  or ce.fields[sum_field].field.type not in SUMMABLE):
        errors["sum"] = [f"{entity} has no number field {sum_field!r} to add up"]
    if errors:
        raise BadQuery(errors)
