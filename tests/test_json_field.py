"""The `json` field type in every layer, on SQLite and PostgreSQL: the schema checked at
install (file:line), plan / apply / retype (text → json), the API (objects and lists round
trip, errors naming the place inside the value, hostile values), the form (a textarea of
JSON), the page (indented JSON), rules (`is blank` only: SQL and Python agree), CSV
export (compact JSON) and the OpenAPI document (the field's own schema)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.rules import RuleContext, RuleError, check, compile_python
from slatecrm.platform.cli import main
from slatecrm.platform.records.compiled import compile_entities
from slatecrm.platform.records.rulesql import SqlCompiler
from slatecrm.platform.storage import revisions
from slatecrm.platform.storage.runtime import build_runtime

from .packs import install, plan, write_files_pack
from .rules.strategies import NOW
from .text_types_pack import SPECS_SCHEMA, articles_pack, column_values, insert, make, patch, press

__all__ = ["press"]

BAD_SETTINGS = """\
kind: entity
name: article
fields:
  title:
    type: text
  specs:
    type: json
    schema:
      type: objekt
  more:
    type: json
    schema:
      type: object
      properties:
        size:
          minimum: ten
"""


def test_a_bad_schema_is_refused_at_its_file_and_line(tmp_path: Path) -> None:
    pack = write_files_pack(tmp_path, {"entities/article.yaml": BAD_SETTINGS}, name="press", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    where = "entities/article.yaml"
    assert (
        f"{where}:6:3: fields.specs: schema.type: not a valid JSON Schema (Draft 2020-12): "
        "'objekt' is not valid under any of the given schemas" in result.output
    )
    assert (
        f"{where}:10:3: fields.more: schema.properties.size.minimum: not a valid JSON Schema "
        "(Draft 2020-12): 'ten' is not of type 'number'" in result.output
    )


def test_a_schema_that_is_no_object_is_refused_at_its_line(tmp_path: Path) -> None:
    text = (
        "kind: entity\nname: article\nfields:\n  title:\n    type: text\n  extra:\n    type: json\n"
        "    schema: an object\n"
    )
    pack = write_files_pack(tmp_path, {"entities/article.yaml": text}, name="press", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert (
        "entities/article.yaml:8:13: fields.extra.schema: expected a mapping or true or false, "
        "got text 'an object'" in result.output
    )


def test_good_settings_validate(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["pack", "validate", str(articles_pack(tmp_path))], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output


def test_install_makes_a_json_column_and_retypes_text_holding_json(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    install(engine, registry, articles_pack(tmp_path, extra={"type": "long_text"}))
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("x_article")}
    assert type(columns["specs"]).__name__ == ("JSONB" if engine.dialect.name == "postgresql" else "JSON")
    insert(
        engine,
        registry,
        [
            {"title": "A", "extra": '{"size": 2}'},
            {"title": "B", "extra": None},
            {"title": "C", "extra": "not json"},
            {"title": "D", "extra": '{"size": 0}'},
        ],
    )
    schema = {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}}
    refused = plan(
        engine, registry, articles_pack(tmp_path, "2.0.0", extra={"type": "json", "schema": schema})
    )
    assert refused.plan.blocked
    [risk] = next(c for c in refused.plan.changes if c.field == "extra").risks
    assert risk.message.startswith(
        "retype extra long_text → json: 2 of 3 rows do not convert (id 3: is not "
        "JSON: Expecting value at line 1 column 1)"
    )
    assert risk.message.endswith("ids 3, 4")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_article SET extra = '[1, 2]' WHERE id = 3"))
        conn.execute(sa.text("UPDATE x_article SET extra = NULL WHERE id = 4"))
    install(engine, registry, articles_pack(tmp_path, "3.0.0", extra={"type": "json"}))
    app_values = [
        None if v is None else (json.loads(v) if isinstance(v, str) else v)
        for v in column_values(engine, "extra")
    ]
    assert app_values == [{"size": 2}, None, [1, 2], None]
    # A stricter schema reports the stored values it refuses; they are kept.
    stricter = plan(
        engine, registry, articles_pack(tmp_path, "4.0.0", extra={"type": "json", "schema": schema})
    )
    [change] = [c for c in stricter.plan.changes if c.field == "extra"]
    assert not stricter.plan.blocked and change.action == "change field"
    assert change.risks[0].message.startswith(
        "extra: 1 of 2 rows hold values the new definition refuses "
        "(id 3: at $: [1, 2] is not of type 'object')"
    )


def test_api_round_trip_and_errors_name_the_place(press: TestClient) -> None:
    value = {"size": 3, "colours": ["red", "blue"], "dimensions": {"width": 2.5}}
    made = make(press, specs=value)
    assert press.get(f"/api/v1/article/{made}").json()["specs"] == value
    for bad, message in (
        ({"size": 0}, "at $.size: 0 is less than the minimum of 1"),
        ({"size": 1, "colours": ["x" * 21]}, "at $.colours[0]: 'xxxxxxxxxxxxxxxxxxxxx' is too long"),
        (
            {"size": 1, "dimensions": {"width": "wide"}},
            "at $.dimensions.width: 'wide' is not of type 'number'",
        ),
        ({"colours": []}, "at $: 'size' is a required property"),
        ([1, 2], "at $: [1, 2] is not of type 'object'"),
        ({"size": 1, "other": True}, "Additional properties are not allowed ('other' was"),
    ):
        refused = patch(press, made, specs=bad)
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["errors"]["specs"][0]
    assert press.get(f"/api/v1/article/{made}").json()["specs"] == value  # nothing refused was kept
    assert patch(press, made, specs=None).json()["specs"] is None


def test_without_a_schema_any_json_value_round_trips(
    engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    from .defaults import make_app, signed_in

    install(engine, registry, articles_pack(tmp_path, anything={"type": "json"}))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        for value in ([1, "two", {"three": [3.5, None, True]}], "text", 42, {"": {"a": []}}, [], {}, 2**70):
            made = make(http, anything=value)
            assert http.get(f"/api/v1/article/{made}").json()["anything"] == value, value
    app.state.engine.dispose()


@pytest.mark.parametrize(
    "body",
    [
        b'{"title": "x", "specs": {"size": 1, "colours": ["\\u0000"]}}',
        b'{"title": "x", "specs": {"size": 1e400}}',
        b'{"title": "x", "specs": ' + b"[" * 40 + b"]" * 40 + b"}",
        b'{"title": "x", "specs": {"size": 1, "colours": ["' + b"x" * 200_000 + b'"]}}',
        b'{"title": "x", "specs": {"size": 1' + b"0" * 5000 + b"}}",
        b'{"title": "x", "specs": "{\\"size\\": 1}"}',
    ],
    ids=["nul", "huge-float", "deep", "long", "huge-int", "a-string"],
)
def test_hostile_values_are_refused_never_a_server_error(press: TestClient, body: bytes) -> None:
    refused = press.post("/api/v1/article", content=body, headers={"content-type": "application/json"})
    assert refused.status_code in (400, 413, 422), refused.text
    if refused.status_code == 422:
        assert refused.json()["errors"]["specs"]


def test_form_takes_json_text_and_the_page_shows_it_indented(press: TestClient) -> None:
    form = press.get("/e/article/new").text
    assert 'class="json-input"' in form
    made = press.post(
        "/e/article/new",
        data={"title": "A", "_fields": ["title", "specs"], "specs": '{"size": 2, "colours": ["red"]}'},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    page = press.get(made.headers["location"]).text
    assert (
        '<pre class="json-value">{\n  &#34;size&#34;: 2,\n  &#34;colours&#34;: [\n    &#34;red&#34;' in page
    )
    edit = press.get(made.headers["location"] + "/edit").text
    assert "{\n  &#34;size&#34;: 2," in edit
    for text, message in (
        (
            '{"size": 2,}',
            "is not JSON: Expecting property name enclosed in double quotes at line 1 column 12",
        ),
        ('{"size": "2"}', "at $.size: &#39;2&#39; is not of type &#39;integer&#39;"),
        ("NaN", "is not JSON: NaN is not a JSON number"),
    ):
        refused = press.post(
            "/e/article/new", data={"title": "B", "_fields": ["title", "specs"], "specs": text}
        )
        assert refused.status_code == 422, refused.text
        assert message in refused.text


def test_a_bulk_set_reads_the_typed_text_as_json(press: TestClient) -> None:
    first, second = make(press, title="A"), make(press, title="B")
    done = press.post(
        "/e/article/bulk",
        data={"ids": [str(first), str(second)], "action": "set", "field": "specs", "value": '{"size": 5}'},
    )
    assert done.status_code == 200, done.text
    assert [press.get(f"/api/v1/article/{i}").json()["specs"] for i in (first, second)] == [{"size": 5}] * 2
    refused = press.post(
        "/e/article/bulk",
        data={"ids": [str(first)], "action": "set", "field": "specs", "value": '{"size": -1}'},
    )
    assert "at $.size: -1 is less than the minimum of 1" in refused.text


def test_csv_export_gives_compact_json(press: TestClient) -> None:
    make(press, title="A", specs={"size": 2, "colours": ["red", "é"]})
    make(press, title="B")
    rows = list(csv.reader(io.StringIO(press.get("/e/article/export.csv?sort=title").text)))
    specs = rows[0].index("Specs")
    assert [r[specs] for r in rows[1:]] == ['{"size":2,"colours":["red","é"]}', ""]


def test_openapi_gives_the_fields_schema(press: TestClient) -> None:
    document = press.get("/api/v1/openapi.json").json()
    validate(document)  # the document holding the three new types is a valid OpenAPI 3.1 one
    schemas = document["components"]["schemas"]
    for name in ("Article", "ArticleInput", "ArticlePatch"):
        assert SPECS_SCHEMA in schemas[name]["properties"]["specs"]["anyOf"]
    parameters = press.get("/api/v1/openapi.json").json()["paths"]["/api/v1/article"]["get"]["parameters"]
    assert "specs" not in {p["name"] for p in parameters}  # neither filtered nor sorted by value
    assert press.get("/api/v1/article", params={"sort": "specs"}).status_code == 400


def test_a_schema_with_references_checks_values_and_is_described_in_words(press: TestClient) -> None:
    made = make(press, parts=["wheel", "axle"])
    assert press.get(f"/api/v1/article/{made}").json()["parts"] == ["wheel", "axle"]
    refused = patch(press, made, parts=["wheel", 7])
    assert refused.status_code == 422
    assert refused.json()["errors"]["parts"] == ["at $[1]: 7 is not of type 'string'"]
    schemas = press.get("/api/v1/openapi.json").json()["components"]["schemas"]
    assert {"description": "a JSON value valid against the field's JSON Schema"} in schemas["ArticleInput"][
        "properties"
    ]["parts"]["anyOf"]


def test_rules_only_test_blank(press: TestClient) -> None:
    with_specs = make(press, specs={"size": 1})
    without = make(press)

    def ids(rule: str) -> list[int]:
        response = press.get("/api/v1/article", params={"filter": rule})
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json()["data"])

    assert ids("specs is blank") == [without]
    assert ids("specs is not blank") == [with_specs]
    for rule in ('specs = "x"', 'specs contains "x"', "specs in (1, 2)"):
        refused = press.get("/api/v1/article", params={"filter": rule})
        assert refused.status_code == 400, refused.text


CONTEXT = RuleContext(now=NOW, user_id=1, user_roles=("sales",))
#: Texts a JSON value may hold (NUL is refused, and tested apart).
TEXT = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(TEXT, max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(TEXT, max_size=2), inner, max_size=2),
    max_leaves=5,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    stored=st.lists(
        st.one_of(st.none(), json_values),
        min_size=1,
        max_size=8,
    ),
    negated=st.booleans(),
)
def test_is_blank_selects_the_same_records_in_sql_and_python(
    engine: sa.Engine,
    registry: FieldTypeRegistry,
    tmp_path_factory: pytest.TempPathFactory,
    stored: list[object],
    negated: bool,
) -> None:
    if not sa.inspect(engine).has_table("x_article"):
        install(engine, registry, articles_pack(tmp_path_factory.mktemp("press"), anything={"type": "json"}))
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
    runtime = build_runtime(number, metamodel, registry)
    entity = compile_entities(metamodel.entities, runtime.tables, registry)["article"]
    field = entity.fields["anything"]
    with engine.begin() as conn:
        conn.execute(entity.table.delete())
        conn.execute(
            entity.table.insert(),
            [
                {
                    "id": i,
                    "created_at": NOW,
                    "updated_at": NOW,
                    "version": 1,
                    **entity.fields["title"].to_row(f"R{i}"),
                    **field.to_row(field.type.coerce_given(value, field.field)),
                }
                for i, value in enumerate(stored, start=1)
            ],
        )
    text = f"anything is {'not ' if negated else ''}blank"
    checked = check(text, metamodel, "article")
    closure = compile_python(checked.typed)
    with engine.connect() as conn:
        records = [
            {"id": r["id"], **{n: f.from_row(r) for n, f in entity.fields.items()}}
            for r in conn.execute(entity.select.order_by(entity.table.c.id)).mappings()
        ]
        where = SqlCompiler(runtime.tables, engine.dialect.name, registry).condition(checked.typed, "article")
        in_sql = set(conn.execute(sa.select(entity.table.c.id).where(where(CONTEXT))).scalars())
    in_python = {r["id"] for r in records if closure(r, CONTEXT) is True}
    assert in_python == in_sql, f"{text}: Python {sorted(in_python)}, SQL {sorted(in_sql)}"
    blank = {i for i, v in enumerate(stored, start=1) if v is None or v == ""}
    assert in_sql == (set(range(1, len(stored) + 1)) - blank if negated else blank)


def test_a_rule_comparing_a_json_value_is_refused_when_checked(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    install(engine, registry, articles_pack(tmp_path))
    with engine.connect() as conn:
        _, metamodel = revisions.current_metamodel(conn)
    with pytest.raises(RuleError, match="cannot compare a json with a text"):
        check('specs = "x"', metamodel, "article")
