"""The `/me` page: the signed-in user's profile and personal API tokens (create: the secret
is shown on the answer to the form, once; revoke).

The forms post to this site only and carry the CSRF field of web/authentication.py through
the `csrf` macro of templates/_identity.html.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..identity import tokens, users
from ..identity.principal import SCOPES, Principal
from ..records.errors import ValidationFailed
from .identity_common import NotFound, NotSignedIn, engine_of, signed_in, user_with_access
from .me_api import make_token, may_manage_tokens, revoke_token, token_list
from .templating import render
from .uicontext import base_context

#: Expiry choices the form offers (any other is typed in the text box).
EXPIRY_CHOICES = (("30d", "30 days"), ("90d", "90 days"), ("365d", "1 year"), ("never", "never"))


def to_login(request: Request) -> Response:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


async def me_page(request: Request, *, errors: dict[str, list[str]] | None = None,
                  made: dict[str, Any] | None = None, form: dict[str, Any] | None = None,
                  status: int = 200) -> Response:
    principal = signed_in(request)
    assert principal.user_id is not None
    engine = engine_of(request)

    def read() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        user = user_with_access(engine, users.get_by_id(engine, principal.user_id or 0))
        return user, token_list(request, principal.user_id or 0)

    user, listed = await run_in_threadpool(read)
    context = await base_context(request, title="My profile")
    twin = {"user": user, "tokens": listed, "errors": errors or {}, **({"made": made} if made else {})}
    return render(request, "me", {**context, "user": user, "tokens": listed, "errors": errors or {},
                                  "made": made, "form": form or {}, "scopes": SCOPES,
                                  "expiry_choices": EXPIRY_CHOICES, "via": principal.via,
                                  "default_days": tokens.DEFAULT_LIFETIME.days},
                  twin=twin, status=status, headers={"Cache-Control": "no-store"} if made else None)


async def me(request: Request) -> Response:
    try:
        return await me_page(request)
    except NotSignedIn:
        return to_login(request)


def _form_token(form: Any) -> dict[str, Any]:
    expires = str(form.get("expires") or "").strip()
    if expires == "other":
        expires = str(form.get("expires_other") or "").strip()
    return {"name": str(form.get("name") or ""), "scopes": [str(s) for s in form.getlist("scopes")],
            "expires": expires or None}


async def create_token(request: Request) -> Response:
    try:
        principal = signed_in(request)
    except NotSignedIn:
        return to_login(request)
    assert principal.user_id is not None
    may_manage_tokens(principal)
    data = _form_token(await request.form())
    try:
        made = await run_in_threadpool(make_token, request, principal, principal.user_id, data)
    except ValidationFailed as error:
        return await me_page(request, errors=error.errors, form=data, status=error.status)
    # The page itself shows the secret (not a redirect to it): it exists in this answer only.
    return await me_page(request, made=made)


async def revoke(request: Request) -> Response:
    try:
        principal: Principal = signed_in(request)
    except NotSignedIn:
        return to_login(request)
    assert principal.user_id is not None
    may_manage_tokens(principal)
    try:
        await run_in_threadpool(revoke_token, request, principal, principal.user_id,
                                request.path_params["token_id"])
    except NotFound as error:
        return await me_page(request, errors={"": [str(error)]}, status=404)
    return RedirectResponse("/me#tokens", status_code=303)


routes = [
    Route("/me", me, methods=["GET"]),
    Route("/me/tokens", create_token, methods=["POST"]),
    Route("/me/tokens/{token_id:recordid}/revoke", revoke, methods=["POST"]),
]
