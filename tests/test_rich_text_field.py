"""The `rich_text` field type in every layer, on SQLite and PostgreSQL: pack validation,
plan / apply / retype (long_text → rich_text with the rows whose text sanitising would
drop), the API (sanitised on input, hostile values), the page (sanitised again on output),
search, rules and CSV on the plain text (SQL and Python agree), and the OpenAPI document."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.fieldtypes.richtext import plain_text, sanitise
from slatecrm.metamodel.rules import RuleContext, check, compile_python
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
  body:
    type: rich_text
    max_length: 0
  summary:
    type: rich_text
    schema: {}
"""


def test_bad_settings_are_refused_at_their_file_and_line(tmp_path: Path) -> None:
    pack = write_files_pack(tmp_path, {"entities/article.yaml": BAD_SETTINGS}, name="press", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    where = "entities/article.yaml"
    assert f"{where}:8:17: fields.body.max_length: 0 is less than the minimum of 1" in result.output
    assert f"{where}:11:5: fields.summary.schema: unknown key 'schema'" in result.output


def test_good_settings_validate(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["pack", "validate", str(articles_pack(tmp_path))], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output


# --- the sanitiser --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("<p>Hi <b>there</b><script>alert(1)</script></p>", "<p>Hi <b>there</b></p>"),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer">x</a>'),
        (
            '<a href="https://example.org" onclick="x()" target="_blank">x</a>',
            '<a href="https://example.org" rel="noopener noreferrer">x</a>',
        ),
        ('<p style="color:red" class="c">x</p><img src="x" onerror="alert(1)">', "<p>x</p>"),
        ("<iframe src='https://evil.example'></iframe><h1>Big</h1><h2>Sub</h2>", "Big<h2>Sub</h2>"),
        (
            "<ul><li>one</li></ul><blockquote>q</blockquote><pre><code>c</code></pre>",
            "<ul><li>one</li></ul><blockquote>q</blockquote><pre><code>c</code></pre>",
        ),
        ("<svg><script>alert(1)</script></svg><!-- note -->ok", "ok"),
        (
            '<a href="mailto:a@example.org">m</a>',
            '<a href="mailto:a@example.org" rel="noopener noreferrer">m</a>',
        ),
    ],
)
def test_only_the_allowed_markup_survives(given: str, kept: str) -> None:
    assert sanitise(given) == kept


def test_plain_text_has_a_line_per_block() -> None:
    assert plain_text(
        "<h2>Title</h2><p>One <b>two</b></p><ul><li>a</li><li>b &amp; c</li></ul>line<br>next"
    ) == ("Title\nOne two\na\nb & c\nline\nnext")


# --- plan, apply, retype -------------------------------------------------------------------
def test_install_makes_a_text_column_and_an_html_column(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    install(engine, registry, articles_pack(tmp_path))
    columns = {c["name"] for c in sa.inspect(engine).get_columns("x_article")}
    assert {"body", "body__html"} <= columns


def test_retype_long_text_to_rich_text_reports_text_sanitising_would_drop(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    install(engine, registry, articles_pack(tmp_path, notes={"type": "long_text"}))
    insert(
        engine,
        registry,
        [
            {"title": "A", "notes": "first line\nsecond & last"},
            {"title": "B", "notes": None},
            {"title": "C", "notes": "<script>keep me</script>"},
            {"title": "D", "notes": "<p>already <b>HTML</b></p>"},
        ],
    )
    refused = plan(engine, registry, articles_pack(tmp_path, "2.0.0", notes={"type": "rich_text"}))
    assert refused.plan.blocked
    [risk] = next(c for c in refused.plan.changes if c.field == "notes").risks
    assert risk.blocking and risk.message.startswith(
        "retype notes long_text → rich_text: 1 of 3 rows do not convert (id 3: sanitising the HTML drops "
        "text (the value reads 'keep me', would read ''))"
    )
    assert column_values(engine, "notes")[2] == "<script>keep me</script>"  # nothing changed
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_article SET notes = 'keep me' WHERE id = 3"))
    install(engine, registry, articles_pack(tmp_path, "3.0.0", notes={"type": "rich_text"}))
    assert column_values(engine, "notes__html") == [
        "first line<br>second &amp; last",
        None,
        "keep me",
        "<p>already <b>HTML</b></p>",
    ]
    assert column_values(engine, "notes") == ["first line\nsecond & last", None, "keep me", "already HTML"]
    # Back to long_text: the planner refuses to drop the HTML column while it holds values.
    back = plan(engine, registry, articles_pack(tmp_path, "4.0.0", notes={"type": "long_text"}))
    assert back.plan.blocked
    assert (
        "retype notes rich_text → long_text drops column notes__html, which holds values in 3 rows"
        in next(r.message for c in back.plan.changes for r in c.risks)
    )


# --- API, forms, pages, CSV, OpenAPI --------------------------------------------------------
def test_api_sanitises_what_it_is_given(press: TestClient) -> None:
    made = make(press, body='<p onclick="x()">Hi <strong>there</strong><script>alert(1)</script></p>')
    assert press.get(f"/api/v1/article/{made}").json()["body"] == "<p>Hi <strong>there</strong></p>"
    changed = patch(press, made, body="two lines\nof text")
    assert changed.status_code == 200 and changed.json()["body"] == "two lines<br>of text"
    assert patch(press, made, body="<p><br></p>").json()["body"] is None  # an emptied editor is blank
    for bad, message in (
        (12, "expected HTML text, got int"),
        (["<p>x</p>"], "expected HTML text, got list"),
        ("a\x00b", "contains a NUL character"),
    ):
        refused = press.post("/api/v1/article", json={"title": "Bad", "body": bad})
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["errors"]["body"][0]


def test_max_length_counts_the_sanitised_html(
    engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    from .defaults import make_app, signed_in

    install(engine, registry, articles_pack(tmp_path, short={"type": "rich_text", "max_length": 20}))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        assert make(http, short="<p>fine</p><script>" + "x" * 100 + "</script>")
        refused = http.post("/api/v1/article", json={"title": "x", "short": "<p>" + "y" * 30 + "</p>"})
        assert refused.status_code == 422
        assert "is 37 characters of HTML; at most 20 are allowed" in refused.json()["errors"]["short"][0]
    app.state.engine.dispose()


@pytest.mark.parametrize("value", [True, 2**70, {"html": "x"}, "x" * 1_100_000], ids=lambda v: repr(v)[:20])
def test_hostile_values_are_refused_never_a_server_error(press: TestClient, value: object) -> None:
    refused = press.post("/api/v1/article", json={"title": "Odd", "body": value})
    assert refused.status_code in (413, 422), refused.text[:300]
    if refused.status_code == 422:
        assert refused.json()["errors"]["body"]


def test_the_page_shows_sanitised_html_even_from_a_tampered_column(press: TestClient) -> None:
    made = make(press, body="<p>Visible <em>note</em></p>")
    page = press.get(f"/e/article/{made}").text
    assert '<div class="rich-text"><p>Visible <em>note</em></p></div>' in page
    with press.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            sa.text("UPDATE x_article SET body__html = :html WHERE id = :id"),
            {"html": '<p>ok</p><script>alert(1)</script><img src=x onerror="alert(2)">', "id": made},
        )
    page = press.get(f"/e/article/{made}").text
    assert '<div class="rich-text"><p>ok</p></div>' in page
    assert "alert(" not in page


def test_the_form_is_a_textarea_the_editor_enhances(press: TestClient) -> None:
    form = press.get("/e/article/new").text
    assert 'class="rich-text-source" data-rich-text' in form
    assert '<script src="/static/vendor/squire.js" defer></script>' in form
    assert '<script src="/static/richtext.js" defer></script>' in form
    assert "/static/vendor/squire.js" not in press.get("/e/article").text  # only where a widget needs it
    assert press.get("/static/richtext.js").status_code == 200
    made = press.post(
        "/e/article/new",
        data={"title": "A", "_fields": ["title", "body"], "body": "Typed without a script\n<b>bold</b>"},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    record = int(made.headers["location"].rsplit("/", 1)[1])
    assert press.get(f"/api/v1/article/{record}").json()["body"] == "Typed without a script\n<b>bold</b>"


def test_search_rules_and_csv_read_the_plain_text(press: TestClient) -> None:
    bold = make(press, title="Bold", body="<p><strong>Quarterly</strong> review</p><ul><li>budget</li></ul>")
    plain = make(press, title="Plain", body="strong opinions")

    def ids(**params: str) -> list[int]:
        response = press.get("/api/v1/article", params=params)
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json()["data"])

    assert ids(q="quarterly") == [bold]
    assert ids(q="strong") == [plain]  # a tag's name is no word of the text
    assert ids(filter='body contains "Quarterly review"') == [bold]
    assert ids(filter='body starts_with "strong"') == [plain]
    assert ids(filter='body contains "<"') == []
    rows = list(csv.reader(io.StringIO(press.get("/e/article/export.csv?sort=title").text)))
    body = rows[0].index("Body")
    assert [r[body] for r in rows[1:]] == ["Quarterly review\nbudget", "strong opinions"]


def test_list_filters_compare_the_plain_text_taken_as_typed(press: TestClient) -> None:
    """A filter's value is text to find: markup in it is never sanitised away or refused
    (the API fuzz found `notes__ne=<W…` refused as if it were a value to store)."""
    review = make(press, title="Review", body="<p><strong>Quarterly</strong> review</p>")
    angle = make(press, title="Angle", body="a &lt;W b")
    blank = make(press, title="Blank")

    def ids(**params: str) -> list[int]:
        response = press.get("/api/v1/article", params=params)
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json()["data"])

    assert ids(body="Quarterly review") == [review]
    assert ids(body="a <W b") == [angle]
    assert ids(body__ne="<W") == [review, angle, blank]
    assert ids(body__ne="a <W b") == [review, blank]
    assert ids(body="<script>x</script>") == []
    refused = press.get("/api/v1/article", params={"body": "a\x00b"})
    assert refused.status_code == 400 and "NUL" in refused.text


def test_openapi_describes_html_text(press: TestClient) -> None:
    schemas = press.get("/api/v1/openapi.json").json()["components"]["schemas"]
    [shown] = [s for s in schemas["Article"]["properties"]["body"]["anyOf"] if s.get("type") == "string"]
    assert shown["contentMediaType"] == "text/html"


# --- the rule language: SQL and Python agree ------------------------------------------------
CONTEXT = RuleContext(now=NOW, user_id=1, user_roles=("sales",))
FRAGMENTS = [
    "<p>",
    "</p>",
    "<b>",
    "</b>",
    "Acme",
    "acme",
    " ",
    "deal",
    "<br>",
    "&amp;",
    "<li>",
    "&",
    "\n",
    "é",
]
documents = st.lists(
    st.one_of(st.none(), st.lists(st.sampled_from(FRAGMENTS), max_size=6).map("".join)),
    min_size=1,
    max_size=10,
)
rules = st.one_of(
    st.builds(
        lambda t: f'body contains "{t}"', st.sampled_from(["Acme", "acme deal", "&", "Acme\\ndeal", "é"])
    ),
    st.builds(lambda t: f'body starts_with "{t}"', st.sampled_from(["Acme", "deal", "a"])),
    st.just("body is blank"),
    st.just("body is not blank"),
    st.just('body = "Acme"'),
    st.just('body matches "(?i)^acme"'),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stored=documents, text=rules)
def test_rule_filters_select_the_same_records_in_sql_and_python(
    engine: sa.Engine,
    registry: FieldTypeRegistry,
    tmp_path_factory: pytest.TempPathFactory,
    stored: list[str | None],
    text: str,
) -> None:
    if not sa.inspect(engine).has_table("x_article"):  # once per database, not per example
        install(engine, registry, articles_pack(tmp_path_factory.mktemp("press")))
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
    runtime = build_runtime(number, metamodel, registry)
    entity = compile_entities(metamodel.entities, runtime.tables, registry)["article"]
    field = entity.fields["body"]
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
                    **field.to_row(field.type.coerce_given(html, field.field)),
                }
                for i, html in enumerate(stored, start=1)
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
