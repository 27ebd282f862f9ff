"""Kanban boards: one per pipeline, one column per stage with its count and the sum of a
number field; cards move by drag and drop (Sortable.js posting to the record's move), or
without JavaScript through the record page's stage path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ...metamodel.model import Stage
from ..records import aggregates
from ..records.compiled import CompiledEntity, CompiledField
from ..records.errors import BadQuery
from ..records.listing import RECENT_FIRST, Filter, ListQuery, sort_or
from ..records.service import Page, RecordsService
from . import layout_view
from .list_pages import list_query
from .pinning import records_of
from .templating import render
from .uicontext import base_context
from .view_choice import applied, chosen, metamodel_views

CARDS_PER_COLUMN = 50


@dataclass(frozen=True)
class Column:
    stage: Stage
    page: Page
    count: int
    total: str
    #: The column's sums as values of the summed field (one per currency for amounts).
    totals: tuple[Any, ...]


def sum_field(ce: CompiledEntity, wanted: str | None) -> str | None:
    """The field a board adds up: the one asked for, else the first of the types that
    rank first for adding up unasked (amounts, then numbers)."""
    if wanted and wanted in ce.fields and ce.fields[wanted].type.summable:
        return wanted
    ranked = [(c.type.sum_rank, i, name) for i, (name, c) in enumerate(ce.fields.items())
              if c.type.summable and c.type.sum_rank is not None]
    return min(ranked)[2] if ranked else None


def format_total(ce: CompiledEntity, field: str | None, totals: tuple[Any, ...]) -> str:
    """The sums of a column as text, one per group the type keeps apart ("USD 1,200 · EUR 300");
    a column with nothing to add shows the type's zero."""
    if field is None:
        return ""
    compiled = ce.fields[field]
    if not totals:
        totals = (compiled.type.total(0, {}, compiled.field),)
    return " · ".join(compiled.type.display_total(t, compiled.field) for t in totals)


async def board(request: Request) -> Response:
    records = records_of(request)
    entity, name = request.path_params["entity"], request.path_params["pipeline"]
    ce = await run_in_threadpool(records.entity, entity)
    pipeline = next((p for p in ce.entity.pipelines if p.name == name), None)
    if pipeline is None:
        known = ", ".join(p.name for p in ce.entity.pipelines) or "none"
        raise HTTPException(404, f"{ce.entity.label} has no pipeline {name!r}; pipelines: {known}")
    # A kanban view of this pipeline: its filter and card order, card fields and totals.
    view = await chosen(request, records, entity, "kanban")
    if view is not None and view.pipeline != pipeline.name:
        raise BadQuery({"view": [f"view {view.key!r} is a board of pipeline {view.pipeline!r}, "
                                 f"not {name!r}"]})
    base = applied(list_query(request), view, request)
    adding = sum_field(ce, request.query_params.get("sum") or (view.totals if view else None))
    shown = [ce.fields[n] for n in (view.card_fields if view else ()) if n in ce.fields]
    totals = await run_in_threadpool(aggregates.group_totals, records, entity, pipeline.field, adding, base)
    cards = sort_or(ce, base.sort, RECENT_FIRST)
    scoped = [(entity, ListQuery(sort=cards, limit=CARDS_PER_COLUMN, search=base.search,
                                 expression=base.expression,
                                 filters=(*[f for f in base.filters if f.field != pipeline.field],
                                          Filter(pipeline.field, "eq", (stage.key,)))))
              for stage in pipeline.stages]
    pages = await run_in_threadpool(records.first_pages, scoped)  # every column in one statement
    columns = []
    for stage, page in zip(pipeline.stages, pages, strict=True):
        total = totals.get(stage.key)
        sums = total.totals if total else ()
        columns.append(Column(stage, page, total.count if total else 0, format_total(ce, adding, sums), sums))
    context = await base_context(request, entity=entity, title=f"{ce.entity.label_plural}: {pipeline.label}")
    views = [v for v in metamodel_views(records, entity, "kanban") if v.pipeline == pipeline.name]
    twin = {"entity": entity, "pipeline": pipeline.name, "field": pipeline.field, "sum_field": adding,
            "view": view.key if view else None, "views": [{"view": v.key, "label": v.label} for v in views],
            "card_fields": [f.name for f in shown],
            "columns": [{"stage": c.stage.key, "label": c.stage.label, "count": c.count,
                         "total": c.total,
                         "totals": [ce.fields[adding].to_json(t) for t in c.totals] if adding else [],
                         "records": [records.as_json(r) for r in c.page.records]}
                        for c in columns]}
    return render(request, "board", {
        **context, "ce": ce, "pipeline": pipeline, "columns": columns,
        "sum_field": ce.fields[adding] if adding else None,
        "card_fields": shown if view else _card_fields(records, ce),
        "view": view, "views": views,
    }, twin=twin, entity=entity)


def _card_fields(records: RecordsService, ce: CompiledEntity) -> list[CompiledField]:
    """What a card shows under its title: the compact layout's fields, else the first link."""
    layout = layout_view.layout_of(ce, records.snapshot().metamodel.layouts)
    compact = layout_view.compact_fields(ce, layout)
    if compact is not None:
        return compact
    return [f for f in ce.fields.values() if f.type.links_records][:1]
