"""Live metamodel editing over HTTP: the organisation's own layer.

Every edit answers with its plan first (a dry run: nothing changes). Sending the same
request again with `?confirm=<base_revision>` applies exactly that plan, through the same
plan / apply as packs; if another change came in between, the answer is 409 and nothing
is applied.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import customisation, layers
from ..records.errors import BadQuery
from ..workflows.worker import reconcile
from .api import body_object, call, service
from .jsonresponse import JSONResponse
from .problems import problem
from .rights import checked_right, principal_of

#: Every route here changes or shows the metamodel's organisation layer.
MANAGE_METAMODEL = "manage_metamodel"


async def _edit(request: Request, summary: str, edit: Any) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    records = service(request)
    engine = request.app.state.engine
    planned = await call(request, customisation.plan_edit, engine, records.registry, summary, edit,
                         functions=records.functions)
    body: dict[str, Any] = {"summary": summary, "base_revision": planned.plan.base_revision,
                            "plan": planned.plan.as_dict(), "applied": False}
    if planned.plan.blocked:
        return problem(409, "the change puts existing data at risk (see plan); nothing was changed",
                       plan=body["plan"])
    confirm = request.query_params.get("confirm")
    if confirm is None:
        return JSONResponse(body)
    if confirm != str(planned.plan.base_revision):
        return problem(409, f"the plan is against revision {planned.plan.base_revision}, not {confirm}: "
                            "review the plan again before confirming it", plan=body["plan"])
    principal = principal_of(request)
    revision = await call(request, customisation.apply_edit, engine, planned, author="api",
                          principal=principal, address=request.client.host if request.client else None)
    records.holder.refresh()
    # Time and schedule workflows registered for the new revision now, not at a worker's next round.
    await call(request, reconcile, engine, records, dt.datetime.now(dt.UTC))
    return JSONResponse({**body, "applied": True, "revision": revision})


async def list_customisations(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    engine = request.app.state.engine

    def read() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            docs = layers.documents(conn)
        return [{"kind": kind, "name": name, "document": doc} for (kind, name), doc in sorted(docs.items())]

    return JSONResponse({"data": await call(request, read)})


async def entity(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)  # before the body is read
    name = request.path_params["entity"]
    if request.method == "DELETE":
        return await _edit(request, f"remove entity {name}", customisation.delete_entity(name))
    body = await body_object(request)
    return await _edit(request, f"define entity {name}", customisation.put_entity(name, body))


async def field(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    name, field_name = request.path_params["entity"], request.path_params["field"]
    if request.method == "DELETE":
        return await _edit(request, f"retire field {name}.{field_name}",
                           customisation.delete_field(name, field_name))
    body = await body_object(request)
    if not isinstance(body.get("type", ""), str):
        raise BadQuery({"type": ["give the field type as text"]})
    return await _edit(request, f"define field {name}.{field_name}",
                       customisation.put_field(name, field_name, body))


async def pipeline(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    name, pipeline_name = request.path_params["entity"], request.path_params["pipeline"]
    body = await body_object(request)
    return await _edit(request, f"define pipeline {name}.{pipeline_name}",
                       customisation.put_pipeline(name, pipeline_name, body))


async def stage(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    name, pipeline_name = request.path_params["entity"], request.path_params["pipeline"]
    key = request.path_params["stage"]
    where = f"{name}.{pipeline_name}.{key}"
    if request.method == "DELETE":
        return await _edit(request, f"remove stage {where}",
                           customisation.delete_stage(name, pipeline_name, key))
    body = await body_object(request)
    if not isinstance(body.get("after", ""), str):
        raise BadQuery({"after": ["give the key of the stage to place this one after"]})
    return await _edit(request, f"define stage {where}",
                       customisation.put_stage(name, pipeline_name, key, body))


def _named_document(kind: str, put: Any, delete: Any) -> Any:
    """The route of one kind of named document of the organisation (a role, a workflow, a
    view, a layout): PUT defines it, or replaces a pack's of that name; DELETE removes it
    (a metamodel change: a new revision, no DDL). Guarded like the other admin routes
    (manage_metamodel), before the body is read: a refused caller learns nothing from how
    its body was judged."""
    async def handle(request: Request) -> Response:
        await checked_right(request, MANAGE_METAMODEL)
        name = request.path_params[kind]
        if request.method == "DELETE":
            return await _edit(request, f"remove {kind} {name}", delete(name))
        body = await body_object(request)
        return await _edit(request, f"define {kind} {name}", put(name, body))
    return handle


role = _named_document("role", customisation.put_role, customisation.delete_role)
workflow = _named_document("workflow", customisation.put_workflow, customisation.delete_workflow)
view = _named_document("view", customisation.put_view, customisation.delete_view)
layout = _named_document("layout", customisation.put_layout, customisation.delete_layout)


routes = [
    Route("/api/v1/admin/customisations", list_customisations, methods=["GET"]),
    Route("/api/v1/admin/entities/{entity}", entity, methods=["PUT", "DELETE"]),
    Route("/api/v1/admin/entities/{entity}/fields/{field}", field, methods=["PUT", "DELETE"]),
    Route("/api/v1/admin/entities/{entity}/pipelines/{pipeline}", pipeline, methods=["PUT"]),
    Route("/api/v1/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}", stage,
          methods=["PUT", "DELETE"]),
    Route("/api/v1/admin/roles/{role}", role, methods=["PUT", "DELETE"]),
    Route("/api/v1/admin/workflows/{workflow}", workflow, methods=["PUT", "DELETE"]),
    Route("/api/v1/admin/views/{view}", view, methods=["PUT", "DELETE"]),
    Route("/api/v1/admin/layouts/{layout}", layout, methods=["PUT", "DELETE"]),
]
