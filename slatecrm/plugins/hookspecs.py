"""The plugin hooks, all in one file (pluggy). The built-in features use the same hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from slatecrm.metamodel.fieldtypes import FieldType

hookspec = pluggy.HookspecMarker("slatecrm")
hookimpl = pluggy.HookimplMarker("slatecrm")


@hookspec
def slatecrm_field_types() -> list[FieldType]:  # type: ignore[empty-body]
    """Field types this plugin adds. Each name must be new; see FieldType for the contract."""
