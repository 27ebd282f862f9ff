"""The designer's pipeline pages: `/admin/entities/{entity}/new-pipeline` makes a pipeline (its
name, label, the field holding a record's stage and its first stages; an entity made in the
designer has none), `/admin/entities/{entity}/pipelines/{pipeline}` shows the
stages in order (drag to reorder, or the up / down buttons without JavaScript), adds a
stage, and each stage's page changes its label, category, probability, colour, required
fields, entry condition (checked as typed, the error shown with a caret) and allowed next
stages, or retires it.

Every change is an edit of the organisation's layer, planned first and applied on
confirmation (web/designer_plans.py). What the organisation may change is what its layer
can express (customisation.py): anything of its own pipelines; in a pack's pipeline, the
stages it added, and the label and colour of the pack's own stages (`stage_overrides`; their
rules and place stay the pack's, shown read-only).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.metamodel.model import Entity, Metamodel, Pipeline, Stage

from .. import customisation, layers, pipeline_edits
from ..layers import ORGANISATION
from .admin import MANAGE_METAMODEL
from .authentication import READ_METHODS
from .designer_check import verdict
from .designer_forms import naming, valid_name
from .designer_plans import Outcome, plan_or_apply, review
from .pinning import records_of
from .rights import checked_right
from .roles_pages import not_found
from .templating import render
from .uicontext import base_context

CATEGORIES = ("open", "won", "lost")
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def _base(entity: str, pipeline: str) -> str:
    return f"/admin/entities/{entity}/pipelines/{pipeline}"


def _found(metamodel: Metamodel, entity_name: str, pipeline_name: str) -> tuple[Entity, Pipeline]:
    entity = metamodel.entity(entity_name)
    pipeline = next((p for p in entity.pipelines if p.name == pipeline_name), None) if entity else None
    if entity is None or pipeline is None:
        raise HTTPException(404, f"there is no pipeline {entity_name}.{pipeline_name}")
    return entity, pipeline


def _stage_view(stage: Stage, pipeline: Pipeline) -> dict[str, Any]:
    return {"key": stage.key, "label": stage.label, "category": stage.category,
            "probability": stage.probability, "colour": stage.colour, "requires": list(stage.requires),
            "next": None if stage.next is None else list(stage.next), "condition": stage.condition,
            "condition_message": stage.condition_message, "pack": stage.pack,
            "editable": pipeline.pack == ORGANISATION or stage.pack == ORGANISATION,
            "overridable": sorted(customisation.STAGE_OVERRIDABLE)}


async def _view(request: Request) -> dict[str, Any]:
    """The pipeline as its pages show it (the JSON twin too), from the full metamodel."""
    await checked_right(request, MANAGE_METAMODEL)
    metamodel = (await run_in_threadpool(records_of(request).full_snapshot)).metamodel
    entity, pipeline = _found(metamodel, request.path_params["entity"], request.path_params["pipeline"])
    own = pipeline.pack == ORGANISATION
    return {"entity": {"name": entity.name, "label": entity.label, "label_plural": entity.label_plural},
            "pipeline": {"name": pipeline.name, "label": pipeline.label, "field": pipeline.field,
                         "pack": pipeline.pack, "own": own},
            "stages": [_stage_view(s, pipeline) for s in pipeline.stages],
            "fields": [{"name": f.name, "label": f.label} for f in entity.active_fields
                       if f.name != pipeline.field],
            "movable": own or any(s.pack == ORGANISATION for s in pipeline.stages),
            "base": _base(entity.name, pipeline.name), "board": f"/e/{entity.name}/board/{pipeline.name}"}


async def _pipeline_page(request: Request, *, errors: dict[str, list[str]] | None = None,
                         status: int = 200, new_stage: dict[str, str] | None = None) -> Response:
    view = await _view(request)
    context = await base_context(request, title=f"{view['entity']['label']}: {view['pipeline']['label']}")
    return render(request, "designer_pipeline", {**context, **view, "errors": errors or {},
                                                 "new_stage": new_stage or {}},
                  twin={**view, "errors": errors or {}}, status=status)


async def pipeline_page(request: Request) -> Response:
    return await _pipeline_page(request)


def _moved(keys: list[str], move: str) -> list[str]:
    """`key:up` or `key:down` applied to `keys` (the buttons of the page without JavaScript)."""
    key, _, way = move.partition(":")
    if key not in keys or way not in {"up", "down"}:
        raise HTTPException(400, "move: give a stage key and up or down")
    i = keys.index(key)
    j = i - 1 if way == "up" else i + 1
    if 0 <= j < len(keys):
        keys[i], keys[j] = keys[j], keys[i]
    return keys


async def reorder(request: Request) -> Response:
    view = await _view(request)
    form = await request.form()
    keys = [str(k) for k in form.getlist("order")] or [s["key"] for s in view["stages"]]
    move = form.get("move")
    if isinstance(move, str) and move:
        keys = _moved(keys, move)
    entity, pipeline = view["entity"]["name"], view["pipeline"]["name"]

    async def refused(errors: dict[str, list[str]]) -> Response:
        return await _pipeline_page(request, errors=errors, status=422)

    apply = [(name, str(v)) for name in ("confirm", "plan_digest") for v in form.getlist(name)]
    replay = FormData([*(("order", k) for k in keys), *apply])
    return await plan_or_apply(request, replay, f"reorder the stages of {entity}.{pipeline}",
                               pipeline_edits.order_stages(entity, pipeline, keys),
                               back=view["base"], done=view["base"], refused=refused)


def stage_body(form: FormData) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A stage's definition from its form, and the form's errors by field."""
    body: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    text = {k: str(form.get(k) or "").strip() for k in
            ("label", "category", "probability", "colour", "condition", "condition_message", "next_mode")}
    if text["label"]:
        body["label"] = text["label"]
    if text["category"] not in CATEGORIES:
        errors["category"] = [f"choose one of {', '.join(CATEGORIES)}"]
    else:
        body["category"] = text["category"]
    if text["probability"]:
        if not re.fullmatch(r"\d{1,3}", text["probability"]) or int(text["probability"]) > 100:
            errors["probability"] = ["give a whole number from 0 to 100"]
        else:
            body["probability"] = int(text["probability"])
    if text["colour"]:
        if not COLOUR.fullmatch(text["colour"]):
            errors["colour"] = ["write the colour as #rrggbb"]
        else:
            body["colour"] = text["colour"]
    requires = [str(v) for v in form.getlist("requires")]
    if requires:
        body["requires"] = requires
    if text["next_mode"] == "listed":
        body["next"] = [str(v) for v in form.getlist("next")]
    if text["condition"]:
        body["condition"] = text["condition"]
    if text["condition_message"]:
        body["condition_message"] = text["condition_message"]
    return body, errors


def looks_body(body: dict[str, Any], errors: dict[str, list[str]]) -> tuple[dict[str, Any],
                                                                           dict[str, list[str]]]:
    """The part of a stage's form that a pack's stage takes (customisation.STAGE_OVERRIDABLE:
    its label and colour, kept in the organisation's `stage_overrides`); its rules are the pack's."""
    looks = {k: body[k] for k in sorted(customisation.STAGE_OVERRIDABLE) if k in body}
    found = {k: v for k, v in errors.items() if k in customisation.STAGE_OVERRIDABLE}
    if not looks and not found:
        found["label"] = ["give the stage a label"]
    return looks, found


def _overridden(request: Request, entity: str, pipeline: str, stage: str) -> bool:
    """Whether the organisation relabels (or recolours) this pack's stage: its page then
    offers to revert to the pack's look."""
    with request.app.state.engine.connect() as conn:
        extension = layers.documents(conn).get(("extension", entity), {})
    overrides = (extension.get("pipelines") or {}).get(pipeline, {}).get("stage_overrides") or {}
    return stage in overrides


async def _stage_page(request: Request, view: dict[str, Any], stage: dict[str, Any], *,
                      errors: dict[str, list[str]] | None = None, status: int = 200) -> Response:
    context = await base_context(request, title=f"Stage {stage['label']}")
    overridden = not stage["editable"] and await run_in_threadpool(
        _overridden, request, view["entity"]["name"], view["pipeline"]["name"], stage["key"])
    return render(request, "designer_pipeline_stage", {**context, **view, "stage": stage,
                                                       "categories": CATEGORIES, "errors": errors or {},
                                                       "overridden": overridden},
                  twin={"stage": stage, "overridden": overridden, "errors": errors or {}}, status=status)


def _stage_of(view: dict[str, Any], key: str) -> dict[str, Any]:
    stage: dict[str, Any] | None = next((s for s in view["stages"] if s["key"] == key), None)
    if stage is None:
        raise HTTPException(404, f"pipeline {view['entity']['name']}.{view['pipeline']['name']} has no "
                                 f"stage {key!r}")
    return stage


async def stage_page(request: Request) -> Response:
    view = await _view(request)
    stage = _stage_of(view, request.path_params["stage"])
    if request.method in READ_METHODS:
        return await _stage_page(request, view, stage)
    form = await request.form()
    body, errors = stage_body(form)
    if not stage["editable"]:  # a pack's stage: the organisation may relabel and recolour it only
        body, errors = looks_body(body, errors)
    shown = {**stage, **body, "label": body.get("label", stage["label"]),
             "next": body.get("next"), "requires": body.get("requires", [])}
    if errors:
        return await _stage_page(request, view, shown, errors=errors, status=422)
    entity, pipeline, key = view["entity"]["name"], view["pipeline"]["name"], stage["key"]

    async def refused(found: dict[str, list[str]]) -> Response:
        return await _stage_page(request, view, shown, errors=found, status=422)

    return await plan_or_apply(request, form, f"change stage {entity}.{pipeline}.{key}",
                               pipeline_edits.change_stage(entity, pipeline, key, body),
                               back=f"{view['base']}/stages/{key}", done=view["base"], refused=refused)


async def add_stage(request: Request) -> Response:
    view = await _view(request)
    form = await request.form()
    key = str(form.get("key") or "").strip()
    label = str(form.get("label") or "").strip()
    after = str(form.get("after") or "").strip() or view["stages"][-1]["key"]
    new = {"key": key, "label": label, "after": after}
    if not valid_name(key):
        wrong = {"key": [naming("key")]}
        return await _pipeline_page(request, errors=wrong, status=422, new_stage=new)
    entity, pipeline = view["entity"]["name"], view["pipeline"]["name"]

    async def refused(errors: dict[str, list[str]]) -> Response:
        return await _pipeline_page(request, errors=errors, status=422, new_stage=new)

    body = {"label": label or key.replace("_", " ").capitalize(), "after": after}
    return await plan_or_apply(request, form, f"add stage {entity}.{pipeline}.{key}",
                               customisation.put_stage(entity, pipeline, key, body),
                               back=view["base"], done=view["base"], refused=refused)


async def remove_stage(request: Request) -> Response:
    view = await _view(request)
    key = _stage_of(view, request.path_params["stage"])["key"]
    form = await request.form()
    entity, pipeline = view["entity"]["name"], view["pipeline"]["name"]

    async def refused(errors: dict[str, list[str]]) -> Response:
        return await _pipeline_page(request, errors=errors, status=422)

    return await plan_or_apply(request, form, f"remove stage {entity}.{pipeline}.{key}",
                               customisation.delete_stage(entity, pipeline, key),
                               back=view["base"], done=view["base"], refused=refused)


async def revert_stage(request: Request) -> Response:
    """Remove the organisation's relabel (or recolour) of a pack's stage: the pack's look again."""
    view = await _view(request)
    stage = _stage_of(view, request.path_params["stage"])
    form = await request.form()
    entity, pipeline, key = view["entity"]["name"], view["pipeline"]["name"], stage["key"]
    here = f"{view['base']}/stages/{key}"

    async def refused(errors: dict[str, list[str]]) -> Response:
        return await _stage_page(request, view, stage, errors=errors, status=422)

    return await plan_or_apply(request, form, f"revert stage {entity}.{pipeline}.{key} to the pack's",
                               customisation.revert_stage(entity, pipeline, key),
                               back=here, done=here, refused=refused)


async def check_condition(request: Request) -> Response:
    """As the admin types an entry condition (htmx): its error with a caret, or that it is fine.
    The designer's own rule check (designer_check.py): an entry condition is a condition."""
    await checked_right(request, MANAGE_METAMODEL)
    metamodel = (await run_in_threadpool(records_of(request).full_snapshot)).metamodel
    entity, _ = _found(metamodel, request.path_params["entity"], request.path_params["pipeline"])
    form = await request.form()
    text = str(form.get("condition") or "").strip()
    found = await run_in_threadpool(verdict, request, entity.name, "condition", text, "")
    error = None if found["ok"] else found
    return render(request, "_designer_condition", {"text": text, "error": error}, twin=found)


# --- /admin/entities/{entity}/new-pipeline ---------------------------------------------------
#: Stage rows the new pipeline's form shows beyond those posted.
SPARE_STAGE_ROWS = 3
#: The field a pipeline runs on when the form names none (as in a pack file).
DEFAULT_FIELD = "stage"


def _new_pipeline_values(form: FormData | None) -> dict[str, Any]:
    """The form's inputs as typed: its texts and its stage rows (key, label)."""
    if form is None:
        return {"name": "", "label": "", "field": "", "stages": []}
    keys, labels = form.getlist("stage_key"), form.getlist("stage_label")
    stages = [{"key": str(k).strip(), "label": str(lb).strip()} for k, lb in zip(keys, labels, strict=False)]
    return {**{k: str(form.get(k) or "").strip() for k in ("name", "label", "field")},
            "stages": [s for s in stages if s["key"] or s["label"]]}


def _new_pipeline_body(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The pipeline's definition from the form, and the form's errors by input."""
    errors: dict[str, list[str]] = {}
    name = values["name"]
    if not valid_name(name):
        errors["name"] = [naming()]
    field = values["field"] or DEFAULT_FIELD
    if not valid_name(field):
        errors["field"] = [naming("field name")]
    stages = []
    for number, stage in enumerate(values["stages"], 1):
        if not valid_name(stage["key"]):
            errors.setdefault("stages", []).append(f"stage {number} ({stage['label'] or stage['key']}): "
                                                   f"{naming('key')}")
            continue
        label = stage["label"] or stage["key"].replace("_", " ").capitalize()
        stages.append({"key": stage["key"], "label": label})
    if not values["stages"]:
        errors["stages"] = ["give at least one stage: a pipeline needs one"]
    label = values["label"] or name.replace("_", " ").capitalize()
    return {"label": label, "field": field, "stages": stages}, errors


async def new_pipeline(request: Request) -> Response:
    """A new pipeline of an entity (the organisation's, or an extension of a pack's): planned,
    then applied; then its own page edits the stages."""
    await checked_right(request, MANAGE_METAMODEL)
    name = request.path_params["entity"]
    metamodel = (await run_in_threadpool(records_of(request).full_snapshot)).metamodel
    entity = metamodel.entity(name)
    if entity is None:
        return await not_found(request, f"there is no entity {name!r}")
    form = None if request.method in READ_METHODS else await request.form()
    values = _new_pipeline_values(form)

    async def again(outcome: Outcome) -> Response:
        return await _new_pipeline_page(request, entity, values, outcome)

    if form is None:
        used = {p.field for p in entity.pipelines}
        values["field"] = "" if entity.any_field(DEFAULT_FIELD) or DEFAULT_FIELD in used else DEFAULT_FIELD
        return await again(Outcome(None, {}, 200))
    body, errors = _new_pipeline_body(values)
    if errors:
        return await again(Outcome(None, errors, 422))
    pipeline = values["name"]
    return await review(request, f"add pipeline {name}.{pipeline}",
                        customisation.add_pipeline(name, pipeline, body), again, _base(name, pipeline))


async def _new_pipeline_page(request: Request, entity: Entity, values: dict[str, Any],
                             outcome: Outcome) -> Response:
    context = await base_context(request, title=f"New pipeline of {entity.label}")
    used = {p.field for p in entity.pipelines}
    rows = [*values["stages"], *({"key": "", "label": ""} for _ in range(SPARE_STAGE_ROWS))]
    return render(request, "designer_new_pipeline", {
        **context, "entity": entity, "values": values, "rows": rows,
        "free_fields": [f for f in entity.fields if f.name not in used],
        "plan": outcome.plan, "errors": outcome.errors},
        twin={"entity": entity.name, "values": values, "plan": outcome.plan, "errors": outcome.errors},
        status=outcome.status)


routes = [
    Route("/admin/entities/{entity}/new-pipeline", new_pipeline, methods=["GET", "POST"]),
    Route("/admin/entities/{entity}/pipelines/{pipeline}", pipeline_page, methods=["GET"]),
    Route("/admin/entities/{entity}/pipelines/{pipeline}/order", reorder, methods=["POST"]),
    Route("/admin/entities/{entity}/pipelines/{pipeline}/stages", add_stage, methods=["POST"]),
    Route("/admin/entities/{entity}/pipelines/{pipeline}/check", check_condition, methods=["POST"]),
    Route("/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}", stage_page,
          methods=["GET", "POST"]),
    Route("/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}/remove", remove_stage,
          methods=["POST"]),
    Route("/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}/revert", revert_stage,
          methods=["POST"]),
]
