"""The plugin manager: built-in plugins plus those installed under the `slatecrm` entry point."""

from __future__ import annotations

from functools import cache

import pluggy

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from . import builtin_fieldtypes, hookspecs

BUILTIN_PLUGINS = (builtin_fieldtypes,)


@cache
def plugin_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("slatecrm")
    manager.add_hookspecs(hookspecs)
    for plugin in BUILTIN_PLUGINS:
        manager.register(plugin)
    manager.load_setuptools_entrypoints("slatecrm")
    return manager


@cache
def field_types() -> FieldTypeRegistry:
    """The registry of every field type from every plugin, in registration order."""
    registry = FieldTypeRegistry()
    for batch in reversed(plugin_manager().hook.slatecrm_field_types()):
        for field_type in batch:
            registry.register(field_type)
    return registry
