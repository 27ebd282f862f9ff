"""The OpenAPI 3.1 document of the live metamodel, rebuilt when the revision changes.

Every entity gets its paths and two schemas: the record as the API returns it and the
input it accepts, both from the field types' own value schemas, so the document always
describes what the records service really does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slatecrm import __version__

from ..records.compiled import CompiledEntity
from ..records.limits import DEFAULT, Limits
from ..records.listing import OPERATORS

_SYSTEM = {
    "id": {"type": "integer", "readOnly": True},
    "version": {"type": "integer", "readOnly": True},
    "_title": {"type": "string", "readOnly": True, "description": "the record's display title"},
    "created_at": {"type": "string", "format": "date-time", "readOnly": True},
    "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
    "created_by": {"type": ["integer", "null"], "readOnly": True},
    "updated_by": {"type": ["integer", "null"], "readOnly": True},
    "owner": {"type": ["integer", "null"]},
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]} if schema else {}


def _schema_name(entity: str) -> str:
    return "".join(part.capitalize() for part in entity.split("_"))


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def entity_schemas(ce: CompiledEntity) -> dict[str, dict[str, Any]]:
    name = _schema_name(ce.name)
    output: dict[str, Any] = dict(_SYSTEM)
    inputs: dict[str, Any] = {"owner": _SYSTEM["owner"]}
    required = []
    for field_name, compiled in ce.fields.items():
        value = compiled.type.value_schema(compiled.field)
        described = {**_nullable(value), "title": compiled.field.label}
        if compiled.field.help:
            described["description"] = compiled.field.help
        if compiled.type.links_records:
            output[field_name] = {**_nullable({"type": "object", "properties": {
                "id": {"type": "integer"}, "title": {"type": "string"}}}), "title": compiled.field.label}
            inputs[field_name] = {**_nullable({"anyOf": [value, {"type": "object", "required": ["id"],
                                                                 "properties": {"id": value}}]}),
                                  "title": compiled.field.label}
        else:
            computed = compiled.field.formula is not None
            output[field_name] = {**described, "readOnly": True} if computed else described
            if compiled.type.writable and not computed:
                inputs[field_name] = described
        if compiled.field.required and compiled.type.writable and compiled.field.default is None \
                and compiled.name not in ce.pipelines and compiled.field.formula is None \
                and compiled.field.default_expression is None:
            required.append(field_name)
    return {
        name: {"type": "object", "title": ce.entity.label, "description": ce.entity.description,
               "properties": output},
        f"{name}Input": {"type": "object", "properties": inputs, "required": required,
                         "additionalProperties": False},
        f"{name}Patch": {"type": "object", "properties": {**inputs, "version": {"type": "integer"}},
                         "additionalProperties": False},
    }


def entity_paths(ce: CompiledEntity, limits: Limits = DEFAULT) -> dict[str, dict[str, Any]]:
    name, entity = _schema_name(ce.name), ce.name
    record = {"$ref": f"#/components/schemas/{name}"}
    filters = [{"name": f"{field}__{op}" if op != "eq" else field, "in": "query", "required": False,
                "schema": {"type": "string"}, "description": f"filter on {compiled.field.label} ({op})"}
               for field, compiled in ce.fields.items() if compiled.type.filterable
               for op in OPERATORS]
    paging = [
        {"name": "sort", "in": "query", "schema": {"type": "string"},
         "description": "comma-separated fields, '-' before a field for descending; "
                        f"at most {limits.sort_keys_max}"},
        {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": limits.page_size_max}},
        {"name": "after", "in": "query", "schema": {"type": "string"},
         "description": "next_cursor of a page"},
        {"name": "q", "in": "query", "schema": {"type": "string"},
         "description": f"text search, at most {limits.search_text_max} characters"},
        {"name": "filter", "in": "query", "schema": {"type": "string"},
         "description": "a condition in the rule language (docs/rules.md), e.g. "
                        "amount > 1000 and stage in (\"proposal\")"},
    ]
    page = {"type": "object", "properties": {
        "data": {"type": "array", "items": record}, "count": {"type": "integer"},
        "count_capped": {"type": "boolean"}, "next": {"type": ["string", "null"]},
        "next_cursor": {"type": "string"}}}
    identified = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    json_of = {"application/json": {"schema": record}}
    return {
        f"/api/v1/{entity}": {
            "get": {"operationId": f"list_{entity}", "tags": [ce.entity.label_plural],
                    "parameters": paging + filters,
                    "responses": {"200": {"description": "a page", "content": {
                        "application/json": {"schema": page}}}, "400": _problem("a bad query")}},
            "post": {"operationId": f"create_{entity}", "tags": [ce.entity.label_plural],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "$ref": f"#/components/schemas/{name}Input"}}}},
                     "responses": {"201": {"description": "created", "content": json_of},
                                   "400": _problem("not a JSON object"),
                                   "413": _problem("too large"), "422": _problem("invalid record")}},
        },
        f"/api/v1/{entity}/{{id}}": {
            "parameters": identified,
            "get": {"operationId": f"get_{entity}", "tags": [ce.entity.label_plural],
                    "responses": {"200": {"description": "the record", "content": json_of},
                                  "404": _problem("no such record")}},
            "patch": {"operationId": f"update_{entity}", "tags": [ce.entity.label_plural],
                      "parameters": [{"name": "If-Match", "in": "header", "schema": {"type": "string"},
                                      "description": "the version the change is based on"}],
                      "requestBody": {"required": True, "content": {"application/json": {"schema": {
                          "$ref": f"#/components/schemas/{name}Patch"}}}},
                      "responses": {"200": {"description": "updated", "content": json_of},
                                    "404": _problem("no such record"),
                                    "409": _problem("changed since that version"),
                                    "422": _problem("invalid record")}},
            "delete": {"operationId": f"delete_{entity}", "tags": [ce.entity.label_plural],
                       "responses": {"204": {"description": "deleted"}, "404": _problem("no such record"),
                                     "409": _problem("still referenced")}},
        },
        f"/api/v1/{entity}/{{id}}/history": {
            "parameters": identified,
            "get": {"operationId": f"history_{entity}", "tags": [ce.entity.label_plural],
                    "responses": {"200": {"description": "every change, oldest first"},
                                  "404": _problem("no such record")}},
        },
    }


def document(revision: int, compiled: Mapping[str, CompiledEntity],
             limits: Limits = DEFAULT) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Problem": {"type": "object", "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "object",
                   "additionalProperties": {"type": "array", "items": {"type": "string"}}}}}}
    paths: dict[str, Any] = {}
    for ce in compiled.values():
        schemas.update(entity_schemas(ce))
        paths.update(entity_paths(ce, limits))
    return {
        "openapi": "3.1.0",
        "info": {"title": "SlateCRM API", "version": f"{__version__}+revision.{revision}",
                 "description": "Generated from the live metamodel; it changes when the metamodel does."},
        "paths": paths,
        "components": {"schemas": schemas},
    }
