"""The field-type registry: what a field type means in every layer, in one place.

A field type says how its values are stored (columns and SQL types), which settings a
pack may give it (a JSON Schema fragment), how a value is coerced from JSON and from
text, how it is displayed, and how it is described in the API. The pack loader, the
schema engine and (later) the records service, forms and OpenAPI all read this registry,
so a plugin that registers a type gets all of them at once.
"""

from __future__ import annotations

from .base import (
    ApartRelation,
    ApartStore,
    CoercionError,
    ColumnSpec,
    FieldType,
    FieldTypeRegistry,
    Part,
    TypedText,
    apart_table_name,
)
from .builtin import BUILTIN_TYPES

__all__ = ["BUILTIN_TYPES", "ApartRelation", "ApartStore", "CoercionError", "ColumnSpec", "FieldType",
           "FieldTypeRegistry", "Part", "TypedText", "apart_table_name"]
