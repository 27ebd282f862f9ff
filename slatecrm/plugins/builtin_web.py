"""The built-in pages, API and admin routes and their templates, registered through the
same hooks a plugin uses."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute

from .hookspecs import hookimpl


@hookimpl
def slatecrm_routes() -> list[BaseRoute]:
    from slatecrm.platform.web import admin, api, login, ui

    return [*login.routes, *admin.routes, *api.routes, *ui.routes]


@hookimpl
def slatecrm_template_dirs() -> list[Path]:
    from slatecrm.platform.web.templating import TEMPLATES

    return [TEMPLATES]
