"""`/api/v1/admin/users`: the users admin API (needs the manage_users right): list, add, read
and change users (their roles and teams too), reset a password, and see or revoke a user's
API tokens.

Every change is made by `identity/users.py` in one transaction with its audit entry, by the
signed-in administrator; no answer ever holds a password or its hash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.metamodel.roles import ADMINISTRATOR

from ..identity import memberships, userattributes, users
from ..identity.errors import IdentityError
from ..identity.principal import Principal
from ..records.errors import ValidationFailed
from .authentication import READ_METHODS
from .identity_common import (
    ATTRIBUTES,
    FLAG,
    NUL_REFUSED,
    TEXT,
    TEXT_OR_NULL,
    TEXTS,
    Conflict,
    NotFound,
    api,
    engine_of,
    has_nul,
    refused,
    signed_in,
    strict_body,
    user_json,
    user_with_access,
)
from .jsonresponse import JSONResponse
from .me_api import revoke_token, token_list
from .rights import checked_right

MANAGE_USERS = "manage_users"
#: No password: an administrator does not choose one for someone else (it would travel in a
#: request and be known to two people); the user gets one from `slatecrm user set-password`.
#: `roles` and `teams` are whole lists (the user's roles and teams become exactly these).
NEW_USER = {"email": TEXT, "name": TEXT, "time_zone": TEXT, "locale": TEXT, "manager": TEXT_OR_NULL,
            "roles": TEXTS, "teams": TEXTS, "attributes": ATTRIBUTES}
USER_CHANGE = {"name": TEXT, "time_zone": TEXT, "locale": TEXT, "manager": TEXT_OR_NULL, "active": FLAG,
               "roles": TEXTS, "teams": TEXTS, "attributes": ATTRIBUTES}
#: Each value's own check, so every wrong value of a body is named at once.
CHECKS: dict[str, Callable[[str], str]] = {"email": users.valid_email, "name": users.valid_name,
                                           "time_zone": users.valid_time_zone, "locale": users.valid_locale}


async def administrator(request: Request) -> Principal:
    """The signed-in user (else 401), holding manage_users (else 403)."""
    signed_in(request)
    return await checked_right(request, MANAGE_USERS)


def checked_values(data: dict[str, Any], checks: dict[str, Callable[[str], str]] = CHECKS) -> dict[str, Any]:
    """A body's values, each checked by its `checks` entry (NUL refused in any text); every
    wrong one named at once (422). The users and the teams API share it."""
    errors: dict[str, list[str]] = {k: [NUL_REFUSED] for k, v in data.items() if has_nul(v)}
    values = dict(data)
    for key, check in checks.items():
        if key in errors:
            continue
        if key in data:
            try:
                values[key] = check(data[key])
            except IdentityError as error:
                errors[key] = [str(error)]
    if errors:
        raise ValidationFailed(errors)
    return values


def membership_errors(engine: Any, data: dict[str, Any], held: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """The `roles` and `teams` of a body that name nothing (with the known names), before
    anything changes; a role the user holds already may stay (memberships.set_on)."""
    errors: dict[str, list[str]] = {}
    for key, roles, teams in (("roles", data.get("roles", ()), ()), ("teams", (), data.get("teams", ()))):
        if key not in data or not isinstance(data[key], list):
            continue
        try:
            memberships.check_names(engine, [r for r in roles if r not in held], teams)
        except IdentityError as error:
            errors[key] = [str(error)]
    return errors


def checked_with_memberships(engine: Any, data: dict[str, Any], held: tuple[str, ...] = ()) -> dict[str, Any]:
    """`checked_values`, with the errors of unknown roles and teams in the same answer."""
    errors = membership_errors(engine, data, held)
    try:
        values = checked_values(data)
    except ValidationFailed as error:
        raise ValidationFailed({**error.errors, **errors}) from None
    if errors:
        raise ValidationFailed(errors)
    return values


def setting_memberships(values: dict[str, Any], actor: Principal) -> users.Then | None:
    """What sets the body's roles and teams in the user change's own transaction."""
    if "roles" not in values and "teams" not in values:
        return None
    return lambda conn, user_id: memberships.set_on(conn, user_id, roles=values.get("roles"),
                                                    team_names=values.get("teams"), actor=actor)
def checked_attributes(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """The body's `attributes` (name → value, null removes), each checked against its
    definition before anything is changed: 422 naming `attributes.<name>` and why."""
    changes: dict[str, Any] = data.get("attributes") or {}
    try:
        with engine_of(request).connect() as conn:
            userattributes.checked(userattributes.definitions(conn), changes)
    except userattributes.InvalidAttribute as error:
        raise attribute_refusal(error) from None
    return changes


def attribute_refusal(error: userattributes.InvalidAttribute) -> ValidationFailed:
    """422 naming `attributes.<name>` and why, for each attribute or value refused."""
    return ValidationFailed({f"attributes.{k}": [v] for k, v in error.problems.items()})


def as_refusal(error: IdentityError) -> ValidationFailed:
    """A refusal of users.py once each value was checked on its own: the e-mail taken (409),
    a manager that would close a circle (409) or that does not exist (422); a role or team
    that names nothing (422), the last administrator's role or flag (409)."""
    if isinstance(error, memberships.LastAdministrator):
        return refused(error.field, error, conflict=True)
    if isinstance(error, (memberships.UnknownRole, memberships.UnknownTeam)):
        return refused("roles" if isinstance(error, memberships.UnknownRole) else "teams", error)
    if isinstance(error, users.DuplicateEmail):
        return refused("email", error, conflict=True)
    return refused("manager", error, conflict=isinstance(error, users.InvalidUser))


def find(request: Request) -> users.User:
    user_id = request.path_params["user_id"]
    try:
        return users.get_by_id(engine_of(request), user_id)
    except users.UnknownUser:
        raise NotFound(f"there is no user {user_id}") from None


def email_of(user: users.User) -> str:
    if user.email is None:
        raise Conflict({"": [f"user {user.id} has no e-mail (made before users had one), so it cannot be "
                             "changed here"]})
    return user.email


def add_user(request: Request, actor: Principal, data: dict[str, Any]) -> dict[str, Any]:
    engine = engine_of(request)
    values = checked_with_memberships(engine, data)
    attributes = checked_attributes(request, data)
    try:
        made = users.add(engine, values["email"], values["name"], time_zone=values.get("time_zone", "UTC"),
                         locale=values.get("locale", "en"), manager=values.get("manager"), actor=actor,
                         then=users.steps(setting_memberships(values, actor),
                                          userattributes.setting(attributes, values["email"], actor)))
    except userattributes.InvalidAttribute as error:  # a definition changed meanwhile
        raise attribute_refusal(error) from None
    except IdentityError as error:
        raise as_refusal(error) from None
    return user_with_access(engine, made)


def change_user(request: Request, actor: Principal, data: dict[str, Any]) -> dict[str, Any]:
    user = find(request)
    engine = engine_of(request)
    held = tuple(users.roles_and_teams(engine, user.id)[0]) if "roles" in data else ()
    values = checked_with_memberships(engine, data, held)
    attributes = checked_attributes(request, data)
    if values.get("active") is False and user.id == actor.user_id:
        raise Conflict({"active": ["you cannot disable yourself: ask another administrator"]})
    if (user.id == actor.user_id and "roles" in values and ADMINISTRATOR in actor.roles
            and ADMINISTRATOR not in values["roles"]):
        raise Conflict({"roles": ["you cannot take the administrator role from yourself: ask another "
                                  "administrator"]})
    changes: dict[str, Any] = {k: values[k] for k in ("name", "time_zone", "locale", "active") if k in values}
    if "manager" in values:
        changes["manager"] = values["manager"]
    email = email_of(user)
    try:
        changed = users.update(engine, email, actor=actor, **changes,
                               then=users.steps(setting_memberships(values, actor),
                                                userattributes.setting(attributes, email, actor)))
    except userattributes.InvalidAttribute as error:  # a definition changed meanwhile
        raise attribute_refusal(error) from None
    except IdentityError as error:
        raise as_refusal(error) from None
    return user_with_access(engine, changed)


def reset_password(request: Request, actor: Principal) -> dict[str, Any]:
    """Clear a user's password; not one's own (that would end the session or token asking,
    and leave no way back in but another administrator)."""
    engine = engine_of(request)
    user = find(request)
    if user.id == actor.user_id:
        raise Conflict({"": ["you cannot reset your own password here: ask another administrator, or "
                             "set a new one with `slatecrm user set-password`"]})
    return user_with_access(engine, users.reset(engine, email_of(user), actor=actor))


def listed(request: Request) -> list[dict[str, Any]]:
    """Every user, by name; `q` keeps those whose name or e-mail holds it, `active` (true or
    false) those of that state."""
    text = request.query_params.get("q", "").strip().lower()
    active = request.query_params.get("active")
    if active not in (None, "true", "false"):
        raise ValidationFailed({"active": [f"{active[:40]!r} is not true or false"]})
    engine = engine_of(request)
    found = [u for u in users.list_users(engine)
             if (not text or text in u.name.lower() or text in (u.email or "").lower())
             and (active is None or u.active == (active == "true"))]
    access = users.access_of(engine, [u.id for u in found])
    attributes = userattributes.of_users(engine, [u.id for u in found])
    return [user_json(u, *access[u.id], attributes[u.id]) for u in found]


@api
async def collection(request: Request) -> Response:
    actor = await administrator(request)
    if request.method in READ_METHODS:  # HEAD is a GET without the body
        return JSONResponse({"data": await run_in_threadpool(listed, request)})
    data = await strict_body(request, NEW_USER, required=("email", "name"))
    made = await run_in_threadpool(add_user, request, actor, data)
    return JSONResponse(made, status_code=201, headers={"Location": f"/api/v1/admin/users/{made['id']}"})


@api
async def item(request: Request) -> Response:
    actor = await administrator(request)
    if request.method in READ_METHODS:  # HEAD is a GET without the body
        return JSONResponse(await run_in_threadpool(
            lambda: user_with_access(engine_of(request), find(request))))
    data = await strict_body(request, USER_CHANGE)
    return JSONResponse(await run_in_threadpool(change_user, request, actor, data))


@api
async def password_reset(request: Request) -> Response:
    actor = await administrator(request)
    return JSONResponse(await run_in_threadpool(reset_password, request, actor))


@api
async def user_tokens(request: Request) -> Response:
    await administrator(request)
    owner = await run_in_threadpool(find, request)
    return JSONResponse({"data": await run_in_threadpool(token_list, request, owner.id)})


@api
async def user_token(request: Request) -> Response:
    actor = await administrator(request)
    owner = await run_in_threadpool(find, request)
    await run_in_threadpool(revoke_token, request, actor, owner.id, request.path_params["token_id"])
    return Response(status_code=204)


routes = [
    Route("/api/v1/admin/users", collection, methods=["GET", "POST"]),
    Route("/api/v1/admin/users/{user_id:recordid}", item, methods=["GET", "PATCH"]),
    Route("/api/v1/admin/users/{user_id:recordid}/password-reset", password_reset, methods=["POST"]),
    Route("/api/v1/admin/users/{user_id:recordid}/tokens", user_tokens, methods=["GET"]),
    Route("/api/v1/admin/users/{user_id:recordid}/tokens/{token_id:recordid}", user_token,
          methods=["DELETE"]),
]
