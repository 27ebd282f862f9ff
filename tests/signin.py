"""What the sign-in tests share: a clock they move by hand (no sleeping), an app over the
default packs with that clock, anonymous clients, users with passwords, and a login through
the real form (its CSRF token read from the page, as a browser would)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.identity import users
from slatecrm.platform.storage import system
from slatecrm.platform.web.authsettings import AuthSettings

from .defaults import make_app
from .pack_templates import PackTemplates

PASSWORD = "correct-horse-battery-42"
TOKEN_FIELD = re.compile(r'name="csrftoken" value="([^"]+)"')


@dataclass
class Clock:
    """Now, as the app sees it: the real time moved ahead by hand (it never lags the real
    time, which stamps a user's password change; a session older than that is dead)."""

    ahead: dt.timedelta = field(default_factory=dt.timedelta)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.ahead

    def advance(self, **delta: float) -> None:
        self.ahead += dt.timedelta(**delta)


@dataclass
class Site:
    app: Starlette
    engine: sa.Engine
    clock: Clock

    def anonymous(self, **options: Any) -> TestClient:
        options.setdefault("follow_redirects", False)
        options.setdefault("raise_server_exceptions", False)
        return TestClient(self.app, **options)


@pytest.fixture(name="site")
def site_fixture(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
         pack_templates: PackTemplates) -> Iterator[Site]:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    clock = Clock()
    app = make_app(db_url, auth=AuthSettings(clock=clock))
    with TestClient(app):  # the app's start-up
        yield Site(app, engine, clock)
    app.state.engine.dispose()


def add_user(engine: sa.Engine, email: str, *, roles: tuple[str, ...] = ("administrator",),
             password: str | None = PASSWORD, name: str = "Pat Doe") -> int:
    made = users.add(engine, email, name, password=password)
    with engine.begin() as conn:
        for role in roles:
            conn.execute(system.user_roles.insert().values(user_id=made.id, role=role))
    return made.id


def form_token(http: TestClient, path: str = "/login") -> str:
    page = http.get(path)
    found = TOKEN_FIELD.search(page.text)
    assert found, page.text
    return found.group(1)


def login(http: TestClient, email: str, password: str = PASSWORD, *, next: str | None = None,
          **headers: str) -> httpx.Response:
    """The login form filled in and sent, with the token the page gave."""
    data = {"email": email, "password": password, "csrftoken": form_token(http)}
    if next is not None:
        data["next"] = next
    return http.post("/login", data=data, headers=headers, follow_redirects=False)


#: The audit log's sign-in events (installs and user changes are logged too).
SIGN_IN_ACTIONS = ("login", "login_failed", "login_throttled", "logout", "logout_everywhere")


def audit_actions(engine: sa.Engine) -> list[tuple[str, Any]]:
    """The sign-in events of the audit log, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(system.audit.c.action, system.audit.c.detail)
                            .where(system.audit.c.action.in_(SIGN_IN_ACTIONS))
                            .order_by(system.audit.c.id)).all()
    return [(row.action, row.detail) for row in rows]
