"""Who a request is: the session cookie's user, the bearer token's user, or nobody; and the
login every route needs except the public ones.

Pure ASGI middleware. The `Principal` (identity/principal.py) goes into the scope under
PRINCIPAL_KEY, where the pinned records service (web/pinning.py) and admin routes'
right checks (web/rights.py) read it; nothing after this looks at cookies or tokens.
The database work runs in the thread pool, never on the event loop, on the request's read
connection, which the records service then reads on (one pool checkout per request). A
token or session seen lately costs one statement: its principal is cached per process and
used while the database's identity generation has not moved (identity/principalcache.py,
storage/identity_generation.py); otherwise its row, the user and their memberships are read.

Without a valid session or token: a page answers 303 to /login?next=<the page>, the API
(/api/…) 401 with `WWW-Authenticate: Bearer`. A bearer token is checked on its own (the
cookie is then ignored); a token without the `write` scope may only read (GET, HEAD).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from functools import partial
from http.cookies import SimpleCookie
from urllib.parse import quote

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ..identity import audit, principals, sessions, tokens
from ..identity.principal import ANONYMOUS, AUTHENTICATING, Principal
from ..identity.principalcache import Cached, PrincipalCache
from ..identity.secrettokens import stored_hash
from ..storage import identity_generation
from ..storage.engine import connect_for_reading
from .asgiproblem import send_problem, send_redirect
from .authsettings import SESSION_COOKIE, AuthSettings
from .pinning import CONNECTION_KEY, PRINCIPAL_KEY

#: Methods a read-only token may use (OPTIONS is not routed).
READ_METHODS = frozenset({"GET", "HEAD"})
#: Paths anyone may fetch: the login page, the static files, the health check, and the
#: inbound webhooks (web/workflow_hooks.py), which are signed instead.
PUBLIC = frozenset({"/login", "/health"})
PUBLIC_PREFIXES = ("/static/", "/hooks/workflows/")


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
    """Note the token's use and audit it, unless another worker noted one within the minute."""
    if tokens.touch(conn, token_id, now):
        audit.record(conn, "token.use", principal=principal, address=address, object_kind="token",
                     object_id=token_id, at=now)


class Authentication:
    def __init__(self, app: ASGIApp, settings: AuthSettings) -> None:
        self.app = app
        self.settings = settings
        self.cache = PrincipalCache()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bearer, cookie = bearer_token(scope), session_token(scope)
        principal, conn = ANONYMOUS, None
        if bearer is not None or cookie is not None:
            engine: sa.Engine = scope["app"].state.engine
            client = scope.get("client")
            principal, conn = await run_in_threadpool(self.identify, engine, bearer, cookie,
                                                      client[0] if client else None)
        scope[PRINCIPAL_KEY] = principal
        try:
            refusal = self.refusal(scope, principal, bearer)
            if refusal is not None:
                if conn is not None:
                    await run_in_threadpool(conn.close)
                await refusal(send)
                return
            # The request's read connection, handed to its pinned records service (web/pinning.py).
            scope[CONNECTION_KEY] = conn
            await self.app(scope, receive, send)
        finally:
            if conn is not None and not conn.closed:  # an app without PinnedRecords
                await run_in_threadpool(conn.close)

    def refusal(self, scope: Scope, principal: Principal, bearer: str | None
                ) -> Callable[[Send], Awaitable[None]] | None:
        """What answers a request that may not go on (None: it may)."""
        path: str = scope.get("path", "")
        if not principal.authenticated and not is_public(path):
            if is_api(path) or bearer is not None:
                detail = "the bearer token is not valid" if bearer is not None else \
                    "sign in, or send an API token as Authorization: Bearer <token>"
                return partial(send_problem, status=401, detail=detail,
                               headers=[(b"www-authenticate", b'Bearer realm="slatecrm"')])
            return partial(send_redirect, location=login_location(scope))
        if principal.via == "token" and scope["method"] not in READ_METHODS and not principal.allows("write"):
            detail = f"this API token has no write scope, so it cannot {scope['method']} (only GET and HEAD)"
            return partial(send_problem, status=403, detail=detail)
        return None

    def identify(self, engine: sa.Engine, bearer: str | None, cookie: str | None,
                 address: str | None = None) -> tuple[Principal, sa.Connection]:
        """The principal of the token or session, and the request's read connection it was
        read on (the records service reads on it next: one checkout per request). A token or
        session seen lately is taken from the cache when the identity generation has not
        moved (one statement); otherwise its rows are read, the generation first. Its use is
        noted apart, at most once a minute per token or session, with SQLite's write lock
        taken at BEGIN. A token's use is audited then too ("token.use", at that resolution:
        not a row per request)."""
        now = self.settings.clock()
        conn = connect_for_reading(engine)
        try:
            generation = conn.execute(identity_generation.GENERATION,
                                      execution_options=AUTHENTICATING).scalar()
            if bearer is not None:
                return self._token(engine, conn, generation, bearer, address, now), conn
            assert cookie is not None
            return self._session(engine, conn, generation, cookie, now), conn
        except BaseException:
            conn.close()
            raise

    def _token(self, engine: sa.Engine, conn: sa.Connection, generation: int | None, bearer: str,
               address: str | None, now: dt.datetime) -> Principal:
        key = "token:" + stored_hash(bearer)
        entry = self.cache.get(key, generation)
        if entry is None or not entry.live(now):
            match = tokens.find(conn, bearer, now)
            if match is None:
                return ANONYMOUS
            found = principals.load(conn, match.user_id, "token", token_id=match.token_id,
                                    scopes=match.scopes)
            if found is None:
                return ANONYMOUS
            entry = Cached(generation or 0, found, match.expires_at, match.last_used_at)
            self.cache.put(key, entry)
        if tokens.due(entry.noted_at, now):
            self._note(engine, partial(token_used, token_id=entry.principal.token_id or 0,
                                       principal=entry.principal, address=address), now)
            self.cache.noted(key, entry, now)
        return entry.principal

    def _session(self, engine: sa.Engine, conn: sa.Connection, generation: int | None, cookie: str,
                 now: dt.datetime) -> Principal:
        key = "session:" + stored_hash(cookie)
        lifetimes = self.settings.lifetimes
        entry = self.cache.get(key, generation)
        if entry is None or not entry.live(now, lifetimes.idle):
            live = sessions.find(conn, cookie, now, lifetimes)
            if live is None:
                return ANONYMOUS
            found = principals.load(conn, live.user_id, "session", session_id=live.session_id)
            if found is None:
                return ANONYMOUS
            entry = Cached(generation or 0, found, live.expires_at, live.last_seen_at)
            self.cache.put(key, entry)
        if entry.noted_at is None or now - entry.noted_at >= sessions.LAST_SEEN_RESOLUTION:
            self._note(engine, partial(sessions.touch, session_id=entry.principal.session_id or 0), now)
            self.cache.noted(key, entry, now)
        return entry.principal

    @staticmethod
    def _note(engine: sa.Engine, touch: Callable[..., None], now: dt.datetime) -> None:
        with engine.connect().execution_options(**AUTHENTICATING, sqlite_begin="IMMEDIATE") as conn, \
                conn.begin():
            touch(conn, now=now)
