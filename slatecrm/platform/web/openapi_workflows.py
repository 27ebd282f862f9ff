"""The OpenAPI paths and schemas of the workflow routes (web/workflows_api.py): the same for
every revision, so built once."""

from __future__ import annotations

from functools import cache
from typing import Any

from slatecrm.digits import RECORD_ID_MAX

from ..workflows import console
from .openapi_identity import _json, _ref, _responses

_ID = {"type": "integer", "minimum": 1, "maximum": RECORD_ID_MAX}
_MOMENT = {"type": "string", "format": "date-time"}
_MAYBE_MOMENT = {"anyOf": [_MOMENT, {"type": "null"}]}
_TEXT = {"type": "string"}
_NAME = {"type": "string", "pattern": "^[^\\u0000]{1,200}$"}
TAGS = ["Workflows"]


def _page(name: str) -> dict[str, Any]:
    return {"type": "object", "required": ["data", "next"],
            "properties": {"data": {"type": "array", "items": _ref(name)},
                           "next": {"type": ["string", "null"], "description": "the next page's address"},
                           "next_cursor": {"type": "string"}}}


def _filters(statuses: tuple[str, ...], *, record: bool = True) -> list[dict[str, Any]]:
    out = [{"name": "workflow", "in": "query", "schema": _NAME, "description": "the workflow's name"},
           {"name": "status", "in": "query", "schema": {"enum": list(statuses)}}]
    if record:
        out += [{"name": "entity", "in": "query", "schema": _NAME},
                {"name": "record_id", "in": "query", "schema": _ID}]
    out += [{"name": "limit", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": console.LIMIT_MAX,
                        "default": console.DEFAULT_LIMIT}},
            {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"},
             "description": "the `next_cursor` of the page before (newest first)"}]
    return out


def schemas() -> dict[str, Any]:
    outcome = {"type": "object", "properties": {
        "index": {"type": "integer"}, "kind": _TEXT, "status": _TEXT, "ms": {"type": "number"},
        "detail": {"type": "object", "description": "left out for a user who does not see every field"},
        "error": _TEXT}}
    run = {"id": _ID, "job_id": {"anyOf": [_ID, {"type": "null"}]}, "workflow": _TEXT, "label": _TEXT,
           "version": _TEXT, "entity": _TEXT, "record_id": {"anyOf": [_ID, {"type": "null"}]},
           "trigger": _TEXT,
           "attempt": {"type": "integer"}, "status": {"enum": list(console.RUN_STATUSES)},
           "condition": {"type": ["boolean", "null"], "description": "null: no condition, or not evaluated"},
           "actions": {"type": "array", "items": outcome}, "error": {"type": ["string", "null"]},
           "worker": {"type": ["string", "null"]}, "triggered_at": _MOMENT, "started_at": _MOMENT,
           "finished_at": _MOMENT}
    job = {"id": _ID, "workflow": _TEXT, "label": _TEXT, "version": _TEXT, "entity": _TEXT,
           "record_id": {"anyOf": [_ID, {"type": "null"}]}, "trigger": _TEXT,
           "status": {"enum": list(console.JOB_STATUSES)}, "due_at": _MOMENT, "created_at": _MOMENT,
           "finished_at": _MAYBE_MOMENT, "attempts": {"type": "integer"},
           "last_error": {"type": ["string", "null"]}}
    workflow = {
        "name": _TEXT, "label": _TEXT, "description": _TEXT, "entity": _TEXT, "trigger": _TEXT,
        "active": {"type": "boolean"}, "version": {**_TEXT, "description": "a fingerprint of the definition"},
        "pack": _TEXT, "healthy": {"type": "boolean"},
        "registration": {"description": "time and schedule workflows: the version registered for it "
                                        "(healthy when it is the active one); null otherwise",
                         "anyOf": [{"type": "null"}, {"type": "object", "properties": {
                             "active_version": _TEXT, "registered_version": {"type": ["string", "null"]},
                             "healthy": {"type": "boolean"}, "next_at": _MAYBE_MOMENT}}]},
        "jobs": {"type": "object", "description": "its jobs, counted by status",
                 "properties": {s: {"type": "integer"} for s in console.JOB_STATUSES}}}
    worker = {"name": _TEXT, "started_at": _MOMENT, "seen_at": _MOMENT, "jobs_done": {"type": "integer"},
              "alive": {"type": "boolean", "description": f"seen within {console.ALIVE_SECONDS} s"}}
    return {
        "WorkflowRun": {"type": "object", "required": list(run), "properties": run},
        "WorkflowJob": {"type": "object", "required": list(job), "properties": job},
        "Workflow": {"type": "object", "required": list(workflow), "properties": workflow},
        "WorkflowWorker": {"type": "object", "required": list(worker), "properties": worker},
        "ManualRun": {"type": "object", "required": ["workflow", "entity", "record_ids", "job_ids"],
                      "properties": {"workflow": _TEXT, "entity": _TEXT,
                                     "record_ids": {"type": "array", "items": _ID},
                                     "job_ids": {"type": "array", "items": _ID}}},
    }


@cache
def paths() -> dict[str, Any]:
    admin = "needs the right to manage the metamodel (403)"
    entity = {"name": "entity", "in": "path", "required": True, "schema": _TEXT}
    record = {"name": "id", "in": "path", "required": True, "schema": _ID}
    name = {"name": "name", "in": "path", "required": True, "schema": _TEXT,
            "description": "the workflow's name"}
    ids = {"type": "array", "minItems": 1, "items": _ID}
    started = {"202": _json(_ref("ManualRun"), "queued: a worker runs the jobs shortly")}
    refusals = ("404", "409", "413")
    return {
        "/api/v1/workflows": {"get": {
            "operationId": "list_workflows", "tags": TAGS,
            "description": f"every workflow of the revision, active or not, with its health; {admin}",
            "responses": _responses({"200": _json({
                "type": "object", "required": ["data", "workers"],
                "properties": {"data": {"type": "array", "items": _ref("Workflow")},
                               "workers": {"type": "array", "items": _ref("WorkflowWorker")}}},
                "the workflows, by name, and the workers")})}},
        "/api/v1/workflow-runs": {"get": {
            "operationId": "list_workflow_runs", "tags": TAGS,
            "description": f"the run log, newest first; {admin}. An unknown, repeated or unreadable "
                          "parameter is refused (422, by parameter).",
            "parameters": _filters(console.RUN_STATUSES),
            "responses": _responses({"200": _json(_page("WorkflowRun"), "a page of runs")}, "422")}},
        "/api/v1/workflow-jobs": {"get": {
            "operationId": "list_workflow_jobs", "tags": TAGS,
            "description": f"the jobs, newest first (status=dead: the dead letters, with their last "
                           f"error); {admin}",
            "parameters": _filters(console.JOB_STATUSES),
            "responses": _responses({"200": _json(_page("WorkflowJob"), "a page of jobs")}, "422")}},
        "/api/v1/workflow-jobs/retry": {"post": {
            "operationId": "retry_workflow_jobs", "tags": TAGS,
            "description": f"dead (or cancelled) jobs made due again with fresh attempts: the ids "
                           f"given, or every dead job of a workflow; {admin}",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "oneOf": [{"type": "object", "additionalProperties": False, "required": ["ids"],
                           "properties": {"ids": {**ids, "maxItems": console.RETRY_MAX}}},
                          {"type": "object", "additionalProperties": False, "required": ["workflow"],
                           "properties": {"workflow": _NAME}}]}}}},
            "responses": _responses({"200": _json({"type": "object", "required": ["retried"],
                                                   "properties": {"retried": {"type": "integer"}}},
                                                  "how many jobs were made due again")},
                                    "400", "413", "415")}},
        "/api/v1/records/{entity}/{id}/workflow-runs": {
            "parameters": [entity, record],
            "get": {"operationId": "list_record_workflow_runs", "tags": TAGS,
                    "description": "the runs of one record, newest first, for anyone who may read it "
                                   "(404 otherwise)",
                    "parameters": _filters(console.RUN_STATUSES, record=False),
                    "responses": _responses({"200": _json(_page("WorkflowRun"), "a page of runs")},
                                            "404", "422")}},
        "/api/v1/records/{entity}/{id}/workflows/{name}/run": {
            "parameters": [entity, record, name],
            "post": {"operationId": "run_workflow_on_record", "tags": TAGS,
                     "description": "a manual run: the workflow must be active, of this entity and "
                                    "triggered `manual`ly (409 otherwise); the user must be allowed to "
                                    "update the record (404 when they cannot read it) and hold one of the "
                                    "trigger's roles when it names some",
                     "responses": _responses(started, *refusals)}},
        "/api/v1/records/{entity}/workflows/{name}/run": {
            "parameters": [entity, name],
            "post": {"operationId": "run_workflow_on_records", "tags": TAGS,
                     "description": "a manual run on several records, checked as one run on each: every "
                                    "job is queued, or none",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "additionalProperties": False, "required": ["ids"],
                         "properties": {"ids": ids}}}}},
                     "responses": _responses(started, "400", "415", *refusals)}},
    }
