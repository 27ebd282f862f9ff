"""The JSON Schemas of one entity's records in the OpenAPI document: as the API answers
them, as a create takes them and as a PATCH takes them.

Each field's part comes from its field type (`output_schema`, `input_schema`,
`filter_schema`: metamodel/fieldtypes/base.py); what is decided here is what the write
pipeline decides for every type alike: which fields a create must give (required, with no
default, stage or expression to fill them), that a required field may not be sent blank,
that a record created in a stage must give what the stage requires, and that a PATCH says
the version it is based on. A field defined `read_only` is `readOnly` in all three (people
never set it; the system does), one defined `read_only_after_create` in the PATCH only. A
request the document calls valid is then refused only for what no schema can see: a
referenced record or owner that does not exist, a value another record holds, a stage move
or rule the stored record does not allow, and the fields' form logic (given as
`x-slatecrm-visible-if`, `-required-if`, `-read-only-if` and `-options-if`, and in words in
the field's description).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slatecrm.digits import RECORD_ID_MAX, VERSION_MAX
from slatecrm.metamodel.model import LOGIC_KEYS

from ..records.compiled import CompiledEntity, CompiledField

#: The record's system keys, as every answer carries them.
SYSTEM_OUTPUT: dict[str, Any] = {
    "id": {"type": "integer", "minimum": 1, "readOnly": True},
    "version": {"type": "integer", "minimum": 1, "readOnly": True},
    "_title": {"type": "string", "readOnly": True, "description": "the record's display title"},
    "created_at": {"type": "string", "format": "date-time", "readOnly": True},
    "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
    "created_by": {"type": ["integer", "null"], "readOnly": True},
    "updated_by": {"type": ["integer", "null"], "readOnly": True},
    "owner": {"type": ["integer", "null"], "description": "the owning user's id"},
}
RECORD_ID: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": RECORD_ID_MAX}
VERSION: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": VERSION_MAX,
                           "description": "the version the change is based on (If-Match may say it instead)"}
OWNER_INPUT: dict[str, Any] = {"anyOf": [RECORD_ID, {"type": "null"}],
                               "description": "a user's id (a user that does not exist is refused, 422)"}


def schema_name(entity: str) -> str:
    return "".join(part.capitalize() for part in entity.split("_"))


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _described(compiled: CompiledField, schema: dict[str, Any]) -> dict[str, Any]:
    out = {**schema, "title": compiled.field.label, **_logic(compiled)}
    said = [compiled.field.help] if compiled.field.help else []
    said += [f"{LOGIC_WORDS[key]} {text}" for key in LOGIC_KEYS[:3]
             if (text := getattr(compiled.field, key)) is not None]
    if said:
        out["description"] = "; ".join(said)
    return out


#: How a field's form logic reads in its description (records/formlogic.py enforces it).
LOGIC_WORDS = {"visible_if": "form logic: may be given only when", "required_if": "required when",
               "read_only_if": "may not be changed when"}


def _logic(compiled: CompiledField) -> dict[str, Any]:
    """The field's form-logic rules as `x-slatecrm-visible-if` and the like: what the write
    pipeline refuses that no schema can say (422 naming the field and the rule)."""
    out: dict[str, Any] = {}
    for key in LOGIC_KEYS:
        value = getattr(compiled.field, key)
        if value is not None:
            out["x-slatecrm-" + key.replace("_", "-")] = dict(value) if isinstance(value, Mapping) else value
    return out


def _writable(compiled: CompiledField) -> bool:
    return compiled.type.writable and compiled.field.formula is None


def _read_only(schema: dict[str, Any], read_only: bool) -> dict[str, Any]:
    """`schema`, marked `readOnly` when a person's request may not set the value (the write
    pipeline refuses it, 422; a blank on a new record or the stored value unchanged pass)."""
    return {**schema, "readOnly": True} if read_only else schema


def _filled_when_left_out(ce: CompiledEntity, compiled: CompiledField) -> bool:
    """A field a new record gets without the client giving it (pipeline `defaults`)."""
    field = compiled.field
    return field.default is not None or compiled.name in ce.pipelines or field.default_expression is not None


def _input(compiled: CompiledField) -> dict[str, Any]:
    """A field's value in a create or a PATCH: a required field refuses blanks, unless a
    default expression fills a blank (rules.apply_defaults)."""
    field = compiled.field
    if field.required and field.default_expression is None:
        return _described(compiled, compiled.type.input_schema(field, required=True))
    return _described(compiled, nullable(compiled.type.input_schema(field, required=False)))


def output_schema(ce: CompiledEntity) -> dict[str, Any]:
    properties: dict[str, Any] = dict(SYSTEM_OUTPUT)
    for name, compiled in ce.fields.items():
        value = compiled.type.output_schema(compiled.field)
        if compiled.type.links_records and compiled.field.target:  # service.py `as_json`: id and title
            value = {"type": "object", "required": ["id", "title"], "properties": {
                "id": value, "title": {"type": "string"}}}
        described = _described(compiled, nullable(value))
        properties[name] = _read_only(described, not _writable(compiled) or compiled.field.read_only)
    return {"type": "object", "title": ce.entity.label, "description": ce.entity.description,
            "required": list(properties), "properties": properties}


def _stage_requirements(ce: CompiledEntity) -> list[dict[str, Any]]:
    """A new record created in a stage must give what the stage requires (stages.gate);
    one branch per such stage, and one for the rest (the stage left out, or a stage
    without requirements)."""
    branches: list[dict[str, Any]] = []
    for field_name, pipeline in ce.pipelines.items():
        demanding = [s for s in pipeline.stages if any(name in ce.fields for name in s.requires)]
        if not demanding:
            continue
        free = [s.key for s in pipeline.stages if s not in demanding]
        # Left out (the first stage) or a stage without requirements; `false`: left out.
        options: list[Any] = [{"properties": {field_name: {"enum": free} if free else False}}]
        for stage in demanding:
            needed = [name for name in stage.requires if name in ce.fields]
            options.append({"required": [field_name, *needed], "properties": {
                field_name: {"const": stage.key},
                **{name: ce.fields[name].type.input_schema(ce.fields[name].field, required=True)
                   for name in needed}}})
        branches.append({"anyOf": options})
    return branches


def input_schemas(ce: CompiledEntity) -> tuple[dict[str, Any], dict[str, Any]]:
    """(create, PATCH) schemas of the entity's writable fields."""
    created: dict[str, Any] = {"owner": OWNER_INPUT}
    changed: dict[str, Any] = {"owner": OWNER_INPUT}
    required: list[str] = []
    for name, compiled in ce.fields.items():
        if not _writable(compiled):
            continue
        field = compiled.field
        schema = _input(compiled)
        created[name] = _read_only(schema, field.read_only)
        changed[name] = _read_only(schema, field.read_only or field.read_only_after_create)
        if field.required and not _filled_when_left_out(ce, compiled):
            required.append(name)
    create: dict[str, Any] = {"type": "object", "properties": created, "required": required,
                              "additionalProperties": False}
    if gates := _stage_requirements(ce):
        create["allOf"] = gates
    patch = {"type": "object", "properties": {**changed, "version": VERSION}, "required": ["version"],
             "additionalProperties": False,
             "description": "the fields to change; a stage move must be one the stored record's stage allows"}
    return create, patch


def entity_schemas(ce: CompiledEntity) -> dict[str, dict[str, Any]]:
    name = schema_name(ce.name)
    create, patch = input_schemas(ce)
    return {name: output_schema(ce), f"{name}Input": create, f"{name}Patch": patch}
