"""The `tags` field type in every layer, on SQLite and PostgreSQL: pack validation, plan /
apply / retype (text → tags, multi_choice → tags), the API (round trip, hostile values),
the form with its suggestions, the list's search and rule filter (SQL and Python agree),
CSV export and the OpenAPI document."""

from __future__ import annotations

import csv
import html
import io
import re
from pathlib import Path

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

from .packs import install, plan, write_files_pack
from .rules.strategies import NOW
from .text_types_pack import articles_pack, column_values, insert, make, patch, press

__all__ = ["press"]

BAD_SETTINGS = """\
kind: entity
name: article
fields:
  title:
    type: text
  labels:
    type: tags
    max_items: 0
  topics:
    type: tags
    max_length: 500
  keywords:
    type: tags
    options: [a, b]
"""


def test_bad_settings_are_refused_at_their_file_and_line(tmp_path: Path) -> None:
    pack = write_files_pack(tmp_path, {"entities/article.yaml": BAD_SETTINGS}, name="press", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    where = "entities/article.yaml"
    assert f"{where}:8:16: fields.labels.max_items: 0 is less than the minimum of 1" in result.output
    assert f"{where}:11:17: fields.topics.max_length: 500 is greater than the maximum of 200" in result.output
    assert f"{where}:14:5: fields.keywords.options: unknown key 'options'" in result.output


def test_good_settings_validate(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["pack", "validate", str(articles_pack(tmp_path))], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output


# --- plan, apply, retype -------------------------------------------------------------------
def test_retype_text_and_multi_choice_to_tags(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    choices = {"type": "multi_choice", "options": [{"key": "red"}, {"key": "blue"}]}
    install(engine, registry, articles_pack(tmp_path, keywords={"type": "text"}, colours=choices))
    insert(
        engine,
        registry,
        [
            {"title": "A", "keywords": "Alpha; beta", "colours": ["red", "blue"]},
            {"title": "B", "keywords": None, "colours": None},
            {"title": "C", "keywords": "x" * 60, "colours": ["blue"]},
        ],
    )
    # A text longer than a tag may be: reported with its row, nothing changed.
    refused = plan(
        engine,
        registry,
        articles_pack(tmp_path, "2.0.0", keywords={"type": "tags"}, colours={"type": "tags"}),
    )
    assert refused.plan.blocked
    change = next(c for c in refused.plan.changes if c.field == "keywords")
    [risk] = change.risks
    assert risk.blocking and risk.message.startswith(
        "retype keywords text → tags: 1 of 2 rows do not convert"
    )
    assert "is 60 characters long; at most 50 are allowed" in risk.message  # the default length
    assert column_values(engine, "keywords")[2] == "x" * 60
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_article SET keywords = 'Gamma,  delta' WHERE title = 'C'"))
    install(
        engine,
        registry,
        articles_pack(
            tmp_path, "3.0.0", keywords={"type": "tags", "max_length": 10}, colours={"type": "tags"}
        ),
    )
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        entity = compile_entities(
            metamodel.entities, build_runtime(number, metamodel, registry).tables, registry
        )["article"]
        rows = conn.execute(entity.select.order_by(entity.table.c.id)).mappings().all()
        values = [(entity.fields["keywords"].from_row(r), entity.fields["colours"].from_row(r)) for r in rows]
    assert values == [(["alpha", "beta"], ["red", "blue"]), (None, None), (["gamma", "delta"], ["blue"])]
    # Lowering max_items reports the values the new definition refuses; they are kept.
    lowered = plan(
        engine,
        registry,
        articles_pack(tmp_path, "4.0.0", keywords={"type": "tags", "max_items": 1}, colours={"type": "tags"}),
    )
    [change] = [c for c in lowered.plan.changes if c.field == "keywords"]
    assert change.action == "change field" and not lowered.plan.blocked
    assert change.risks[0].message.startswith("keywords: 2 of 2 rows hold values the new definition refuses")
    # tags → text would put a JSON list into a text: refused for every row with tags.
    back = plan(
        engine,
        registry,
        articles_pack(tmp_path, "5.0.0", keywords={"type": "text"}, colours={"type": "tags"}),
    )
    assert back.plan.blocked


def test_install_makes_a_json_column(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    installation = plan(engine, registry, articles_pack(tmp_path))
    assert not installation.plan.blocked
    installer.install(engine, installation, author="test")
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("x_article")}
    expected = "JSONB" if engine.dialect.name == "postgresql" else "JSON"
    assert type(columns["labels"]).__name__ == expected


# --- API, forms, pages, CSV, OpenAPI --------------------------------------------------------
def test_api_round_trip_and_refusals_name_the_field(press: TestClient) -> None:
    made = make(press, labels=[" VIP ", "Partner", "vip", "big   deal"])
    assert press.get(f"/api/v1/article/{made}").json()["labels"] == ["vip", "partner", "big deal"]
    changed = patch(press, made, labels="newsletter; VIP")
    assert changed.status_code == 200, changed.text
    assert changed.json()["labels"] == ["newsletter", "vip"]
    assert patch(press, made, labels=[]).json()["labels"] is None  # an empty list is blank
    for bad, message in (
        (["a" * 21], "is 21 characters long; at most 20 are allowed"),
        (["a,b"], "holds a comma, semicolon or control character"),
        (["x\ny"], "holds a comma, semicolon or control character"),
        ([1], "a tag is text, got int"),
        ({"vip": True}, "expected a list of tags"),
        (["a", "b", "c", "d", "e", "f"], "at most 5 are allowed"),
    ):
        refused = press.post("/api/v1/article", json={"title": "Bad", "labels": bad})
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["errors"]["labels"][0]
    assert press.get(f"/api/v1/article/{made}").json()["labels"] is None


@pytest.mark.parametrize(
    "value",
    [True, 12, 2**70, "\x00", ["\x00"], [None], [["a"]], ["a" * 100_000], [f"t{i}" for i in range(10_000)]],
    ids=lambda v: repr(v)[:20],
)
def test_hostile_values_are_refused_never_a_server_error(press: TestClient, value: object) -> None:
    refused = press.post("/api/v1/article", json={"title": "Odd", "labels": value})
    assert refused.status_code in (400, 422), refused.text
    if refused.status_code == 422:
        assert refused.json()["errors"]["labels"]
    listed = press.get("/api/v1/article", params={"filter": f"labels contains {value!r}"[:500]})
    assert 200 <= listed.status_code < 500, listed.text


def test_a_lone_surrogate_is_refused(press: TestClient) -> None:
    refused = press.post(
        "/api/v1/article",
        content=b'{"title": "Odd", "labels": ["\\ud800"]}',
        headers={"content-type": "application/json"},
    )
    assert refused.status_code == 400 and "labels[0]" in refused.json()["errors"]


def test_list_search_and_rule_filter_find_a_tag(press: TestClient) -> None:
    vip = make(press, title="One", labels=["vip", "partner"])
    make(press, title="Two", labels=["cold"])
    plain = make(press, title="Three")

    def ids(**params: str) -> list[int]:
        response = press.get("/api/v1/article", params=params)
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json()["data"])

    assert ids(filter='labels contains "vip"') == [vip]
    assert ids(filter='not (labels contains "cold")') == [vip]  # a blank list is not "not cold"
    assert ids(filter="labels is blank") == [plain]
    assert ids(filter="len(labels) = 2") == [vip]
    assert ids(q="partner") == [vip]
    refused = press.get("/api/v1/article", params={"labels": "vip"})
    assert refused.status_code == 400  # not a value filter: a rule says what "has the tag" means
    listed = press.get("/e/article", params={"filter": 'labels contains "vip"'}).text
    assert "One" in listed and "Two" not in listed
    # A shown tag links to the list of the records that have it, whatever it holds.
    quoted = make(press, title="Quoted", labels=['say "hi" \\ bye'])
    page = press.get(f"/e/article/{quoted}").text
    link = re.search(r'<a class="tag" href="([^"]+)">say &#34;hi&#34; \\ bye</a>', page)
    assert link is not None, page
    found = press.get(html.unescape(link.group(1))).text
    assert "Quoted" in found and "One" not in found


def test_form_suggests_used_tags_and_saves_without_javascript(press: TestClient) -> None:
    make(press, title="A", labels=["vip", "partner"])
    make(press, title="B", labels=["vip"])
    form = press.get("/e/article/new").text
    assert (
        '<datalist id="suggest-labels"><option value="vip"></option><option value="partner"></option>' in form
    )
    made = press.post(
        "/e/article/new",
        data={"title": "C", "_fields": ["title", "labels"], "labels__new": "Event; vip"},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    page = press.get(made.headers["location"]).text
    assert '<a class="tag" href="/e/article?filter=labels+contains+%22event%22">event</a>' in page
    edit = press.get(made.headers["location"] + "/edit").text
    assert 'name="labels" value="event" checked' in edit and 'name="labels" value="vip" checked' in edit
    # Untick one, add another.
    record = int(made.headers["location"].rsplit("/", 1)[1])
    version = press.get(f"/api/v1/article/{record}").json()["version"]
    saved = press.post(
        f"/e/article/{record}/edit",
        data={
            "title": "C",
            "version": str(version),
            "_fields": ["title", "labels"],
            "labels": ["event"],
            "labels__new": "later",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    assert press.get(f"/api/v1/article/{record}").json()["labels"] == ["event", "later"]
    refused = press.post(
        "/e/article/new", data={"title": "D", "_fields": ["title", "labels"], "labels__new": "a;" + "b" * 30}
    )
    assert refused.status_code == 422 and "at most 20 are allowed" in refused.text


def test_suggestions_come_only_from_records_the_user_may_read(press: TestClient) -> None:
    """The suggestions are read through the records service (a bounded list query)."""
    make(press, title="A", labels=["secret-plan"])
    form = press.get("/e/article/new").text
    assert '<option value="secret-plan">' in form


def test_csv_export_joins_tags(press: TestClient) -> None:
    make(press, title="A", labels=["vip", "partner"])
    make(press, title="B")
    rows = list(csv.reader(io.StringIO(press.get("/e/article/export.csv?sort=title").text)))
    labels = rows[0].index("Labels")
    assert [r[labels] for r in rows[1:]] == ["vip; partner", ""]


def test_openapi_describes_a_list_of_tags(press: TestClient) -> None:
    schemas = press.get("/api/v1/openapi.json").json()["components"]["schemas"]
    [given] = [
        s for s in schemas["ArticleInput"]["properties"]["labels"]["anyOf"] if s.get("type") == "array"
    ]
    assert given["maxItems"] == 5 and given["items"]["maxLength"] == 20 and given["uniqueItems"]
    [shown] = [s for s in schemas["Article"]["properties"]["labels"]["anyOf"] if s.get("type") == "array"]
    assert shown["items"] == {"type": "string"}


# --- the rule language: SQL and Python agree ------------------------------------------------
CONTEXT = RuleContext(now=NOW, user_id=1, user_roles=("sales",))
TAGS = ["vip", "cold", "big deal", "é"]
values = st.lists(
    st.one_of(st.none(), st.lists(st.sampled_from(TAGS), max_size=3, unique=True)), min_size=1, max_size=10
)
rules = st.one_of(
    st.builds(lambda t: f'labels contains "{t}"', st.sampled_from([*TAGS, "VIP", "other"])),
    st.just("labels is blank"),
    st.just("labels is not blank"),
    st.builds(lambda t: f'not (labels contains "{t}")', st.sampled_from(TAGS)),
    st.builds(
        lambda a, b: f'labels contains "{a}" or labels contains "{b}"',
        st.sampled_from(TAGS),
        st.sampled_from(TAGS),
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stored=values, text=rules)
def test_rule_filters_select_the_same_records_in_sql_and_python(
    engine: sa.Engine,
    registry: FieldTypeRegistry,
    tmp_path_factory: pytest.TempPathFactory,
    stored: list[list[str] | None],
    text: str,
) -> None:
    if not sa.inspect(engine).has_table("x_article"):  # once per database, not per example
        install(engine, registry, articles_pack(tmp_path_factory.mktemp("press")))
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
    runtime = build_runtime(number, metamodel, registry)
    entity = compile_entities(metamodel.entities, runtime.tables, registry)["article"]
    field = entity.fields["labels"]
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
                    **field.to_row(field.type.coerce(tags, field.field)),
                }
                for i, tags in enumerate(stored, start=1)
            ],
        )
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
    if text == 'labels contains "vip"':
        assert in_sql == {i for i, tags in enumerate(stored, start=1) if tags and "vip" in tags}
