"""The OpenAPI 3.1 document of the live metamodel, rebuilt when the revision changes.

It is the API's contract, and `scripts/fuzz.py` holds the server to it (schemathesis with
every check, against a live server): every route is in it with every status it answers,
errors are problem+json, and each entity's request schemas and list parameters state what
the records service checks, from the field types' own schemas (openapi_records.py) and the
bounds in records/limits.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slatecrm import __version__
from slatecrm.digits import RECORD_ID_MAX
from slatecrm.metamodel.fieldtypes.base import text_pattern
from slatecrm.metamodel.model import SORTABLE_SYSTEM
from slatecrm.metamodel.names import NAME_PATTERN

from ..identity import auditlog
from ..records.compiled import CompiledEntity
from ..records.limits import DEFAULT, Limits
from ..records.listing import OPERATORS, ListQuery, chosen_sort
from . import openapi_files, openapi_identity, openapi_workflows
from .authsettings import SESSION_COOKIE
from .openapi_records import RECORD_ID, entity_schemas, schema_name

PROBLEM = {
    "type": "object", "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599}, "detail": {"type": "string"},
        "errors": {"type": "object", "description": "messages by field, parameter or place in the body",
                   "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "current_version": {"type": "integer"}, "changed": {"type": "array", "items": {"type": "string"}},
        "plan": {"type": "object"}, "problems": {"type": "array", "items": {"type": "object"}},
    },
}
#: What each refusal means, for every operation that can answer it.
#: How a client signs in (web/authentication.py): a personal API token, or a browser's session
#: (whose unsafe requests also need the CSRF token, docs/security.md).
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "a personal API token (slc_…), made on /me, POST /api/v1/me/tokens or "
                              "`slatecrm token create`; its scopes (read, write, admin) narrow its "
                              "user's roles"},
    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                "description": "the session cookie a browser gets at /login; unsafe requests also "
                               "send the x-csrftoken header"},
}

WHY = {
    "400": "the request cannot be read: a body that is not JSON or not an object, a parameter "
           "over its limit or not readable by its field, a changed cursor, a bad version",
    "401": "not signed in: send a session cookie or `Authorization: Bearer <token>`",
    "403": "a plugin's authorise hook refused the write, or the user's roles or token scopes do not "
           "allow it, or a right this needs is not held",
    "404": "no such record (or entity), or a personal view (`view=saved-<id>`) the caller does not see",
    "409": "the record changed since the version given, or is still referenced, or the plan is stale; "
           "a user's e-mail or a token's name taken, the token limit reached",
    "413": "the body is over the size limit, or a bulk create over the batch limit",
    "415": "the body is not sent as JSON",
    "422": "a record or definition that does not validate (messages by field)",
    "503": "a statement ran past the statement timeout; try again (Retry-After)",
}
READ = ("400", "404", "503")
WRITE = ("400", "403", "404", "413", "415", "422", "503")


def _problem(status: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/Problem{status}"}


def _responses(ok: dict[str, Any], *refusals: str) -> dict[str, Any]:
    return {**ok, **{status: _problem(status) for status in sorted(set(refusals))}}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _listed(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": items}}}


def _without_sort(ce: CompiledEntity) -> str:
    """What a list without `sort` follows: the entity's default_sort (as this reader sees
    it: keys on hidden fields are left out), else the id; the id ends every order."""
    keys = chosen_sort(ce, ListQuery())
    return f"without it: {','.join(keys)}, then id" if keys else "without it: by id"


#: A personal view in a `view` parameter (savedviews.PREFIX and its id's digits).
SAVED_VIEW = "^saved-[0-9]{1,18}$"


def view_parameter(names: Sequence[str]) -> dict[str, Any]:
    """A collection's `view` (web/view_choice.py): one of the entity's list views by name, or
    a personal view the caller sees (saved-<id>; one that does not exist, or that the caller
    does not see, is not found: 404). Not on related lists, which have no views."""
    saved: dict[str, Any] = {"type": "string", "pattern": SAVED_VIEW}
    return {
        "name": "view", "in": "query",
        "schema": {"anyOf": [{"type": "string", "enum": list(names)}, saved]} if names else saved,
        "description": "a list view of the entity (its name, as in GET /api/v1/meta `views`) or a personal "
                       "view the caller sees (saved-<id>): its filter holds (with `filter`, both), its sort "
                       "applies when `sort` is not given, its page size when `limit` is not; a personal view "
                       "the caller does not see is not found (404)"}


def list_parameters(ce: CompiledEntity, limits: Limits) -> list[dict[str, Any]]:
    """The list query of one entity: paging, search, sort and each field's filters, with
    the bounds the list enforces (records/listing.py)."""
    sortable = [*SORTABLE_SYSTEM, *(n for n, c in ce.fields.items() if c.type.sortable)]
    key = f"-?(?:{'|'.join(sortable)})"
    parameters: list[dict[str, Any]] = [
        {"name": "sort", "in": "query", "schema": {
            "type": "string", "pattern": f"^(?:{key}(?:,{key}){{0,{limits.sort_keys_max - 1}}})?$"},
         "description": f"fields, comma-separated, '-' before one for descending; at most "
                        f"{limits.sort_keys_max}; {_without_sort(ce)}"},
        {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": limits.page_size_max}},
        {"name": "after", "in": "query", "schema": {"type": "string", "minLength": 1},
         "description": "the `next_cursor` of the page before (signed: any other value is refused, 400)"},
        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": limits.search_text_max,
                                                "pattern": "^[^\\u0000]*$"},
         "description": f"text search in the searchable fields, at most {limits.search_text_max} characters"},
        {"name": "filter", "in": "query", "schema": {"type": "string"},
         "description": "a condition in the rule language (docs/rules.md), e.g. "
                        "amount > 1000 and stage in (\"proposal\"); one that does not parse or "
                        "type-check is refused (400)"},
        {"name": "count", "in": "query", "schema": {"type": "boolean", "default": False},
         "description": "true: the answer also says how many records match (count, count_capped, "
                        "count_estimate; counted on the first page, within the count budget, and "
                        "carried by its cursor); without it no count runs and the keys are left out"},
    ]
    taken = {p["name"] for p in parameters}  # a field named like one of these filters as `name__eq`
    fields = [("id", "id", {"type": "integer", "minimum": 1, "maximum": RECORD_ID_MAX})]
    fields += [(name, c.field.label, c.type.filter_schema(c.field))
               for name, c in ce.fields.items() if c.type.filterable]
    # A composite value's parts (an address's city): `<field>.<part>`, compared as text.
    fields += [(f"{name}.{part.name}", f"{c.field.label}: {part.label}",
                {"type": "string", "pattern": text_pattern("\\u0000", required=True)})
               for name, c in ce.fields.items() for part in c.type.parts(c.field)]
    for name, label, schema in fields:
        for op in OPERATORS:
            parameters.append({
                "name": name if op == "eq" and name not in taken else f"{name}__{op}", "in": "query",
                "schema": {"type": "boolean"} if op == "blank" else schema,
                "description": f"{label}: has no value (true) or has one (false)" if op == "blank"
                else f"{label} {op} the value (read as the field reads typed text)"})
    return parameters


def page_schema(record: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["data", "next"], "properties": {
        "data": {"type": "array", "items": record},
        "count": {"type": ["integer", "null"], "minimum": 0,
                  "description": "Only with count=true: matching records, to 2,000 (see count_capped); "
                                 "null when counting them ran past the count budget "
                                 "(SLATECRM_COUNT_BUDGET_MS): not known"},
        "count_estimate": {"type": ["integer", "null"], "minimum": 0,
                           "description": "Only with count=true, when count is null: the database "
                                          "planner's estimate (PostgreSQL), else null"},
        "count_capped": {"type": "boolean", "description": "Only with count=true: more records match "
                                                          "than count says"},
        "next": {"type": ["string", "null"]},
        "next_cursor": {"type": "string"}}}


def linked_lists(ce: CompiledEntity, compiled: Mapping[str, CompiledEntity]
                 ) -> list[tuple[CompiledEntity, str, str]]:
    """The related lists fields stored apart give `ce` (records/reading.py `apart_relations`):
    (the listed entity, the relation's name on `ce`'s side, what it lists)."""
    out = []
    for other in compiled.values():
        for name, c in other.fields.items():
            relation = c.type.apart_related(c.field, other.name) if c.type.stored_apart else None
            if relation is None:
                continue
            if relation.source == ce.name and relation.target in compiled:
                target = compiled[relation.target]
                plural = target.entity.label_plural.lower()
                out.append((target, name, f"the {plural} this record's {name} links"))
            if relation.target == ce.name:
                out.append((other, relation.inverse or f"{other.name}.{name}",
                            f"the {other.entity.label_plural.lower()} whose {name} links this record"))
    return out


def entity_paths(ce: CompiledEntity, related: list[tuple[CompiledEntity, str]],
                 limits: Limits = DEFAULT, linked: Sequence[tuple[CompiledEntity, str, str]] = (),
                 views: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The routes of one entity; `related`: the (entity, reference field) pairs that
    refer to it, each a related list of its own; `linked`: those of fields stored apart
    (`linked_lists`)."""
    name, entity, tags = schema_name(ce.name), ce.name, [ce.entity.label_plural]
    record = {"$ref": f"#/components/schemas/{name}"}
    identified = [{"name": "id", "in": "path", "required": True, "schema": RECORD_ID}]
    if_match = {"name": "If-Match", "in": "header", "required": False,
                "schema": {"type": "string", "pattern": '^(?:W/)?"?[1-9][0-9]{0,8}"?$'},
                "description": "the version the change is based on (a stale one: 409)"}
    etag = {"ETag": {"schema": {"type": "string"}, "description": "the record's version"}}
    by_id = {"id": "$response.body#/id"}
    created_links = {
        "get": {"operationId": f"get_{entity}", "parameters": by_id},
        "update": {"operationId": f"update_{entity}",
                   # The ETag header, a string like If-Match (the body's version is a number, and
                   # a client that copies it into a header as it is sends a number: schemathesis did)
                   "parameters": {**by_id, "header.If-Match": "$response.header.ETag"}},
        "delete": {"operationId": f"delete_{entity}", "parameters": by_id},
        "history": {"operationId": f"history_{entity}", "parameters": by_id},
    }
    batch = {"type": "array", "items": {"$ref": f"#/components/schemas/{name}Input"}, "minItems": 1,
             "maxItems": limits.batch_max}
    paths: dict[str, dict[str, Any]] = {
        f"/api/v1/{entity}": {
            "get": {"operationId": f"list_{entity}", "tags": tags,
                    "parameters": [view_parameter(views), *list_parameters(ce, limits)],
                    "responses": _responses({"200": _json(page_schema(record), "a page")}, *READ)},
            "post": {"operationId": f"create_{entity}", "tags": tags,
                     "description": f"one record, or a list of at most {limits.batch_max} in one transaction",
                     "requestBody": _body({"anyOf": [{"$ref": f"#/components/schemas/{name}Input"}, batch]}),
                     "responses": _responses({"201": {
                         **_json({"anyOf": [record, _listed(record)]}, "created",
                                 {**etag, "Location": {"schema": {"type": "string"}}}),
                         "links": created_links}}, *WRITE)},
        },
        f"/api/v1/{entity}/{{id}}": {
            "parameters": identified,
            "get": {"operationId": f"get_{entity}", "tags": tags,
                    "responses": _responses({"200": _json(record, "the record", etag)}, *READ)},
            "patch": {"operationId": f"update_{entity}", "tags": tags, "parameters": [if_match],
                      "requestBody": _body({"$ref": f"#/components/schemas/{name}Patch"}),
                      "responses": _responses({"200": _json(record, "updated", etag)}, *WRITE, "409")},
            "delete": {"operationId": f"delete_{entity}", "tags": tags, "parameters": [if_match],
                       "responses": _responses({"204": {"description": "deleted"}},
                                               "400", "403", "404", "409", "503")},
        },
        f"/api/v1/{entity}/{{id}}/history": {
            "parameters": identified,
            "get": {"operationId": f"history_{entity}", "tags": tags,
                    "description": "every change, oldest first; kept after a delete (its last entry)",
                    "responses": _responses({"200": _json(_listed({"$ref": "#/components/schemas/Change"}),
                                                          "the changes")}, *READ)},
        },
    }
    if ce.pipelines:
        paths[f"/api/v1/{entity}/{{id}}/stages"] = {
            "parameters": identified,
            "get": {"operationId": f"stages_{entity}", "tags": tags,
                    "responses": _responses({"200": _json(
                        _listed({"$ref": "#/components/schemas/StageVisit"}), "each stage visit")}, *READ)}}
    lists = [(other, f"{other.name}.{field}", f"the {other.entity.label_plural.lower()} whose {field} is "
              "this record") for other, field in related] + list(linked)
    for other, relation, description in lists:
        paths[f"/api/v1/{entity}/{{id}}/related/{relation}"] = {
            "parameters": identified,
            "get": {"operationId": f"related_{entity}_{relation.replace('.', '_')}", "tags": tags,
                    "description": description,
                    "parameters": list_parameters(other, limits),
                    "responses": _responses({"200": _json(page_schema(
                        {"$ref": f"#/components/schemas/{schema_name(other.name)}"}), "a page")}, *READ)}}
    return paths


def _admin_paths() -> dict[str, Any]:
    """The live metamodel editing routes (web/admin.py): a plan first, applied on confirm."""
    confirm = {"name": "confirm", "in": "query", "required": False,
               "schema": {"type": "integer", "minimum": 1},
               "description": "the plan's base_revision: apply the plan (without it, a dry run)"}
    planned = _json({"type": "object", "required": ["summary", "base_revision", "plan", "applied"],
                     "properties": {"summary": {"type": "string"}, "base_revision": {"type": "integer"},
                                    "plan": {"type": "object"}, "applied": {"type": "boolean"},
                                    "revision": {"type": "integer"}}},
                    "the plan, and whether it was applied")
    edits = ("400", "404", "409", "413", "415", "422", "503")
    document = _body({"type": "object",
                      "description": "a definition in the form of a pack file's (docs/packs.md)"})

    def edit(operation: str, *, body: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"operationId": operation, "tags": ["Metamodel"], "parameters": [confirm],
                               "responses": _responses({"200": planned}, *edits)}
        if body:
            out["requestBody"] = document
        return out

    def named(*names: str) -> list[dict[str, Any]]:
        return [{"name": n, "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": NAME_PATTERN}} for n in names]

    base = "/api/v1/admin/entities/{entity}"
    return {
        "/api/v1/admin/customisations": {"get": {
            "operationId": "list_customisations", "tags": ["Metamodel"],
            "responses": _responses({"200": _json(_listed({"type": "object", "required": ["kind", "name"]}),
                                                  "the organisation's layer")}, "503")}},
        base: {"parameters": named("entity"), "put": edit("define_entity"),
               "delete": edit("remove_entity", body=False)},
        f"{base}/fields/{{field}}": {"parameters": named("entity", "field"), "put": edit("define_field"),
                                     "delete": edit("retire_field", body=False)},
        f"{base}/pipelines/{{pipeline}}": {"parameters": named("entity", "pipeline"),
                                           "put": edit("define_pipeline")},
        f"{base}/pipelines/{{pipeline}}/stages/{{stage}}": {
            "parameters": named("entity", "pipeline", "stage"), "put": edit("define_stage"),
            "delete": edit("remove_stage", body=False)},
        # Reading roles (web/roles_api.py) needs manage_users or manage_metamodel; defining
        # and removing one (web/admin.py) is a metamodel edit like the others.
        "/api/v1/admin/roles": {"get": {
            "operationId": "list_roles", "tags": ["Metamodel"],
            "description": "every role a user can be given: the built-in administrator, the packs' "
                           "roles, the organisation's",
            "responses": _responses({"200": _json(_listed({"$ref": "#/components/schemas/Role"}), "roles")},
                                    "401", "403", "503")}},
        "/api/v1/admin/roles/{role}": {
            "parameters": [{"name": "role", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"operationId": "get_role", "tags": ["Metamodel"],
                    "responses": _responses({"200": _json({"$ref": "#/components/schemas/Role"}, "the role")},
                                            "401", "403", "404", "503")},
            "put": edit("define_role"), "delete": edit("remove_role", body=False)},
        # An organisation's workflow, or its replacement of a pack's (docs/workflows.md).
        "/api/v1/admin/workflows/{workflow}": {
            "parameters": [{"name": "workflow", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "put": edit("define_workflow"), "delete": edit("remove_workflow", body=False)},
        # An organisation's view, or its replacement of a pack's (docs/packs.md, "Views").
        "/api/v1/admin/views/{view}": {
            "parameters": [{"name": "view", "in": "path", "required": True, "schema": {"type": "string"}}],
            "put": edit("define_view"), "delete": edit("remove_view", body=False)},
        # An organisation's layout, or its replacement of a pack's (docs/packs.md, Layouts).
        "/api/v1/admin/layouts/{layout}": {
            "parameters": [{"name": "layout", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "put": edit("define_layout"), "delete": edit("remove_layout", body=False)},
    }


def _audit_paths() -> dict[str, Any]:
    """The audit log (web/audit_pages.py): events newest first, filtered, in keyset pages."""
    text = {"type": "string", "maxLength": auditlog.TEXT_MAX, "pattern": "^[^\\u0000]*$"}
    # A day or an RFC 3339 moment. The day's pattern stops at the 28th so that every string it
    # admits is a real day (a generated 2026-02-30 would be refused); the 29th to 31st are read too.
    day = "^[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])$"
    when = {"anyOf": [{"type": "string", "pattern": day}, {"type": "string", "format": "date-time"}],
            "description": "a day, YYYY-MM-DD (any real day; as `until`, the whole day), "
                           "or an RFC 3339 moment"}
    parameters = [
        {"name": "user", "in": "query", "schema": text, "description": "the user's id or e-mail"},
        {"name": "action", "in": "query", "schema": text,
         "description": "actions starting with this: login, pack., metamodel.change, records.export"},
        {"name": "object", "in": "query", "schema": {**text, "pattern": "^\\s*[^/\\s\\u0000][^\\u0000]*$"},
         "description": "KIND or KIND/ID: what the event was done to "
                        "(pack/<name>, entity/<name>, record/<entity>/<id>)"},
        {"name": "since", "in": "query", "schema": when, "description": "from this date or moment on"},
        {"name": "until", "in": "query", "schema": when,
         "description": "up to this moment, or to the end of this date"},
        {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": auditlog.LIMIT_MAX,
                    "default": auditlog.DEFAULT_LIMIT}},
        {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"},
         "description": "the `next_cursor` of the page before"},
    ]
    return {"/api/v1/admin/audit": {"get": {
        "operationId": "list_audit_events", "tags": ["Audit"],
        "description": "the audit log, newest first; needs the right to view the audit log (403). "
                       "An unknown, repeated or unreadable parameter is refused (422, by parameter).",
        "parameters": parameters,
        "responses": _responses({"200": _json({
            "type": "object", "required": ["data", "next"],
            "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEvent"}},
                           "next": {"type": ["string", "null"]}, "next_cursor": {"type": "string"}}},
            "a page of events")}, "403", "422", "503")}}}


def _shared_schemas() -> dict[str, Any]:
    moment = {"type": "string", "format": "date-time"}
    return {
        "Problem": PROBLEM,
        "Change": {"type": "object", "required": ["version", "action", "changed_at", "changed_by", "changes"],
                   "properties": {"version": {"type": "integer"},
                                  "action": {"enum": ["create", "update", "delete"]},
                                  "changed_at": moment, "changed_by": {"type": ["integer", "null"]},
                                  "changes": {"type": "object", "description": "per field, [old, new]"},
                                  "token": {"description": "the personal API token the change was made "
                                                           "with (null: a session, the system, the CLI)",
                                            "anyOf": [{"type": "null"}, {
                                                "type": "object", "required": ["id", "name"],
                                                "properties": {"id": {"type": "integer"},
                                                               "name": {"type": "string"}}}]}}},
        "AuditEvent": {
            "type": "object",
            "required": ["id", "at", "action", "user", "token", "address", "object", "detail"],
            "properties": {
                "id": {"type": "integer"}, "at": moment, "action": {"type": "string"},
                "user": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {
                    "id": {"type": ["integer", "null"]}, "name": {"type": ["string", "null"]}}}]},
                "token": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {
                    "id": {"type": "integer"}, "name": {"type": ["string", "null"]}}}]},
                "address": {"type": ["string", "null"]},
                "object": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {
                    "kind": {"type": "string"}, "id": {"type": ["string", "null"]}}}]},
                "detail": {"type": "object"}}},
        "StageVisit": {"type": "object", "required": ["field", "stage", "entered_at", "left_at", "seconds"],
                       "properties": {"field": {"type": "string"}, "stage": {"type": "string"},
                                      "entered_at": moment, "left_at": {"anyOf": [moment, {"type": "null"}]},
                                      "seconds": {"type": ["integer", "null"]}}},
    }


def document(revision: int, compiled: Mapping[str, CompiledEntity],
             limits: Limits = DEFAULT, views: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """`views`: each entity's list views by name (the `view` parameter's values)."""
    schemas = _shared_schemas()
    meta = {"type": "object", "required": ["revision", "entities"],
            "properties": {"revision": {"type": "integer"}, "worker": {"type": "integer"},
                           "entities": {"type": "array", "items": {"type": "object"}}}}
    paths: dict[str, Any] = {
        "/api/v1/meta": {"get": {
            "operationId": "meta", "tags": ["Metamodel"],
            "responses": _responses({"200": _json(meta, "the effective metamodel")}, "503")}},
        "/api/v1/openapi.json": {"get": {"operationId": "openapi", "tags": ["Metamodel"],
                                         "responses": _responses({"200": _json({"type": "object"},
                                                                               "this document")}, "503")}},
    }
    for ce in compiled.values():
        schemas.update(entity_schemas(ce))
        related = [(other, name) for other in compiled.values()
                   for name, c in other.fields.items() if c.field.target == ce.name and c.type.links_records]
        paths.update(entity_paths(ce, related, limits, linked_lists(ce, compiled),
                                  (views or {}).get(ce.name, ())))
    paths.update(_admin_paths())
    paths.update(_audit_paths())
    paths.update(openapi_identity.paths())
    schemas.update(openapi_identity.schemas())
    paths.update(openapi_workflows.paths())
    schemas.update(openapi_workflows.schemas())
    paths.update(openapi_files.paths(_responses, _problem))
    schemas.update(openapi_files.schemas())
    responses = {f"Problem{status}": {
        "description": why,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        **({"headers": {"Retry-After": {"schema": {"type": "string"}}}} if status == "503" else {})}
        for status, why in WHY.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "SlateCRM API", "version": f"{__version__}+revision.{revision}",
                 "description": "Generated from the live metamodel; it changes when the metamodel does."},
        "paths": paths,
        "components": {"schemas": schemas, "responses": responses, "securitySchemes": SECURITY_SCHEMES},
        # Every operation needs one of them (docs/security.md): the schemes are alternatives.
        "security": [{"bearer": []}, {"session": []}],
    }
