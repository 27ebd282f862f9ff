"""The OpenAPI paths and schemas of `/api/v1/me` (web/me_api.py), `/api/v1/admin/users`
(web/users_api.py) and `/api/v1/admin/teams` (web/teams_api.py), and the schema of a role
(web/roles_api.py; its paths are with the metamodel editor's, web/openapi.py): the same for
every revision, so built once."""

from __future__ import annotations

from functools import cache
from typing import Any

from slatecrm.digits import RECORD_ID_MAX
from slatecrm.metamodel.fieldtypes.builtin import _EMAIL as EMAIL  # the pattern users.valid_email checks
from slatecrm.metamodel.roles import ACTIONS, PLATFORM_RIGHTS, RECORD_SCOPES

from ..identity import memberships, teams, users
from ..identity.principal import SCOPES
from ..identity.tokens import NAME_MAX

_ID = {"type": "integer", "minimum": 1, "maximum": RECORD_ID_MAX}
_MOMENT = {"type": "string", "format": "date-time"}
_MAYBE_MOMENT = {"anyOf": [_MOMENT, {"type": "null"}]}
_TEXT = {"type": "string"}
#: A name: something besides white space and control characters, and never NUL (what
#: `valid_name` of users.py and tokens.py accept).
_NAME_PATTERN = r"^[^\u0000]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000]*$"
_EMAIL = {"type": "string", "maxLength": 254, "pattern": EMAIL.pattern}
_MAYBE_EMAIL = {"anyOf": [_EMAIL, {"type": "null"}], "description": "a user's e-mail; null: none"}
_USER_NAME = {"type": "string", "minLength": 1, "maxLength": users.NAME_MAX, "pattern": _NAME_PATTERN}
_LOCALE = {"type": "string", "pattern": users.LOCALE_PATTERN,
           "description": "a language tag: en, fr, pt-BR"}
#: The lifetimes a token's `expires` is documented with.
_LIFETIME = "^(?:never|[1-9][0-9]{0,4}[hdw])$"
#: Every identity route may answer these: not signed in, not allowed, the database busy.
_ALWAYS = ("401", "403", "503")
_BODY_REFUSALS = ("400", "413", "415", "422")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[str, Any], *refusals: str) -> dict[str, Any]:
    problems = {s: {"$ref": f"#/components/responses/Problem{s}"} for s in sorted({*_ALWAYS, *refusals})}
    return {**ok, **problems}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _listed(name: str) -> dict[str, Any]:
    return {"type": "object", "required": ["data"],
            "properties": {"data": {"type": "array", "items": _ref(name)}}}


_NAMES = {"type": "array", "items": {"type": "string", "pattern": "^[^\\u0000]*$"}, "uniqueItems": True}
_TEAM_NAME = {"type": "string", "minLength": 1, "maxLength": memberships.TEAM_NAME_MAX,
              "pattern": _NAME_PATTERN}
_DESCRIPTION = {"type": "string", "maxLength": teams.DESCRIPTION_MAX, "pattern": "^[^\\u0000]*$"}


def _role_schema() -> dict[str, Any]:
    required = ["entity", "actions", "scope", "sharing", "fields"]
    grant = {"type": "object", "required": required, "properties": {
        "entity": {"type": "string", "description": "an entity's name, or * for every entity not named"},
        "actions": {"type": "array", "items": {"enum": list(ACTIONS)}},
        "scope": {"enum": list(RECORD_SCOPES)},
        "sharing": {"type": "array", "items": {"type": "object", "properties": {
            "where": _TEXT, "access": {"enum": ["read", "edit"]}}}},
        "fields": {"type": "object", "additionalProperties": {"enum": ["read_only", "hidden"]}}}}
    properties = {
        "name": _TEXT, "label": _TEXT, "description": _TEXT,
        "defined_by": {"enum": ["built-in", "pack", "organisation"]},
        "pack": {"type": ["string", "null"], "description": "the pack defining it (defined_by: pack)"},
        "platform": {"type": "array", "items": {"enum": list(PLATFORM_RIGHTS)}},
        "entities": {"type": "array", "items": grant},
        "users": {"type": "integer", "minimum": 0, "description": "how many users hold it"},
        "definition": {"type": ["object", "null"],
                       "description": "the body PUT /api/v1/admin/roles/{role} takes (null: built in)"}}
    return {"type": "object", "required": list(properties), "properties": properties}


def schemas() -> dict[str, Any]:
    user_properties = {
        "id": _ID, "email": {"type": ["string", "null"]}, "name": _TEXT, "active": {"type": "boolean"},
        "time_zone": _TEXT, "locale": _TEXT, "manager": {"type": ["string", "null"]},
        "manager_id": {"anyOf": [_ID, {"type": "null"}]}, "has_password": {"type": "boolean"},
        "created_at": _MOMENT, "updated_at": _MAYBE_MOMENT, "password_changed_at": _MAYBE_MOMENT,
        "roles": {"type": "array", "items": _TEXT}, "teams": {"type": "array", "items": _TEXT},
        "attributes": {"type": "object", "description": "the user's values of the user attributes "
                                                        "the metamodel defines (kind: user_attribute)"}}
    attribute_value = {"type": ["string", "number", "boolean", "null"]}
    attribute_input = {"type": "object", "additionalProperties": attribute_value,
                       "description": "user attribute values by name, each checked against its "
                                      "definition; null removes a value"}
    token_properties = {
        "id": _ID, "user_id": _ID, "user": {"type": ["string", "null"]}, "name": _TEXT, "prefix": _TEXT,
        "scopes": {"type": "array", "items": {"enum": list(SCOPES)}}, "created_at": _MOMENT,
        "expires_at": _MAYBE_MOMENT, "last_used_at": _MAYBE_MOMENT, "revoked_at": _MAYBE_MOMENT,
        "state": {"enum": ["active", "expired", "revoked", "superseded"],
                  "description": "superseded: made before its user's last password change or reset"}}
    return {
        "User": {"type": "object", "required": list(user_properties), "properties": user_properties},
        "Me": {"type": "object",
               "required": ["id", "name", "email", "time_zone", "locale", "roles", "teams", "attributes",
                            "via", "scopes"],
               "properties": {**{k: user_properties[k] for k in ("id", "name", "email", "time_zone", "locale",
                                                                  "roles", "teams", "attributes")},
                              "via": {"enum": ["session", "token"]},
                              "scopes": {"type": "array", "items": {"enum": list(SCOPES)}}}},
        "Token": {"type": "object", "required": list(token_properties), "properties": token_properties},
        "TokenInput": {
            "type": "object", "additionalProperties": False, "required": ["name", "scopes"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX,
                         "pattern": _NAME_PATTERN},
                "scopes": {"type": "array", "minItems": 1, "uniqueItems": True,
                           "items": {"enum": list(SCOPES)}},
                "expires": {"anyOf": [{"type": "string", "pattern": _LIFETIME}, {"type": "null"}],
                            "description": "a lifetime (30d, 12h, 8w) or never; null or left out: 90 "
                                           "days. A date (2027-01-31) or a date-time with its offset "
                                           "is read too"}}},
        "NewToken": {"type": "object", "required": ["token", "secret", "note"],
                     "properties": {"token": _ref("Token"), "secret": _TEXT, "note": _TEXT}},
        "TimeZone": {"enum": users.time_zones(), "description": "an IANA time zone"},
        "UserInput": {
            "type": "object", "additionalProperties": False, "required": ["email", "name"],
            "properties": {"email": _EMAIL, "name": _USER_NAME, "time_zone": _ref("TimeZone"),
                           "locale": _LOCALE, "manager": _MAYBE_EMAIL,
                           "roles": {**_NAMES, "description": "the user's roles, the whole list"},
                           "teams": {**_NAMES, "description": "the user's teams, the whole list"},
                           "attributes": attribute_input}},
        "UserPatch": {
            "type": "object", "additionalProperties": False,
            "properties": {"name": _USER_NAME, "time_zone": _ref("TimeZone"), "locale": _LOCALE,
                           "active": {"type": "boolean"}, "manager": _MAYBE_EMAIL,
                           "roles": {**_NAMES, "description": "the user's roles become exactly these"},
                           "teams": {**_NAMES, "description": "the user's teams become exactly these"},
                           "attributes": attribute_input}},
        "Role": _role_schema(),
        "Team": {"type": "object", "required": ["id", "name", "description", "members"],
                 "properties": {"id": _ID, "name": _TEXT, "description": _TEXT,
                                "members": {"type": "array", "items": _TEXT,
                                            "description": "the members' e-mails"}}},
        "TeamInput": {"type": "object", "additionalProperties": False, "required": ["name"],
                      "properties": {"name": _TEAM_NAME, "description": _DESCRIPTION,
                                     "members": {"type": "array", "items": _EMAIL, "uniqueItems": True}}},
        "TeamPatch": {"type": "object", "additionalProperties": False,
                      "properties": {"name": _TEAM_NAME, "description": _DESCRIPTION,
                                     "members": {"type": "array", "items": _EMAIL, "uniqueItems": True,
                                                 "description": "the members become exactly these"}}},
    }


@cache
def paths() -> dict[str, Any]:
    tags = ["Identity"]
    user_id = {"name": "user_id", "in": "path", "required": True, "schema": _ID}
    token_id = {"name": "token_id", "in": "path", "required": True, "schema": _ID}
    team_id = {"name": "team_id", "in": "path", "required": True, "schema": _ID}
    revoked = {"204": {"description": "revoked"}}
    return {
        "/api/v1/me": {"get": {"operationId": "me", "tags": tags,
                            "responses": _responses({"200": _json(_ref("Me"), "the signed-in user")})}},
        "/api/v1/me/tokens": {
            "get": {"operationId": "list_my_tokens", "tags": tags,
                    "responses": _responses({"200": _json(_listed("Token"), "my tokens, newest first")})},
            "post": {"operationId": "issue_my_token", "tags": tags, "requestBody": _body("TokenInput"),
                     "description": "the secret is in this answer only",
                     "responses": _responses({"201": _json(_ref("NewToken"), "the token and its secret")},
                                             "409", *_BODY_REFUSALS)}},
        "/api/v1/me/tokens/{token_id}": {
            "parameters": [token_id],
            "delete": {"operationId": "revoke_my_token", "tags": tags,
                       "responses": _responses(revoked, "404")}},
        "/api/v1/admin/users": {
            "get": {"operationId": "list_users", "tags": tags,
                    "parameters": [{"name": "q", "in": "query", "schema": _TEXT,
                                    "description": "name or e-mail holds this text"},
                                   {"name": "active", "in": "query", "schema": {"type": "boolean"}}],
                    "responses": _responses({"200": _json(_listed("User"), "users, by name")}, "422")},
            "post": {"operationId": "add_user", "tags": tags, "requestBody": _body("UserInput"),
                     "responses": _responses({"201": {**_json(_ref("User"), "added"), "headers": {
                         "Location": {"schema": _TEXT}}}}, "409", *_BODY_REFUSALS)}},
        "/api/v1/admin/users/{user_id}": {
            "parameters": [user_id],
            "get": {"operationId": "get_user", "tags": tags,
                    "responses": _responses({"200": _json(_ref("User"), "the user")}, "404")},
            "patch": {"operationId": "update_user", "tags": tags, "requestBody": _body("UserPatch"),
                      "responses": _responses({"200": _json(_ref("User"), "changed")},
                                              "404", "409", *_BODY_REFUSALS)}},
        "/api/v1/admin/users/{user_id}/password-reset": {
            "parameters": [user_id],
            "post": {"operationId": "reset_user_password", "tags": tags,
                     "description": "clears the password; ends the user's sessions and tokens made before",
                     "responses": _responses({"200": _json(_ref("User"), "reset")}, "404", "409")}},
        "/api/v1/admin/users/{user_id}/tokens": {
            "parameters": [user_id],
            "get": {"operationId": "list_user_tokens", "tags": tags,
                    "responses": _responses({"200": _json(_listed("Token"), "the user's tokens")}, "404")}},
        "/api/v1/admin/users/{user_id}/tokens/{token_id}": {
            "parameters": [user_id, token_id],
            "delete": {"operationId": "revoke_user_token", "tags": tags,
                       "responses": _responses(revoked, "404")}},
        "/api/v1/admin/teams": {
            "get": {"operationId": "list_teams", "tags": tags,
                    "responses": _responses({"200": _json(_listed("Team"), "teams, by name")})},
            "post": {"operationId": "add_team", "tags": tags, "requestBody": _body("TeamInput"),
                     "responses": _responses({"201": {**_json(_ref("Team"), "added"), "headers": {
                         "Location": {"schema": _TEXT}}}}, "409", *_BODY_REFUSALS)}},
        "/api/v1/admin/teams/{team_id}": {
            "parameters": [team_id],
            "get": {"operationId": "get_team", "tags": tags,
                    "responses": _responses({"200": _json(_ref("Team"), "the team")}, "404")},
            "patch": {"operationId": "update_team", "tags": tags, "requestBody": _body("TeamPatch"),
                      "responses": _responses({"200": _json(_ref("Team"), "changed")},
                                              "404", "409", *_BODY_REFUSALS)},
            "delete": {"operationId": "remove_team", "tags": tags,
                       "description": "its members stay users, outside it",
                       "responses": _responses({"204": {"description": "removed"}}, "404")}},
    }
