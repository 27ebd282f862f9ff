"""An entity's `default_sort`, on SQLite and PostgreSQL: checked at install (file:line),
followed by the API list, its cursor pages and the list page when a request gives no sort,
overruled by an explicit `sort`, and shown in a plan as a change without DDL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import Entity, Metamodel, SortOrder

from .defaults import make_app, signed_in
from .packs import install, plan, write_files_pack

DEAL = """\
    kind: entity
    name: deal
    title_field: name
    default_sort: {sort}
    fields:
      name: {{type: text, required: true}}
      close_date: {{type: date}}
      notes: {{type: long_text}}
      tags: {{type: multi_choice, options: [{{key: hot}}, {{key: cold}}]}}
"""

#: (name, close_date): two share a date (name breaks the tie), two have none.
DEALS = [("Delta", "2026-03-01"), ("Alpha", "2026-05-01"), ("Echo", None), ("Bravo", "2026-03-01"),
         ("Charlie", None), ("Foxtrot", "2026-01-15")]


def deal_pack(root: Path, sort: str, version: str = "1.0.0") -> Path:
    return write_files_pack(root / version, {"entities/deal.yaml": DEAL.format(sort=sort)},
                            name="deals", version=version, requires={})


def problems(engine: sa.Engine, registry: FieldTypeRegistry, pack: Path) -> list[str]:
    with pytest.raises(DefinitionError) as error:
        install(engine, registry, pack)
    return [str(p) for p in error.value.problems]


@pytest.fixture
def http(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Any:
    install(engine, registry, deal_pack(tmp_path, "[-close_date, name]"))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as client:
        for name, close in DEALS:
            made = client.post("/api/v1/deal", json={"name": name, "close_date": close})
            assert made.status_code == 201, made.text
        yield client
    app.state.engine.dispose()


def names(client: TestClient, query: str = "") -> list[str]:
    response = client.get(f"/api/v1/deal{query}")
    assert response.status_code == 200, response.text
    return [r["name"] for r in response.json()["data"]]


def test_an_unknown_field_is_refused_at_its_line_with_a_suggestion(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    found = problems(engine, registry, deal_pack(tmp_path, "[-close_dat, name]"))
    assert len(found) == 1, found
    assert "entities/deal.yaml:4:" in found[0]
    assert "default_sort: 'deal' has no field 'close_dat'" in found[0] and "close_date" in found[0]


def test_a_field_of_several_options_is_refused_as_a_sort_is(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    found = problems(engine, registry, deal_pack(tmp_path, "[tags]"))
    assert len(found) == 1 and "entities/deal.yaml:4:" in found[0], found
    assert "'tags' holds several options and cannot be sorted on" in found[0]


def test_system_fields_and_long_text_are_accepted(engine: sa.Engine, registry: FieldTypeRegistry,
                                                  tmp_path: Path) -> None:
    """What a request's `sort` accepts, default_sort accepts: long text sorts too."""
    assert install(engine, registry, deal_pack(tmp_path, "[-updated_at, notes, id]")) >= 1


def test_a_list_without_sort_follows_the_default(http: TestClient, engine: sa.Engine) -> None:
    dated = ["Alpha", "Bravo", "Delta", "Foxtrot"]  # close date descending, then name
    blanks = ["Charlie", "Echo"]  # no close date: ordered by name among themselves
    # Blanks go where an explicit sort puts them: where the database's index keeps them.
    expected = blanks + dated if engine.dialect.name == "postgresql" else dated + blanks
    assert names(http) == expected
    assert names(http, "?sort=-close_date,name") == expected
    assert names(http, "?sort=name") == sorted(n for n, _ in DEALS)  # an explicit sort wins
    assert names(http, "?sort=-id") == [n for n, _ in reversed(DEALS)]


def test_paging_with_the_default_returns_each_record_once_in_order(http: TestClient) -> None:
    whole = names(http, "?sort=-close_date,name")
    assert whole != [n for n, _ in DEALS]  # not the id order the list had without a default
    seen: list[str] = []
    url: str | None = "/api/v1/deal?limit=2"
    while url:
        page = http.get(url)
        assert page.status_code == 200, page.text
        seen += [r["name"] for r in page.json()["data"]]
        url = page.json()["next"]
    assert seen == whole and len(seen) == len(DEALS)


def test_the_list_page_shows_the_default_order(http: TestClient, engine: sa.Engine) -> None:
    page = http.get("/e/deal")
    assert page.status_code == 200, page.text
    places = [page.text.index(f">{name}<") for name in names(http)]
    assert places == sorted(places)
    assert 'aria-sort="descending"' in page.text  # close date, the default's first key
    explicit = http.get("/e/deal?sort=name")
    by_name = [explicit.text.index(f">{name}<") for name in sorted(n for n, _ in DEALS)]
    assert by_name == sorted(by_name)


def test_the_openapi_sort_parameter_names_the_default(http: TestClient) -> None:
    spec = http.get("/api/v1/openapi.json").json()
    parameters = spec["paths"]["/api/v1/deal"]["get"]["parameters"]
    sort = next(p for p in parameters if p["name"] == "sort")
    assert "without it: -close_date,name, then id" in sort["description"]


def test_a_plan_changing_the_default_shows_it_and_runs_no_ddl(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, deal_pack(tmp_path, "[-close_date, name]"))
    changed = plan(engine, registry, deal_pack(tmp_path, "[name]", "1.1.0")).plan
    assert [(c.action, c.entity, c.summary) for c in changed.changes] == [
        ("change entity", "deal", "default sort of deal: -close_date, name → name "
                                  "(lists only; no schema change)")]
    assert not changed.schema_changes and not any(c.sql for c in changed.changes)


def test_an_extension_replaces_the_default(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
                                          tmp_path: Path) -> None:
    extension = write_files_pack(tmp_path, {"entities/deal.yaml": """\
        kind: extension
        entity: deal
        default_sort: [-name]
    """}, name="deal-order", requires={"deals": "^1.0.0"})
    install(engine, registry, deal_pack(tmp_path, "[-close_date, name]"), extension)
    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as client:
            for name, close in DEALS:
                made = client.post("/api/v1/deal", json={"name": name, "close_date": close})
                assert made.status_code == 201, made.text
            assert names(client) == sorted((n for n, _ in DEALS), reverse=True)
    finally:
        app.state.engine.dispose()


def test_stored_with_the_revision_only_when_given() -> None:
    """A revision without a default_sort is stored exactly as before (format 5 unchanged)."""
    plain = Entity(name="deal", label="Deal", label_plural="Deals")
    ordered = Metamodel(entities=(Entity(name="deal", label="Deal", label_plural="Deals",
                                         default_sort=SortOrder(("-close_date", "name"), "deals")),))
    assert "default_sort" not in Metamodel(entities=(plain,)).as_dict()["entities"][0]
    stored = ordered.as_dict()
    assert stored["entities"][0]["default_sort"]["keys"] == ["-close_date", "name"]
    assert Metamodel.from_dict(stored) == ordered


TICKET = """\
    kind: entity
    name: ticket
    title_field: name
    default_sort: [name]
    fields:
      name: {type: text, required: true}
    pipelines:
      flow:
        field: state
        stages:
          - {key: open}
          - {key: done}
"""


def test_a_board_follows_the_default_and_an_explicit_sort_wins(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    """Without a default_sort a board shows the latest changed first; with one, its order."""
    install(engine, registry, write_files_pack(tmp_path, {"entities/ticket.yaml": TICKET},
                                               name="tickets", requires={}))
    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as client:
            for name in ("Bravo", "Charlie", "Alpha"):
                assert client.post("/api/v1/ticket", json={"name": name}).status_code == 201

            def column(query: str = "") -> list[str]:
                board = client.get(f"/e/ticket/board/flow.json{query}").json()
                return [r["name"] for r in board["columns"][0]["records"]]

            assert column() == ["Alpha", "Bravo", "Charlie"]
            assert column("?sort=-name") == ["Charlie", "Bravo", "Alpha"]
    finally:
        app.state.engine.dispose()
