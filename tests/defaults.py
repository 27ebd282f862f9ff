"""What the tests use when they want the defaults: one plugin manager with the built-in and
installed plugins (as `slatecrm` builds for a command or an app), its field-type registry,
and an app over a database URL with it.

The platform keeps nothing global: the app and the CLI are given their manager. Tests
share this one (building it loads the entry points) and build a fresh manager, with their
own plugin objects registered, when they test a plugin.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import Any

import pluggy
from starlette.applications import Starlette
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records.limits import Limits
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.web.app import create_app
from slatecrm.plugins import manager

#: Makes an in-process client of an app with the limits given (the `bounded` fixture).
Client = Callable[..., TestClient]


@cache
def plugin_manager() -> pluggy.PluginManager:
    return manager.make_plugin_manager()


@cache
def field_types() -> FieldTypeRegistry:
    return manager.field_types(plugin_manager())


def make_app(database: str, plugins: pluggy.PluginManager | None = None, **options: Any) -> Starlette:
    """The app over `database` with `plugins` (default: the default manager), with the
    limits the environment sets unless given; the caller disposes of `app.state.engine`."""
    options.setdefault("limits", Limits.from_environment(os.environ))
    return create_app(create_engine(database), plugins or plugin_manager(), **options)
