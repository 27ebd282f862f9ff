"""The ASGI application, built from what it is given: an engine, a plugin manager and the
records service. Nothing here is global: two apps in one process (tests) share nothing.
`app_from_environment` builds the defaults for uvicorn."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pluggy
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from slatecrm.plugins import manager as plugin_manager

from ...metamodel.errors import DefinitionError
from ..records.errors import RecordError
from ..records.limits import DEFAULT, Limits
from ..records.service import RecordsService
from ..services import records_service
from ..storage.apply import StaleSnapshot
from ..storage.engine import StatementTimedOut, bound_statements, create_engine, database_url
from ..storage.plan import ConversionFailed
from ..storage.upgrades import check_current
from . import ui
from .authentication import Authentication
from .authsettings import AuthSettings
from .crosssite import CrossSiteGuard
from .csrf import CsrfProtection, csrf_token
from .hosts import AllowedHosts, HostAllowList
from .limits import DEFAULT_LIMIT, MULTIPART_OVERHEAD, BodySizeLimit
from .pinning import PinnedRecords
from .problems import definition_error, http_error, record_error, server_error, stale_error, timeout_error
from .proxies import ProxyHeaders, TrustedProxies
from .querytext import QueryText
from .rights import may, principal_of
from .templating import TEMPLATES_VARIABLE, JsonSuffix, make_environment
from .ui_errors import ui_or_problem

BODY_LIMIT_VARIABLE = "SLATECRM_MAX_BODY_BYTES"
#: "1": `app_from_environment` runs a workflow worker in a thread of each server process
#: (`slatecrm serve --worker` sets it).
WORKER_VARIABLE = "SLATECRM_EMBEDDED_WORKER"
#: How long shutdown waits for the embedded worker to finish its batch.
WORKER_STOP_SECONDS = 30.0

log = logging.getLogger(__name__)


def create_app(engine: sa.Engine, plugins: pluggy.PluginManager, *, records: RecordsService | None = None,
               body_limit: int = DEFAULT_LIMIT, templates: str | Path | None = None,
               limits: Limits = DEFAULT, auth: AuthSettings | None = None,
               allowed_hosts: AllowedHosts | None = None,
               trusted_proxies: TrustedProxies | None = None, worker: bool = False) -> Starlette:
    """The app over `engine`. Its routes and template folders come from the `plugins` (the
    built-in pages and API are plugins too); `records` defaults to a service with the
    plugins' field types, rule functions and record hooks. `templates` is a folder searched
    before every other, to override a page for one entity or for all. `limits`: the bounds
    every request keeps (records/limits.py); the statement timeout is set on `engine` here,
    so the CLI's own engines are not bound by it. `auth`: session lifetimes, throttling
    and the clock; `allowed_hosts` and `trusted_proxies` (web/hosts.py, web/proxies.py);
    each defaults to what the environment sets. At startup the registrations of the time
    and schedule workflows are reconciled with the current revision; with `worker`, a
    workflow worker runs in a thread of this process until shutdown (`serve --worker`),
    on the app's own records service, so its writes go through the same pipeline hooks
    and outbox as the requests'."""

    auth = auth or AuthSettings.from_environment(os.environ)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        plugins.hook.slatecrm_startup(app=app)
        await run_in_threadpool(_reconcile, app.state.engine, app.state.records)
        embedded = None
        if worker:
            from ..workflows.settings import ExecutionSettings
            from ..workflows.worker import start_in_thread

            embedded = start_in_thread(app.state.engine, app.state.records,
                                       ExecutionSettings.from_environment())
            log.info("workflow worker started in this process")
        try:
            yield
        finally:
            if embedded is not None:
                thread, stop = embedded
                stop.set()  # it finishes its batch and signs off
                await run_in_threadpool(thread.join, WORKER_STOP_SECONDS)

    records = records or records_service(engine, plugins, limits)
    app = Starlette(
        routes=plugin_manager.routes(plugins),
        middleware=[
            # What a trusted reverse proxy says (client, scheme, Host), then the Host checked
            # against the allow-list, before anything reads either.
            Middleware(ProxyHeaders, trusted=trusted_proxies or TrustedProxies.from_environment(os.environ)),
            Middleware(HostAllowList, allowed=allowed_hosts or AllowedHosts.from_environment(os.environ)),
            Middleware(QueryText),  # raw non-UTF-8 bytes: refused before anything reads them
            Middleware(CrossSiteGuard),
            Middleware(BodySizeLimit, limit=body_limit,
                       multipart_limit=records.files.max_upload + MULTIPART_OVERHEAD),
            Middleware(ui.SecurityHeaders),
            Middleware(JsonSuffix),
            Middleware(Authentication, settings=auth),  # who: session, token or nobody; login required
            Middleware(CsrfProtection),  # the per-browser token on unsafe requests with cookies
            Middleware(PinnedRecords)],  # one revision and one read connection per request
        exception_handlers={RecordError: ui_or_problem(record_error),
                            HTTPException: ui_or_problem(http_error),
                            DefinitionError: definition_error, StaleSnapshot: stale_error,
                            ConversionFailed: stale_error, StatementTimedOut: ui_or_problem(timeout_error),
                            Exception: ui_or_problem(server_error)},
        lifespan=lifespan,
    )
    with engine.connect() as conn:  # an older SlateCRM's database: refuse to start (storage/upgrades.py)
        check_current(conn, records.registry)
    bound_statements(engine, limits.statement_timeout_ms)
    app.state.engine = engine
    app.state.auth = auth
    app.state.plugins = plugins
    app.state.records = records
    folders = [templates] if templates else []
    # The deployment's overrides, then the field types' widget folders, then the plugins'
    # folders (the built-in one last).
    app.state.templates = make_environment([*folders, *app.state.records.registry.template_folders(),
                                            *plugin_manager.template_dirs(plugins)])
    app.state.templates.globals.update(csrf_token=csrf_token, current_user=principal_of, may=may)
    return app


def _reconcile(engine: sa.Engine, records: RecordsService) -> None:
    """The workflows' registrations made to match the revision; a failure is logged, and the
    app starts anyway (every worker reconciles at its start too)."""
    from ..workflows.worker import reconcile

    try:
        reconcile(engine, records, dt.datetime.now(dt.UTC))
    except Exception:
        log.exception("the workflows' registrations could not be reconciled at startup")


def app_from_environment() -> Starlette:
    """The factory `slatecrm serve` gives uvicorn (each worker builds its own app): the
    database of $SLATECRM_DATABASE_URL, the installed plugins, $SLATECRM_MAX_BODY_BYTES,
    the override templates of $SLATECRM_TEMPLATES and, with $SLATECRM_EMBEDDED_WORKER=1, a
    workflow worker in a thread."""
    return create_app(create_engine(database_url(None)), plugin_manager.make_plugin_manager(),
                      body_limit=int(os.environ.get(BODY_LIMIT_VARIABLE, DEFAULT_LIMIT)),
                      templates=os.environ.get(TEMPLATES_VARIABLE) or None,
                      limits=Limits.from_environment(os.environ),
                      worker=os.environ.get(WORKER_VARIABLE) == "1")
