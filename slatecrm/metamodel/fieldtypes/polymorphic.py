"""Polymorphic references: `type: reference` with `targets` ("related to" one of several
entities) instead of one `target`.

The value is the pair (entity, id), kept in two columns: `<name>` (the id: sorting,
filters and indexes read it first) and `<name>__entity` (the entity's name), indexed
together. No database foreign key can point to several tables: the records service checks
that the record exists on every write and carries out `on_delete` for every target when a
target record is deleted (records/service.py). The reference type (builtin.py `Reference`)
hands a definition with `targets` to the functions here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..rules.types import Type
from .base import CoercionError, ColumnSpec
from .sqltypes import record_id

if TYPE_CHECKING:
    from ..model import Field

INT64 = 2**63 - 1
#: The companion column's suffix: `<name>__entity`.
ENTITY = "entity"
#: Entity names are at most this long (metamodel/names.py keeps them shorter still).
ENTITY_LENGTH = 63
#: The text form of a value: `company:3` (forms, CSV cells, list filters).
_TEXT = re.compile(r"\s*([a-z][a-z0-9_]*)\s*:\s*([0-9]{1,19})\s*")


def polymorphic(field: Field) -> bool:
    """Whether a reference definition points to several entities (`targets`)."""
    return "targets" in field.settings and "target" not in field.settings


def columns(field: Field) -> list[ColumnSpec]:
    return [ColumnSpec("", record_id()), ColumnSpec(ENTITY, sa.String(ENTITY_LENGTH))]


def to_columns(value: Any) -> dict[str, Any]:
    if value is None:
        return {"": None, ENTITY: None}
    return {"": value["id"], ENTITY: value["entity"]}


def from_columns(values: Mapping[str, Any]) -> Any:
    record, entity = values.get(""), values.get(ENTITY)
    if record is None or entity is None:
        return None
    return {"entity": entity, "id": record}


def convert(value: Any, field: Field) -> dict[str, Any]:
    """{"entity": "company", "id": 3} (what the API gives and takes; a `title` is ignored)
    or the text `company:3`."""
    targets = field.targets
    if isinstance(value, str):
        found = _TEXT.fullmatch(value)
        if found is None:
            raise CoercionError(f"{value[:40]!r} is not a record: give entity:id, one of "
                                f"{', '.join(t + ':12' for t in targets[:2])}…")
        value = {"entity": found.group(1), "id": int(found.group(2))}
    if not isinstance(value, Mapping) or "entity" not in value or "id" not in value:
        raise CoercionError(f"expected a record as {{\"entity\": …, \"id\": …}} (entity one of "
                            f"{', '.join(targets)})")
    entity, number = value["entity"], value["id"]
    if not isinstance(entity, str) or entity not in targets:
        shown = repr(entity)[:40]
        raise CoercionError(f"{shown} is not one of the entities it may point to: {', '.join(targets)}")
    if isinstance(number, str) and re.fullmatch(r"[0-9]{1,19}", number.strip()):
        number = int(number.strip())
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0 or number > INT64:
        raise CoercionError(f"{repr(number)[:40]} is not a record id")
    return {"entity": entity, "id": number}


def display(value: Any) -> str:
    """The text form (`company:3`): what CSV export writes and a form or import reads."""
    return "" if value is None else f"{value['entity']}:{value['id']}"


def link(value: Any) -> str | None:
    return None if value is None else f"/e/{value['entity']}/{value['id']}"


def _one(field: Field, target: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "title": target, "required": ["entity", "id"],
            "properties": {"entity": {"type": "string", "const": target}, **record}}


def value_schema(field: Field) -> dict[str, Any]:
    record = {"id": {"type": "integer", "minimum": 1, "maximum": INT64}}
    return {"oneOf": [_one(field, t, record) for t in field.targets],
            "discriminator": {"propertyName": "entity"}}


def output_schema(field: Field) -> dict[str, Any]:
    # records/service.py `as_json` adds the title of the record.
    record = {"id": {"type": "integer", "minimum": 1}, "title": {"type": "string"}}
    branches = [{**_one(field, t, record), "required": ["entity", "id", "title"]} for t in field.targets]
    return {"oneOf": branches, "discriminator": {"propertyName": "entity"}}


def filter_schema(field: Field) -> dict[str, Any]:
    names = "|".join(re.escape(t) for t in field.targets)
    return {"type": "string", "pattern": f"^({names}):[1-9][0-9]{{0,17}}$",
            "description": "entity:id, as company:12"}


def rule_type(field: Field) -> Type:
    return Type("polymorphic", options=field.targets)


def rule_parts(field: Field) -> dict[str, Type]:
    """The parts rules may read: `<name>.entity`, the name of the entity it points to."""
    return {ENTITY: Type("text", options=field.targets)}


def reference_text(entity: str, record: int) -> str:
    return f"{entity}:{record}"


def refers_to(columns: Mapping[str, Any], entity: str, ids: Any) -> Any:
    return sa.and_(columns[ENTITY] == entity, columns[""].in_(ids))


def check_definition(field: Field) -> Iterator[tuple[str, str]]:
    targets = field.settings.get("targets")
    if "target" in field.settings and targets is not None:
        yield ("targets", "give either target (one entity) or targets (several), not both")
        return
    if not isinstance(targets, list):
        return
    seen: set[str] = set()
    for target in targets:
        if target in seen:
            yield ("targets", f"{target!r} appears more than once")
        seen.add(target)
    if len(targets) < 2:
        yield ("targets", "a polymorphic reference needs at least two targets (one: use target)")


def retyped(value: Any, old: Field, new: Field) -> Any:
    """A single reference's id becomes a pair with its old target, when that is one of the
    new targets; anything else is refused, and the plan reports it."""
    if isinstance(value, int) and not isinstance(value, bool) and old.target in new.targets:
        return {"entity": old.target, "id": value}
    return value
