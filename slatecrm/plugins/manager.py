"""Building a plugin manager, and reading what its plugins give.

There is no process-wide manager: whoever builds an app or runs a command builds one
(`make_plugin_manager()`: the built-in plugins, then those installed under the `slatecrm`
entry point) and passes it on. Tests build a fresh one and register their own plugin
objects on it.
"""

from __future__ import annotations

from pathlib import Path

import pluggy
from starlette.routing import BaseRoute

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.rules.functions import RuleFunctions

from . import builtin_fieldtypes, builtin_web, hookspecs

#: The platform's own features, registered through the hooks a plugin uses.
BUILTIN_PLUGINS: tuple[object, ...] = (builtin_fieldtypes, builtin_web)
ENTRY_POINT_GROUP = "slatecrm"


def make_plugin_manager(*plugins: object, entry_points: bool = True) -> pluggy.PluginManager:
    """A new manager with the built-in plugins, then the installed ones (`entry_points`),
    then `plugins` (objects or modules with hookimpls, e.g. a test's)."""
    manager = pluggy.PluginManager("slatecrm")
    manager.add_hookspecs(hookspecs)
    for plugin in BUILTIN_PLUGINS:
        manager.register(plugin)
    if entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in plugins:
        manager.register(plugin)
    return manager


def field_types(manager: pluggy.PluginManager) -> FieldTypeRegistry:
    """Every plugin's field types, in registration order (built-ins first)."""
    registry = FieldTypeRegistry()
    for batch in reversed(manager.hook.slatecrm_field_types()):
        for field_type in batch:
            registry.register(field_type)
    return registry


def rule_functions(manager: pluggy.PluginManager) -> RuleFunctions:
    functions = RuleFunctions()
    for batch in reversed(manager.hook.slatecrm_rule_functions()):
        for function in batch:
            functions.register(function)
    return functions


def routes(manager: pluggy.PluginManager) -> list[BaseRoute]:
    """Every plugin's routes, those of the last registered plugin first (built-ins last)."""
    return [route for batch in manager.hook.slatecrm_routes() for route in batch]


def template_dirs(manager: pluggy.PluginManager) -> list[Path]:
    """Template folders in search order: the last registered plugin's first, built-ins last."""
    return [Path(folder) for batch in manager.hook.slatecrm_template_dirs() for folder in batch]


def plugin_list(manager: pluggy.PluginManager) -> list[dict[str, object]]:
    """Each registered plugin with its distribution (if installed) and the hooks it implements,
    for `slatecrm plugins`."""
    distributions = {id(plugin): dist for plugin, dist in manager.list_plugin_distinfo()}
    found: list[dict[str, object]] = []
    for name, plugin in manager.list_name_plugin():
        if plugin is None:
            continue
        dist = distributions.get(id(plugin))
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
        found.append({"name": name, "package": dist.project_name if dist else None,
                      "version": dist.version if dist else None, "hooks": hooks,
                      "builtin": any(plugin is b for b in BUILTIN_PLUGINS)})
    return found
