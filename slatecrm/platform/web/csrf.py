"""The per-browser CSRF token on every unsafe request made with cookies (asgi-csrf, Simon
Willison's maintained middleware: a signed double-submit cookie, the token in a `csrftoken`
form field or an `x-csrftoken` header).

Why besides the Sec-Fetch-Site/Origin guard (web/crosssite.py): browsers and paths that send
neither header would pass the guard; a forged form cannot know the token. The login form is
protected too, though it comes without a session (login CSRF: signing a victim into the
attacker's account). Requests with `Authorization: Bearer` (API tokens) need no token: a
browser never adds that header on its own. Requests with no cookie at all are not checked
(they carry no session, so authentication refuses them anyway), except the login.

The signing key is the database's `csrf` secret (storage/secrets.py), read on the first
request, so every worker over the database signs and checks alike. Pages put the token in
their forms with the template function `csrf_token(request)`; htmx sends it as a header
(`hx-headers:inherited` on <body>), the board's script reads it from a <meta>.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgi_csrf import Errors, asgi_csrf_decorator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .asgiproblem import send_problem
from .crosssite import SAFE_METHODS
from .pinning import PRINCIPAL_KEY

SECRET_NAME = "csrf"
COOKIE = "csrftoken"
HEADER = "x-csrftoken"
#: Paths checked even when the request has no cookie (the login form: login CSRF).
ALWAYS = frozenset({"/login"})
#: Paths never checked: signed inbound webhooks (they act on no session).
HOOKS = "/hooks/workflows/"

REASONS = {
    Errors.FORM_URLENCODED_MISMATCH: "the form's CSRF token is missing or does not match this browser's",
    Errors.MULTIPART_MISMATCH: "the form's CSRF token is missing or does not match this browser's",
    Errors.FILE_BEFORE_TOKEN: "the form's CSRF token must come before its files",
    Errors.UNKNOWN_CONTENT_TYPE: f"a change made with a session cookie needs the {HEADER} header",
}


async def _refused(scope: Scope, send: Send, reason: Errors) -> None:
    await send_problem(send, 403, f"{REASONS.get(reason, 'CSRF check failed')}: reload the page and "
                                  "try again (API clients: use a bearer token)")


def csrf_token(request: Request) -> str:
    """The token for the page's forms (template function); empty outside the middleware."""
    make: Callable[[], str] | None = request.scope.get("csrftoken")
    return make() if make is not None else ""


class CsrfProtection:
    """Pure ASGI middleware around asgi-csrf, built on the first request (the key is in the
    database), with the cookie's Secure flag set when the request came over HTTPS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._protected: ASGIApp | None = None

    async def _inner(self, scope: Scope) -> ASGIApp:
        if self._protected is None:
            # Two first requests at once may both build it: the same key, the same result.
            secrets = scope["app"].state.records.secrets
            key: bytes = await run_in_threadpool(secrets.get, SECRET_NAME)
            self._protected = asgi_csrf_decorator(
                cookie_name=COOKIE, http_header=HEADER, signing_secret=key.hex(),
                always_protect=ALWAYS, send_csrf_failed=_refused)(self.app)
        return self._protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _by_token(scope) or _signed_hook(scope):
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and _malformed_multipart(scope):
            await send_problem(send, 400, "a multipart/form-data body needs a boundary in its Content-Type")
            return
        protected = await self._inner(scope)
        if scope.get("scheme") == "https":
            send = _secure_cookie(send)
        await protected(scope, receive, send)


def _by_token(scope: Scope) -> bool:
    """A request authenticated by its bearer token (web/authentication.py): it needs no CSRF
    token, and asgi-csrf would sign a new one for it (a tenth of a get's time) that nothing
    reads. Its pages' forms get none (`csrf_token` is empty): a script posts with its token."""
    principal = scope.get(PRINCIPAL_KEY)
    return principal is not None and principal.via == "token"


def _signed_hook(scope: Scope) -> bool:
    """An inbound webhook (web/workflow_hooks.py): its signature, made with a secret no
    browser holds, is its proof; a cookie its sender happens to keep must not refuse it."""
    path: str = scope.get("path", "")
    return path.startswith(HOOKS)


def _malformed_multipart(scope: Scope) -> bool:
    """asgi-csrf reads the boundary as `; boundary=` and fails on anything else."""
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
    media_type = content_type.split(b";", 1)[0].strip()
    return media_type == b"multipart/form-data" and b"; boundary=" not in content_type


def _secure_cookie(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[Any] = []
            for key, value in message.get("headers", []):
                if key.lower() == b"set-cookie" and value.startswith(COOKIE.encode() + b"=") \
                        and b"; Secure" not in value:
                    value = value + b"; Secure"
                headers.append((key, value))
            message = {**message, "headers": headers}
        await send(message)
    return sending


def new_token(key: bytes) -> str:
    """A token asgi-csrf accepts, signed with `key` (the `csrf` secret): for a client that
    signs in without loading a page first (tests, scripts holding a session)."""
    from asgi_csrf import DEFAULT_SIGNING_NAMESPACE, make_secret
    from itsdangerous.url_safe import URLSafeSerializer

    return URLSafeSerializer(key.hex()).dumps(make_secret(16), DEFAULT_SIGNING_NAMESPACE)
