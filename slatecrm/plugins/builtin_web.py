"""The built-in pages, API and admin routes and their templates, registered through the
same hooks a plugin uses."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute

from .hookspecs import hookimpl


@hookimpl
def slatecrm_routes() -> list[BaseRoute]:
    from slatecrm.platform.web import (
        admin,
        api,
        audit_pages,
        designer_check,
        designer_history,
        designer_layouts,
        designer_pack_lifecycle,
        designer_packs,
        designer_pages,
        designer_pipelines,
        designer_views,
        login,
        me_api,
        me_pages,
        roles_api,
        roles_pages,
        teams_api,
        teams_pages,
        ui,
        users_api,
        users_pages,
        workflow_hooks,
        workflows_api,
        workflows_pages,
    )

    return [*login.routes, *admin.routes, *roles_api.routes, *audit_pages.routes, *me_api.routes,
            *users_api.routes, *teams_api.routes, *workflows_api.routes, *api.routes, *ui.routes,
            *me_pages.routes, *users_pages.routes, *roles_pages.routes, *teams_pages.routes,
            *workflow_hooks.routes, *workflows_pages.routes, *designer_pages.routes,
            *designer_history.routes, *designer_check.routes, *designer_pipelines.routes,
            *designer_pack_lifecycle.routes, *designer_packs.routes,
            *designer_layouts.routes, *designer_views.routes]


@hookimpl
def slatecrm_template_dirs() -> list[Path]:
    from slatecrm.platform.web.templating import TEMPLATES

    return [TEMPLATES]
