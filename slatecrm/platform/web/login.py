"""The login page, log out, log out everywhere, and the health check: the routes of
sign-in. Login is the one place a password is checked; after it, every request is
authenticated by its session cookie (web/authentication.py), so argon2 is on no other
request's path.

A failed login answers the same whatever was wrong (unknown e-mail, wrong password,
disabled user, no password set), after the same work (`users.check_password` hashes for
unknown users too), and counts against the e-mail tried and the client address
(identity/throttle.py). Passwords are never logged, audited or echoed back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..identity import audit, sessions, throttle, users
from .authentication import session_token
from .authsettings import SESSION_COOKIE, AuthSettings
from .csrf import COOKIE as CSRF_COOKIE
from .csrf import SECRET_NAME as CSRF_SECRET
from .csrf import new_token
from .rights import principal_of
from .templating import environment_of

#: E-mails longer than this are not a user's (and are cut in the audit log).
EMAIL_MAX = 320
WRONG = "The e-mail address or the password is not right."


@contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that writes: on SQLite it takes the write lock at BEGIN, waiting for
    another worker's write, rather than failing when a read turns into a write."""
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        yield conn


def local_target(text: str | None) -> str:
    """`next` if it is a path on this site, "/" otherwise: never another site (an open
    redirect would make the login page a phishing tool), never back to the login."""
    if not text or not text.startswith("/") or text.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 0x21 or c == "\\" for c in text):
        return "/"
    parts = urlsplit(text)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout", "/logout-everywhere"):
        return "/"
    return text


def _settings(request: Request) -> AuthSettings:
    settings: AuthSettings = request.app.state.auth
    return settings


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _page(request: Request, *, status: int = 200, email: str = "", error: str = "",
          target: str = "/", headers: dict[str, str] | None = None) -> Response:
    html = environment_of(request).get_template("login.html").render(
        request=request, nav=[], current_entity=None, page_title="Sign in", search_text="",
        email=email, error=error, next=target)
    return HTMLResponse(html, status_code=status, headers=headers)


async def login_page(request: Request) -> Response:
    return _page(request, target=local_target(request.query_params.get("next")))


@dataclass(frozen=True)
class Outcome:
    started: sessions.Started | None = None
    #: when throttled: until when
    held_until: dt.datetime | None = None


def _attempt(request: Request, email: str, password: str) -> Outcome:
    """Check the throttle, then the password; record the outcome. In a worker thread."""
    settings = _settings(request)
    engine: sa.Engine = request.app.state.engine
    address = _address(request)
    keys = [throttle.account_key(email), *filter(None, [throttle.address_key(address)])]
    now = settings.clock()
    with writing(engine) as conn:
        until = throttle.blocked_until(conn, keys, now)
        if until is not None:
            audit.record(conn, "login_throttled", address=address, detail={"email": email}, at=now)
            return Outcome(held_until=until)
    user = users.check_password(engine, email, password) if email and password else None
    now = settings.clock()
    with writing(engine) as conn:
        if user is None:
            throttle.failed(conn, keys, now, settings.throttling)
            audit.record(conn, "login_failed", address=address, detail={"email": email}, at=now)
            return Outcome()
        throttle.succeeded(conn, email)
        started = sessions.start(conn, user.id, now, settings.lifetimes,
                                 replacing=session_token(request.scope), address=address,
                                 user_agent=request.headers.get("user-agent"))
        audit.record(conn, "login", user_id=user.id, user_name=user.name, address=address,
                     object_kind="session", object_id=started.session_id, at=now)
    return Outcome(started=started)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _set_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="lax",
                        secure=_secure(request))


async def _fresh_csrf(response: Response, request: Request) -> None:
    """A new CSRF cookie with each new or ended session, so a token seen before does not
    outlive it."""
    key: bytes = await run_in_threadpool(request.app.state.records.secrets.get, CSRF_SECRET)
    response.set_cookie(CSRF_COOKIE, new_token(key), path="/", samesite="lax", secure=_secure(request))


async def login(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email") or "").strip()[:EMAIL_MAX]
    password = str(form.get("password") or "")
    target = local_target(str(form.get("next") or ""))
    outcome = await run_in_threadpool(_attempt, request, email, password)
    if outcome.held_until is not None:
        wait = max(1, int((outcome.held_until - _settings(request).clock()).total_seconds() + 0.999))
        return _page(request, status=429, email=email, target=target, headers={"Retry-After": str(wait)},
                     error=f"Too many failed sign-ins. Try again in {wait} seconds.")
    if outcome.started is None:
        return _page(request, status=401, email=email, target=target, error=WRONG)
    response = RedirectResponse(target, status_code=303)
    _set_session(response, request, outcome.started.token)
    await _fresh_csrf(response, request)
    return response


async def _signed_out(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))
    await _fresh_csrf(response, request)
    return response


async def logout(request: Request) -> Response:
    principal, token = principal_of(request), session_token(request.scope)

    def end() -> None:
        now = _settings(request).clock()
        with writing(request.app.state.engine) as conn:
            if token is not None and sessions.end(conn, token, now):
                audit.record(conn, "logout", principal=principal, address=_address(request),
                             object_kind="session", object_id=principal.session_id, at=now)

    await run_in_threadpool(end)
    return await _signed_out(request)


async def logout_everywhere(request: Request) -> Response:
    principal = principal_of(request)

    def end_all() -> None:
        assert principal.user_id is not None  # authentication let only users through
        now = _settings(request).clock()
        with writing(request.app.state.engine) as conn:
            ended = sessions.end_all(conn, principal.user_id, now)
            audit.record(conn, "logout_everywhere", principal=principal, address=_address(request),
                         object_kind="user", object_id=principal.user_id, detail={"sessions": ended}, at=now)

    await run_in_threadpool(end_all)
    return await _signed_out(request)


async def health(request: Request) -> Response:
    """Up and answering; touches no record (a load balancer calls it every few seconds)."""
    return JSONResponse({"status": "ok"})


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/logout-everywhere", logout_everywhere, methods=["POST"]),
    Route("/health", health, methods=["GET"]),
]
