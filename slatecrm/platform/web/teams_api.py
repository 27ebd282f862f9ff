"""`/api/v1/admin/teams`: the teams admin API (needs the manage_users right): list and add
teams, read, change (name, description, members by e-mail) and remove one.

Every change is made by identity/teams.py in one transaction with its audit entry, by the
signed-in administrator. `members` is the whole list: the team's members become exactly
these users.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..identity import memberships, teams
from ..identity.errors import IdentityError
from ..identity.principal import Principal
from ..records.errors import ValidationFailed
from .authentication import READ_METHODS
from .identity_common import TEXT, TEXTS, NotFound, api, engine_of, refused, strict_body
from .jsonresponse import JSONResponse
from .users_api import administrator, checked_values

NEW_TEAM = {"name": TEXT, "description": TEXT, "members": TEXTS}
TEAM_CHANGE = NEW_TEAM
CHECKS = {"name": memberships.valid_team_name, "description": teams.valid_description}


def checked_team(data: dict[str, Any]) -> dict[str, Any]:
    """The body's values, each checked on its own; every wrong one named at once (422)."""
    return checked_values(data, CHECKS)


def as_refusal(error: IdentityError) -> ValidationFailed:
    """A name taken (409), a member no user is (422)."""
    if isinstance(error, memberships.DuplicateTeam):
        return refused("name", error, conflict=True)
    if isinstance(error, teams.UnknownMember):
        return refused("members", error)
    return refused("", error)


def team_id_of(request: Request) -> int:
    return int(request.path_params["team_id"])


def find(request: Request) -> memberships.Team:
    try:
        return teams.by_id(engine_of(request), team_id_of(request))
    except memberships.UnknownTeam as error:
        raise NotFound(str(error)) from None


def add_team(request: Request, actor: Principal, data: dict[str, Any]) -> dict[str, Any]:
    values = checked_team(data)
    try:
        made = teams.create(engine_of(request), values["name"], values.get("description", ""),
                            values.get("members", ()), actor=actor)
    except IdentityError as error:
        raise as_refusal(error) from None
    return made.as_dict()


def change_team(request: Request, actor: Principal, data: dict[str, Any]) -> dict[str, Any]:
    values = checked_team(data)
    find(request)
    try:
        changed = teams.update(engine_of(request), team_id_of(request), name=values.get("name"),
                               description=values.get("description"), member_emails=values.get("members"),
                               actor=actor)
    except memberships.UnknownTeam as error:  # removed meanwhile
        raise NotFound(str(error)) from None
    except IdentityError as error:
        raise as_refusal(error) from None
    return changed.as_dict()


def remove_team(request: Request, actor: Principal) -> None:
    find(request)
    try:
        teams.remove(engine_of(request), team_id_of(request), actor=actor)
    except memberships.UnknownTeam as error:
        raise NotFound(str(error)) from None


def listed(request: Request) -> list[dict[str, Any]]:
    return [t.as_dict() for t in memberships.list_teams(engine_of(request))]


@api
async def collection(request: Request) -> Response:
    actor = await administrator(request)
    if request.method in READ_METHODS:
        return JSONResponse({"data": await run_in_threadpool(listed, request)})
    data = await strict_body(request, NEW_TEAM, required=("name",))
    made = await run_in_threadpool(add_team, request, actor, data)
    return JSONResponse(made, status_code=201, headers={"Location": f"/api/v1/admin/teams/{made['id']}"})


@api
async def item(request: Request) -> Response:
    actor = await administrator(request)
    if request.method in READ_METHODS:
        return JSONResponse((await run_in_threadpool(find, request)).as_dict())
    if request.method == "DELETE":
        await run_in_threadpool(remove_team, request, actor)
        return Response(status_code=204)
    data = await strict_body(request, TEAM_CHANGE)
    return JSONResponse(await run_in_threadpool(change_team, request, actor, data))


routes = [
    Route("/api/v1/admin/teams", collection, methods=["GET", "POST"]),
    Route("/api/v1/admin/teams/{team_id:recordid}", item, methods=["GET", "PATCH", "DELETE"]),
]
