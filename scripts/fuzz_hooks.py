"""schemathesis hooks of `scripts/fuzz.py` (loaded through SCHEMATHESIS_HOOKS).

Two things no schema can say are kept out of the schema-valid requests, and every
schema-valid request the server refuses is written down with why, for fuzz.py to count:

- `filter` (a rule-language condition) and `after` (a signed cursor) are refused unless
  they parse or carry the database's signature; a generated string almost never does. A
  positive case leaves them out; negative cases keep them (tests/test_keyset.py and
  tests/rules/ test both with values that are the server's).
- `confirm` on the admin routes would apply a generated metamodel edit and change the
  document under the run; every case leaves it out, so edits are planned, never applied.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

OPAQUE = ("filter", "after")
#: Refusals that depend on the data in the database, not on the request's form: records
#: that do not exist, values others hold; for a change, also the stored record's stage.
STATE = ("there is no ", "already has", "already used")
STAGE = ("cannot move from", "is required to enter stage", "requires ")
LOG = os.environ.get("SLATECRM_FUZZ_REFUSALS", "")


def _positive(case: Any) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    query = case.query if isinstance(case.query, dict) else None
    if query is None:
        return
    query.pop("confirm", None)
    if _positive(case):
        for name in OPAQUE:
            query.pop(name, None)


def classify(method: str, path: str, status: int, body: Any) -> str:
    """Why a schema-valid request was refused: `state` (the database's data), `definition`
    (an admin edit's definition checked beyond its schema), or `document` (the document
    admitted what the server refuses: a defect of the document or the server)."""
    if path.startswith("/api/v1/admin/"):
        return "definition"
    errors = body.get("errors") if isinstance(body, dict) else None
    # A create's stage requirements are in its schema; a change's depend on the stored stage.
    markers = STATE if method == "POST" else STATE + STAGE
    if status == 422 and isinstance(errors, dict) and errors and all(
            any(marker in message for marker in markers)
            for messages in errors.values() for message in messages):
        return "state"
    return "document"


@schemathesis.hook
def after_call(ctx: Any, case: Any, response: Any) -> None:
    if not LOG or not _positive(case) or not 400 <= response.status_code < 500 \
            or response.status_code in (404, 409):
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
