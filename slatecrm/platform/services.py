"""The services a process builds from its engine and its plugin manager, in one place for
the web app and the CLI."""

from __future__ import annotations

import pluggy
import sqlalchemy as sa

from slatecrm.plugins.manager import field_types, rule_functions

from .files.settings import files_from_environment
from .records.events import RecordEvents
from .records.limits import DEFAULT, Limits
from .records.service import RecordsService
from .storage.runtime import RuntimeHolder
from .workflows.worker import install_outbox


def records_service(engine: sa.Engine, plugins: pluggy.PluginManager,
                    limits: Limits = DEFAULT) -> RecordsService:
    """The records service with the plugins' field types, rule functions and record hooks,
    keeping `limits` (records/limits.py)."""
    registry = field_types(plugins)
    service = RecordsService(engine, RuntimeHolder(engine, registry), registry,
                             functions=rule_functions(plugins), events=RecordEvents(plugins), limits=limits,
                             files=files_from_environment(engine, plugins))
    install_outbox(service)  # every write of every surface fires workflows (platform/workflows/)
    return service
