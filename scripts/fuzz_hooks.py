"""schemathesis hooks of `scripts/fuzz.py` (loaded through SCHEMATHESIS_HOOKS).

Two things no schema can say are kept out of the schema-valid requests, and every
schema-valid request the server refuses is written down with why, for fuzz.py to count:

- `filter` (a rule-language condition) and `after` (a signed cursor) are refused unless
  they parse or carry the database's signature; a generated string almost never does. A
  positive case leaves them out; negative cases keep them (tests/test_keyset.py and
  tests/rules/ test both with values that are the server's).
- `confirm` on the admin routes would apply a generated metamodel edit and change the
  document under the run; every case leaves it out, so edits are planned, never applied.
- The run's own API token (SLATECRM_FUZZ_TOKEN_ID) is never the one a generated DELETE
  names (`revoke_my_token`, `revoke_user_token`): revoking it would sign the run out. Such a
  case names a token that does not exist instead (a 404), so both operations stay fuzzed.

The run acts as an administrator whose token holds every scope: a 401 or 403, whatever the
case, is written down as `signed_in` (fuzz.py fails on it).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

OPAQUE = ("filter", "after")
#: Refusals that depend on the data in the database, not on the request's form: records
#: that do not exist, values others hold; for a change, also the stored record's stage.
STATE = ("there is no ", "already has", "already used",
         # an uploaded file's stored content (its detected type, its size), not the request's form
         "the uploaded file ")
STAGE = ("cannot move from", "is required to enter stage", "requires ")
#: Form logic (visible_if, required_if, read_only_if, options_if): rules across a record's
#: fields, which the document states in words and `x-slatecrm-*-if`, not as JSON Schema.
FORM_LOGIC = ("is hidden by the form's logic", "is read-only when ", "is required when ",
              " is not offered: only when ")
LOG = os.environ.get("SLATECRM_FUZZ_REFUSALS", "")
OWN_TOKEN = os.environ.get("SLATECRM_FUZZ_TOKEN_ID", "")
#: Admin routes that plan metamodel edits: their refusals are definitions checked beyond the
#: schema. The users and audit admin are ordinary routes.
DEFINITION_PREFIX = "/api/v1/admin/"
NOT_DEFINITIONS = ("/api/v1/admin/users", "/api/v1/admin/audit")


def _positive(case: Any) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


def _spare_own_token(case: Any) -> None:
    parameters = case.path_parameters if isinstance(case.path_parameters, dict) else None
    if OWN_TOKEN and case.method.upper() == "DELETE" and parameters is not None \
            and str(parameters.get("token_id")) == OWN_TOKEN:
        parameters["token_id"] = int(OWN_TOKEN) + 1_000_000_000


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    _spare_own_token(case)
    query = case.query if isinstance(case.query, dict) else None
    if query is None:
        return
    query.pop("confirm", None)
    if _positive(case):
        for name in OPAQUE:
            query.pop(name, None)


def classify(method: str, path: str, status: int, body: Any) -> str:
    """Why a request was refused: `signed_in` (a 401 or 403: the administrator's token
    should pass everywhere), `state` (the database's data), `definition` (an admin edit's
    definition checked beyond its schema), or `document` (the document admitted what the
    server refuses: a defect of the document or the server)."""
    if status in (401, 403):
        return "signed_in"
    if path.startswith(DEFINITION_PREFIX) and not path.startswith(NOT_DEFINITIONS):
        return "definition"
    errors = body.get("errors") if isinstance(body, dict) else None
    # A create's stage requirements are in its schema; a change's depend on the stored stage.
    markers = (STATE if method == "POST" else STATE + STAGE) + FORM_LOGIC
    if status == 422 and isinstance(errors, dict) and errors and all(
            any(marker in message for marker in markers)
            for messages in errors.values() for message in messages):
        return "state"
    return "document"


@schemathesis.hook
def after_call(ctx: Any, case: Any, response: Any) -> None:
    if not LOG or not 400 <= response.status_code < 500 or response.status_code in (404, 409):
        return
    if not _positive(case) and response.status_code not in (401, 403):
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    entry = {"method": case.method, "path": case.formatted_path, "status": response.status_code,
             "kind": classify(case.method, case.formatted_path, response.status_code, body),
             "phase": str(case.meta.phase.name), "body": body,
             "query": case.query if isinstance(case.query, dict) else None,
             "sent": case.body if isinstance(case.body, dict | list) else None}
    with open(LOG, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry, default=str) + "\n")
