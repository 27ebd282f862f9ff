"""What the "me" and users-admin routes share: who is signed in, strict JSON bodies of
known keys, the JSON forms of a user and a token, and identity refusals as responses.

These routes read and change platform data (users, tokens), not records, so they go to the
engine directly, in the thread pool; the rights they need are checked by web/rights.py and
the signed-in user by `signed_in`, before anything is read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from ..identity import userattributes, users
from ..identity.principal import Principal
from ..records.errors import ValidationFailed
from .api import body_object
from .problems import problem
from .rights import principal_of

Handler = Callable[[Request], Awaitable[Response]]


class NotSignedIn(Exception):
    """The request has no signed-in user (no session or token, or not a valid one)."""


class NotFound(Exception):
    """No such user or token (or not one this user may see): a 404 naming what was asked."""


def signed_in(request: Request) -> Principal:
    """The request's signed-in user; NotSignedIn for anyone else (anonymous, the system)."""
    principal = principal_of(request)
    if not principal.authenticated or principal.user_id is None:
        raise NotSignedIn()
    return principal


def engine_of(request: Request) -> sa.Engine:
    engine: sa.Engine = request.app.state.engine
    return engine


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def address_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def api(handler: Handler) -> Handler:
    """An API handler whose refusals are problem+json: 401 with `WWW-Authenticate: Bearer`
    for no signed-in user, 404 for an unknown user or token."""
    async def handle(request: Request) -> Response:
        try:
            return await handler(request)
        except NotSignedIn:
            return problem(401, "sign in first: send a session cookie or `Authorization: Bearer <token>`",
                           headers={"WWW-Authenticate": "Bearer"})
        except NotFound as error:
            return problem(404, str(error))
    return handle


#: No database stores the NUL character in text (PostgreSQL refuses it).
NUL_REFUSED = "must not hold the NUL character"


def has_nul(value: Any) -> bool:
    texts = value if isinstance(value, list) else [value]
    return any(isinstance(t, str) and "\x00" in t for t in texts)


#: What a key of a body may hold: the JSON types accepted and how the message names them.
Kind = tuple[tuple[type, ...], str]
TEXT: Kind = ((str,), "text")
TEXT_OR_NULL: Kind = ((str, type(None)), "text or null")
FLAG: Kind = ((bool,), "true or false")
TEXTS: Kind = ((list,), "a list of text")
#: User attribute values by name (null removes one): identity/userattributes.py checks each.
ATTRIBUTES: Kind = ((dict,), "an object of user attribute values by name")


def checked(data: Mapping[str, Any], known: Mapping[str, Kind],
            required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The body's values if every key is known, each of its kind, and the required ones
    given; else every problem at once by key (422)."""
    errors: dict[str, list[str]] = {}
    for key, value in data.items():
        if key not in known:
            errors[key] = [f"unknown field; this body takes {', '.join(known)}"]
            continue
        types, name = known[key]
        texts = not isinstance(value, list) or all(isinstance(v, str) for v in value)
        if not isinstance(value, types) or not texts:
            errors[key] = [f"must be {name}"]
        elif has_nul(value):
            errors[key] = [NUL_REFUSED]
    for key in required:
        if key not in data:
            errors[key] = ["is required"]
    if errors:
        raise ValidationFailed(errors)
    return dict(data)


async def strict_body(request: Request, known: Mapping[str, Kind],
                      required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON object of the request (parsed strictly, web/jsonbody.py), `checked`."""
    data: dict[str, Any] = await body_object(request)
    return checked(data, known, required)


class Refused(ValidationFailed):
    """A change refused for the request as a whole (errors of ""), or for one field."""

    whole = ""


class Conflict(Refused):
    """A change the current state refuses, whatever its values: a name or e-mail taken,
    the token limit reached, disabling oneself (409, with the errors by field)."""

    status = 409


def refused(field: str, error: Exception, *, conflict: bool = False) -> ValidationFailed:
    """An identity refusal as the 422 (or 409) of the field it is about ("": the request)."""
    return (Conflict if conflict else Refused)({field: [str(error)]})


def user_json(user: users.User, roles: list[str], teams: list[str],
              attributes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A user as the API answers it: never a password hash."""
    return {**user.as_dict(), "manager_id": user.manager_id, "roles": roles, "teams": teams,
            "attributes": dict(attributes or {})}


def user_with_access(engine: sa.Engine, user: users.User) -> dict[str, Any]:
    roles, teams = users.roles_and_teams(engine, user.id)
    return user_json(user, roles, teams, userattributes.of_users(engine, [user.id])[user.id])
