"""What the tests use when they want the defaults: one plugin manager with the built-in and
installed plugins (as `slatecrm` builds for a command or an app), its field-type registry,
and an app over a database URL with it.

The platform keeps nothing global: the app and the CLI are given their manager. Tests
share this one (building it loads the entry points) and build a fresh manager, with their
own plugin objects registered, when they test a plugin.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import pluggy
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.identity import sessions, tokens, users
from slatecrm.platform.records.limits import Limits
from slatecrm.platform.storage import system
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.web import csrf
from slatecrm.platform.web.app import create_app
from slatecrm.platform.web.authsettings import SESSION_COOKIE
from slatecrm.plugins import manager

#: The user every test client is signed in as unless it asks for another.
ADMIN_EMAIL = "admin@example.com"
ADMINISTRATOR = ("administrator",)

#: Makes an in-process client of an app with the limits given (the `bounded` fixture).
Client = Callable[..., TestClient]


@cache
def plugin_manager() -> pluggy.PluginManager:
    return manager.make_plugin_manager()


@cache
def field_types() -> FieldTypeRegistry:
    return manager.field_types(plugin_manager())


def make_app(database: str, plugins: pluggy.PluginManager | None = None, **options: Any) -> Starlette:
    """The app over `database` with `plugins` (default: the default manager), with the
    limits the environment sets unless given; the caller disposes of `app.state.engine`."""
    options.setdefault("limits", Limits.from_environment(os.environ))
    return create_app(create_engine(database), plugins or plugin_manager(), **options)


def user_id(engine: sa.Engine, email: str, *, roles: Iterable[str] = ADMINISTRATOR, name: str = "") -> int:
    """The id of the user `email`, made (without a password) with `roles` if missing."""
    with engine.connect() as conn:
        found = conn.execute(sa.select(system.users.c.id)
                             .where(system.users.c.email_key == email.lower())).scalar()
    if found is None:
        found = users.add(engine, email, name or email.split("@")[0].replace(".", " ").title()).id
        with engine.begin() as conn:
            for role in roles:
                conn.execute(system.user_roles.insert().values(user_id=found, role=role))
    return int(found)


def session_for(app: Starlette, email: str = ADMIN_EMAIL, *, roles: Iterable[str] = ADMINISTRATOR,
                now: dt.datetime | None = None) -> dict[str, str]:
    """The cookies and header of a signed-in browser of `email` (made with `roles` if missing):
    a session row, its cookie, and a CSRF cookie with its `x-csrftoken` header, the same path
    a login takes. For clients other than TestClient (a live server's)."""
    engine: sa.Engine = app.state.engine
    owner = user_id(engine, email, roles=roles)
    with engine.begin() as conn:
        started = sessions.start(conn, owner, now or dt.datetime.now(dt.UTC), app.state.auth.lifetimes)
    token = csrf.new_token(app.state.records.secrets.get(csrf.SECRET_NAME))
    return {SESSION_COOKIE: started.token, csrf.COOKIE: token, csrf.HEADER: token}


#: Token names are unique among a user's live tokens.
TOKEN_NUMBERS = itertools.count(1)


def bearer(engine: sa.Engine, email: str = ADMIN_EMAIL, *, roles: Iterable[str] = ADMINISTRATOR,
           scopes: Iterable[str] = ("read", "write", "admin")) -> dict[str, str]:
    """The `Authorization` header of a new API token of `email` (for a server in another process)."""
    owner = user_id(engine, email, roles=roles)
    with engine.begin() as conn:
        _, secret = tokens.create(conn, owner, f"tests {next(TOKEN_NUMBERS)}", scopes, expires_at=None,
                                  now=dt.datetime.now(dt.UTC))
    return {"Authorization": f"Bearer {secret}"}


def signed_in(app: Starlette, email: str = ADMIN_EMAIL, *, roles: Iterable[str] = ADMINISTRATOR,
              **client_options: Any) -> TestClient:
    """A TestClient of `app` signed in as `email` (an administrator unless `roles` say else)."""
    http = TestClient(app, **client_options)
    sign_in(http, email, roles=roles)
    return http


def sign_in(http: TestClient, email: str = ADMIN_EMAIL, *, roles: Iterable[str] = ADMINISTRATOR) -> None:
    """Sign an existing client in as `email` (another user than before, say)."""
    values = session_for(http.app, email, roles=roles)  # type: ignore[arg-type]
    http.cookies.set(SESSION_COOKIE, values[SESSION_COOKIE])
    http.cookies.set(csrf.COOKIE, values[csrf.COOKIE])
    http.headers[csrf.HEADER] = values[csrf.HEADER]
