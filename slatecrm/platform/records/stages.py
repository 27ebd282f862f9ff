"""Stage gates and stage history: the rules a pipeline puts on moving a record.

A move must be allowed by the current stage's `next` list, and the target stage's
required fields must have values (each missing field is named). Entering a won or lost
stage sets the pipeline's close-date field when it is blank; every move closes the open
visit in the stage history (with the time spent) and opens one for the new stage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.model import Pipeline

from ..storage import system
from .compiled import CompiledEntity, is_blank


def gate(ce: CompiledEntity, pipeline: Pipeline, old: str | None, new: str | None,
         record: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, message) for each reason the move old → new is refused."""
    if new is None or old == new:
        return
    target = pipeline.stage(new)
    if target is None:
        return  # the field's coercer already refused an unknown stage
    current = pipeline.stage(old) if old is not None else None
    if current is not None and current.next is not None and new not in current.next:
        allowed = ", ".join(repr(s.label) for s in pipeline.stages if s.key in current.next) or "none"
        yield pipeline.field, (f"cannot move from {current.label!r} to {target.label!r}; "
                               f"allowed next stages: {allowed}")
    missing = [name for name in target.requires if name in ce.fields and is_blank(record.get(name))]
    if missing:
        labels = ", ".join(ce.fields[name].field.label for name in missing)
        yield pipeline.field, f"stage {target.label!r} requires {labels}"
        for name in missing:
            yield name, f"is required to enter stage {target.label!r}"


def close_dates(ce: CompiledEntity, before: Mapping[str, Any] | None, values: dict[str, Any],
                now: dt.datetime) -> None:
    """Set the close-date field of each pipeline whose record enters a won or lost stage
    (a new record created in one enters it too) when the field is blank. A date already
    set, by the user or by an earlier close, is kept; moving back to an open stage keeps
    it too (docs/decisions.md, "Close dates")."""
    for field_name, pipeline in ce.pipelines.items():
        closing = pipeline.close_date_field
        new = values.get(field_name)
        old = before.get(field_name) if before else None
        stage = pipeline.stage(new) if new is not None else None
        if not closing or closing not in ce.fields or new == old or stage is None or stage.category == "open":
            continue
        if is_blank(values.get(closing)):
            values[closing] = now if _is_datetime(ce, closing) else now.date()


def _is_datetime(ce: CompiledEntity, name: str) -> bool:
    """Whether the close-date field keeps a moment rather than a day (its rule-language type)."""
    compiled = ce.fields[name]
    kind = compiled.type.rule_type(compiled.field)
    return kind is not None and kind.kind == "datetime"


def record_move(conn: sa.Connection, ce: CompiledEntity, record_id: int, field: str, stage: str | None,
                now: dt.datetime, user: int | None) -> None:
    visits = system.stage_history
    key = (visits.c.entity == ce.name) & (visits.c.record_id == record_id) & (visits.c.field == field)
    open_visit = conn.execute(sa.select(visits.c.id, visits.c.entered_at)
                              .where(key, visits.c.left_at.is_(None))).first()
    if open_visit is not None:
        spent = int((now - open_visit.entered_at).total_seconds())
        conn.execute(visits.update().where(visits.c.id == open_visit.id).values(left_at=now, seconds=spent))
    if stage is not None:
        conn.execute(visits.insert().values(entity=ce.name, record_id=record_id, field=field, stage=stage,
                                            entered_at=now, entered_by=user))
