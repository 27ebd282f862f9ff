"""The principal cache (identity/principalcache.py) never serves what the database no longer
says: every identity change raises the generation, whoever makes it (another app over the
same database, as another worker process would be; a statement typed into the database);
time alone ends cached tokens and sessions; a token's use is noted once a minute across
apps; a hit costs one statement on the request's one connection. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import installer
from slatecrm.platform.identity import sessions, tokens, users
from slatecrm.platform.identity.principal import WORK_OPTION
from slatecrm.platform.storage import identity_generation, system
from slatecrm.platform.storage.upgrades import OutdatedDatabase
from slatecrm.platform.web.app import create_app
from slatecrm.platform.web.authentication import Authentication
from slatecrm.platform.web.authsettings import SESSION_COOKIE, AuthSettings

from .defaults import make_app, plugin_manager
from .pack_templates import PackTemplates

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


class Clock:
    """The apps' clock, moved by the test (no waiting)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def apps(engine: sa.Engine, db_url: str, pack_templates: PackTemplates, registry: FieldTypeRegistry,
         clock: Clock) -> Iterator[list[Any]]:
    """Two apps over one database with the default packs: two worker processes' worth."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    made = [make_app(db_url, auth=AuthSettings(clock=clock)) for _ in range(2)]
    yield made
    for app in made:
        app.state.engine.dispose()


def client(app: Any, secret: str) -> TestClient:
    http = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    http.headers["authorization"] = f"Bearer {secret}"
    return http


def new_user(engine: sa.Engine, email: str, *roles: str) -> int:
    made = users.add(engine, email, email.split("@")[0].title())
    with engine.begin() as conn:
        for role in roles:
            conn.execute(system.user_roles.insert().values(user_id=made.id, role=role))
    return made.id


def new_token(engine: sa.Engine, user_id: int, now: dt.datetime, *, expires_at: dt.datetime | None = None,
              name: str = "script") -> tuple[int, str]:
    with engine.begin() as conn:
        return tokens.create(conn, user_id, name, ("read", "write", "admin"), expires_at=expires_at, now=now)


def generation(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(identity_generation.GENERATION).scalar_one())


def test_a_change_made_through_another_app_or_by_hand_is_seen_on_the_next_request(
        apps: list[Any], engine: sa.Engine, clock: Clock) -> None:
    one, other = apps
    new_user(engine, "root@example.com", "administrator")  # so that Ann may be disabled
    ann = new_user(engine, "ann@example.com", "administrator")
    token_id, secret = new_token(engine, ann, START)
    mine, theirs = client(one, secret), client(other, secret)
    assert mine.get("/api/v1/account").status_code == 200
    assert theirs.get("/api/v1/admin/users").status_code == 200  # both apps hold her principal now

    # Her roles changed by a statement typed into the database: no code of ours ran.
    with engine.begin() as conn:
        conn.execute(system.user_roles.delete().where(system.user_roles.c.user_id == ann))
        conn.execute(system.user_roles.insert().values(user_id=ann, role="sales_rep"))
    assert theirs.get("/api/v1/admin/users").status_code == 403  # no longer a user manager
    assert mine.get("/api/v1/account").status_code == 200  # a rep reads accounts

    # Revoked through one app: the other refuses it on its next request.
    with engine.begin() as conn:
        conn.execute(system.user_roles.insert().values(user_id=ann, role="administrator"))
    assert theirs.delete(f"/api/v1/me/tokens/{token_id}").status_code == 204
    assert mine.get("/api/v1/account").status_code == 401

    # A disabled user and a changed password end a cached token too.
    _, second = new_token(engine, ann, START, name="second")
    assert client(one, second).get("/api/v1/account").status_code == 200
    users.disable(engine, "ann@example.com")
    assert client(one, second).get("/api/v1/account").status_code == 401
    users.enable(engine, "ann@example.com")
    assert client(one, second).get("/api/v1/account").status_code == 200
    users.set_password(engine, "ann@example.com", "a new long passphrase 7")
    assert client(one, second).get("/api/v1/account").status_code == 401


def test_team_and_manager_changes_reach_a_cached_principal(apps: list[Any], engine: sa.Engine) -> None:
    app = apps[0]
    ann, bob = new_user(engine, "ann@example.com", "sales_rep"), new_user(engine, "bob@example.com")
    _, secret = new_token(engine, ann, START)
    auth = Authentication(app, app.state.auth)

    def principal() -> Any:
        found, conn = auth.identify(engine, secret, None)
        conn.close()
        return found

    assert principal().teams == frozenset() and principal().subordinates == frozenset()
    with engine.begin() as conn:
        team = conn.execute(system.teams.insert().values(name="North", created_at=START)
                            .returning(system.teams.c.id)).scalar_one()
        conn.execute(system.team_members.insert(), [{"team_id": team, "user_id": ann},
                                                    {"team_id": team, "user_id": bob}])
    assert principal().teams == {team} and principal().team_members == {ann, bob}
    with engine.begin() as conn:
        conn.execute(system.users.update().where(system.users.c.id == bob).values(manager_id=ann))
    assert principal().subordinates == {bob}
    with engine.begin() as conn:
        conn.execute(system.teams.delete().where(system.teams.c.id == team))
    assert principal().teams == frozenset()


def test_time_alone_ends_a_cached_token_and_session(apps: list[Any], engine: sa.Engine, clock: Clock) -> None:
    app = apps[0]
    ann = new_user(engine, "ann@example.com", "administrator")
    _, secret = new_token(engine, ann, START, expires_at=START + dt.timedelta(hours=1))
    http = client(app, secret)
    assert http.get("/api/v1/account").status_code == 200
    clock.now = START + dt.timedelta(minutes=59)
    assert http.get("/api/v1/account").status_code == 200
    clock.now = START + dt.timedelta(hours=1)
    assert http.get("/api/v1/account").status_code == 401

    idle = app.state.auth.lifetimes.idle
    with engine.begin() as conn:
        started = sessions.start(conn, ann, clock.now, app.state.auth.lifetimes)
    browser = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    browser.cookies.set(SESSION_COOKIE, started.token)
    assert browser.get("/api/v1/account").status_code == 200
    clock.now += idle - dt.timedelta(seconds=1)  # used just in time: its idle timeout starts again
    assert browser.get("/api/v1/account").status_code == 200
    clock.now += idle - dt.timedelta(seconds=1)
    assert browser.get("/api/v1/account").status_code == 200
    clock.now += idle
    assert browser.get("/api/v1/account").status_code == 401


def test_a_tokens_use_is_noted_once_a_minute_across_apps(apps: list[Any], engine: sa.Engine,
                                                          clock: Clock) -> None:
    one, other = apps
    ann = new_user(engine, "ann@example.com", "administrator")
    token_id, secret = new_token(engine, ann, START)

    def uses() -> list[dt.datetime]:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(system.audit.c.at).where(system.audit.c.action == "token.use")
                                     .order_by(system.audit.c.id)).scalars())

    for app, seconds in ((one, 0), (other, 10), (one, 30), (other, 59)):
        clock.now = START + dt.timedelta(seconds=seconds)
        assert client(app, secret).get("/api/v1/account").status_code == 200
    assert uses() == [START]  # the other app had not seen it noted, and did not note it again
    clock.now = START + dt.timedelta(seconds=61)
    assert client(other, secret).get("/api/v1/account").status_code == 200
    clock.now = START + dt.timedelta(seconds=70)
    assert client(one, secret).get("/api/v1/account").status_code == 200
    assert uses() == [START, START + dt.timedelta(seconds=61)]
    with engine.connect() as conn:
        last = conn.execute(sa.select(system.api_tokens.c.last_used_at)
                            .where(system.api_tokens.c.id == token_id)).scalar_one()
    assert last == START + dt.timedelta(seconds=61)


def test_a_cached_token_costs_one_statement_on_the_requests_one_connection(
        apps: list[Any], engine: sa.Engine) -> None:
    app = apps[0]
    ann = new_user(engine, "ann@example.com", "administrator")
    _, secret = new_token(engine, ann, START)
    http = client(app, secret)
    assert http.get("/api/v1/account").status_code == 200  # read, cached, its use noted
    seen: list[tuple[str, int, bool]] = []

    def before(conn: sa.Connection, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        options = context.execution_options if context is not None else conn.get_execution_options()
        seen.append((statement, id(conn.connection.dbapi_connection),
                     options.get(WORK_OPTION) == "authentication"))

    sa.event.listen(app.state.engine, "before_cursor_execute", before)
    try:
        assert http.get("/api/v1/account").status_code == 200
    finally:
        sa.event.remove(app.state.engine, "before_cursor_execute", before)
    authenticating = [s for s, _, auth in seen if auth]
    assert len(authenticating) == 1 and "slate_identity_generation" in authenticating[0]
    assert len({conn for _, conn, _ in seen}) == 1


def test_what_raises_the_generation(engine: sa.Engine, pack_templates: PackTemplates,
                                    registry: FieldTypeRegistry) -> None:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    ann = new_user(engine, "ann@example.com", "administrator")
    before = generation(engine)
    token_id, _ = new_token(engine, ann, START)
    with engine.begin() as conn:
        sessions.start(conn, ann, START, sessions.Lifetimes())
        tokens.touch(conn, token_id, START)  # uses noted: not a change of who anyone is
        conn.execute(system.sessions.update().values(last_seen_at=START + dt.timedelta(minutes=5)))
    assert generation(engine) == before
    with engine.begin() as conn:
        tokens.revoke(conn, token_id, START)
    assert generation(engine) > before
    before = generation(engine)
    with engine.begin() as conn:  # a rolled-back change raises nothing
        conn.execute(system.users.update().values(display_name="Someone"))
        conn.rollback()
    assert generation(engine) == before


def test_a_database_without_the_triggers_is_refused_until_init(
        engine: sa.Engine, pack_templates: PackTemplates, registry: FieldTypeRegistry) -> None:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    name = identity_generation.trigger_names(engine.dialect.name)[0]
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TRIGGER {name}" + (" ON slate_user" if engine.dialect.name == "postgresql"
                                                       else ""))
    with pytest.raises(OutdatedDatabase, match=f"trigger {name} is missing.*slatecrm init"):
        create_app(engine, plugin_manager())
    installer.create_system_tables(engine)  # what `slatecrm init` runs
    create_app(engine, plugin_manager())
