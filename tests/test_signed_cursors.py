"""List cursors are signed with the database's own key (slate_secret): a changed cursor is
a 400 that says so, a cursor of another database is refused, and every process over the
same database accepts the cursors of the others (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json

import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.platform.storage.system import secrets

from .defaults import make_app, signed_in

TAMPERED = ("the cursor was changed, or made by another database (its signature does not match); "
            "start from the first page")


def _accounts(client: TestClient, *names: str) -> None:
    for name in names:
        assert client.post("/api/v1/account", json={"name": name}).status_code == 201


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_a_changed_cursor_is_a_400_saying_so(client: TestClient, engine: sa.Engine) -> None:
    _accounts(client, "Acme", "Globex", "Initech")
    first = client.get("/api/v1/account?sort=name&limit=1&count=true").json()
    cursor = first["next_cursor"]
    second = client.get("/api/v1/account", params={"sort": "name", "limit": 1, "after": cursor})
    assert [r["name"] for r in second.json()["data"]] == ["Globex"]
    payload, signature = cursor.split(".")
    readable = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert readable["after"] == ["Acme", 1] and readable["count"] == 3
    # Skip ahead by editing the readable payload, keeping the signature: refused.
    skipped = _b64(json.dumps({**readable, "after": ["Globex", 2]}, separators=(",", ":")).encode())
    refused = client.get("/api/v1/account", params={"sort": "name", "limit": 1,
                                                    "after": f"{skipped}.{signature}"})
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"] == {"after": [TAMPERED]}
    page = client.get("/e/account", params={"sort": "name", "limit": 1, "after": f"{skipped}.{signature}"})
    assert page.status_code == 400 and "its signature does not match" in page.text
    with engine.connect() as conn:
        stored = conn.execute(sa.select(secrets.c.name, secrets.c.value)).all()
    # The cursors' key, and the CSRF tokens' key (web/csrf.py) the signed-in client made.
    assert sorted((name, len(value)) for name, value in stored) == [("csrf", 64), ("cursor", 64)]


def test_every_process_over_a_database_accepts_its_cursors_and_no_other_does(
        client: TestClient, db_url: str) -> None:
    _accounts(client, "Acme", "Globex")
    cursor = client.get("/api/v1/account?sort=name&limit=1").json()["next_cursor"]
    other_process = make_app(db_url)  # a second worker: its own service, the same database
    with signed_in(other_process, raise_server_exceptions=False) as http:
        page = http.get("/api/v1/account", params={"sort": "name", "limit": 1, "after": cursor})
        assert page.status_code == 200 and [r["name"] for r in page.json()["data"]] == ["Globex"]
    other_process.state.engine.dispose()
    # The same database with its key replaced stands for another database.
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(secrets.update().values(value="ab" * 32))
    engine.dispose()
    another_database = make_app(db_url)
    with signed_in(another_database, raise_server_exceptions=False) as http:
        refused = http.get("/api/v1/account", params={"sort": "name", "limit": 1, "after": cursor})
        assert refused.status_code == 400 and refused.json()["errors"] == {"after": [TAMPERED]}
    another_database.state.engine.dispose()


def test_workers_making_the_key_of_a_fresh_database_at_once_agree(db_url: str, engine: sa.Engine) -> None:
    """`slatecrm serve --workers 2` on a new database: every worker asks for the key on its
    first list at the same moment; none may fail ("database is locked" was a 500) and all must
    sign with the one key that was stored."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from slatecrm.platform.installer import create_system_tables
    from slatecrm.platform.storage.engine import create_engine
    from slatecrm.platform.storage.secrets import DatabaseSecrets

    create_system_tables(engine)
    workers = 6
    start = Barrier(workers)

    def first_list() -> bytes:
        own = create_engine(db_url)  # a process of its own: its own engine and connections
        try:
            start.wait()
            return DatabaseSecrets(own).cursor_key()
        finally:
            own.dispose()

    with ThreadPoolExecutor(workers) as pool:
        keys = list(pool.map(lambda _: first_list(), range(workers)))
    with engine.connect() as conn:
        stored = conn.execute(sa.select(secrets.c.value)).scalars().all()
    assert len(stored) == 1 and set(keys) == {bytes.fromhex(stored[0])}
def test_a_count_changed_in_a_cursor_is_refused(client: TestClient) -> None:
    _accounts(client, "Acme", "Globex", "Initech")
    cursor = client.get("/api/v1/account?sort=name&limit=1&count=true").json()["next_cursor"]
    payload, signature = cursor.split(".")
    readable = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for count in (1_000_000, 0):
        changed = _b64(json.dumps({**readable, "count": count}, separators=(",", ":")).encode())
        refused = client.get("/api/v1/account", params={"sort": "name", "limit": 1, "count": "true",
                                                        "after": f"{changed}.{signature}"})
        assert refused.status_code == 400 and refused.json()["errors"] == {"after": [TAMPERED]}
    kept = client.get("/api/v1/account", params={"sort": "name", "limit": 1, "count": "true",
                                                 "after": cursor}).json()
    assert kept["count"] == 3
