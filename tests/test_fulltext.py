"""Full-text search (storage/fulltext.py) on SQLite and PostgreSQL: what a person typing in
the search box, a picker or the API's `q` finds, and that the index follows every write and
every schema change in the same transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from click.testing import CliRunner
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import installer
from slatecrm.platform.cli import main
from slatecrm.platform.records import searchwalk
from slatecrm.platform.records.limits import SEARCH_WORDS_MAX
from slatecrm.platform.storage import fulltext, revisions, upgrades
from slatecrm.platform.storage.apply import apply
from slatecrm.platform.storage.runtime import build_runtime
from slatecrm.platform.storage.system import system_metadata
from slatecrm.platform.web.app import create_app
from slatecrm.plugins.manager import field_types, make_plugin_manager

from .packs import install, plan, write_pack


def names(client: TestClient, q: str, entity: str = "account", **params: Any) -> list[str]:
    response = client.get(f"/api/v1/{entity}", params={"q": q, "limit": 50, **params})
    assert response.status_code == 200, response.text
    return [r["_title"] for r in response.json()["data"]]


def create(client: TestClient, entity: str = "account", **values: Any) -> int:
    made = client.post(f"/api/v1/{entity}", json=values)
    assert made.status_code == 201, made.text
    record_id: int = made.json()["id"]
    return record_id


def test_each_word_is_a_prefix_and_every_word_must_match(client: TestClient, engine: sa.Engine) -> None:
    create(client, name="Acme Corporation", email="sales@acme.example")
    create(client, name="Acme Widgets")
    create(client, name="Zeta Müller GmbH")
    create(client, name="O'Brien & Sons", website="https://obrien-sons.example/about")
    create(client, name="Globex", email="info@initech.example")
    assert names(client, "acm") == ["Acme Corporation", "Acme Widgets"]
    assert names(client, "ACME corp") == ["Acme Corporation"]  # case folded, both words
    assert names(client, "widg acm") == ["Acme Widgets"]  # in any order
    assert names(client, "acme zeta") == []  # all words, not any
    assert names(client, "brien") == ["O'Brien & Sons"]  # punctuation separates words
    assert names(client, "o'brien") == ["O'Brien & Sons"]
    assert names(client, "initech") == ["Globex"]  # the parts of an e-mail address are words
    assert names(client, "info@initech.example") == ["Globex"]
    assert names(client, "obrien-sons") == ["O'Brien & Sons"]
    assert names(client, "müller") == ["Zeta Müller GmbH"]
    # Accents: folded by SQLite's tokenizer; PostgreSQL's `simple` configuration keeps them
    # (docs/api.md, "Search").
    assert names(client, "muller") == (["Zeta Müller GmbH"] if engine.dialect.name == "sqlite" else [])
    assert names(client, "cme") == []  # a prefix of a word, not any part of it
    assert names(client, "   ") == names(client, "")  # blank: no search
    assert len(names(client, "")) == 5


def test_a_search_pages_with_its_count_and_cursor(client: TestClient) -> None:
    for i in range(7):
        create(client, name=f"Acme {i}")
    create(client, name="Other")
    seen: list[str] = []
    params: dict[str, Any] = {"q": "acme", "limit": 3, "count": "true"}
    counts = []
    while True:
        body = client.get("/api/v1/account", params=params).json()
        assert "data" in body, body
        seen += [r["name"] for r in body["data"]]
        counts.append(body["count"])
        if not body["next"]:
            break
        params["after"] = body["next_cursor"]
    assert seen == [f"Acme {i}" for i in range(7)] and counts == [7, 7, 7]
    # An explicit sort wins over everything; a cursor keeps to it.
    first = client.get("/api/v1/account", params={"q": "acme", "limit": 4, "sort": "-name"}).json()
    rest = client.get("/api/v1/account", params={"q": "acme", "after": first["next_cursor"],
                                                 "sort": "-name"}).json()
    assert [r["name"] for r in first["data"] + rest["data"]] == [f"Acme {i}" for i in reversed(range(7))]
    # A cursor of the search is a cursor of the same query: another search counts for itself.
    other = client.get("/api/v1/account", params={"q": "acme 6", "after": first["next_cursor"],
                                                  "sort": "-name", "count": "true"}).json()
    assert other["data"] == [] and other["count"] == 1  # "Acme 6" is before the cursor


def test_a_search_in_id_order_pages_from_the_index_with_filters(client: TestClient,
                                                               engine: sa.Engine) -> None:
    """Both directions of id, a filter beside the words, cursors and counts; on SQLite the
    page walks the FTS5 index in rowid order (no list of every match, no sort)."""
    made = [create(client, name=f"Acme {i}", employees=i % 2) for i in range(9)]
    create(client, name="Other", employees=1)
    for sort, ids in (("", made), ("-id", made[::-1])):
        wanted = [i for i in ids if (made.index(i) % 2) == 1]
        seen: list[int] = []
        params: dict[str, Any] = {"q": "acm", "limit": 2, "count": "true", "employees": 1,
                                  **({"sort": sort} if sort else {})}
        while True:
            body = client.get("/api/v1/account", params=params).json()
            assert body["count"] == 4, body
            seen += [r["id"] for r in body["data"]]
            if not body["next"]:
                break
            params["after"] = body["next_cursor"]
        assert seen == wanted, sort
    if engine.dialect.name != "sqlite":
        return
    statements: list[tuple[str, Any]] = []
    app_engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "MATCH" in statement and "ORDER BY" in statement:
            statements.append((statement, parameters))

    sa.event.listen(app_engine, "before_cursor_execute", keep)
    try:
        client.get("/api/v1/account", params={"q": "acme", "sort": "-id"})
    finally:
        sa.event.remove(app_engine, "before_cursor_execute", keep)
    with app_engine.connect() as conn:
        steps = [str(row[3]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statements[0][0]}",
                                                              statements[0][1]).all()]
    assert steps[0].startswith("SCAN slate_search_account VIRTUAL TABLE"), steps
    assert not any("B-TREE" in step or "LIST SUBQUERY" in step for step in steps), steps


def test_a_search_walk_that_falls_short_hands_over_to_every_match(client: TestClient, engine: sa.Engine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL walks a bounded stretch of ids first (records/searchwalk.py): here 3, so
    pages of 2 over matches spread among other records are found in the walk on some
    pages and by the fallback on others; every page is exact in both directions."""
    monkeypatch.setattr(searchwalk, "WALK_ROWS", 3)
    made = []
    for i in range(14):
        made.append(create(client, name=f"Acme {i}" if i % 4 in (0, 1) or i > 10 else f"Other {i}",
                           employees=i % 3))
    fallbacks: list[str] = []
    app_engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "@@" in statement and "ORDER BY" in statement and "coalesce" not in statement:
            fallbacks.append(statement)

    sa.event.listen(app_engine, "before_cursor_execute", keep)
    try:
        for extra in ({}, {"employees__ne": 1}):
            for sort, ids in (("", made), ("-id", made[::-1])):
                wanted = [i for i in ids if made.index(i) % 4 in (0, 1) or made.index(i) > 10
                          if not extra or made.index(i) % 3 != 1]
                seen: list[int] = []
                params: dict[str, Any] = {"q": "acm", "limit": 2, **extra, **({"sort": sort} if sort else {})}
                while True:
                    body = client.get("/api/v1/account", params=params).json()
                    seen += [r["id"] for r in body["data"]]
                    if not body["next"]:
                        break
                    params["after"] = body["next_cursor"]
                assert seen == wanted, (sort, extra)
    finally:
        sa.event.remove(app_engine, "before_cursor_execute", keep)
    # The fallback ran on some pages only (on SQLite the page walks the FTS5 index instead).
    assert bool(fallbacks) == (engine.dialect.name == "postgresql")


def test_writes_keep_the_index_right(client: TestClient) -> None:
    acme = create(client, name="Acme")
    assert names(client, "acme") == ["Acme"]
    renamed = client.patch(f"/api/v1/account/{acme}", json={"name": "Initech", "version": 1})
    assert renamed.status_code == 200
    assert names(client, "acme") == [] and names(client, "initech") == ["Initech"]
    other = client.patch(f"/api/v1/account/{acme}", json={"employees": 12, "version": 2})
    assert other.status_code == 200  # a field that is not searched: the words stay
    assert names(client, "initech") == ["Initech"]
    blanked = client.patch(f"/api/v1/account/{acme}",
                           json={"billing_address": {"city": "Springfield"}, "version": 3})
    assert blanked.status_code == 200 and names(client, "spring initech") == ["Initech"]
    assert client.delete(f"/api/v1/account/{acme}").status_code == 204
    assert names(client, "initech") == [] and names(client, "spring") == []
    # The bulk path writes through the same tables, so through the same index.
    bulk = client.post("/api/v1/account", json=[{"name": "Bulk One"}, {"name": "Bulk Two"}])
    assert bulk.status_code == 201, bulk.text
    assert names(client, "bulk") == ["Bulk One", "Bulk Two"]


def test_the_index_is_written_in_the_records_transaction(client: TestClient, engine: sa.Engine) -> None:
    """Seen by the transaction that wrote the record before it commits, by nobody after a
    rollback, and a later write is indexed as usual."""
    create(client, name="Kept")
    table = client.app.state.records.entity("account").table  # type: ignore[attr-defined]

    def matching(conn: sa.Connection, text: str) -> list[int]:
        found = fulltext.words(text, SEARCH_WORDS_MAX)
        return list(conn.execute(sa.select(table.c.id).where(
            fulltext.SearchMatch("account", table, found))).scalars())

    now = sa.func.now() if engine.dialect.name != "sqlite" else sa.literal("2026-01-01 00:00:00.000000")
    with engine.connect() as conn:
        transaction = conn.begin()
        made = conn.execute(table.insert().values(name="Vanishing", created_at=now, updated_at=now)
                            .returning(table.c.id)).scalar_one()
        assert matching(conn, "vanish") == [made]
        conn.execute(table.update().where(table.c.name == "Kept").values(name="Changed"))
        assert matching(conn, "changed") != [] and matching(conn, "kept") == []
        transaction.rollback()
    assert names(client, "vanish") == [] and names(client, "changed") == []
    assert names(client, "kept") == ["Kept"]
    create(client, name="Vanishing Later")
    assert names(client, "vanish") == ["Vanishing Later"]


HOSTILE = ['"', '""', '"acme', "*", "acme*", "NEAR", "NEAR(acme widgets)", "acme NEAR/2 x", "-acme",
           "acme -widgets", "name:acme", "a:b:c", "acme & widgets", "acme | x", "!acme", "acme:*",
           "'", "\\", "(", ")", "AND", "OR NOT", "^acme", "{acme}", "%", "_", "%_%", "@", "—",
           "\ufffd", "💥 acme", "acme\u0301", "ａｃｍｅ", "x" * 1000, "a'b\\c\"d*e:f&g|h!i"]


def test_hostile_search_text_is_words_never_syntax(client: TestClient) -> None:
    create(client, name="Acme Widgets")
    create(client, name="Near Acme")
    for q in HOSTILE:
        response = client.get("/api/v1/account", params={"q": q})
        assert response.status_code == 200, (q, response.text[:300])
    # The pages build the same condition: the nastiest few through each (pages are dearer).
    for q in ('"', "NEAR(acme widgets)", "acme:*", "a'b\\c\"d*e:f&g|h!i", "\ufffd", "x" * 1000):
        for path in ("/e/account", "/search", "/e/account/options"):
            response = client.get(path, params={"q": q})
            assert response.status_code == 200, (path, q, response.text[:300])
    assert names(client, "NEAR") == ["Near Acme"]  # a word like any other
    assert names(client, "NEAR(acme") == ["Near Acme"]
    assert names(client, '"acme') == ["Acme Widgets", "Near Acme"]
    assert names(client, "acme -widgets") == ["Acme Widgets"]  # `-` is no NOT: both words
    assert names(client, "acme:*") == ["Acme Widgets", "Near Acme"]
    assert names(client, "@") == [] and names(client, "\ufffd") == []  # no word: nothing matches
    many = " ".join(f"w{i}" for i in range(SEARCH_WORDS_MAX + 1))
    refused = client.get("/api/v1/account", params={"q": many})
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"q": [f"has {SEARCH_WORDS_MAX + 1} words; a search looks for at "
                                              f"most {SEARCH_WORDS_MAX}"]}
    for path in ("/e/account", "/search", "/e/account/options"):
        assert client.get(path, params={"q": many}).status_code == 400, path
    repeated = " ".join(["acme"] * (SEARCH_WORDS_MAX + 5))  # a word typed again is one word
    assert names(client, repeated) == ["Acme Widgets", "Near Acme"]


def test_pickers_and_the_global_search_rank_best_first(client: TestClient) -> None:
    """A list without a sort keeps its order (by id) and its cursor; the picker and the
    global search put the best match first."""
    weak = create(client, name="Acme",
                  billing_address={"street": "One very long street name with many other words"})
    strong = create(client, name="Acme", billing_address={"city": "Acme", "street": "Acme"})
    assert [r["id"] for r in client.get("/api/v1/account?q=acme").json()["data"]] == [weak, strong]
    json = {"accept": "application/json"}
    picked = client.get("/e/account/options", params={"q": "acme"}, headers=json).json()["data"]
    assert [r["id"] for r in picked] == [strong, weak]
    found = client.get("/search", params={"q": "acme"}, headers=json).json()["results"]
    accounts = next(r for r in found if r["entity"] == "account")
    assert [r["id"] for r in accounts["records"]] == [strong, weak] and accounts["count"] == 2
    contact = create(client, "contact", name={"last": "Acmeson"}, account=strong)
    found = client.get("/search", params={"q": "acme"}, headers=json).json()["results"]
    assert {r["entity"]: [x["id"] for x in r["records"]] for r in found}["contact"] == [contact]


# --- schema changes keep the index right ------------------------------------------------------------
def searched(engine: sa.Engine, registry: FieldTypeRegistry, entity: str, text: str) -> list[int]:
    """The ids the current revision's search finds, straight from the tables."""
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        definition = metamodel.entity(entity)
        assert definition is not None
        index = fulltext.search_index_of(definition, registry)
        if index is None:
            return []
        table = build_runtime(number, metamodel, registry).tables[entity]
        condition = fulltext.SearchMatch(entity, table, fulltext.words(text, SEARCH_WORDS_MAX))
        return list(conn.execute(sa.select(table.c.id).where(condition).order_by(table.c.id)).scalars())


def index_exists(engine: sa.Engine, entity: str) -> bool:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return sa.inspect(conn).has_table(fulltext.fts_table(entity))
        return conn.execute(sa.text("SELECT count(*) FROM pg_indexes WHERE indexname = :n"),
                            {"n": fulltext.pg_index(f"x_{entity}")}).scalar_one() == 1


def gadget(title: str = "label", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"label": {"type": "text", "required": True},
                            "notes": {"type": "long_text"}, "size": {"type": "integer"}}
    base.update(fields)
    return {"gadget": {"title_field": title, "fields": {k: v for k, v in base.items() if v}}}


def test_schema_changes_keep_the_index_right(engine: sa.Engine, registry: FieldTypeRegistry,
                                             tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "kit", "1.0.0", gadget()))
    assert index_exists(engine, "gadget")
    with engine.begin() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        table = build_runtime(number, metamodel, registry).tables["gadget"]
        now = sa.literal("2026-01-01 00:00:00.000000") if engine.dialect.name == "sqlite" else sa.func.now()
        conn.execute(table.insert().values(label="Sprocket", notes="brass fittings", size=3,
                                           created_at=now, updated_at=now))
        conn.execute(table.insert().values(label="Flange", notes="steel", created_at=now, updated_at=now))
    assert searched(engine, registry, "gadget", "sprock") == [1]
    assert searched(engine, registry, "gadget", "brass") == []  # a long text is not searched

    # The long text becomes a searched text (same column): its existing values are indexed.
    install(engine, registry, write_pack(tmp_path, "kit", "1.1.0", gadget(notes={"type": "text"})))
    assert searched(engine, registry, "gadget", "brass") == [1]
    assert searched(engine, registry, "gadget", "steel flange") == [2]

    # A renamed field keeps its words; a new searched field with a default indexes every row.
    upgrade = write_pack(tmp_path, "kit", "1.2.0", gadget(
        title="name", label=None, name={"type": "text", "required": True, "renamed_from": "label"},
        notes={"type": "text"}, maker={"type": "text", "default": "Cogsworth"}))
    install(engine, registry, upgrade)
    assert searched(engine, registry, "gadget", "sprock") == [1]
    assert searched(engine, registry, "gadget", "cogs") == [1, 2]

    # A retype of a searched field to a number: its values leave the index.
    retyped = write_pack(tmp_path, "kit", "1.3.0", gadget(
        title="name", label=None, name={"type": "text", "required": True},
        notes={"type": "text"}, maker={"type": "text", "default": "Cogsworth"},
        size={"type": "text"}))
    install(engine, registry, retyped)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_gadget SET size = '3 metres' WHERE id = 1"))
    assert searched(engine, registry, "gadget", "metres") == [1]

    # An apply that fails half-way (a value changed after the plan no longer converts)
    # leaves the index as it was, though it had dropped it by then.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_gadget SET size = '3' WHERE id = 1"))
    bad = write_pack(tmp_path, "kit", "1.4.0", gadget(
        title="name", label=None, name={"type": "text", "required": True},
        notes={"type": "long_text"}, maker={"type": "text", "default": "Cogsworth"},
        size={"type": "integer"}))
    installation = plan(engine, registry, bad)
    assert installation.plan.changes[0].action == "drop search index"
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_gadget SET size = '3 metres' WHERE id = 1"))
    with pytest.raises(Exception, match="3 metres"):
        installer.install(engine, installation, author="test")
    assert index_exists(engine, "gadget")
    assert searched(engine, registry, "gadget", "brass metres") == [1]

    # The entity leaves: its index goes; it comes back: every row is indexed again.
    install(engine, registry, write_pack(tmp_path, "kit", "1.5.0", {
        "widget": {"title_field": "label", "fields": {"label": {"type": "text"}}}}))
    assert not index_exists(engine, "gadget") and index_exists(engine, "widget")
    install(engine, registry, write_pack(tmp_path, "kit", "1.6.0", gadget(
        title="name", label=None, name={"type": "text", "required": True},
        notes={"type": "text"}, maker={"type": "text", "default": "Cogsworth"}, size={"type": "text"})))
    assert index_exists(engine, "gadget")
    assert searched(engine, registry, "gadget", "sprock brass cogs metres") == [1]


def index_definition(engine: sa.Engine) -> list[Any]:
    """How the search indexes are defined: SQLite's FTS5 tables and triggers, PostgreSQL's
    trigger functions, triggers and indexes."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return list(conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE name LIKE "
                                             "'slate_search%' ORDER BY name")).all())
        return list(conn.execute(sa.text(
            "SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'slate_search%' UNION ALL "
            "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'slate_search' "
            "UNION ALL SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'fts%' "
            "ORDER BY 1, 2")).all())


def add_gadget(engine: sa.Engine, registry: FieldTypeRegistry, **values: Any) -> int:
    with engine.begin() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        table = build_runtime(number, metamodel, registry).tables["gadget"]
        now = sa.literal("2026-01-01 00:00:00.000000") if engine.dialect.name == "sqlite" else sa.func.now()
        made: int = conn.execute(table.insert().values(created_at=now, updated_at=now, **values)
                                 .returning(table.c.id)).scalar_one()
        return made


def actions(installation: installer.Installation) -> list[str]:
    return [c.action for c in installation.plan.changes if "search" in c.action]


def test_a_new_nullable_searched_field_or_a_rename_keeps_every_index_entry(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "kit", "1.0.0", gadget()))
    sprocket = add_gadget(engine, registry, label="Sprocket", size=3)
    flange = add_gadget(engine, registry, label="Flange")

    # A new nullable text field: the index is redefined, not refilled.
    added = plan(engine, registry, write_pack(tmp_path, "kit", "1.1.0", gadget(maker={"type": "text"})))
    assert actions(added) == ["redefine search index"]
    statements = [s for c in added.plan.changes for s in c.sql]
    assert not [s for s in statements if s.startswith(("INSERT", "UPDATE"))], statements
    redefined = [s.split(" ")[:3] for c in added.plan.changes if c.action == "redefine search index"
                 for s in c.sql]
    triggers = [["CREATE", "TRIGGER", f"slate_search_gadget_{e}"] for e in ("insert", "delete", "update")]
    # SQLite: its triggers made again; PostgreSQL: its trigger function replaced, nothing else.
    assert redefined == ([["DROP", "TRIGGER", "IF"]] * 3 + triggers
                         if engine.dialect.name == "sqlite" else [["CREATE", "OR", "REPLACE"]])
    # A failed apply leaves the index as it was, working.
    before = index_definition(engine)

    def fail(conn: sa.Connection, revision: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        apply(engine, added.plan, source="test", author="test", also=fail)
    assert index_definition(engine) == before
    bolt = add_gadget(engine, registry, label="Bolt")
    assert searched(engine, registry, "gadget", "bolt") == [bolt]

    installer.install(engine, added, author="test")
    assert index_definition(engine) != before
    assert searched(engine, registry, "gadget", "sprock") == [sprocket]  # old entries kept
    cog = add_gadget(engine, registry, label="Gear", maker="Cogsworth")
    assert searched(engine, registry, "gadget", "cogs") == [cog]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_gadget SET maker = 'Cogsworth Ltd' WHERE id = :i"), {"i": flange})
        conn.execute(sa.text("UPDATE x_gadget SET label = 'Washer' WHERE id = :i"), {"i": bolt})
    assert searched(engine, registry, "gadget", "cogs") == [flange, cog]
    assert searched(engine, registry, "gadget", "flange cogs ltd") == [flange]
    assert searched(engine, registry, "gadget", "bolt") == [] and searched(
        engine, registry, "gadget", "washer") == [bolt]

    # A rename: the same words, the index follows the new name.
    renamed = plan(engine, registry, write_pack(tmp_path, "kit", "1.2.0", gadget(
        title="name", label=None, name={"type": "text", "required": True, "renamed_from": "label"},
        maker={"type": "text"})))
    expected = ["redefine search index"] if engine.dialect.name == "sqlite" else [
        "suspend search index", "redefine search index"]
    assert actions(renamed) == expected
    installer.install(engine, renamed, author="test")
    assert searched(engine, registry, "gadget", "sprock") == [sprocket]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_gadget SET name = 'Sprung' WHERE id = :i"), {"i": sprocket})
        conn.execute(sa.text("DELETE FROM x_gadget WHERE id = :i"), {"i": cog})
    assert searched(engine, registry, "gadget", "sprock") == [] and searched(
        engine, registry, "gadget", "sprung") == [sprocket]
    assert searched(engine, registry, "gadget", "cogs") == [flange]

    # A searched field removed: its words leave, which rebuilds the index.
    removed = plan(engine, registry, write_pack(tmp_path, "kit", "1.3.0", gadget(
        title="name", label=None, name={"type": "text", "required": True})))
    assert actions(removed) == ["drop search index", "add search index"]
    installer.install(engine, removed, author="test")
    assert searched(engine, registry, "gadget", "cogs") == []
    assert searched(engine, registry, "gadget", "flange") == [flange]


def test_an_index_in_the_earlier_layout_is_rebuilt_by_the_next_plan(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    """A database whose index was made by SlateCRM before issue 11 (one FTS5 column per
    field; PostgreSQL's expression index) gets the current layout from its next plan."""
    kit = write_pack(tmp_path, "kit", "1.0.0", gadget(maker={"type": "text"}))
    install(engine, registry, kit)
    sprocket = add_gadget(engine, registry, label="Sprocket", maker="Cogsworth")
    with engine.begin() as conn:
        _, metamodel = revisions.current_metamodel(conn)
        definition = metamodel.entity("gadget")
        assert definition is not None
        index = fulltext.search_index_of(definition, registry)
        assert index is not None
        ops = Operations(MigrationContext.configure(conn))
        fulltext.drop_index(index, engine.dialect.name)(ops)
        if engine.dialect.name == "sqlite":
            conn.execute(sa.text("CREATE VIRTUAL TABLE slate_search_gadget USING fts5(c0, c1, content='', "
                                 "tokenize='unicode61 remove_diacritics 2', prefix='2 3')"))
            conn.execute(sa.text("INSERT INTO slate_search_gadget (rowid, c0, c1) "
                                 "SELECT id, label, maker FROM x_gadget"))
        else:
            conn.execute(sa.text("CREATE INDEX fts_x_gadget ON x_gadget USING gin ((to_tsvector('simple', "
                                 "coalesce(label, '') || ' ' || coalesce(maker, ''))))"))
        assert fulltext.outdated(conn, [index]) == {"gadget"}
    # A server refuses such a database, naming the command that upgrades it (no 500 later).
    with pytest.raises(upgrades.OutdatedDatabase, match=r"made by an older SlateCRM .*search index of "
                       r"gadget.*run `slatecrm init --database "):
        create_app(engine, make_plugin_manager())
    url = engine.url.render_as_string(hide_password=False)
    served = CliRunner().invoke(main, ["serve", "--database", url], catch_exceptions=False)
    assert served.exit_code != 0 and "slatecrm init --database" in served.output, served.output
    again = plan(engine, registry, kit)
    assert actions(again) == ["drop search index", "add search index"]
    installer.install(engine, again, author="test")
    with engine.connect() as conn:
        assert fulltext.outdated(conn, [index]) == set()
        assert upgrades.outdated_parts(conn, registry) == []
    assert searched(engine, registry, "gadget", "sprock cogs") == [sprocket]
    later = add_gadget(engine, registry, label="Gear", maker="Cogsworth")
    assert searched(engine, registry, "gadget", "cogs") == [sprocket, later]


# --- starts_with ------------------------------------------------------------------------------------
def test_starts_with_is_case_sensitive_on_both_databases_and_uses_the_index_on_sqlite(
        client: TestClient, engine: sa.Engine) -> None:
    for name in ("Acme", "Acmf", "acme", "Ac", "Acme\U0010ffff", "Zeta"):
        create(client, name=name)

    def starting(prefix: str) -> list[str]:
        body = client.get("/api/v1/account", params={"filter": f'name starts_with "{prefix}"'}).json()
        return [r["name"] for r in body["data"]]

    assert starting("Acm") == ["Acme", "Acmf", "Acme\U0010ffff"]
    assert starting("Acme") == ["Acme", "Acme\U0010ffff"]
    assert starting("acm") == ["acme"]
    assert starting("Acme\U0010ffff") == ["Acme\U0010ffff"]
    if engine.dialect.name != "sqlite":
        return
    seen: list[tuple[str, Any]] = []
    app_engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "starts" not in statement and "substr" in statement:
            seen.append((statement, parameters))

    sa.event.listen(app_engine, "before_cursor_execute", keep)
    try:
        assert starting("Acm") == ["Acme", "Acmf", "Acme\U0010ffff"]
    finally:
        sa.event.remove(app_engine, "before_cursor_execute", keep)
    statement, parameters = seen[0]
    with app_engine.connect() as conn:
        plan_rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    assert any("ix_x_account_name" in str(row) for row in plan_rows), plan_rows


def test_a_database_with_older_system_tables_is_refused_until_init(engine: sa.Engine) -> None:
    """System tables an older SlateCRM made (slate_user without the columns added since):
    the app refuses to start, naming them; `slatecrm init`'s upgrade makes it start."""
    old = sa.MetaData()
    sa.Table("slate_user", old, sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
             sa.Column("username", sa.String, nullable=False, unique=True),
             sa.Column("display_name", sa.String, nullable=False),
             sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))
    for table in system_metadata.sorted_tables:
        if table.name != "slate_user":
            table.to_metadata(old)
    with engine.begin() as conn:
        old.create_all(conn)
        assert any("slate_user lacks email" in part for part in upgrades.outdated_parts(conn, field_types(
            make_plugin_manager())))
    with pytest.raises(upgrades.OutdatedDatabase, match=r"older SlateCRM .*slate_user lacks email"):
        create_app(engine, make_plugin_manager())
    installer.create_system_tables(engine)  # what `slatecrm init` runs
    create_app(engine, make_plugin_manager())
