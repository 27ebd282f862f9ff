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
from hmac import compare_digest
from typing import Any

from asgi_csrf import Errors, asgi_csrf_decorator, cookies_from_scope
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
                always_protect=ALWAYS, send_csrf_failed=_refused)(_MultipartRestored(self.app))
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
        if scope["method"] not in SAFE_METHODS and _multipart_without_header(scope):
            try:
                token, receive = await multipart_token(scope, receive)
            except _FileBeforeToken:
                await _refused(scope, send, Errors.FILE_BEFORE_TOKEN)
                return
            cookie = cookies_from_scope(scope).get(COOKIE, "")
            if token is None or not cookie or not compare_digest(token.encode("latin-1"),
                                                                 cookie.encode("latin-1")):
                await _refused(scope, send, Errors.MULTIPART_MISMATCH)
                return
            # The form's token, checked by asgi-csrf as if a script had sent it as the header
            # (with the body's type hidden from it, so that it never reaches its multipart
            # parser: `_MultipartRestored` gives the app the real one back).
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
            scope = {**scope, MULTIPART_KEY: dict(scope["headers"]).get(b"content-type", b""),
                     "headers": [*headers, (b"content-type", HIDDEN_MULTIPART),
                                 (HEADER.encode(), token.encode("latin-1"))]}
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


# --- multipart forms (a record form with files): the token before the files -------------------------
# asgi-csrf 0.11 reads a multipart body's token with python-multipart's FormParser(FileClass=…),
# which python-multipart 0.0.26 removed (simonw/asgi-csrf#38, fix pending in #39; the older
# python-multipart has CVE-2026-40347): a form with files failed with a 500. Until a release
# fixes it, the token is read here with python-multipart's current MultipartParser, the way
# asgi-csrf does it (the body up to the `csrftoken` field, a file before it refused), and is
# handed to asgi-csrf as the header, whose check it then passes or fails.
#: The longest token field read (asgi-csrf's tokens are under 100 characters).
TOKEN_FIELD_MAX = 1024


#: Where a multipart body's Content-Type waits while asgi-csrf checks its token, and what
#: asgi-csrf is shown instead (a type it does not parse: a mismatch is refused, not parsed).
MULTIPART_KEY = "slatecrm.multipart_content_type"
HIDDEN_MULTIPART = b"application/x-slatecrm-checked-multipart"


class _MultipartRestored:
    """Gives the app a multipart body's real Content-Type back, once asgi-csrf has passed it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        original = scope.get(MULTIPART_KEY)
        if original is not None:
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", original)]}
        await self.app(scope, receive, send)


class _FileBeforeToken(Exception):
    pass


class _TokenFound(Exception):
    pass


def _multipart_without_header(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    has_cookie = bool(headers.get(b"cookie")) or scope.get("path") in ALWAYS
    return content_type == b"multipart/form-data" and HEADER.encode() not in headers and has_cookie


async def multipart_token(scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
    """The `csrftoken` field of a multipart body, read up to it (None if the body has none),
    and a `receive` that replays what was read; _FileBeforeToken when a file comes first."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(dict(scope["headers"]).get(b"content-type", b""))
    messages: list[Message] = []
    part: dict[str, Any] = {}

    def begin() -> None:
        part.clear()
        part.update(header=b"", value=b"", disposition=b"", data=b"")

    def header_field(data: bytes, start: int, end: int) -> None:
        part["header"] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def header_end() -> None:
        if part["header"].lower() == b"content-disposition":
            part["disposition"] = part["value"]
        part["header"], part["value"] = b"", b""

    def headers_finished() -> None:
        _, params = parse_options_header(part["disposition"])
        if b"filename" in params:
            raise _FileBeforeToken
        part["name"] = params.get(b"name", b"")

    def part_data(data: bytes, start: int, end: int) -> None:
        if part.get("name") == b"csrftoken" and len(part["data"]) < TOKEN_FIELD_MAX:
            part["data"] += data[start:end]

    def part_end() -> None:
        if part.get("name") == b"csrftoken":
            raise _TokenFound(part["data"].decode("latin-1"))

    parser = MultipartParser(options.get(b"boundary", b""), {
        "on_part_begin": begin, "on_header_field": header_field, "on_header_value": header_value,
        "on_header_end": header_end, "on_headers_finished": headers_finished, "on_part_data": part_data,
        "on_part_end": part_end})

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    more = True
    try:
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            parser.write(message.get("body", b""))
            more = bool(message.get("more_body", False))
    except _TokenFound as found:
        return str(found.args[0]), replay
    except _FileBeforeToken:
        raise
    except Exception:
        return None, replay
    return None, replay
