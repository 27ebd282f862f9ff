"""`/api/v1/me`: the signed-in user, and their personal API tokens (list, create, revoke).

A token acts with its user's roles, narrowed by its scopes; so a token never makes one
wider than itself, and managing tokens with a token needs its `admin` scope (a leaked
read token cannot mint a write one). A new token's secret is in the 201 answer and
nowhere else, ever.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..identity import tokens, users
from ..identity.principal import Principal
from ..identity.writes import writing
from ..records.errors import ValidationFailed, WriteRefused
from .authentication import READ_METHODS
from .identity_common import (
    TEXT,
    TEXT_OR_NULL,
    TEXTS,
    NotFound,
    NotSignedIn,
    address_of,
    api,
    engine_of,
    now,
    refused,
    signed_in,
    strict_body,
    user_with_access,
)
from .jsonresponse import JSONResponse

#: The body of a new token.
TOKEN_BODY = {"name": TEXT, "scopes": TEXTS, "expires": TEXT_OR_NULL}


def may_manage_tokens(principal: Principal) -> None:
    """A session may; a token only with its admin scope."""
    if principal.via == "token" and not principal.allows("admin"):
        raise WriteRefused("managing API tokens with a token needs its admin scope")


def new_token_values(data: dict[str, Any], principal: Principal) -> tuple[str, frozenset[str], Any]:
    """The name, scopes and expiry of a token asked for, each checked (422 by field)."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for key, check in (("name", lambda: tokens.valid_name(data["name"])),
                       ("scopes", lambda: tokens.valid_scopes(data["scopes"])),
                       ("expires", lambda: tokens.parse_expiry(data.get("expires"), now()))):
        try:
            values[key] = check()
        except tokens.InvalidToken as error:
            errors[key] = [str(error)]
    if "scopes" in values and (wider := sorted(values["scopes"] - principal.scopes)):
        errors["scopes"] = [f"a token cannot give scopes it does not hold itself ({', '.join(wider)})"]
    if errors:
        raise ValidationFailed(errors)
    return values["name"], values["scopes"], values["expires"]


def make_token(request: Request, principal: Principal, owner: int, data: dict[str, Any]) -> dict[str, Any]:
    """Create the token (audited) and answer it with its secret, once."""
    name, scopes, expires_at = new_token_values(data, principal)
    moment = now()
    try:
        with writing(engine_of(request)) as conn:
            token_id, secret = tokens.create(conn, owner, name, scopes, expires_at=expires_at, now=moment,
                                             actor=principal, address=address_of(request))
            made = tokens.listed(conn, moment, token_id=token_id)[0]
    except tokens.InvalidToken as error:  # a name taken, the limit reached: the state, not the values
        field = "name" if isinstance(error, tokens.DuplicateName) else ""
        raise refused(field, error, conflict=True) from None
    return {"token": made.as_dict(), "secret": secret,
            "note": "copy the secret now: it is not stored and will not be shown again"}


def token_list(request: Request, owner: int) -> list[dict[str, Any]]:
    with engine_of(request).connect() as conn:
        return [t.as_dict() for t in tokens.listed(conn, now(), user_id=owner)]


def revoke_token(request: Request, principal: Principal, owner: int, token_id: int) -> None:
    """Revoke a live token of `owner`; anyone else's, or one already ended, is a 404."""
    with writing(engine_of(request)) as conn:
        done = tokens.revoke(conn, token_id, now(), owner=owner, actor=principal,
                             address=address_of(request))
    if not done:
        raise NotFound(f"there is no live token {token_id} of this user")


@api
async def me(request: Request) -> Response:
    principal = signed_in(request)
    assert principal.user_id is not None
    engine = engine_of(request)

    def read() -> dict[str, Any]:
        try:
            user = user_with_access(engine, users.get_by_id(engine, principal.user_id or 0))
        except users.UnknownUser:  # deleted since the request was authenticated
            raise NotSignedIn() from None
        keep = ("id", "name", "email", "time_zone", "locale", "roles", "teams", "attributes")
        return {**{k: user[k] for k in keep}, "via": principal.via, "scopes": sorted(principal.scopes)}

    return JSONResponse(await run_in_threadpool(read))


@api
async def my_tokens(request: Request) -> Response:
    principal = signed_in(request)
    assert principal.user_id is not None
    if request.method in READ_METHODS:  # HEAD is a GET without the body
        return JSONResponse({"data": await run_in_threadpool(token_list, request, principal.user_id)})
    may_manage_tokens(principal)
    data = await strict_body(request, TOKEN_BODY, required=("name", "scopes"))
    made = await run_in_threadpool(make_token, request, principal, principal.user_id, data)
    return JSONResponse(made, status_code=201, headers={"Cache-Control": "no-store"})


@api
async def my_token(request: Request) -> Response:
    principal = signed_in(request)
    assert principal.user_id is not None
    may_manage_tokens(principal)
    token_id = request.path_params["token_id"]
    await run_in_threadpool(revoke_token, request, principal, principal.user_id, token_id)
    return Response(status_code=204)


routes = [
    Route("/api/v1/me", me, methods=["GET"]),
    Route("/api/v1/me/tokens", my_tokens, methods=["GET", "POST"]),
    Route("/api/v1/me/tokens/{token_id:recordid}", my_token, methods=["DELETE"]),
]
