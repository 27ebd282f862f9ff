"""Who a request is: the session cookie's user, the bearer token's user, or nobody; and the
login every route needs except the public ones.

Pure ASGI middleware. The `Principal` (identity/principal.py) goes into the scope under
PRINCIPAL_KEY, where the pinned records service (web/pinning.py) and admin routes'
right checks (web/rights.py) read it; nothing after this looks at cookies or tokens.
The database work (one short transaction: the session or token row, the user's roles and
teams) runs in the thread pool, never on the event loop.

Without a valid session or token: a page answers 303 to /login?next=<the page>, the API
(/api/…) 401 with `WWW-Authenticate: Bearer`. A bearer token is checked on its own (the
cookie is then ignored); a token without the `write` scope may only read (GET, HEAD).
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from http.cookies import SimpleCookie
from urllib.parse import quote

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ..identity import audit, principals, sessions, tokens
from ..identity.principal import ANONYMOUS, Principal
from .asgiproblem import send_problem, send_redirect
from .authsettings import SESSION_COOKIE, AuthSettings
from .pinning import PRINCIPAL_KEY

#: Methods a read-only token may use (OPTIONS is not routed).
READ_METHODS = frozenset({"GET", "HEAD"})
#: The execution option naming the connection authentication reads on (so statement counts
#: of the read path, tests/test_read_path.py, can leave it out).
WORK_OPTION = "slatecrm_work"
#: Paths anyone may fetch: the login page, the static files, the health check.
PUBLIC = frozenset({"/login", "/health"})
PUBLIC_PREFIXES = ("/static/",)


def is_public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


def is_api(path: str) -> bool:
    return path.startswith("/api/")


def session_token(scope: Scope) -> str | None:
    """The session cookie's value, if the request has one."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for key, raw in headers:
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(raw.decode("latin-1"))
            except Exception:  # a malformed Cookie header is no session
                return None
            morsel = jar.get(SESSION_COOKIE)
            value: str = morsel.value if morsel is not None else ""
            if value:
                return value
    return None


def bearer_token(scope: Scope) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for key, raw in headers:
        if key == b"authorization":
            scheme, _, token = raw.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None


def login_location(scope: Scope) -> str:
    """/login?next=<this page>, the page's path and query as they came (local only)."""
    target = scope.get("path", "/")
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        target += "?" + query
    return "/login?next=" + quote(target, safe="")


def token_used(conn: sa.Connection, *, token_id: int, principal: Principal | None, address: str | None,
               now: dt.datetime) -> None:
    tokens.touch(conn, token_id, now)
    audit.record(conn, "token.use", principal=principal, address=address, object_kind="token",
                 object_id=token_id, at=now)


class Authentication:
    def __init__(self, app: ASGIApp, settings: AuthSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bearer, cookie = bearer_token(scope), session_token(scope)
        principal = ANONYMOUS
        if bearer is not None or cookie is not None:
            engine: sa.Engine = scope["app"].state.engine
            client = scope.get("client")
            principal = await run_in_threadpool(self.identify, engine, bearer, cookie,
                                                client[0] if client else None)
        scope[PRINCIPAL_KEY] = principal
        path: str = scope.get("path", "")
        if not principal.authenticated and not is_public(path):
            if is_api(path) or bearer is not None:
                detail = "the bearer token is not valid" if bearer is not None else \
                    "sign in, or send an API token as Authorization: Bearer <token>"
                await send_problem(send, 401, detail, [(b"www-authenticate", b'Bearer realm="slatecrm"')])
            else:
                await send_redirect(send, login_location(scope))
            return
        if principal.via == "token" and scope["method"] not in READ_METHODS and not principal.allows("write"):
            await send_problem(send, 403, f"this API token has no write scope, so it cannot "
                                          f"{scope['method']} (only GET and HEAD)")
            return
        await self.app(scope, receive, send)

    def identify(self, engine: sa.Engine, bearer: str | None, cookie: str | None,
                 address: str | None = None) -> Principal:
        """The principal of the token or session, in one read transaction (a request's check
        takes no write lock); the use is noted apart, at most once a minute per token or
        session, with SQLite's write lock taken at BEGIN. A token's use is audited then too
        ("token.use", at that resolution: not a row per request)."""
        now = self.settings.clock()
        options: dict[str, str] = {WORK_OPTION: "authentication"}
        with engine.connect().execution_options(**options) as conn, conn.begin():
            if bearer is not None:
                match = tokens.find(conn, bearer, now)
                if match is None:
                    return ANONYMOUS
                found = principals.load(conn, match.user_id, "token", token_id=match.token_id,
                                        scopes=match.scopes)
                touch, stale = partial(token_used, token_id=match.token_id, principal=found,
                                       address=address), match.stale
            else:
                assert cookie is not None
                live = sessions.find(conn, cookie, now, self.settings.lifetimes)
                if live is None:
                    return ANONYMOUS
                found = principals.load(conn, live.user_id, "session", session_id=live.session_id)
                touch, stale = partial(sessions.touch, session_id=live.session_id), live.stale
        if found is not None and stale:
            with engine.connect().execution_options(**options, sqlite_begin="IMMEDIATE") as conn, \
                    conn.begin():
                touch(conn, now=now)
        return found or ANONYMOUS
