"""Live checking of a rule as the admin types it: the designer's formula, default
expression and validation condition inputs, and a view's filter, post here (htmx, on
input) and show the answer under the text, the rule language's own error with a caret
under the offending column, or what the rule gives. The same `check` the merge runs on save
(metamodel/rules/definitions.py), against the revision in force, so what passes here passes
the plan, and the caret is the one `slatecrm` prints for a pack file.

A form-logic input (`visible_if`, `required_if`, `read_only_if`, `options_if`) is checked
with the whole field form: the field as the form defines it stands in the entity in force
(so that an option filter may read the field being added), each rule is typed as the
records service will evaluate it (a condition over the record, no change functions), and
then `metamodel.rules.formlogic.check_logic`, the install's own check, judges the rest (an
option the field does not have, a reference's filter that does not read the field, a
required field's `required_if`, a field the system fills).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import LOGIC_KEYS, ChoiceOption, Entity, Field, Metamodel
from slatecrm.metamodel.names import suggest
from slatecrm.metamodel.rules import BOOLEAN, RuleError, Type, check
from slatecrm.metamodel.rules.formlogic import check_logic
from slatecrm.metamodel.rules.types import computable, field_type

from .admin import MANAGE_METAMODEL
from .designer_forms import logic_form
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


def logic_verdict(request: Request, entity: str, rule: str, form: FormData,
                  field_name: str) -> dict[str, Any]:
    """What the checks say of the form-logic input `rule` of the field the `form` defines."""
    require_right(request, MANAGE_METAMODEL)
    text = str(form.get(rule) or "")
    if not text.strip():
        return {"ok": True, "empty": True}
    records = records_of(request)
    metamodel = records.full_snapshot().metamodel
    found = metamodel.entity(entity)
    if found is None:
        return _refused(f"there is no entity {entity!r}")
    probe = _probe(found, form, field_name or "_designer_probe", records.registry)
    metamodel, found = _with_field(metamodel, found, probe)
    ftype = records.registry[probe.type] if probe.type in records.registry else None  # noqa: SIM401
    per_option = rule == "options_if" and logic_form(ftype) == "options"
    lines = text.splitlines() if per_option else [text]
    rules: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if per_option and not line.strip():
            continue
        key, colon, rule_text = line.partition(":") if per_option else ("", ":", line)
        if per_option and (not colon or not key.strip() or not rule_text.strip()):
            return _at("give an option's key and its rule, as `option: rule`", number, 1, line)
        keys = [c.key for c in probe.choices]
        if per_option and key.strip() not in keys:
            return _at(f"{probe.name!r} has no option {key.strip()!r}{suggest(key.strip(), keys)}",
                       number, len(key) - len(key.lstrip()) + 1, line)
        try:
            check(rule_text.strip() if per_option else rule_text, metamodel, entity, expect=BOOLEAN,
                  functions=records.functions, registry=records.registry)
        except RuleError as error:
            if not per_option:
                shown = error if error.text else error.with_text(text)
                return _at(shown.message, shown.line, shown.column, "", shown.caret())
            offset = len(key) + 1 + len(rule_text) - len(rule_text.lstrip())
            column = error.column + offset if error.line == 1 else error.column
            return _at(error.message, number, column, line)
        rules[key.strip()] = rule_text.strip()
    logic: dict[str, Any] = {k: None for k in LOGIC_KEYS}
    logic[rule] = rules if per_option else text
    judged = replace(probe, **logic)
    problems = list(check_logic(metamodel, found, judged, str, records.functions, records.registry))
    if problems:
        return _refused(problems[0].message.removeprefix(f"{rule}: "))
    return {"ok": True, "empty": False, "gives": "condition"}


def _probe(entity: Entity, form: FormData, name: str, registry: FieldTypeRegistry) -> Field:
    """The field as the form defines it (its type, options, target, required, formula), on
    top of the field in force when it exists (a pack's field shows no target input)."""
    existing = entity.any_field(name)
    type_name = str(form.get("type") or (existing.type if existing else registry.default_type))
    keys = [str(k).strip() for k in form.getlist("option_key") if str(k).strip()]
    choices = tuple(ChoiceOption(key=k, label=k, order=i) for i, k in enumerate(keys))
    settings = dict(existing.settings) if existing else {}
    if form.get("target"):
        settings["target"] = str(form.get("target"))
    formula = str(form.get("formula") or "").strip() or None
    if existing is not None:
        return replace(existing, type=type_name, choices=choices or existing.choices, settings=settings,
                       required=bool(form.get("required")) or existing.required,
                       formula=formula or existing.formula, retired=False)
    return Field(name=name, type=type_name, label=name, settings=settings, choices=choices,
                 required=bool(form.get("required")), formula=formula)


def _with_field(metamodel: Metamodel, entity: Entity, probe: Field) -> tuple[Metamodel, Entity]:
    """The metamodel with `probe` in `entity`, in place of the field of its name."""
    fields = (*(f for f in entity.fields if f.name != probe.name), probe)
    changed = replace(entity, fields=fields)
    return metamodel.with_entities(tuple(changed if e is entity else e for e in metamodel.entities)), changed


def _at(message: str, line: int, column: int, source: str, caret: str = "") -> dict[str, Any]:
    """An error at `line`, `column` of the input, with the caret under `source` (that line)."""
    return {"ok": False, "message": message, "line": line, "column": column,
            "caret": caret or f"{source}\n{' ' * (max(column, 1) - 1)}^"}


def _refused(message: str) -> dict[str, Any]:
    return {"ok": False, "message": message, "line": 0, "column": 0, "caret": ""}


async def check_rule(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)  # before the body is read
    form = await request.form()
    rule = request.query_params.get("rule", "")
    entity = request.path_params["entity"]
    if rule in LOGIC_KEYS:
        field_name = request.query_params.get("field") or str(form.get("name") or "").strip()
        found = await run_in_threadpool(logic_verdict, request, entity, rule, form, field_name)
    else:
        found = await run_in_threadpool(verdict, request, entity, rule, str(form.get(rule) or ""),
                                        str(form.get("type") or records_of(request).registry.default_type))
    return render(request, "_designer_check", {"check": found, "rule": rule}, twin=found)


routes = [Route("/admin/entities/{entity}/check", check_rule, methods=["POST"])]
