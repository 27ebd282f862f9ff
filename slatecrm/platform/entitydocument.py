"""An entity of the metamodel written back as the `kind: entity` document that defines it.

Retiring the organisation's own entity removes its document from the organisation's layer
(customisation.delete_entity); the metamodel keeps the entity as it last was, retired, with
its table and rows. Restoring it puts back the document this module writes from that
retired entity, so that the plan restores the table as it was: the same fields (its active
ones; a field retired before the entity stays retired), pipelines, validations, keys and
labels. Nothing here knows a field type: a field's settings are what its type's
`settings_schema` took from the document, and are given back as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slatecrm.metamodel.model import LOGIC_KEYS, CompositeKey, Entity, Field, Pipeline, Stage

#: Yes / no keys of a field, written only when set.
FLAGS = ("required", "unique", "indexed", "read_only", "read_only_after_create")
#: Rule keys of a field, written only when given.
RULES = ("formula", "default_expression", *LOGIC_KEYS)


def field_document(field: Field, *, with_options: bool = True) -> dict[str, Any]:
    """A field as the `fields:` entry of a pack file. `with_options`: False for the field a
    pipeline runs on, whose options are the pipeline's stages (made by the merge)."""
    body: dict[str, Any] = {"type": field.type, "label": field.label}
    if field.help:
        body["help"] = field.help
    body.update({flag: True for flag in FLAGS if getattr(field, flag)})
    if field.default is not None:
        body["default"] = field.default
    for key in RULES:
        value = getattr(field, key)
        if value is not None:
            body[key] = dict(value) if isinstance(value, Mapping) else value
    body.update({k: _plain(v) for k, v in field.settings.items() if k != "options"})
    if field.choices and with_options:
        body["options"] = [{"key": c.key, "label": c.label, **({"colour": c.colour} if c.colour else {})}
                           for c in sorted(field.choices, key=lambda c: c.order)]
    return body


def stage_document(stage: Stage) -> dict[str, Any]:
    body: dict[str, Any] = {"key": stage.key, "label": stage.label, "category": stage.category}
    for key in ("probability", "colour", "condition", "condition_message"):
        if getattr(stage, key) is not None:
            body[key] = getattr(stage, key)
    if stage.requires:
        body["requires"] = list(stage.requires)
    if stage.next is not None:
        body["next"] = list(stage.next)
    return body


def pipeline_document(pipeline: Pipeline) -> dict[str, Any]:
    body: dict[str, Any] = {"label": pipeline.label, "field": pipeline.field,
                            "stages": [stage_document(s) for s in pipeline.stages]}
    if pipeline.close_date_field:
        body["close_date_field"] = pipeline.close_date_field
    return body


def _keys(keys: tuple[CompositeKey, ...]) -> list[list[str]]:
    return [[f"-{name}" if name in key.descending else name for name in key.fields] for key in keys]


def entity_document(entity: Entity) -> dict[str, Any]:
    """The `kind: entity` document of `entity` (its active fields only)."""
    staged = {p.field for p in entity.pipelines}
    document: dict[str, Any] = {
        "kind": "entity", "name": entity.name, "label": entity.label, "label_plural": entity.label_plural,
        "fields": {f.name: field_document(f, with_options=f.name not in staged)
                   for f in entity.active_fields},
    }
    if entity.description:
        document["description"] = entity.description
    if entity.title_field:
        document["title_field"] = entity.title_field
    if entity.title_template:
        document["title_template"] = entity.title_template
    if entity.pipelines:
        document["pipelines"] = {p.name: pipeline_document(p) for p in entity.pipelines}
    if entity.validations:
        document["validations"] = [{"name": v.name, "condition": v.condition, "message": v.message,
                                    **({"field": v.field} if v.field else {})} for v in entity.validations]
    for key in ("unique", "indexes"):
        if getattr(entity, key):
            document[key] = _keys(getattr(entity, key))
    if entity.default_sort is not None:
        document["default_sort"] = list(entity.default_sort.keys)
    return document


def _plain(value: Any) -> Any:
    """A setting as a document holds it (JSON: lists, not tuples)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
