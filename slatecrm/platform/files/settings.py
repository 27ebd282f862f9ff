"""The file store a process uses, from its environment (`SLATECRM_FILE_STORAGE`,
`SLATECRM_MAX_UPLOAD_BYTES`) and, for a storage URL that is not a folder, its plugins."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .backends import STORAGE_VARIABLE, PluginBackends, backend_from_setting, default_location, max_upload
from .store import FileStore

if TYPE_CHECKING:
    import pluggy


def files_from_environment(engine: sa.Engine, plugins: pluggy.PluginManager | None = None,
                           environ: Mapping[str, str] | None = None) -> FileStore:
    environ = os.environ if environ is None else environ
    setting = environ.get(STORAGE_VARIABLE, "").strip() or default_location(
        engine.url.render_as_string(hide_password=False))
    answer: PluginBackends | None = None
    if plugins is not None:
        manager = plugins

        def answer(url: str) -> object:  # type: ignore[misc]
            return manager.hook.slatecrm_file_storage(url=url)
    return FileStore(engine, backend_from_setting(setting, answer), max_upload(environ))
