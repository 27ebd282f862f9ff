"""The built-in field types, registered through the same hook a plugin would use."""

from __future__ import annotations

from slatecrm.metamodel.fieldtypes import BUILTIN_TYPES, FieldType

from .hookspecs import hookimpl


@hookimpl
def slatecrm_field_types() -> list[FieldType]:
    return list(BUILTIN_TYPES)
