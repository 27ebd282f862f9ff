"""The ASGI application: one engine, one runtime holder and one records service per process."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from slatecrm.plugins.manager import field_types

from ...metamodel.errors import DefinitionError
from ..records.errors import RecordError
from ..records.service import RecordsService
from ..storage.apply import StaleSnapshot
from ..storage.engine import create_engine, database_url
from ..storage.plan import ConversionFailed
from ..storage.runtime import RuntimeHolder
from . import admin, api, ui
from .crosssite import CrossSiteGuard
from .limits import DEFAULT_LIMIT, BodySizeLimit
from .pinning import PinnedRecords
from .problems import definition_error, http_error, record_error, server_error, stale_error
from .templating import TEMPLATES_VARIABLE, JsonSuffix, make_environment
from .ui_errors import ui_or_problem

BODY_LIMIT_VARIABLE = "SLATECRM_MAX_BODY_BYTES"


def create_app(database: str | None = None, *, body_limit: int | None = None,
               templates: str | None = None) -> Starlette:
    """`templates` (default: $SLATECRM_TEMPLATES) is a folder of page templates searched
    before the built-in ones, to override a page for one entity or for all."""
    engine = create_engine(database_url(database))
    registry = field_types()
    holder = RuntimeHolder(engine, registry)
    limit = body_limit or int(os.environ.get(BODY_LIMIT_VARIABLE, DEFAULT_LIMIT))
    app = Starlette(
        routes=[*admin.routes, *api.routes, *ui.routes],
        middleware=[Middleware(CrossSiteGuard), Middleware(BodySizeLimit, limit=limit),
                    Middleware(ui.SecurityHeaders),
                    Middleware(JsonSuffix),
                    Middleware(PinnedRecords)],  # one revision and one read connection per request
        exception_handlers={RecordError: ui_or_problem(record_error),
                            HTTPException: ui_or_problem(http_error),
                            DefinitionError: definition_error, StaleSnapshot: stale_error,
                            ConversionFailed: stale_error, Exception: ui_or_problem(server_error)},
    )
    app.state.engine = engine
    app.state.records = RecordsService(engine, holder, registry)
    override = templates or os.environ.get(TEMPLATES_VARIABLE, "")
    app.state.templates = make_environment([override] if override else [])
    return app


def app_from_environment() -> Starlette:
    """The factory `slatecrm serve` gives uvicorn (each worker builds its own app)."""
    return create_app()
