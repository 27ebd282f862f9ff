"""Bulk edits from a list: set one field on many records, or delete many.

Each record goes through the ordinary update or delete, with its own version read just
before, so every rule (validation, stage gates, restrictions) applies to each one, and
one refused record does not stop the others: the result names each refusal, like a mass
update in the CRMs people know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BatchTooLarge, RecordError, ValidationFailed
from .service import RecordsService


@dataclass
class BulkResult:
    done: list[int] = field(default_factory=list)
    #: Why each refused record was refused, by id.
    refused: dict[int, str] = field(default_factory=dict)


def _ids(records: RecordsService, ids: Iterable[int]) -> list[int]:
    """The ids once each, at most `limits.batch_max` of them (413 naming the cap)."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        raise ValidationFailed({"ids": ["select at least one record"]})
    check_size(records, len(unique))
    return unique


def check_size(records: RecordsService, count: int) -> None:
    """Refuse (413, naming the cap) a bulk edit of more than `limits.batch_max` records;
    called on the form's ids before they are parsed too, so the refusal costs little."""
    cap = records.limits.batch_max
    if count > cap:
        raise BatchTooLarge(f"ids: {count} records selected; a bulk edit takes at most {cap} "
                            "(SLATECRM_MAX_BATCH)")


def update_many(records: RecordsService, entity: str, ids: Iterable[int], data: Mapping[str, Any], *,
                user: int | None = None) -> BulkResult:
    records.entity(entity)
    if not data:
        raise ValidationFailed({"field": ["choose the field to set"]})
    result = BulkResult()
    for record_id in _ids(records, ids):
        try:
            current = records.get(entity, record_id)
            records.update(entity, record_id, data, version=current.version, user=user)
        except RecordError as error:
            result.refused[record_id] = str(error)
        else:
            result.done.append(record_id)
    return result


def delete_many(records: RecordsService, entity: str, ids: Iterable[int], *,
                user: int | None = None) -> BulkResult:
    records.entity(entity)
    result = BulkResult()
    for record_id in _ids(records, ids):
        try:
            records.delete(entity, record_id, user=user)
        except RecordError as error:
            result.refused[record_id] = str(error)
        else:
            result.done.append(record_id)
    return result
