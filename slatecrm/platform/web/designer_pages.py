"""The admin designer's entity and field pages: `/admin/entities` (every entity, where it
comes from), `/admin/entities/{entity}` (its fields, pipelines, validations; labels,
validations and retirement changed there; a retired one restored), `/admin/new-entity`,
and the field form `/admin/entities/{entity}/fields/{field}` (change, retire, restore; a
new one at `/admin/entities/{entity}/new-field`). The forms that create have paths with a
`-`, which no name has: an entity or a field named `new` is reachable like any other.

The pages read the metamodel in force and the organisation's documents; every change is an
edit of `customisation` (the functions the admin API uses), reviewed and applied through
web/designer_plans.py, so that a change shows its plan before anything happens. Only holders
of manage_metamodel see the pages (the admin API's right); every POST carries the CSRF token
like the other admin pages.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.metamodel.model import LOGIC_KEYS, Entity, Metamodel

from .. import customisation, layers
from ..layers import ORGANISATION
from .admin import MANAGE_METAMODEL
from .authentication import READ_METHODS
from .designer_forms import (
    FLAGS,
    LOGIC_LABELS,
    FormRefused,
    FormValues,
    body_of,
    definition,
    logic_form,
    naming,
    override_of,
    posted,
    simple_settings,
    valid_name,
    values_of,
)
from .designer_plans import Outcome, review
from .layout_placing import placing, unplacing
from .pinning import records_of
from .rights import checked_right
from .roles_pages import not_found
from .templating import render
from .uicontext import base_context

NAMING = naming()
FIELD_LABELS = {"": "", "name": "Name", "type": "Type", "options": "Options", "more": "Other settings",
                **LOGIC_LABELS}


def _metamodel(request: Request) -> Metamodel:
    return records_of(request).full_snapshot().metamodel


def origin(pack: str) -> str:
    return "organisation" if pack == ORGANISATION else pack


# --- /admin/entities --------------------------------------------------------------------------
async def entity_list(request: Request) -> Response:
    """Every entity; a POST restores a retired one of the organisation's (plan, then apply)."""
    await checked_right(request, MANAGE_METAMODEL)
    if request.method in READ_METHODS:
        return await _entity_list(request, "", Outcome(None, {}, 200))
    form = await request.form()
    op, name = str(form.get("op") or ""), str(form.get("entity") or "").strip()

    async def again(outcome: Outcome) -> Response:
        return await _entity_list(request, name, outcome)

    if op != "restore":
        return await again(Outcome(None, {"": [f"there is no change {op!r} here"]}, 422))
    return await review(request, f"restore entity {name}", customisation.restore_entity(name), again,
                        f"/admin/entities/{name}")


async def _entity_list(request: Request, restoring: str, outcome: Outcome) -> Response:
    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        records = records_of(request)
        snapshot = records.full_snapshot()
        shown = [{"name": e.name, "label": e.label, "label_plural": e.label_plural, "origin": origin(e.pack),
                  "extended_by": [origin(p) for p in e.extended_by], "fields": len(e.active_fields),
                  "retired": e.retired} for e in snapshot.metamodel.entities]
        return ([e for e in shown if not e["retired"]], [e for e in shown if e["retired"]],
                snapshot.revision)

    active, retired, revision = await run_in_threadpool(read)
    context = await base_context(request, title="Entities")
    return render(request, "designer_entities", {**context, "entities": active, "retired": retired,
                                                 "revision": revision, "restoring": restoring,
                                                 "plan": outcome.plan, "errors": outcome.errors},
                  twin={"data": active, "retired": retired, "revision": revision, "plan": outcome.plan,
                        "errors": outcome.errors}, status=outcome.status)


# --- /admin/new-entity -----------------------------------------------------------------------
async def new_entity(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    if request.method in READ_METHODS:
        return await _new_entity_page(request, {"name": "", "label": "", "label_plural": "",
                                                "title_field": "name"}, Outcome(None, {}, 200))
    form = await request.form()
    values = {k: str(form.get(k) or "").strip() for k in ("name", "label", "label_plural", "title_field")}

    async def again(outcome: Outcome) -> Response:
        return await _new_entity_page(request, values, outcome)

    name, title = values["name"], values["title_field"] or "name"
    if not valid_name(name) or not valid_name(title):
        return await again(Outcome(None, {"name": [NAMING]}, 422))
    if await run_in_threadpool(lambda: _metamodel(request).any_entity(name)) is not None:
        return await again(Outcome(None, {"name": [f"an entity named {name!r} exists already"]}, 422))
    label = values["label"] or name.replace("_", " ").capitalize()
    body = {"label": label, "label_plural": values["label_plural"] or f"{label}s", "title_field": title,
            "fields": {title: {"type": records_of(request).registry.default_type,
                               "label": title.replace("_", " ").capitalize(), "required": True}}}
    return await review(request, f"define entity {name}", customisation.put_entity(name, body), again,
                        f"/admin/entities/{name}")


async def _new_entity_page(request: Request, values: dict[str, str], outcome: Outcome) -> Response:
    context = await base_context(request, title="New entity")
    return render(request, "designer_new_entity", {**context, "values": values, "plan": outcome.plan,
                                                   "errors": outcome.errors},
                  twin={"plan": outcome.plan, "errors": outcome.errors}, status=outcome.status)


# --- /admin/entities/{entity} -----------------------------------------------------------------
def _field_rows(entity: Entity) -> list[dict[str, Any]]:
    return [{"name": f.name, "label": f.label, "type": f.type, "required": f.required,
             "origin": origin(f.pack), "retired": f.retired}
            for f in sorted(entity.fields, key=lambda f: f.retired)]


async def entity_page(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    name = request.path_params["entity"]
    entity = await run_in_threadpool(lambda: _metamodel(request).entity(name))
    if entity is None:
        return await not_found(request, f"there is no entity {name!r}")
    if request.method in READ_METHODS:
        return await _entity_page(request, entity, "", {}, Outcome(None, {}, 200))
    form = await request.form()
    op = str(form.get("op") or "")
    values = {k: str(form.get(k) or "").strip() for k in
              ("label", "label_plural", "name", "condition", "message", "field", "validation", "pipeline",
               "stage_key")}

    async def again(outcome: Outcome) -> Response:
        return await _entity_page(request, entity, op, values, outcome)

    here = f"/admin/entities/{name}"
    if op == "relabel":
        if not values["label"] or not values["label_plural"]:
            return await again(Outcome(None, {"label": ["give the label and the plural label"]}, 422))
        edit = customisation.relabel_entity(name, values["label"], values["label_plural"])
        return await review(request, f"relabel entity {name}", edit, again, here)
    if op == "revert_labels":
        return await review(request, f"revert entity {name} to the pack's labels",
                            customisation.revert_entity_labels(name), again, here)
    if op == "revert_stage":
        pipeline, stage = values["pipeline"], values["stage_key"]
        return await review(request, f"revert stage {name}.{pipeline}.{stage} to the pack's",
                            customisation.revert_stage(name, pipeline, stage), again, here)
    if op == "retire":
        return await review(request, f"retire entity {name}", customisation.delete_entity(name), again,
                            "/admin/entities")
    if op == "validation":
        if not valid_name(values["name"]):
            return await again(Outcome(None, {"name": [NAMING]}, 422))
        if not values["condition"] or not values["message"]:
            return await again(Outcome(None, {"condition": ["give the condition and the message"]}, 422))
        rule = {"condition": values["condition"], "message": values["message"],
                **({"field": values["field"]} if values["field"] else {})}
        return await review(request, f"define validation {name}.{values['name']}",
                            customisation.put_validation(name, values["name"], rule), again, here)
    if op == "remove_validation":
        return await review(request, f"remove validation {name}.{values['validation']}",
                            customisation.delete_validation(name, values["validation"]), again, here)
    return await again(Outcome(None, {"": [f"there is no change {op!r} here"]}, 422))


def _overrides(request: Request, entity: str) -> dict[str, Any]:
    """What the organisation overrides of a pack's entity (its `kind: extension` document):
    the labels, the fields and, by pipeline, the stages; each can be reverted to the pack's."""
    with request.app.state.engine.connect() as conn:
        extension = layers.documents(conn).get(("extension", entity), {})
    return {"labels": "label" in extension or "label_plural" in extension,
            "fields": sorted(extension.get("field_overrides") or {}),
            "stages": {name: sorted(p.get("stage_overrides") or {})
                       for name, p in (extension.get("pipelines") or {}).items() if p.get("stage_overrides")}}


async def _entity_page(request: Request, entity: Entity, active: str, values: dict[str, str],
                       outcome: Outcome) -> Response:
    context = await base_context(request, title=entity.label)
    fields = _field_rows(entity)
    overrides = await run_in_threadpool(_overrides, request, entity.name)
    twin = {"name": entity.name, "label": entity.label, "label_plural": entity.label_plural,
            "origin": origin(entity.pack), "extended_by": [origin(p) for p in entity.extended_by],
            "fields": fields, "pipelines": [{"name": p.name, "label": p.label, "origin": origin(p.pack)}
                                            for p in entity.pipelines],
            "validations": [{"name": v.name, "condition": v.condition, "message": v.message, "field": v.field,
                             "origin": origin(v.pack)} for v in entity.validations],
            "overrides": overrides, "plan": outcome.plan, "errors": outcome.errors}
    return render(request, "designer_entity", {
        **context, "entity": entity, "origin": origin(entity.pack), "fields": fields, "active": active,
        "overrides": overrides,
        "values": {"name": "", "condition": "", "message": "", "field": "", "validation": "", "pipeline": "",
                   "stage_key": "", **values},
        "plan": outcome.plan, "errors": outcome.errors}, twin=twin, status=outcome.status)


# --- /admin/entities/{entity}/fields/{field} --------------------------------------------------
def _stored_body(request: Request, entity: str, field: str, section: str = "fields") -> dict[str, Any] | None:
    """The organisation's own definition of the field, as stored (None for a pack's field);
    with `section="field_overrides"`, its override of a pack's field."""
    with request.app.state.engine.connect() as conn:
        docs = layers.documents(conn)
    for key in (("entity", entity), ("extension", entity)):
        found = docs.get(key, {}).get(section, {}).get(field)
        if isinstance(found, dict):
            return dict(found)
    return None


async def field_page(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    entity_name = request.path_params["entity"]
    new = request.path_params.get("field") is None
    entity = await run_in_threadpool(lambda: _metamodel(request).entity(entity_name))
    if entity is None:
        return await not_found(request, f"there is no entity {entity_name!r}")
    registry = records_of(request).registry
    existing = None if new else entity.any_field(request.path_params["field"])
    if not new and existing is None:
        return await not_found(request, f"{entity_name!r} has no field {request.path_params['field']!r}")
    owned = existing is None or existing.pack == ORGANISATION
    if request.method in READ_METHODS:
        if "type" in request.query_params:  # the type changed: the form again, with that type's settings
            values = posted(request.query_params, registry)
        elif existing is not None:
            stored = await run_in_threadpool(_stored_body, request, entity_name, existing.name)
            values = values_of((stored if owned else None) or body_of(existing), registry)
        else:
            values = FormValues(type=registry.default_type)
        name = request.query_params.get("name", "") if new else existing.name if existing else ""
        return await _field_page(request, entity, name, existing, values, "save", Outcome(None, {}, 200))
    form = await request.form()
    op = str(form.get("op") or "save")
    values = posted(form, registry)
    name = str(form.get("name") or "").strip() if new else existing.name if existing else ""

    async def again(outcome: Outcome) -> Response:
        return await _field_page(request, entity, name, existing, values, op, outcome)

    done = f"/admin/entities/{entity_name}"
    if op == "revert":
        return await review(request, f"revert field {entity_name}.{name} to the pack's",
                            customisation.revert_field(entity_name, name), again, done)
    if op == "retire":
        return await review(request, f"retire field {entity_name}.{name}",
                            unplacing(customisation.delete_field(entity_name, name), entity_name, name),
                            again, done)
    if new and not valid_name(name):
        return await again(Outcome(None, {"name": [NAMING]}, 422))
    if new and entity.any_field(name) is not None:
        return await again(Outcome(None, {"name": [f"{entity_name} has a field {name!r} already: change it "
                                                   "from its own page"]}, 422))
    stored = None
    try:
        body = definition(values, registry, allowed=None if owned else customisation.OVERRIDABLE)
        if existing is not None and not owned:  # the organisation's override of a pack's field
            stored = await run_in_threadpool(_stored_body, request, entity_name, name, "field_overrides")
            pack_rules = [k for k in LOGIC_KEYS if getattr(existing, k) is not None
                          and existing.rule_packs.get(k, existing.pack) != ORGANISATION]
            body = override_of(body, body_of(existing), stored, pack_rules)
    except FormRefused as refused:
        return await again(Outcome(None, refused.errors, 422))
    edit = customisation.put_field(entity_name, name, body)
    if not owned and set(body) <= {"type"}:  # the override left empty: the pack's field as it is
        if stored is None:
            return await again(Outcome(None, {"": ["nothing to change: the form holds the pack's field "
                                                   "as it is"]}, 422))
        edit = customisation.delete_field(entity_name, name)  # drops the organisation's override
    verb = "restore" if op == "restore" else "define"
    return await review(request, f"{verb} field {entity_name}.{name}",
                        placing(edit, entity_name, name) if new or op == "restore" else edit,
                        again, done)


async def _field_page(request: Request, entity: Entity, name: str, existing: Any, values: FormValues, op: str,
                      outcome: Outcome) -> Response:
    records = records_of(request)
    registry = records.registry
    new = existing is None
    title = f"New field of {entity.label}" if new else f"{existing.label} ({entity.label})"
    context = await base_context(request, title=title)
    ftype = registry[values.type] if values.type in registry else None  # noqa: SIM401 (no .get)
    simple = simple_settings(ftype) if ftype else []
    schema = ftype.settings_schema if ftype else {}
    entities = await run_in_threadpool(lambda: records.full_snapshot().metamodel.active_entities)
    locked = bool(existing and existing.pack != ORGANISATION)
    overridden = locked and name in (await run_in_threadpool(_overrides, request, entity.name))["fields"]
    return render(request, "designer_field", {
        **context, "entity": entity, "name": name, "new": new, "values": values, "op": op,
        "origin": "organisation" if new else origin(existing.pack),
        "retired": bool(existing and existing.retired),
        "locked": bool(existing and existing.pack != ORGANISATION), "types": list(registry),
        "flags": FLAGS, "has_options": "options" in schema, "has_target": "target" in schema,
        "simple": simple, "logic_labels": LOGIC_LABELS, "logic_form": logic_form(ftype),
        "overridden": overridden,
        # Shown too when the field has keys no input shows (a plugin's, say): an edit posts
        # them back rather than dropping them. Form logic has inputs of its own.
        "has_more": bool(values.more) or any(k not in simple and k not in ("options", "target")
                                             for k in schema),
        "entities": entities, "plan": outcome.plan, "errors": outcome.errors, "labels": FIELD_LABELS},
        twin={"entity": entity.name, "field": name, "overridden": overridden,
              "values": values.__dict__ | {"flags": sorted(values.flags)},
              "plan": outcome.plan, "errors": outcome.errors}, status=outcome.status)


routes = [
    Route("/admin/entities", entity_list, methods=["GET", "POST"]),
    # The forms that create live where no name can reach (a name has no '-'): an entity or a
    # field may itself be named `new`.
    Route("/admin/new-entity", new_entity, methods=["GET", "POST"]),
    Route("/admin/entities/{entity}", entity_page, methods=["GET", "POST"]),
    Route("/admin/entities/{entity}/new-field", field_page, methods=["GET", "POST"]),
    Route("/admin/entities/{entity}/fields/{field}", field_page, methods=["GET", "POST"]),
]
