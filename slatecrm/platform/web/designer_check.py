"""Live checking of a rule as the admin types it: the designer's formula, default
expression and validation condition inputs, and a view's filter, post here (htmx, on
input) and show the answer under the text, the rule language's own error with a caret
under the offending column, or what the rule gives. The same `check` the merge runs on save
(metamodel/rules/definitions.py), against the revision in force, so what passes here passes
the plan, and the caret is the one `slatecrm` prints for a pack file.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.metamodel.model import Field
from slatecrm.metamodel.rules import BOOLEAN, RuleError, Type, check
from slatecrm.metamodel.rules.types import computable, field_type

from .admin import MANAGE_METAMODEL
from .pinning import records_of
from .rights import checked_right, require_right
from .templating import render

#: The rule inputs, and whether each is a condition (true or false, may ask what changed).
CONDITIONS = {"formula": False, "default_expression": False, "condition": True}
#: Conditions that read stored records only, so cannot ask what changed: a view's filter
#: (checked as metamodel/viewchecks.py checks it on save).
FILTERS = frozenset({"filter"})


def verdict(request: Request, entity: str, rule: str, text: str, type_name: str) -> dict[str, Any]:
    """What the check says of `text` as the `rule` of `entity` (for a field of `type_name`)."""
    require_right(request, MANAGE_METAMODEL)
    if rule not in CONDITIONS and rule not in FILTERS:
        return _refused(f"there is no rule input {rule!r}")
    if not text.strip():
        return {"ok": True, "empty": True}
    records = records_of(request)
    metamodel = records.full_snapshot().metamodel
    if metamodel.entity(entity) is None:
        return _refused(f"there is no entity {entity!r}")
    expect: Type | None = BOOLEAN
    if rule in CONDITIONS and not CONDITIONS[rule]:
        probe = Field(name="_designer_probe", type=type_name, label="")
        wanted = field_type(probe, records.registry)
        if wanted is None or not computable(probe, records.registry):
            return _refused(f"a {type_name} field cannot get its value from a rule")
        expect = Type(wanted.kind)
    try:
        checked = check(text, metamodel, entity, expect=expect, changes=CONDITIONS.get(rule, False),
                        functions=records.functions, registry=records.registry)
    except RuleError as error:
        shown = error if error.text else error.with_text(text)
        return {"ok": False, "message": shown.message, "line": shown.line, "column": shown.column,
                "caret": shown.caret()}
    return {"ok": True, "empty": False, "gives": str(checked.typed.type)}


def _refused(message: str) -> dict[str, Any]:
    return {"ok": False, "message": message, "line": 0, "column": 0, "caret": ""}


async def check_rule(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)  # before the body is read
    form = await request.form()
    rule = request.query_params.get("rule", "")
    found = await run_in_threadpool(verdict, request, request.path_params["entity"], rule,
                                    str(form.get(rule) or ""), str(form.get("type") or "text"))
    return render(request, "_designer_check", {"check": found, "rule": rule}, twin=found)


routes = [Route("/admin/entities/{entity}/check", check_rule, methods=["POST"])]
