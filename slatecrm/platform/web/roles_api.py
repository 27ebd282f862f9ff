"""`GET /api/v1/admin/roles` and `GET /api/v1/admin/roles/{role}`: the roles a user can be
given, each with what it grants, for whoever assigns roles (manage_users) or defines them
(manage_metamodel). Defining and removing one is web/admin.py's PUT and DELETE (a metamodel
change, planned then confirmed).

The built-in administrator comes first, then the packs' roles (by pack, then name), then the
organisation's own. Each role's `definition` is the body its PUT takes, so an admin can copy
a role, change it and send it back.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.metamodel.names import suggest
from slatecrm.metamodel.roles import ACTIONS, ADMINISTRATOR, EVERY_ENTITY, PLATFORM_RIGHTS, Role

from ..identity.principal import Principal
from ..layers import ORGANISATION
from ..storage import system
from .identity_common import NotFound, api, engine_of, signed_in
from .jsonresponse import JSONResponse
from .pinning import records_of
from .rights import may, require_right

MANAGE_USERS, MANAGE_METAMODEL = "manage_users", "manage_metamodel"

#: The built-in role as the definitions read: everything, everywhere.
BUILT_IN = Role(name=ADMINISTRATOR, label="Administrator",
                description="Built in: every action on every record of every entity, and every platform "
                            "right. It cannot be redefined or removed.",
                platform=frozenset(PLATFORM_RIGHTS))


def reader(request: Request) -> Principal:
    """The signed-in user (else 401), holding manage_users or manage_metamodel (else 403,
    naming the right to define roles). Called off the event loop, where the rights are read
    from the request's own revision (web/rights.py): a role defined a moment ago counts."""
    principal = signed_in(request)
    if may(request, MANAGE_USERS):
        return principal
    return require_right(request, MANAGE_METAMODEL)


def defined_by(role: Role) -> str:
    """`built-in`, `pack` or `organisation`."""
    if role.name == ADMINISTRATOR:
        return "built-in"
    return "organisation" if role.pack == ORGANISATION else "pack"


def _grant_json(role: Role) -> list[dict[str, Any]]:
    if role.name == ADMINISTRATOR:
        return [{"entity": EVERY_ENTITY, "actions": list(ACTIONS), "scope": "all", "sharing": [],
                 "fields": {}}]
    return [{"entity": g.entity, "actions": [a for a in ACTIONS if a in g.actions], "scope": g.scope,
             "sharing": [{"where": s.condition, "access": s.access} for s in g.sharing],
             "fields": dict(g.fields)}
            for g in sorted(role.entities, key=lambda g: (g.entity == EVERY_ENTITY, g.entity))]


def definition(role: Role) -> dict[str, Any]:
    """The role as the body of `PUT /api/v1/admin/roles/{role}` (a pack file's form)."""
    entities: dict[str, Any] = {}
    for grant in _grant_json(role):
        entry: dict[str, Any] = {"actions": grant["actions"], "scope": grant["scope"]}
        if grant["sharing"]:
            entry["sharing"] = grant["sharing"]
        if grant["fields"]:
            entry["fields"] = grant["fields"]
        entities[grant["entity"]] = entry
    return {"label": role.label, "description": role.description,
            "platform": [r for r in PLATFORM_RIGHTS if r in role.platform], "entities": entities}


def role_json(role: Role, holders: int) -> dict[str, Any]:
    """A role as the API answers it: who defines it, its grants, its platform rights, how
    many users hold it."""
    return {"name": role.name, "label": role.label, "description": role.description,
            "defined_by": defined_by(role), "pack": role.pack if defined_by(role) == "pack" else None,
            "platform": [r for r in PLATFORM_RIGHTS if r in role.platform], "entities": _grant_json(role),
            "users": holders, "definition": None if role.name == ADMINISTRATOR else definition(role)}


def ordered(defined: tuple[Role, ...]) -> list[Role]:
    """The administrator, then the packs' roles by pack and name, then the organisation's."""
    rest = sorted((r for r in defined if r.name != ADMINISTRATOR),
                  key=lambda r: (r.pack == ORGANISATION, r.pack if r.pack != ORGANISATION else "", r.name))
    return [BUILT_IN, *rest]


def holders(engine: sa.Engine) -> dict[str, int]:
    """How many users hold each role (disabled ones too: they would get it back on enable)."""
    roles = system.user_roles
    with engine.connect() as conn:
        return {str(name): int(count) for name, count in conn.execute(
            sa.select(roles.c.role, sa.func.count()).group_by(roles.c.role))}


def all_roles(request: Request) -> list[dict[str, Any]]:
    """Every role a user can be given, as `role_json` (run off the event loop)."""
    counts = holders(engine_of(request))
    return [role_json(r, counts.get(r.name, 0)) for r in ordered(records_of(request).full_snapshot()
                                                                 .metamodel.roles)]


def one_role(request: Request, name: str) -> dict[str, Any]:
    """One role, or NotFound naming the known ones (with a suggestion)."""
    found = all_roles(request)
    for role in found:
        if role["name"] == name:
            return role
    names = [r["name"] for r in found]
    raise NotFound(f"there is no role {name[:100]!r}{suggest(name, names)}; roles: {', '.join(names)}")


@api
async def collection(request: Request) -> Response:
    await run_in_threadpool(reader, request)
    return JSONResponse({"data": await run_in_threadpool(all_roles, request)})


@api
async def item(request: Request) -> Response:
    await run_in_threadpool(reader, request)
    return JSONResponse(await run_in_threadpool(one_role, request, request.path_params["role"]))


routes = [
    Route("/api/v1/admin/roles", collection, methods=["GET"]),
    # PUT and DELETE of the same path are web/admin.py's (the router takes the route whose
    # method matches).
    Route("/api/v1/admin/roles/{role}", item, methods=["GET"]),
]
