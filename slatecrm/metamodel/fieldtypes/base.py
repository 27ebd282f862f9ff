"""The contract every field type fulfils, and the registry that holds them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

if TYPE_CHECKING:
    from ..model import Field


class CoercionError(ValueError):
    """A value that cannot become a value of the field's type; the message is for people."""


@dataclass(frozen=True)
class ColumnSpec:
    """One physical column of a field. `suffix` is "" for the main column.

    Companion columns (a currency's code) get `__<suffix>`; `references` names the
    target entity of a foreign key.
    """

    suffix: str
    type: sa.types.TypeEngine[Any]
    references: str | None = None
    on_delete: str | None = None

    def column_name(self, field_name: str) -> str:
        return field_name if not self.suffix else f"{field_name}__{self.suffix}"


class FieldType:
    """Base class of field types. Subclasses set the class attributes and override hooks."""

    name: ClassVar[str]
    label: ClassVar[str]
    #: JSON Schema `properties` for the settings only this type accepts.
    settings_schema: ClassVar[Mapping[str, Any]] = {}
    #: Settings a definition of this type must give.
    required_settings: ClassVar[tuple[str, ...]] = ()
    #: Whether fields of this type get an index without asking (references, stages).
    index_by_default: ClassVar[bool] = False
    #: Whether users may write values (auto numbers are written by the engine).
    writable: ClassVar[bool] = True

    # --- storage -----------------------------------------------------------------
    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        raise NotImplementedError

    def columns(self, field: Field) -> list[ColumnSpec]:
        return [ColumnSpec("", self.sql_type(field))]

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        """The column values (by suffix) that store a coerced value."""
        return {"": value}

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        return values.get("")

    # --- values --------------------------------------------------------------------
    def coerce(self, value: Any, field: Field) -> Any:
        """A JSON or Python value → the canonical Python value, or CoercionError.

        None and "" mean blank and give None; subclasses implement `convert`.
        """
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        return self.convert(value, field)

    def convert(self, value: Any, field: Field) -> Any:
        raise NotImplementedError

    def parse_text(self, text: str, field: Field) -> Any:
        """Text typed in a form or found in a CSV cell → the canonical value."""
        return self.coerce(text, field)

    def to_json(self, value: Any, field: Field) -> Any:
        return value

    def display(self, value: Any, field: Field) -> str:
        return "" if value is None else str(value)

    def value_schema(self, field: Field) -> dict[str, Any]:
        """JSON Schema of this field's value in the API (without null)."""
        return {}

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        """Problems of a definition that a schema cannot see: (settings path, message)."""
        return iter(())


class FieldTypeRegistry:
    """Field types by name; built from the plugin hooks (see slatecrm.plugins)."""

    def __init__(self, types: Iterable[FieldType] = ()):
        self._types: dict[str, FieldType] = {}
        for field_type in types:
            self.register(field_type)

    def register(self, field_type: FieldType) -> None:
        if field_type.name in self._types:
            raise ValueError(f"field type {field_type.name!r} is registered twice")
        self._types[field_type.name] = field_type

    def __getitem__(self, name: str) -> FieldType:
        return self._types[name]

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return list(self._types)

    def __iter__(self) -> Iterator[FieldType]:
        return iter(self._types.values())
