"""The `rating` field type (1 to `max`, default 5) in every layer, on SQLite and PostgreSQL:
pack validation, plan / apply / retype, the API, the form and the pages, the rule language
(SQL and Python agree), CSV export and the OpenAPI document."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.rules import RuleContext, check, compile_python
from slatecrm.platform import installer
from slatecrm.platform.cli import main
from slatecrm.platform.records.compiled import compile_entities
from slatecrm.platform.records.rulesql import SqlCompiler
from slatecrm.platform.storage import revisions
from slatecrm.platform.storage.runtime import build_runtime

from .defaults import make_app, signed_in
from .packs import install, plan, write_files_pack, write_pack
from .rules.strategies import NOW


def review(**fields: Any) -> dict[str, Any]:
    """A review entity: a title, a rating `score` and a ten-star `depth`, and `fields` over them."""
    return {"label": "Review", "label_plural": "Reviews", "title_field": "title",
            "fields": {"title": {"type": "text", "required": True},
                       "score": {"type": "rating", "label": "Score"},
                       "depth": {"type": "rating", "max": 10},
                       **fields}}


def reviews_pack(root: Path, version: str = "1.0.0", **fields: Any) -> Path:
    return write_pack(root, "critics", version, {"review": review(**fields)})


# --- pack validation ------------------------------------------------------------------------
BAD_SETTINGS = """\
kind: entity
name: review
fields:
  title:
    type: text
  score:
    type: rating
    max: 12
  depth:
    type: rating
    min: 0
  tiny:
    type: rating
    max: two
"""


def test_bad_settings_are_refused_at_their_file_and_line(tmp_path: Path) -> None:
    pack = write_files_pack(tmp_path, {"entities/review.yaml": BAD_SETTINGS}, name="critics", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    where = "entities/review.yaml"
    assert f"{where}:8:10: fields.score.max: 12 is greater than the maximum of 10" in result.output
    assert f"{where}:11:5: fields.depth.min: unknown key 'min'" in result.output  # not a rating's
    assert f"{where}:14:10: fields.tiny.max: expected a whole number, got text 'two'" in result.output


def test_good_settings_validate(tmp_path: Path) -> None:
    pack = reviews_pack(tmp_path)
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


# --- plan, apply, retype -------------------------------------------------------------------
def insert(engine: sa.Engine, registry: FieldTypeRegistry, entity: str, values: list[dict[str, Any]]) -> None:
    """Rows written straight into the current revision's table (as an older version left them)."""
    with engine.begin() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        table = build_runtime(number, metamodel, registry).tables[entity]
        conn.execute(table.insert(), [{"created_at": NOW, "updated_at": NOW, **v} for v in values])


def column_values(engine: sa.Engine, column: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(f"SELECT {column} FROM x_review ORDER BY id")).scalars())


def test_install_makes_a_small_integer_column(engine: sa.Engine, registry: FieldTypeRegistry,
                                             tmp_path: Path) -> None:
    installation = plan(engine, registry, reviews_pack(tmp_path))
    assert not installation.plan.blocked
    installer.install(engine, installation, author="test")
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("x_review")}
    assert isinstance(columns["score"], sa.SmallInteger) and isinstance(columns["depth"], sa.SmallInteger)


def test_retype_integer_to_rating_reports_values_out_of_range(engine: sa.Engine, registry: FieldTypeRegistry,
                                                              tmp_path: Path) -> None:
    install(engine, registry, reviews_pack(tmp_path, votes={"type": "integer"}))
    insert(engine, registry, "review", [{"title": f"R{i}", "votes": v} for i, v in
                                        enumerate([4, 7, None, 0, 5], start=1)])
    refused = plan(engine, registry, reviews_pack(tmp_path, "2.0.0", votes={"type": "rating"}))
    assert refused.plan.blocked
    change = next(c for c in refused.plan.changes if c.action == "retype column")
    [risk] = change.risks
    assert risk.blocking
    assert risk.message.startswith("retype votes integer → rating: 2 of 4 rows do not convert")
    assert "7 is not a rating from 1 to 5" in risk.message and risk.message.endswith("ids 2, 4")
    with pytest.raises(Exception):  # noqa: B017 - apply re-checks every value itself
        installer.install(engine, refused, author="test")
    assert column_values(engine, "votes") == [4, 7, None, 0, 5]  # nothing changed

    # Out of range for five stars, within ten: the retype goes through and keeps every value.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_review SET votes = 1 WHERE votes = 0"))
    install(engine, registry, reviews_pack(tmp_path, "4.0.0", votes={"type": "rating", "max": 10}))
    assert column_values(engine, "votes") == [4, 7, None, 1, 5]

    # Lowering max keeps the column: values it no longer allows are reported, not lost.
    lowered = plan(engine, registry, reviews_pack(tmp_path, "5.0.0", votes={"type": "rating"}))
    [change] = [c for c in lowered.plan.changes if c.field == "votes"]
    assert change.action == "change field" and not lowered.plan.blocked
    assert change.risks[0].message.startswith("votes: 1 of 4 rows hold values the new definition refuses")

    # rating → integer is always safe.
    install(engine, registry, reviews_pack(tmp_path, "6.0.0", votes={"type": "integer"}))
    assert column_values(engine, "votes") == [4, 7, None, 1, 5]


# --- API, forms, pages, CSV, OpenAPI --------------------------------------------------------
@pytest.fixture
def critics(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
            tmp_path: Path) -> Iterator[TestClient]:
    install(engine, registry, reviews_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def make(client: TestClient, **values: object) -> int:
    response = client.post("/api/v1/review", json=values)
    assert response.status_code == 201, response.text
    made: int = response.json()["id"]
    return made


def patch(client: TestClient, record: int, **values: object) -> Any:
    """A PATCH of the record's current version."""
    version = client.get(f"/api/v1/review/{record}").json()["version"]
    return client.patch(f"/api/v1/review/{record}", json={**values, "version": version})


def test_api_round_trip_and_refusals_name_the_field(critics: TestClient) -> None:
    made = make(critics, title="Dune", score=4)
    assert critics.get(f"/api/v1/review/{made}").json()["score"] == 4
    changed = patch(critics, made, score="2", depth=10)
    assert changed.status_code == 200, changed.text
    record = critics.get(f"/api/v1/review/{made}").json()
    assert (record["score"], record["depth"]) == (2, 10)
    assert patch(critics, made, score=None).json()["score"] is None
    for bad, message in ((0, "0 is not a rating from 1 to 5"), (6, "6 is not a rating from 1 to 5"),
                         ("x", "'x' is not a whole number"), (2.5, "2.5 is not a whole number")):
        refused = critics.post("/api/v1/review", json={"title": "Bad", "score": bad})
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"]["score"] and message in refused.json()["errors"]["score"][0]
        patched = patch(critics, made, score=bad)
        assert patched.status_code == 422 and message in patched.json()["errors"]["score"][0]
    assert critics.get(f"/api/v1/review/{made}").json()["score"] is None  # nothing refused was kept
    deep = critics.post("/api/v1/review", json={"title": "Deep", "depth": 11})
    assert deep.status_code == 422 and "11 is not a rating from 1 to 10" in deep.json()["errors"]["depth"][0]


@pytest.mark.parametrize("value", [True, 2**70, -(2**70), 40_000, "1e400", "NaN", "３", [3], {"n": 3},
                                   3.0001], ids=repr)
def test_hostile_values_are_refused_never_a_server_error(critics: TestClient, value: object) -> None:
    """A value no small integer column could hold never reaches the database."""
    refused = critics.post("/api/v1/review", json={"title": "Odd", "score": value})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"]["score"]
    listed = critics.get("/api/v1/review", params={"score__gte": str(value)})
    assert 400 <= listed.status_code < 500, listed.text


def test_openapi_describes_an_integer_with_its_bounds(critics: TestClient) -> None:
    schemas = critics.get("/api/v1/openapi.json").json()["components"]["schemas"]
    for name in ("Review", "ReviewInput", "ReviewPatch"):  # what the API gives and takes
        properties = schemas[name]["properties"]
        assert properties["score"] == {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 5},
                                                 {"type": "null"}], "title": "Score"}
        assert {"type": "integer", "minimum": 1, "maximum": 10} in properties["depth"]["anyOf"]


def test_form_widget_saves_and_pages_show_stars(critics: TestClient) -> None:
    form = critics.get("/e/review/new").text
    assert 'class="choices rating-input"' in form
    assert form.count('type="radio" name="score"') == 6  # none and 1..5
    assert form.count('type="radio" name="depth"') == 11
    assert 'aria-label="3 of 5"' in form
    made = critics.post("/e/review/new", data={"title": "Emma", "score": "3"}, follow_redirects=False)
    assert made.status_code == 303, made.text
    page = critics.get(made.headers["location"]).text
    assert 'aria-label="3 of 5"' in page and "★★★☆☆" in page
    listed = critics.get("/e/review").text
    assert "★★★☆☆" in listed and 'role="img" aria-label="3 of 5"' in listed
    edit = critics.get(made.headers["location"] + "/edit").text
    assert 'value="3" aria-label="3 of 5" checked' in edit
    refused = critics.post("/e/review/new", data={"title": "Bad", "score": "9"})
    assert refused.status_code == 422 and "9 is not a rating from 1 to 5" in refused.text


def test_csv_export_shows_the_number(critics: TestClient) -> None:
    make(critics, title="Beloved", score=5, depth=7)
    make(critics, title="Carrie")
    rows = list(csv.reader(io.StringIO(critics.get("/e/review/export.csv?sort=title").text)))
    assert rows[0] == ["id", "Title", "Score", "Depth"]
    assert [r[1:] for r in rows[1:]] == [["Beloved", "5", "7"], ["Carrie", "", ""]]


def test_list_filters_by_rule_and_by_value(critics: TestClient) -> None:
    high, blank = make(critics, title="A", score=5), make(critics, title="B")
    low = make(critics, title="C", score=2)

    def ids(**params: str) -> list[int]:
        response = critics.get("/api/v1/review", params=params)
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json()["data"])
    assert ids(filter="score >= 4") == [high]
    assert ids(filter="score < 4 or score is blank") == sorted([low, blank])
    assert ids(score="2") == [low]


# --- the rule language: SQL and Python agree ------------------------------------------------
CONTEXT = RuleContext(now=NOW, user_id=1, user_roles=("sales",))
ratings = st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=1, max_size=12)
comparisons = st.tuples(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), st.integers(0, 6))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scores=ratings, comparison=comparisons, negate=st.booleans())
def test_rule_filters_select_the_same_records_in_sql_and_python(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path_factory: pytest.TempPathFactory,
        scores: list[int | None], comparison: tuple[str, int], negate: bool) -> None:
    if not sa.inspect(engine).has_table("x_review"):  # once per database, not per example
        install(engine, registry, reviews_pack(tmp_path_factory.mktemp("critics")))
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
    runtime = build_runtime(number, metamodel, registry)
    entity = compile_entities(metamodel.entities, runtime.tables, registry)["review"]
    with engine.begin() as conn:
        conn.execute(entity.table.delete())
        conn.execute(entity.table.insert(), [
            {"id": i, "created_at": NOW, "updated_at": NOW, "version": 1,
             **entity.fields["title"].to_row(f"R{i}"), **entity.fields["score"].to_row(score)}
            for i, score in enumerate(scores, start=1)])
    operator, threshold = comparison
    text = f"{'not ' if negate else ''}score {operator} {threshold}"
    checked = check(text, metamodel, "review")
    closure = compile_python(checked.typed)
    with engine.connect() as conn:
        records = [{"id": r["id"], **{n: f.from_row(r) for n, f in entity.fields.items()}}
                   for r in conn.execute(entity.select.order_by(entity.table.c.id)).mappings()]
        where = SqlCompiler(runtime.tables, engine.dialect.name, registry).condition(checked.typed, "review")
        in_sql = set(conn.execute(sa.select(entity.table.c.id).where(where(CONTEXT))).scalars())
    in_python = {r["id"] for r in records if closure(r, CONTEXT) is True}
    assert in_python == in_sql, f"{text}: Python {sorted(in_python)}, SQL {sorted(in_sql)}"
    expected = {i for i, s in enumerate(scores, start=1) if s is not None and s >= 4}
    if (operator, threshold, negate) == (">=", 4, False):
        assert in_sql == expected
