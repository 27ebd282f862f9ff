"""The teams admin pages (need the manage_users right): `/admin/teams` lists the teams and adds
one; a team's page changes its name, description and members (e-mails, one a line) and
removes it. Each change goes through the same functions as the teams API
(web/teams_api.py), audited as the signed-in administrator.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..identity import users
from ..identity.principal import Principal
from ..records.errors import ValidationFailed
from .authentication import READ_METHODS
from .identity_common import engine_of
from .teams_api import add_team, change_team, find, listed, remove_team
from .templating import render
from .uicontext import base_context
from .users_pages import admin_page

LABELS = {"name": "Name", "description": "Description", "members": "Members", "": ""}


def _form(form: Any) -> dict[str, Any]:
    """The form's values; members are e-mails separated by new lines, commas or spaces."""
    return {"name": str(form.get("name") or ""), "description": str(form.get("description") or ""),
            "members": [m for m in re.split(r"[\s,;]+", str(form.get("members") or "")) if m]}


async def _list_page(request: Request, *, errors: dict[str, list[str]] | None = None,
                     form: dict[str, Any] | None = None, status: int = 200) -> Response:
    found = await run_in_threadpool(listed, request)
    context = await base_context(request, title="Teams")
    return render(request, "teams", {**context, "teams": found, "errors": errors or {}, "form": form or {},
                                     "labels": LABELS},
                  twin={"data": found, "errors": errors or {}}, status=status)


@admin_page
async def team_list(request: Request, actor: Principal) -> Response:
    if request.method in READ_METHODS:
        return await _list_page(request)
    data = _form(await request.form())
    data.pop("members")
    try:
        made = await run_in_threadpool(add_team, request, actor, data)
    except ValidationFailed as error:
        return await _list_page(request, errors=error.errors, form=data, status=error.status)
    return RedirectResponse(f"/admin/teams/{made['id']}", status_code=303)


async def _team_page(request: Request, team: dict[str, Any], *, errors: dict[str, list[str]] | None = None,
                     form: dict[str, Any] | None = None, status: int = 200) -> Response:
    context = await base_context(request, title=team["name"])
    shown = form or team
    emails = await run_in_threadpool(_known_emails, request)
    return render(request, "team", {**context, "team": team, "form": shown, "errors": errors or {},
                                    "labels": LABELS, "emails": emails},
                  twin={"team": team, "errors": errors or {}}, status=status)


def _known_emails(request: Request) -> list[str]:
    """Every active user's e-mail, for the members field's suggestions."""
    return [u.email for u in users.list_users(engine_of(request)) if u.email and u.active]


@admin_page
async def team_page(request: Request, actor: Principal) -> Response:
    if request.method in READ_METHODS:
        team = (await run_in_threadpool(find, request)).as_dict()
        return await _team_page(request, team)
    data = _form(await request.form())
    try:
        await run_in_threadpool(change_team, request, actor, data)
    except ValidationFailed as error:
        team = (await run_in_threadpool(find, request)).as_dict()
        return await _team_page(request, team, errors=error.errors, form=data, status=error.status)
    return RedirectResponse(f"/admin/teams/{request.path_params['team_id']}", status_code=303)


@admin_page
async def delete_team(request: Request, actor: Principal) -> Response:
    await run_in_threadpool(remove_team, request, actor)
    return RedirectResponse("/admin/teams", status_code=303)


routes = [
    Route("/admin/teams", team_list, methods=["GET", "POST"]),
    Route("/admin/teams/{team_id:recordid}", team_page, methods=["GET", "POST"]),
    Route("/admin/teams/{team_id:recordid}/delete", delete_team, methods=["POST"]),
]
