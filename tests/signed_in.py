"""Signed-in test clients for the identity routes, until web/authentication.py is merged.

`SignedIn` wraps an app and does what the authentication middleware will do: it puts the
request's `Principal` in the ASGI scope (PRINCIPAL_KEY), from a real API token
(`Authorization: Bearer …`, checked by identity/tokens.authenticate) or, standing in for a
session cookie, from the `x-test-user` header (a user id). Without either the request
stays anonymous.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from starlette.datastructures import Headers
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from slatecrm.platform.identity import principals, tokens, users
from slatecrm.platform.identity.writes import writing
from slatecrm.platform.storage import system
from slatecrm.platform.web.pinning import PRINCIPAL_KEY

from .defaults import make_app
from .pack_templates import PackTemplates

PASSWORD = "violet staple orbit 42"


class SignedIn:
    def __init__(self, app: ASGIApp, engine: sa.Engine) -> None:
        self.app, self.engine = app, engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            bearer = headers.get("authorization", "")
            principal = None
            if bearer.startswith("Bearer "):
                with writing(self.engine) as conn:
                    match = tokens.authenticate(conn, bearer[len("Bearer "):], dt.datetime.now(dt.UTC))
                    if match is not None:
                        principal = principals.load(conn, match.user_id, "token", token_id=match.token_id,
                                                    scopes=match.scopes)
            elif user := headers.get("x-test-user"):
                with self.engine.connect() as conn:
                    principal = principals.load(conn, int(user), "session", session_id=1)
            if principal is not None:
                scope = {**scope, PRINCIPAL_KEY: principal}
        await self.app(scope, receive, send)


@dataclass
class Site:
    """An app over the default packs, its engine, and clients signed in as its users."""

    engine: sa.Engine
    app: Any
    opened: list[TestClient] = field(default_factory=list)

    def client(self, user_id: int | None = None, *, token: str | None = None) -> TestClient:
        headers = {}
        if user_id is not None:
            headers["x-test-user"] = str(user_id)
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        http = TestClient(SignedIn(self.app, self.engine), raise_server_exceptions=False, headers=headers,
                          follow_redirects=False)
        self.opened.append(http.__enter__())
        return http

    def user(self, email: str, name: str, *, roles: tuple[str, ...] = (), password: bool = True) -> int:
        made = users.add(self.engine, email, name, password=PASSWORD if password else None)
        with self.engine.begin() as conn:
            for role in roles:
                conn.execute(system.user_roles.insert().values(user_id=made.id, role=role))
        return made.id

    def audit(self, action: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(system.audit).where(system.audit.c.action == action)
                                     .order_by(system.audit.c.id)))


def site(engine: sa.Engine, db_url: str, pack_templates: PackTemplates, registry: Any) -> Iterator[Site]:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    app = make_app(db_url)
    made = Site(engine, app)
    yield made
    for http in made.opened:
        http.__exit__(None, None, None)
    app.state.engine.dispose()
