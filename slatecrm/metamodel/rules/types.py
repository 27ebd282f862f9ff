"""The types of rule values, and which field type gives which."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from ..model import Field

if TYPE_CHECKING:
    from ..fieldtypes.base import FieldTypeRegistry


@dataclass(frozen=True)
class Type:
    """`kind` is number, text, boolean, date, datetime, time, list (of option keys), reference
    (a record id, with `target`), json (a json field's value, which rules only test with
    `is blank`) or null. `options` are a choice's keys, in order; `ordered`
    marks a stage field, whose values compare by their order in the pipeline."""

    kind: str
    options: tuple[str, ...] | None = None
    ordered: bool = False
    target: str | None = None
    #: A list of objects (several e-mails): the member of each that rules read (`value`);
    #: None for a list of plain values.
    item_key: str | None = None

    def __str__(self) -> str:
        if self.ordered:
            return "stage"
        if self.options is not None and self.kind == "text":
            return "choice"
        if self.kind == "list":
            return "list of values" if self.item_key else "list of options"
        if self.kind == "ids":
            return "list of ids"
        if self.kind == "reference":
            return f"reference to {self.target}"
        if self.kind == "links":
            return f"list of links to {self.target}"
        if self.kind == "polymorphic":
            return f"reference to one of {', '.join(self.options or ())}"
        return self.kind

    @property
    def plain(self) -> Type:
        return Type(self.kind) if self.kind != "reference" else self


NUMBER = Type("number")
TEXT = Type("text")
BOOLEAN = Type("boolean")
DATE = Type("date")
DATETIME = Type("datetime")
#: A time of day (a `time` field, a literal @14:30).
TIME = Type("time")
NULL = Type("null")
TEXT_LIST = Type("list")
#: A list of record ids (`current_user.teams`): only ever the right side of `in`.
ID_LIST = Type("ids")

def _registry(registry: FieldTypeRegistry | None) -> FieldTypeRegistry:
    if registry is None:
        from ..fieldtypes import BUILTIN_TYPES, FieldTypeRegistry

        registry = FieldTypeRegistry(BUILTIN_TYPES)
    return registry


def field_type(field: Field, registry: FieldTypeRegistry | None = None) -> Type | None:
    """The rule type of a field's values, as its field type says (`registry`: every type
    registered, plugins' too; by default the built-in ones); None when rules cannot read it."""
    registry = _registry(registry)
    if field.type not in registry:
        return None
    return registry[field.type].rule_type(field)


def rule_parts(field: Field, registry: FieldTypeRegistry | None = None) -> dict[str, Type]:
    """The parts of a field's value rules may read as `<field>.<part>` (a polymorphic
    reference's `entity`), with their types, as its field type says."""
    registry = _registry(registry)
    if field.type not in registry:
        return {}
    return dict(registry[field.type].rule_parts(field))


def rule_reader(field: Field, registry: FieldTypeRegistry | None = None) -> Callable[[Any], Any] | None:
    """How rules read a stored value of the field (its type's `rule_value`), or None when
    they read it as stored."""
    registry = _registry(registry)
    if field.type not in registry:
        return None
    field_type = registry[field.type]
    from ..fieldtypes.base import FieldType

    if type(field_type).rule_value is FieldType.rule_value:
        return None
    return partial(field_type.rule_value, field=field)


def stored_reader(field: Field, registry: FieldTypeRegistry | None = None) -> Callable[[Any], Any]:
    """How rules read a value kept as JSON outside a record (a user attribute's): the field
    type's coercion, then its `rule_value`; a value the field no longer admits (a removed
    option, another type since) is null."""
    registry = _registry(registry)
    field_type = registry[field.type]
    value_of = rule_reader(field, registry)
    from ..fieldtypes.base import CoercionError

    def read(value: Any) -> Any:
        if value is None:
            return None
        try:
            coerced = field_type.coerce(value, field)
        except (CoercionError, ValueError, TypeError):
            return None
        return coerced if value_of is None else value_of(coerced)
    return read


def field_parts(field: Field, registry: FieldTypeRegistry | None = None
                ) -> dict[str, tuple[Type, str, Callable[[Any], Any]]]:
    """The parts of a composite field that rules read as `<field>.<part>` (an address's
    city), by name: (rule type, column suffix, reader of the part from the field's value)."""
    registry = _registry(registry)
    if field.type not in registry:
        return {}
    found: dict[str, tuple[Type, str, Callable[[Any], Any]]] = {}
    for part in registry[field.type].parts(field):
        kind = TEXT if part.options is None else Type("text", part.options)
        found[part.name] = (kind, part.suffix, partial(_part_of, part=part.name))
    return found


def _part_of(value: Any, part: str) -> Any:
    return None if value is None else value.get(part)


def computable(field: Field, registry: FieldTypeRegistry | None = None) -> bool:
    """Whether a formula or default expression may give this field its value."""
    registry = _registry(registry)
    return field.type in registry and registry[field.type].computable


def comparable(a: Type, b: Type) -> bool:
    def base(t: Type) -> str:
        return "number" if t.kind == "reference" else t.kind
    if "json" in (a.kind, b.kind):  # a json field's value: rules only test `is blank`
        return False
    return base(a) == base(b) or "null" in (a.kind, b.kind)


#: The system field a person sets (on forms and through the API), which a validation may
#: therefore report its message on (`field: owner`).
WRITABLE_SYSTEM_FIELDS = ("owner",)

#: Fields every record has, readable in rules (not writable).
SYSTEM_FIELDS: dict[str, Field] = {
    "id": Field(name="id", type="integer", label="ID", pack="<system>"),
    "owner": Field(name="owner", type="integer", label="Owner", pack="<system>"),
    "created_by": Field(name="created_by", type="integer", label="Created by", pack="<system>"),
    "updated_by": Field(name="updated_by", type="integer", label="Updated by", pack="<system>"),
    "created_at": Field(name="created_at", type="datetime", label="Created at", pack="<system>"),
    "updated_at": Field(name="updated_at", type="datetime", label="Updated at", pack="<system>"),
}
