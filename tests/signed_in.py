"""Test clients of an app over the default packs, signed in as its users through the real
authentication path (tests/defaults.py): a session row with its cookie and CSRF token, or an
API token sent as `Authorization: Bearer …`. Without either a client is anonymous.

Clients do not raise server exceptions and do not follow redirects, so tests see the status
a browser or a script would see (a 303 to /login, a 500).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.platform.identity import users
from slatecrm.platform.storage import system
from slatecrm.platform.web import csrf
from slatecrm.platform.web.authsettings import SESSION_COOKIE

from .defaults import make_app, session_for
from .pack_templates import PackTemplates

PASSWORD = "violet staple orbit 42"


@dataclass
class Site:
    """An app over the default packs, its engine, and clients signed in as its users."""

    engine: sa.Engine
    app: Any
    opened: list[TestClient] = field(default_factory=list)

    def client(self, user_id: int | None = None, *, token: str | None = None) -> TestClient:
        """A client signed in as `user_id` (a new session of theirs), or sending `token`, or
        anonymous."""
        http = TestClient(self.app, raise_server_exceptions=False, follow_redirects=False)
        if user_id is not None:
            signed = session_for(self.app, self.email(user_id))
            http.cookies.set(SESSION_COOKIE, signed[SESSION_COOKIE])
            http.cookies.set(csrf.COOKIE, signed[csrf.COOKIE])
            http.headers[csrf.HEADER] = signed[csrf.HEADER]
        if token is not None:
            http.headers["authorization"] = f"Bearer {token}"
        self.opened.append(http.__enter__())
        return http

    def email(self, user_id: int) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(sa.select(system.users.c.email)
                                    .where(system.users.c.id == user_id)).scalar_one())

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
