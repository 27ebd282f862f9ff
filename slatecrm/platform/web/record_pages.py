"""One record: its page (sections, related lists, stage path, history), the create and
edit forms with validation on change, stage moves, deletion and reference options."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from slatecrm.digits import RECORD_ID_MAX, VERSION_MAX, parse_digits
from slatecrm.metamodel.layouts import Layout, RelatedList
from slatecrm.metamodel.rules.types import SYSTEM_FIELDS

from ..identity.access import read_only_fields
from ..records import users
from ..records.compiled import CompiledEntity, CompiledField
from ..records.errors import (
    BadQuery,
    RecordError,
    RecordInUse,
    RecordNotFound,
    UnknownEntity,
    ValidationFailed,
    VersionConflict,
)
from ..records.formlogic import NO_STATE, FormState
from ..records.listing import ListQuery
from ..records.reading import Reader
from ..records.service import HistoryEntry, Page, Record, RecordsService, StageVisit
from ..workflows import console
from . import form_logic, layout_view, uploads, widgets
from .authentication import READ_METHODS
from .jsonresponse import JSONResponse
from .pinning import records_of
from .templating import render, render_fragment, wants_json
from .uicontext import UI, base_context
from .workflows_api import now
from .workflows_pages import automation

RELATED_LIMIT = 10
OPTIONS_LIMIT = 50


@dataclass(frozen=True)
class Related:
    """A related list: records of `ce` whose reference `field` points to this record."""

    ce: CompiledEntity
    field: CompiledField
    page: Page
    columns: list[CompiledField]
    #: The layout's title for the list (None: the other entity's plural label).
    label: str | None = None
    kind: str = "related"


@dataclass(frozen=True)
class Linked:
    """A linked list: the records of `ce` a field stored apart links to this record (a
    many-to-many's own field, or its inverse on the target's side), with what the link
    form offers."""

    ce: CompiledEntity
    #: The relation's name on this record's side (the API's related list is named so too).
    name: str
    page: Page
    columns: list[CompiledField]
    #: The first records the link form offers (id, title); a search finds others.
    options: list[tuple[int, str]]
    #: Whether the page links and unlinks (not when the links are a link entity's records).
    editable: bool = True
    #: The layout's title for the list (None: the other entity's plural label).
    label: str | None = None
    kind: str = "linked"


def _record_id(request: Request) -> int:
    return int(request.path_params["id"])


def _version(form: FormData) -> int | None:
    text = str(form.get("version") or "").strip()
    return parse_digits(text, VERSION_MAX)


def _back(form: FormData, default: str) -> str:
    """Where to go after a change: only a path of this UI (never another site)."""
    back = str(form.get("back") or "")
    return back if back.startswith("/e/") and "//" not in back else default


def stage_paths(ce: CompiledEntity, record: Record) -> list[dict[str, Any]]:
    """Each pipeline as the record's page shows it: its stages, the current one, where
    the record may go next and what each target requires."""
    out = []
    for pipeline in ce.entity.pipelines:
        current = record.values.get(pipeline.field)
        stage = pipeline.stage(current) if current else None
        allowed = [s.key for s in pipeline.stages if s.key != current
                   and (stage is None or stage.next is None or s.key in stage.next)]
        out.append({
            "pipeline": pipeline, "current": current,
            "current_index": next((i for i, s in enumerate(pipeline.stages) if s.key == current), -1),
            "allowed": allowed,
            "requires": {s.key: [ce.fields[r].field.label for r in s.requires if r in ce.fields]
                         for s in pipeline.stages},
        })
    return out


def _record_twin(records: RecordsService, record: Record, **extra: Any) -> dict[str, Any]:
    return {"record": records.as_json(record), **extra}


@dataclass(frozen=True)
class RecordView:
    """What a record page shows, read in five statements on the request's connection:
    the record (reference titles joined), its related lists (one stacked statement),
    its history, its stage visits, and the names those mention (people, and the titles
    of records its history refers to)."""

    ce: CompiledEntity
    record: Record
    related: list[Related]
    history: list[HistoryEntry]
    visits: list[StageVisit]
    people: dict[int, str]
    #: Titles of the records history entries refer to, by entity and id.
    history_titles: dict[str, dict[int, str]]
    #: The lists of records fields stored apart link to it (both sides of a many-to-many).
    linked: list[Linked]
    #: The entity's layout (None: the default page).
    layout: Layout | None
    #: Every related and linked list, in the order the page shows them.
    lists: list[Related | Linked]


def read_record_view(records: RecordsService, entity: str, record_id: int) -> RecordView:
    with records.reading() as reader:
        ce = reader.entity(entity)
        record = reader.get(entity, record_id)
        layout = layout_view.layout_of(ce, reader.snapshot.metamodel.layouts)
        history = reader.history(entity, record_id)
        visits = reader.stage_history(entity, record_id)
        titles, people = reader.names(history_references(ce, history), [
            record.system.get("owner"), record.system.get("created_by"), record.system.get("updated_by"),
            *(h.changed_by for h in history)])
        if layout is not None and layout.related_lists is not None:
            related, linked, order = _laid_out_lists(reader, entity, record_id, layout)
        else:
            related, linked = _related(reader, entity, record_id), _linked(reader, entity, record_id)
            order = [*related, *linked]
    return RecordView(ce, record, related, history, visits, people, titles, linked, layout, order)


def _related(reader: Reader, entity: str, record_id: int) -> list[Related]:
    """Every related list, as the record page shows them without a layout."""
    relations = reader.reverse_references(entity)
    pages = reader.related_lists(entity, record_id, relations, limit=RELATED_LIMIT)
    related = []
    for (other, field), page in zip(relations, pages, strict=True):
        other_ce = reader.entity(other)
        related.append(Related(other_ce, other_ce.fields[field], page,
                               [other_ce.fields[c] for c in widgets.default_columns(other_ce, 4)]))
    return related


def _linked(reader: Reader, entity: str, record_id: int,
            wanted: Sequence[tuple[str, RelatedList]] | None = None) -> list[Linked]:
    """The linked lists (both sides of a many-to-many): every one, or the `wanted` ones (by
    relation name, with the layout's list) in that order."""
    relations = reader.apart_relations(entity)
    chosen = wanted if wanted is not None else [(name, None) for name in relations]
    linked = []
    for name, shape in chosen:
        relation, inverse = relations[name]
        other = relation.source if inverse else relation.target
        if other not in reader.entities:  # an entity the user cannot read: no list
            continue
        other_ce = reader.entity(other)
        limit = shape.limit if shape is not None else RELATED_LIMIT
        sort = _readable_sort(other_ce, shape.sort) if shape is not None else ()
        page = reader.linked(entity, record_id, relation, inverse,
                             ListQuery(limit=limit, counted=True, sort=sort))
        offered = reader.page(other, ListQuery(limit=OPTIONS_LIMIT)) if relation.editable else None
        linked.append(Linked(other_ce, name, page, _columns(other_ce, shape, 3),
                             [(r.id, r.title) for r in offered.records] if offered else [],
                             relation.editable, shape.label if shape is not None else None))
    return linked


def _columns(ce: CompiledEntity, shape: RelatedList | None, default: int) -> list[CompiledField]:
    """A related list's columns: the layout's (those the user may read), else the default ones."""
    if shape is not None and shape.columns:
        return [ce.fields[name] for name in shape.columns if name in ce.fields]
    return [ce.fields[c] for c in widgets.default_columns(ce, default)]


def _readable_sort(ce: CompiledEntity, sort: tuple[str, ...]) -> tuple[str, ...]:
    """A layout's sort keys less those naming a field the user may not read (system fields stay)."""
    return tuple(key for key in sort if key.lstrip("-") in ce.fields or key.lstrip("-") in SYSTEM_FIELDS)


def _laid_out_lists(reader: Reader, entity: str, record_id: int,
                    layout: Layout) -> tuple[list[Related], list[Linked], list[Related | Linked]]:
    """The layout's related lists, in its order: those of references (read in one statement)
    and those of many-to-many links; a list of an entity the user cannot read is left out."""
    references = set(reader.reverse_references(entity))
    apart = {(r.source, r.field): name for name, (r, _) in reader.apart_relations(entity).items()}
    by_reference: list[RelatedList] = []
    by_link: list[tuple[str, RelatedList]] = []
    for shape in layout.related_lists or ():
        if (shape.entity, shape.field) in references and shape.entity in reader.entities \
                and shape.field in reader.entity(shape.entity).fields:
            by_reference.append(shape)
        elif (shape.entity, shape.field) in apart:
            by_link.append((apart[(shape.entity, shape.field)], shape))
    pages = reader.related_pages(entity, record_id, [
        (shape.entity, shape.field, _readable_sort(reader.entity(shape.entity), shape.sort), shape.limit)
        for shape in by_reference])
    related = []
    for shape, page in zip(by_reference, pages, strict=True):
        other_ce = reader.entity(shape.entity)
        related.append(Related(other_ce, other_ce.fields[shape.field], page, _columns(other_ce, shape, 4),
                               shape.label))
    linked = _linked(reader, entity, record_id, by_link)
    keyed: dict[tuple[str, str], Related | Linked] = {(r.ce.name, r.field.name): r for r in related}
    for name, shape in by_link:
        found = next((item for item in linked if item.name == name), None)
        if found is not None:
            keyed[(shape.entity, shape.field)] = found
    order = [keyed[(shape.entity, shape.field)] for shape in layout.related_lists or ()
             if (shape.entity, shape.field) in keyed]
    return related, linked, order


def history_references(ce: CompiledEntity, history: list[HistoryEntry]) -> dict[str, set[int]]:
    """The ids of records the history's changes refer to, by entity."""
    out: dict[str, set[int]] = {}
    targets = ce.references()
    for entry in history:
        for name, pair in entry.changes.items():
            if name in targets:
                out.setdefault(targets[name], set()).update(
                    v for v in pair if isinstance(v, int) and not isinstance(v, bool))
    return out


async def record_page(request: Request, *, errors: dict[str, list[str]] | None = None,
                      message: str = "", status: int = 200, workflow_error: str = "",
                      aimed: dict[str, str] | None = None) -> Response:
    """The record page; after a refused move, `aimed` is the stage it aimed at by pipeline
    field, which the refusal's "Fill in the fields" link opens the edit form at."""
    records = records_of(request)
    entity, record_id = request.path_params["entity"], _record_id(request)
    view = await run_in_threadpool(read_record_view, records, entity, record_id)
    ce, record = view.ce, view.record
    context = await base_context(request, entity=entity, title=record.title)
    panel = await run_in_threadpool(automation, records, entity, record_id)
    state = await run_in_threadpool(records.form_state, record)  # the fields its logic hides are not shown
    queued = request.query_params.get("queued", "")
    panel["queued"] = next((b["label"] for b in panel["buttons"] if b["name"] == queued), None)
    panel["error"] = workflow_error
    twin = _record_twin(records, record, errors=errors or {}, message=message, automation=panel,
                        related={f"{r.ce.name}.{r.field.name}": {
                            "count": r.page.count, "ids": [x.id for x in r.page.records]}
                            for r in view.related},
                        linked={r.name: {"count": r.page.count, "ids": [x.id for x in r.page.records]}
                                for r in view.linked},
                        history=[{"version": h.version, "action": h.action,
                                  "changed_at": h.changed_at, "changes": h.changes,
                                  **({"token": h.token.name} if h.token else {})}
                                 for h in view.history])
    return render(request, "record", {
        **context, "ce": ce, "record": record,
        **layout_view.tab_context(layout_view.tabs(
            ce, view.layout, [f for f in ce.fields.values() if f.name not in state.hidden])),
        "related": view.related, "lists": view.lists,
        "paths": stage_paths(ce, record), "history": list(reversed(view.history)), "visits": view.visits,
        "errors": errors or {}, "message": message, "people": view.people,
        "history_titles": view.history_titles, "automation": panel, "linked": view.linked,
        "aimed": aimed or {},
    }, twin=twin, entity=entity, status=status)


async def show(request: Request) -> Response:
    return await record_page(request)


def _raw_from_record(ce: CompiledEntity, record: Record | None, defaults: dict[str, str]) -> dict[str, Any]:
    """The form's inputs for `record` (or a new record), with `defaults` given in the URL:
    a new record's values, or an existing record's next stage (see `stage_moves`)."""
    raw: dict[str, Any] = {}
    for compiled in widgets.form_fields(ce):
        if record is not None and compiled.name not in defaults:
            value = record.values.get(compiled.name)
        else:
            value = compiled.field.default
            if value is None and compiled.name in ce.pipelines:
                stages = ce.pipelines[compiled.name].stages
                value = stages[0].key if stages else None
            if compiled.name in defaults:
                value = defaults[compiled.name]
            if value is not None:
                try:
                    value = compiled.type.coerce(value, compiled.field)
                except ValueError:
                    value = None
        raw.update(widgets.raw_inputs(compiled, value))
    owner = record.system.get("owner") if record is not None else defaults.get("owner")
    raw[widgets.OWNER] = str(owner or "")
    return raw


def _raw_from_form(ce: CompiledEntity, form: FormData, prefix: str = "") -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for compiled in widgets.form_fields(ce):
        raw.update(widgets.submitted(form, compiled, prefix))
    raw[widgets.OWNER] = str(form.get(prefix + widgets.OWNER) or "")
    return raw


async def _reference_options(records: RecordsService, ce: CompiledEntity, record: Record | None,
                             raw: dict[str, Any]) -> dict[str, list[tuple[int, str]]]:
    """The first records of each reference's target (and the chosen one) for its select."""
    out: dict[str, list[Any]] = {}
    readable = await run_in_threadpool(records.compiled)  # an entity the user cannot read: no options
    wanted = {name: target for name, target in ce.references().items()
              if name in ce.fields and ce.fields[name].type.writable and target in readable}
    pages = await run_in_threadpool(records.first_pages, [(target, ListQuery(limit=OPTIONS_LIMIT))
                                                           for target in wanted.values()])
    for (name, target), page in zip(wanted.items(), pages, strict=True):
        options = [(r.id, r.title) for r in page.records]
        chosen = parse_digits(str(raw.get(name) or ""), RECORD_ID_MAX)
        if chosen is not None and chosen not in {i for i, _ in options}:
            title = record.titles.get(name, "") if record is not None and record.values.get(name) == \
                chosen else ""
            if not title:
                try:
                    title = (await run_in_threadpool(records.get, target, chosen)).title
                except Exception:  # a dangling id typed by hand: show it, the service will refuse it
                    title = f"#{chosen}"
            options.insert(0, (chosen, title))
        out[name] = options
    for name, target in ce.references().items():
        if target not in readable and name in ce.fields and ce.fields[name].type.writable:
            out[name] = []
    for name, targets in ce.polymorphic_references().items():
        if ce.fields[name].type.writable:
            out[name] = await _grouped_options(records, ce, name, targets, readable, None,
                                               str(raw.get(name) or ""), record)
    out.update(await _linked_options(records, ce, record, raw, readable))
    return out


async def _linked_options(records: RecordsService, ce: CompiledEntity, record: Record | None,
                          raw: dict[str, Any], readable: Any) -> dict[str, list[tuple[int, str]]]:
    """The options of each field stored apart that links records (a many-to-many's
    multi-select): the first records of its target, and those chosen, with their titles."""
    wanted: dict[str, str] = {}
    for name, compiled in ce.fields.items():
        if not (compiled.type.stored_apart and compiled.type.writable):
            continue
        relation = compiled.type.apart_related(compiled.field, ce.name)
        if relation is not None:
            wanted[name] = relation.target
    if not wanted:
        return {}
    readable_targets = {n: t for n, t in wanted.items() if t in readable}
    pages = await run_in_threadpool(records.first_pages, [(t, ListQuery(limit=OPTIONS_LIMIT))
                                                           for t in readable_targets.values()])
    out: dict[str, list[tuple[int, str]]] = {name: [] for name in wanted}
    for (name, target), page in zip(readable_targets.items(), pages, strict=True):
        options = [(r.id, r.title) for r in page.records]
        shown = {i for i, _ in options}
        stored = record.values.get(name) if record is not None else None
        titles = getattr(stored, "titles", {})
        chosen = [i for t in (raw.get(name) or []) if (i := parse_digits(str(t), RECORD_ID_MAX)) is not None]
        missing = [i for i in chosen if i not in shown]
        for chosen_id in missing:
            title = titles.get(chosen_id, "")
            if not title:
                try:
                    title = (await run_in_threadpool(records.get, target, chosen_id)).title
                except RecordError:
                    title = f"#{chosen_id}"
            options.insert(0, (chosen_id, title))
        out[name] = options
    return out


#: How many records (the most recently changed of those the user may read that have a value)
#: a form reads for a field's suggestions: a bounded read through the records service, the
#: same on every database, that never shows a value from a record the user cannot read.
SUGGESTION_RECORDS = 200


def _suggestions(records: RecordsService, ce: CompiledEntity) -> dict[str, list[str]]:
    """The values each field that `suggests` offers in a form (tags used already)."""
    out: dict[str, list[str]] = {}
    for name, compiled in ce.fields.items():
        if not (compiled.type.suggests and compiled.type.writable):
            continue
        try:
            page = records.page(ce.name, ListQuery(expression=f"{name} is not blank", sort=("-updated_at",),
                                                   limit=SUGGESTION_RECORDS, counted=False))
        except BadQuery:  # a field the user may not read: nothing to suggest
            continue
        out[name] = compiled.type.suggestions((r.values.get(name) for r in page.records), compiled.field)
    return out


async def _grouped_options(records: RecordsService, ce: CompiledEntity, name: str, targets: Sequence[str],
                           readable: Mapping[str, Any], search: str | None, chosen: str,
                           record: Record | None) -> list[tuple[str, list[tuple[str, str]]]]:
    """A polymorphic reference's options: the first records of each target the user may
    read (matching `search`), grouped by the entity's label; the `chosen` value is kept."""
    compiled = ce.fields[name]
    wanted = [t for t in targets if t in readable]
    pages = await run_in_threadpool(records.first_pages, [
        (target, ListQuery(search=search, rank=bool(search), limit=OPTIONS_LIMIT)) for target in wanted])
    groups = []
    for target, page in zip(wanted, pages, strict=True):
        choices = [(compiled.type.reference_text(target, r.id, compiled.field), r.title)
                   for r in page.records]
        groups.append((readable[target].entity.label, choices))
    if chosen and all(value != chosen for _, group in groups for value, _ in group):
        try:
            value = compiled.type.coerce(chosen, compiled.field)
        except ValueError:
            value = None
        if value is not None and value["entity"] in wanted:
            same = record is not None and record.values.get(name) == value
            title = record.titles.get(name, "") if record is not None and same else ""
            if not title:
                try:
                    title = (await run_in_threadpool(records.get, value["entity"], value["id"])).title
                except Exception:  # a dangling value typed by hand: shown; the service refuses it
                    title = chosen
            for index, target in enumerate(wanted):
                if target == value["entity"]:
                    label, group = groups[index]
                    groups[index] = (label, [(chosen, title), *group])
    return groups


async def field_options(request: Request) -> Response:
    """The records a polymorphic reference may point to, matching `q`, across its targets:
    <optgroup>s of <option>s for its picker."""
    records = records_of(request)
    entity, name = request.path_params["entity"], request.path_params["field"]
    try:
        ce = await run_in_threadpool(records.entity, entity)
    except UnknownEntity:
        return HTMLResponse("", status_code=404)
    compiled = ce.fields.get(name)
    if compiled is not None and compiled.type.links_records and isinstance(compiled.field.options_if, str):
        return await _offered_options(request, ce, compiled)
    if compiled is None or not compiled.type.links_records or compiled.field.target:
        return HTMLResponse(f"{entity} has no polymorphic reference {name[:60]!r}", status_code=404)
    readable = await run_in_threadpool(records.compiled)
    text = request.query_params.get("q", "").strip()
    keep = request.query_params.get("keep", "")
    chosen = str(request.query_params.get(keep) or "") if keep and keep != "q" else ""
    groups = await _grouped_options(records, ce, name, compiled.field.targets, readable, text or None,
                                    chosen, None)
    return HTMLResponse(render_fragment(request, "_grouped_options.html",
                                        {"groups": groups, "chosen": chosen}))


async def _offered_options(request: Request, ce: CompiledEntity, compiled: CompiledField) -> Response:
    """The picker's search of a reference whose `options_if` filters the records offered:
    the records of its target matching `q` that the rule offers for the form's values (the
    form is sent along; `record`: the id of the record edited), as <option>s."""
    records = records_of(request)
    name, target = compiled.name, compiled.field.target or ""
    params = request.query_params
    text = params.get("q", "").strip()
    page = await run_in_threadpool(records.page, target, ListQuery(search=text or None, limit=OPTIONS_LIMIT,
                                                                       rank=True))
    choices = [(r.id, r.title) for r in page.records]
    record_id = parse_digits(params.get("record"), RECORD_ID_MAX)
    record = await run_in_threadpool(records.get, ce.name, record_id) if record_id is not None else None
    raw = _raw_from_form(ce, params)  # type: ignore[arg-type]  # the same get / getlist as a form
    locked = await locked_fields(records, ce.name, new_record=record is None)
    state = await _logic_state(records, ce, record, raw, locked, {name: choices})
    choices = form_logic.offered({name: choices}, state, raw)[name]
    chosen = await run_in_threadpool(_still_chosen, records, target, {"keep": name, name: raw.get(name)},
                                     choices)
    return HTMLResponse(render_fragment(request, "_options.html", {"choices": choices, "chosen": chosen}))


async def locked_fields(records: RecordsService, entity: str, *, new_record: bool) -> frozenset[str]:
    """The fields of `entity` read-only for the user on a new record (or a stored one): the
    roles' and those the entity defines read-only (a `read_only_after_create` field only on a
    stored record). Shown in forms, never sent (the write pipeline refuses changing them all
    the same; identity/access.py decides)."""
    return await run_in_threadpool(lambda: read_only_fields(records.access(), entity, new_record=new_record))


def _layout(records: RecordsService, ce: CompiledEntity) -> Layout | None:
    return layout_view.layout_of(ce, records.snapshot().metamodel.layouts)


async def form_page(request: Request, ce: CompiledEntity, record: Record | None, raw: dict[str, Any], *,
                    errors: dict[str, list[str]] | None = None, conflict: VersionConflict | None = None,
                    version: int | None = None, was: dict[str, Any] | None = None,
                    status: int = 200) -> Response:
    """`version` is the one the user's change is based on: kept across a re-shown form, so
    a save after a validation error still notices what others changed meanwhile."""
    if version is None and record is not None:
        version = record.version
    context, state = await _form_context(request, ce, record, raw, errors or {})
    twin: dict[str, Any] = {"entity": ce.name, "values": raw, "errors": errors or {}, "version": version,
                            **_logic_twin(state)}
    if conflict is not None:
        twin["conflict"] = {"message": str(conflict), "current_version": conflict.current,
                            "changed": conflict.changed}
    return render(request, "form", {
        **context, "conflict": conflict, "version": version,
        "was": (was if was is not None else raw) if record is not None else None,
    }, twin=twin, entity=ce.name, status=status)


async def _form_context(request: Request, ce: CompiledEntity, record: Record | None, raw: dict[str, Any],
                        errors: dict[str, list[str]]) -> tuple[dict[str, Any], FormState]:
    """What a form's fields are rendered with (the whole form, or a row of it re-rendered
    for the form logic), and the logic's decisions for `raw`."""
    records = records_of(request)
    locked = await locked_fields(records, ce.name, new_record=record is None)
    title = f"Edit {record.title}" if record else f"New {ce.entity.label.lower()}"
    context = await base_context(request, entity=ce.name, title=title)
    options = await _reference_options(records, ce, record, raw)
    state = await _logic_state(records, ce, record, raw, locked, options)
    suggestions = await run_in_threadpool(_suggestions, records, ce)
    owners = await run_in_threadpool(users.everyone, records)
    action = f"/e/{ce.name}/{record.id}/edit" if record else f"/e/{ce.name}/new"
    validate = f"/e/{ce.name}/{record.id}/validate" if record else f"/e/{ce.name}/validate"
    return {
        **context, "ce": ce, "record": record, "raw": raw, "errors": errors,
        **layout_view.tab_context(layout_view.tabs(
            ce, await run_in_threadpool(_layout, records, ce),
            form_logic.shown_fields(widgets.form_fields(ce), state, raw))),
        "options": form_logic.offered(options, state, raw), "locked": locked | state.read_only,
        "hidden": state.hidden, "oob": False, "suggestions": suggestions, "action": action,
        "validate": validate, "owners": owners,
    }, state


def _data_of(ce: CompiledEntity, raw: Mapping[str, Any], locked: frozenset[str], *,
             keep_blank: bool) -> dict[str, Any]:
    """The service's input for a form showing `raw` (a new record's defaults, or what was
    submitted), as a save would read it."""
    pairs = [(key, item) for key, value in raw.items()
             for item in (value if isinstance(value, list) else [value])]
    return widgets.read_form(ce, FormData(pairs), keep_blank=keep_blank, locked=locked)


async def _logic_state(records: RecordsService, ce: CompiledEntity, record: Record | None,
                       raw: Mapping[str, Any], locked: frozenset[str],
                       options: Mapping[str, list[Any]]) -> FormState:
    """What the form logic decides for the form's values (form_logic.py): the stored record
    changed by what `raw` changes, or a new record of `raw`."""
    if not await run_in_threadpool(lambda: records.full_snapshot().rules.entity(ce.name).logic.fields):
        return NO_STATE
    data = _data_of(ce, raw, locked, keep_blank=record is not None)
    if record is not None:  # an edit: the values that differ from the stored ones
        stored = _raw_from_record(ce, record, {})
        data = {k: v for k, v in data.items() if raw.get(k) != stored.get(k)}
    try:
        _, state = await run_in_threadpool(lambda: records.preview(
            ce.name, data, record_id=record.id if record else None,
            candidates=form_logic.candidates(ce, options)))
    except RecordError:
        return NO_STATE  # a form the principal may not save: the save itself will say why
    return state


def _logic_twin(state: FormState) -> dict[str, Any]:
    """The form logic's decisions in a form's JSON twin, when there are any."""
    if state == NO_STATE:
        return {}
    return {"logic": {"hidden": sorted(state.hidden), "required": sorted(state.required),
                      "read_only": sorted(state.read_only),
                      "refused_options": {k: sorted(v) for k, v in state.refused_options.items()},
                      "offered": {k: sorted(v) for k, v in state.offered.items()}}}


async def new(request: Request) -> Response:
    records = records_of(request)
    ce = await run_in_threadpool(records.entity, request.path_params["entity"])
    if request.method in READ_METHODS:  # HEAD is a GET without the body
        defaults = {k: v for k, v in request.query_params.items()
                    if (k in ce.fields or k == widgets.OWNER) and v}
        return await form_page(request, ce, None, _raw_from_record(ce, None, defaults))
    form = await uploads.store_form_files(records, ce, await uploads.parsed_form(request))
    data = widgets.read_form(ce, form, keep_blank=False,
                             locked=await locked_fields(records, ce.name, new_record=True))
    try:
        record = await run_in_threadpool(records.create, ce.name, data)
    except ValidationFailed as error:
        return await form_page(request, ce, None, _raw_from_form(ce, form), errors=error.errors, status=422)
    if wants_json(request):
        return JSONResponse(records.as_json(record), status_code=201)
    return RedirectResponse(f"/e/{ce.name}/{record.id}", status_code=303)


def stage_moves(ce: CompiledEntity, request: Request) -> dict[str, str]:
    """`?<pipeline field>=<stage>` on an edit form: the stage a refused move aimed at (the
    board's drop, the path bar), set in the form so that its form logic shows the fields the
    stage asks for; nothing is saved until the form is. Only pipeline fields: the form of an
    existing record is otherwise the record as stored."""
    return {k: v for k, v in request.query_params.items() if k in ce.pipelines and v}


async def edit(request: Request) -> Response:
    records = records_of(request)
    ce = await run_in_threadpool(records.entity, request.path_params["entity"])
    record = await run_in_threadpool(records.get, ce.name, _record_id(request))
    if request.method in READ_METHODS:  # HEAD is a GET without the body
        # The stage aimed at is a change of the form: what it was is the record as stored.
        return await form_page(request, ce, record, _raw_from_record(ce, record, stage_moves(ce, request)),
                               was=_raw_from_record(ce, record, {}))
    form = await uploads.store_form_files(records, ce, await uploads.parsed_form(request))
    data = widgets.read_form(ce, form, keep_blank=True,
                             locked=await locked_fields(records, ce.name, new_record=False))
    reapply = str(form.get("reapply") or "")
    # "Re-apply my changes" after a conflict: the same changes, based on the current version.
    reapplied = parse_digits(reapply, VERSION_MAX)
    version = reapplied if reapplied is not None else _version(form)
    try:
        saved = await run_in_threadpool(records.update, ce.name, record.id, data, version=version)
    except VersionConflict as conflict:
        return await form_page(request, ce, record, _raw_from_form(ce, form), conflict=conflict,
                               version=version, was=_raw_from_form(ce, form, widgets.WAS), status=409)
    except ValidationFailed as error:
        return await form_page(request, ce, record, _raw_from_form(ce, form), errors=error.errors,
                               version=version, was=_raw_from_form(ce, form, widgets.WAS), status=422)
    if wants_json(request):
        return JSONResponse(records.as_json(saved))
    return RedirectResponse(f"/e/{ce.name}/{record.id}", status_code=303)


async def validate(request: Request) -> Response:
    """Validation on change: the errors of the field that changed, as an htmx out-of-band
    swap of its error slot (or every field's, as JSON). When a form-logic rule reads the
    field, the rows of the fields the logic decides about come too, re-rendered for the
    form's values (shown or hidden, required, read-only, the options offered)."""
    records = records_of(request)
    ce = await run_in_threadpool(records.entity, request.path_params["entity"])
    record_id = int(request.path_params["id"]) if "id" in request.path_params else None
    form = await uploads.without_files(await uploads.parsed_form(request))
    data = widgets.read_form(ce, form, keep_blank=record_id is not None,
                             locked=await locked_fields(records, ce.name, new_record=record_id is None))
    errors = await run_in_threadpool(lambda: records.check(ce.name, data, record_id=record_id))
    if wants_json(request):
        return JSONResponse({"errors": errors})
    field = widgets.field_of_source(ce, request.headers.get("hx-source", ""))
    slots = {name: errors.get(name, []) for name in [*ce.fields, ""]}
    if field:
        # Besides the field that changed, every slot whose message a rule gives (a rule on
        # two fields names the other one), and empty ones to clear what no longer applies;
        # a field left blank so far keeps its slot as it is rather than shout "is required"
        # (or "is required when …", a rule's).
        slots = {name: messages for name, messages in slots.items()
                 if name == field or any(not m.startswith("is required") for m in messages) or not messages}
    rows = await _logic_rows(request, ce, record_id, form, field, slots)
    html = "".join(render_fragment(request, "_error_slot.html", {"name": n, "messages": m, "oob": True})
                   for n, m in slots.items() if n not in rows)
    return HTMLResponse(html + "".join(rows.values()))


async def _logic_rows(request: Request, ce: CompiledEntity, record_id: int | None, form: FormData,
                      field: str | None, slots: Mapping[str, list[str]]) -> dict[str, str]:
    """The rows of the fields the form logic decides about, when `field` (the input that
    changed) is read by one of its rules, rendered out of band, by field; the changed
    field's own row is left alone (it holds the user's focus)."""
    records = records_of(request)
    logic = await run_in_threadpool(lambda: records.full_snapshot().rules.entity(ce.name).logic)
    if field is None or field not in logic.inputs:
        return {}
    record = await run_in_threadpool(records.get, ce.name, record_id) if record_id is not None else None
    raw = _raw_from_form(ce, form)
    if record is not None:  # a row hidden so far sent nothing: it comes back with what it started from
        sent, was = set(form.getlist("_fields")), _raw_from_form(ce, form, widgets.WAS)
        for compiled in widgets.form_fields(ce):
            if compiled.name not in sent:
                raw.update({key: was[key] for key in widgets.raw_inputs(compiled, None) if key in was})
    context, _ = await _form_context(request, ce, record, raw, {})
    fields = {f.name: f for tab in context["tabs"] for section in tab.sections for f in section.fields}
    rows = {}
    for name in sorted(logic.decided - {field}):
        if name in fields:
            rows[name] = render_fragment(request, "_form_row.html", {
                **context, "request": request, "f": fields[name], "oob": True,
                "errors": {name: list(slots[name])} if slots.get(name) else {}})
    return rows


async def move(request: Request) -> Response:
    """Move a record to another stage (the record page's path bar, the board's drag and
    drop): the service checks the transition and the target's required fields."""
    records = records_of(request)
    entity, record_id = request.path_params["entity"], _record_id(request)
    ce = await run_in_threadpool(records.entity, entity)
    form = await request.form()
    field, stage = str(form.get("field") or ""), str(form.get("stage") or "")
    if field not in ce.pipelines:
        raise ValidationFailed({"field": [f"{ce.entity.label} has no pipeline on field {field!r}"]})
    try:
        saved = await run_in_threadpool(records.update, entity, record_id, {field: stage},
                                        version=_version(form))
    except (ValidationFailed, VersionConflict) as error:
        if wants_json(request):
            raise
        if isinstance(error, ValidationFailed):
            return await record_page(request, errors=error.errors, status=error.status, aimed={field: stage})
        return await record_page(request, errors={field: [str(error)]}, status=error.status)
    if wants_json(request):
        return JSONResponse(records.as_json(saved))
    return RedirectResponse(_back(form, f"/e/{entity}/{record_id}"), status_code=303)


def change_link(records: RecordsService, entity: str, record_id: int, relation: str, action: str,
                other: int | None) -> None:
    """Link `other` to the record through `relation` (a field stored apart of this entity, or
    its inverse name), or unlink it: a change of the field on whichever record holds it
    (this one, or `other` on the inverse side), based on that record's current version."""
    with records.reading() as reader:
        reader.get(entity, record_id)  # this record must be visible
        relations = reader.apart_relations(entity)
    if relation not in relations:
        raise ValidationFailed({"": [f"{entity} has no linked list {relation!r}"]})
    found, inverse = relations[relation]
    if not found.editable:
        raise ValidationFailed({relation: [f"these links are {found.table.removeprefix('x_')} records: "
                                           "add or delete those"]})
    if other is None:
        raise ValidationFailed({relation: ["choose a record"]})
    if action not in ("link", "unlink"):
        raise ValidationFailed({relation: [f"{action[:20]!r} is neither link nor unlink"]})
    change = {"add" if action == "link" else "remove": [record_id if inverse else other]}
    holder, held_by = (found.source, other) if inverse else (entity, record_id)
    try:
        current = records.get(holder, held_by)
    except RecordNotFound:
        raise ValidationFailed({relation: [f"there is no {holder} with id {other}"]}) from None
    records.update(holder, held_by, {found.field: change}, version=current.version)


async def link(request: Request) -> Response:
    """The record page's link / unlink buttons of a linked list (works without JavaScript)."""
    records = records_of(request)
    entity, record_id = request.path_params["entity"], _record_id(request)
    relation = request.path_params["relation"]
    form = await request.form()
    other = parse_digits(str(form.get("other") or "").strip(), RECORD_ID_MAX)
    try:
        await run_in_threadpool(change_link, records, entity, record_id, relation,
                                str(form.get("action") or "link"), other)
    except (ValidationFailed, VersionConflict) as error:
        if wants_json(request):
            raise
        errors = error.errors if isinstance(error, ValidationFailed) else {relation: [str(error)]}
        messages = [m for each in errors.values() for m in each]
        return await record_page(request, errors={relation: messages}, status=error.status)
    if wants_json(request):
        return Response(status_code=204)
    return RedirectResponse(f"/e/{entity}/{record_id}#linked-{relation}", status_code=303)


async def delete(request: Request) -> Response:
    """GET asks "really?" (a page, so it works without JavaScript); POST deletes."""
    records = records_of(request)
    entity, record_id = request.path_params["entity"], _record_id(request)
    if request.method in READ_METHODS:  # HEAD is a GET without the body
        ce = await run_in_threadpool(records.entity, entity)
        record = await run_in_threadpool(records.get, entity, record_id)
        # Not "really?" for a delete the user may not make: 403 here, as the POST would be
        # (the service's own check; an invisible record was 404 above).
        await run_in_threadpool(records.require, entity, "delete")
        context = await base_context(request, entity=entity, title=f"Delete {record.title}?")
        return render(request, "delete", {**context, "ce": ce, "record": record},
                      twin=_record_twin(records, record), entity=entity)
    form = await request.form()
    try:
        await run_in_threadpool(lambda: records.delete(entity, record_id, version=_version(form)))
    except (RecordInUse, VersionConflict) as error:
        if wants_json(request):
            raise
        return await record_page(request, message=str(error), status=error.status)
    if wants_json(request):
        return Response(status_code=204)
    return RedirectResponse(f"/e/{entity}", status_code=303)


async def run_workflow(request: Request) -> Response:
    """A manual workflow queued for this record (the Automation panel's buttons: a plain POST
    form, so it works without JavaScript; htmx swaps the panel only), then back to the record's
    page, whose panel says so. A refusal (the workflow is not runnable by hand, the user may
    not update the record) is shown in the panel; a record out of reach is 404."""
    records = records_of(request)
    entity, record_id = request.path_params["entity"], _record_id(request)
    name = request.path_params["name"]
    await request.form()  # the CSRF token was checked by the middleware; nothing else is read
    try:
        job_ids = await run_in_threadpool(console.start, records, entity, name, [record_id], now(request))
    except (RecordNotFound, UnknownEntity):
        raise
    except RecordError as error:
        if wants_json(request):
            raise
        return await record_page(request, workflow_error=str(error), status=error.status)
    if wants_json(request):
        return JSONResponse({"workflow": name, "entity": entity, "record_ids": [record_id],
                             "job_ids": job_ids}, status_code=202)
    back = f"/e/{entity}/{record_id}?{urlencode({'queued': name})}#automation"
    return RedirectResponse(back, status_code=303)


async def preview(request: Request) -> Response:
    """A record's compact form (its layout's compact fields, else a few default columns), an
    HTML fragment a reference link loads on hover or focus (templates/_macros.html `value`)."""
    records = records_of(request)
    entity, record_id = request.path_params["entity"], _record_id(request)
    ce = await run_in_threadpool(records.entity, entity)
    record = await run_in_threadpool(records.get, entity, record_id)
    fields = layout_view.compact_fields(ce, await run_in_threadpool(_layout, records, ce))
    if fields is None:
        fields = [ce.fields[name] for name in widgets.default_columns(ce, 4) if name != ce.entity.title_field]
    if wants_json(request):
        return JSONResponse({"id": record.id, "title": record.title,
                             "fields": {f.name: f.to_json(record.values.get(f.name)) for f in fields}})
    context = {"ce": ce, "record": record, "fields": fields, "ui": UI}
    return HTMLResponse(render_fragment(request, "_preview.html", context))


async def options(request: Request) -> Response:
    """Records of an entity matching `q`, as <option>s for a reference picker (or JSON)."""
    records = records_of(request)
    entity = request.path_params["entity"]
    text = request.query_params.get("q", "").strip()
    page = await run_in_threadpool(records.page, entity, ListQuery(search=text or None, limit=OPTIONS_LIMIT,
                                                                       rank=True))
    choices = [(r.id, r.title) for r in page.records]
    if wants_json(request):
        return JSONResponse({"data": [{"id": i, "title": t} for i, t in choices]})
    if request.query_params.get("multiple"):  # a multi-select: every chosen record stays chosen
        kept = await run_in_threadpool(_still_chosen_all, records, entity, request.query_params, choices)
        return HTMLResponse(render_fragment(request, "_options_multiple.html",
                                            {"choices": choices, "chosen": kept}))
    chosen = await run_in_threadpool(_still_chosen, records, entity, request.query_params, choices)
    return HTMLResponse(render_fragment(request, "_options.html", {"choices": choices, "chosen": chosen}))


def _still_chosen_all(records: RecordsService, entity: str, params: Any,
                      choices: list[tuple[int, str]]) -> set[int]:
    """The records a multi-select (named by `keep`, sent along) has chosen, kept among the
    new options: a search must not undo the choices made before it."""
    keep = params.get("keep", "")
    texts = params.getlist(keep) if keep and keep != "q" else []
    chosen = [i for t in texts[:OPTIONS_LIMIT] if (i := parse_digits(t, RECORD_ID_MAX))]
    shown = {i for i, _ in choices}
    for chosen_id in reversed(chosen):
        if chosen_id not in shown:
            try:
                choices.insert(0, (chosen_id, records.get(entity, chosen_id).title))
            except RecordNotFound:
                continue
    return {i for i, _ in choices if i in set(chosen)}


def _still_chosen(records: RecordsService, entity: str, params: Any,
                  choices: list[tuple[int, str]]) -> int | None:
    """The record the picker has chosen (its select, named by `keep`, sent along), kept
    among the new options: a search answered after a choice was made must not undo it."""
    keep = params.get("keep", "")
    chosen = parse_digits(params.get(keep) if keep and keep != "q" else None, RECORD_ID_MAX)
    if not chosen:
        return None
    if all(i != chosen for i, _ in choices):
        try:
            choices.insert(0, (chosen, records.get(entity, chosen).title))
        except RecordNotFound:
            return None
    return chosen
