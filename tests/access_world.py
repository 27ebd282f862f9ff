"""The world the access matrix and the sentinel test sign in to (tests/data/access-pack):
clients and deals (a deal references a client and moves through a stage pipeline), owned
by users of each kind the issue names, every record titled with a marker string of its own
so that a body holding a record out of a user's reach is found by a plain search.

Users (roles from the pack, plus the built-in administrator):
- `admin`: administrator, every record.
- `manager`: deal_manager, scope subordinates (the rep reports to them), view_audit.
- `rep`: deal_rep, own records only, no delete; `deal.secret` and `client.codename`
  hidden.
- `outsider`: client_reader, nothing at all on deals (and no clients of their own).
- `other`: owns records nobody but the administrator reaches (signs in nowhere).

One world per database per test module: it is built once and the cells that change things
change records made for them (`World.fresh_deal`), so the cells do not depend on their order.
"""

from __future__ import annotations

import io
import itertools
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from slatecrm.platform.files.backends import STORAGE_VARIABLE
from slatecrm.platform.identity import memberships, tokens, users
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.web import csrf

from .conftest import _postgres_database
from .defaults import field_types, make_app, sign_in
from .packs import install

PACK = Path(__file__).parent / "data" / "access-pack"
#: The day every deal closes on: the calendar's cells show the month holding it.
CLOSES = "2026-12-15"
PASSWORD = "matrix-correct-horse-battery"


def _picture() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


#: The image each deal's papers hold (and the matrix uploads).
PICTURE = _picture()

#: Who signs in, and with which roles (`anonymous` does not).
ROLES: dict[str, tuple[str, ...]] = {
    "admin": ("administrator",),
    "manager": ("deal_manager",),
    "rep": ("deal_rep",),
    "outsider": ("client_reader",),
}
EMAILS = {who: f"{who}@matrix.example" for who in (*ROLES, "other")}
#: Whose records each user reaches (by owner); the markers of everyone else's must not show.
REACH: dict[str, frozenset[str]] = {
    "anonymous": frozenset(),
    "outsider": frozenset(),
    "rep": frozenset({"rep"}),
    "manager": frozenset({"rep", "manager"}),
    "admin": frozenset({"rep", "manager", "other", "admin"}),
}
OWNERS = ("rep", "manager", "other")


def marker(kind: str, owner: str) -> str:
    """The unique text in the title of `owner`'s `kind` record."""
    return f"MK-{kind.upper()}-{owner.upper()}-q7z"


@dataclass
class World:
    app: Starlette
    records: RecordsService
    user_ids: dict[str, int]
    ids: dict[str, int]  # "deal:rep", "client:other", "file:rep" (the deal's papers), ...
    counter: Iterator[int] = field(default_factory=itertools.count)
    target: str = "rep"  # whose records the matrix's record routes are called on
    fresh_values: dict[str, Any] = field(default_factory=dict)  # given to every fresh deal

    def client(self, who: str) -> TestClient:
        """A new browser of `who` (signed in unless anonymous): no redirects followed, so a
        cell sees the status the route gave."""
        http = TestClient(self.app, raise_server_exceptions=False, follow_redirects=False)
        if who == "anonymous":  # a browser that has the login page's CSRF cookie, no session
            token = csrf.new_token(self.records.secrets.get(csrf.SECRET_NAME))
            http.cookies.set(csrf.COOKIE, token)
            http.headers[csrf.HEADER] = token
        else:
            sign_in(http, EMAILS[who], roles=ROLES[who])
        return http

    def unique(self, stem: str) -> str:
        return f"{stem}-{next(self.counter)}"

    def fresh_deal(self, owner: str = "rep", **values: Any) -> int:
        """A new deal owned by `owner` (in the rep's reach by default), for a cell that changes
        or deletes one."""
        made = self.records.create("deal", {
            "name": self.unique(f"Fresh deal of {owner}"), "client": self.ids[f"client:{owner}"],
            "owner": self.user_ids[owner], "closes": CLOSES, **self.fresh_values, **values})
        return made.id

    def fresh_user(self) -> int:
        return users.add(self.app.state.engine, f"{self.unique('someone')}@matrix.example", "Someone").id

    def fresh_token(self, who: str) -> int:
        import datetime as dt
        with self.app.state.engine.begin() as conn:
            made, _ = tokens.create(conn, self.user_ids[who], self.unique("tok"), ("read",), expires_at=None,
                                    now=dt.datetime.now(dt.UTC))
        return int(made)


def database_urls(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A module's database: SQLite or PostgreSQL (as the `db_url` fixture, module-scoped)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('access') / 'slatecrm.db'}"
    else:
        yield from _postgres_database()


def build(url: str, extra: dict[str, dict[str, Any]] | None = None) -> Iterator[World]:
    """The pack installed, the users and their records made, the app started; `extra`: more
    values by record ("deal:rep", "client:other") and for every fresh deal ("fresh"): the
    sentinel test's hidden values."""
    extra = extra or {}
    engine = create_engine(url)
    install(engine, field_types(), PACK)
    engine.dispose()
    # The deals' files in a folder of the world's own (on PostgreSQL the default would be
    # ./slatecrm-files, in the directory the tests run from).
    folder = tempfile.TemporaryDirectory(prefix="access-files-")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(STORAGE_VARIABLE, folder.name)
        app = make_app(url, body_limit=64 * 1024)
    engine = app.state.engine
    memberships.add_team(engine, "north")
    user_ids: dict[str, int] = {}
    for who in ("manager", "rep", "outsider", "other", "admin"):
        made = users.add(engine, EMAILS[who], who.title(), password=PASSWORD,
                         manager=EMAILS["manager"] if who == "rep" else None)
        user_ids[who] = made.id
        memberships.change(engine, EMAILS[who], add_roles=ROLES.get(who, ()),
                           add_teams=("north",) if who in ("rep", "manager") else ())
    records: RecordsService = app.state.records
    ids: dict[str, int] = {}
    for owner in OWNERS:
        client = records.create("client", {"name": marker("client", owner), "city": f"City of {owner}",
                                           "owner": user_ids[owner], **extra.get(f"client:{owner}", {})})
        ids[f"client:{owner}"] = client.id
        # A picture in the deal's papers, named with the deal's marker: its download (whose
        # Content-Disposition names it) and its thumbnail are as far in reach as the deal.
        paper = records.upload(io.BytesIO(PICTURE), f"{marker('deal', owner)}.png")
        ids[f"file:{owner}"] = paper.id
        deal = records.create("deal", {"name": marker("deal", owner), "client": client.id, "amount": 10,
                                       "owner": user_ids[owner], "papers": [paper.id], "closes": CLOSES,
                                       **extra.get(f"deal:{owner}", {})})
        ids[f"deal:{owner}"] = deal.id
        # A change, so the deal has history (and a stage visit).
        records.update("deal", deal.id, {"note": f"noted by {secrets.token_hex(2)}", "status": "won"},
                       version=deal.version)
    with TestClient(app):  # the lifespan: plugins' startup hooks
        yield World(app, records, user_ids, ids, fresh_values=extra.get("fresh", {}))
    app.state.engine.dispose()
    folder.cleanup()
