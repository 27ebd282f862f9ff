"""Building a plugin manager, and reading what its plugins give.

There is no process-wide manager: whoever builds an app or runs a command builds one
(`make_plugin_manager()`: the built-in plugins, then those installed under the `slatecrm`
entry point) and passes it on. Tests build a fresh one and register their own plugin
objects on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

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


#: The registries plugins fill through a hook that answers lists of items.
R = TypeVar("R", FieldTypeRegistry, RuleFunctions)


def _gathered(batches: list[list[Any]], registry: R) -> R:
    """`registry` with every plugin's items, in registration order (built-ins first: pluggy
    answers the last registered plugin first); a name given twice is refused by `register`."""
    for batch in reversed(batches):
        for item in batch:
            registry.register(item)
    return registry


def field_types(manager: pluggy.PluginManager) -> FieldTypeRegistry:
    """Every plugin's field types, in registration order (built-ins first)."""
    return _gathered(manager.hook.slatecrm_field_types(), FieldTypeRegistry())


def rule_functions(manager: pluggy.PluginManager) -> RuleFunctions:
    """Every plugin's rule-language functions, in registration order."""
    return _gathered(manager.hook.slatecrm_rule_functions(), RuleFunctions())


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
