"""The multi-value field types `emails` and `phones` in every layer, on SQLite and
PostgreSQL: pack validation, plan / apply / retype (a single e-mail or phone becomes the
primary item), the API, the form's rows (without JavaScript), the pages' links, the list's
text search, the rule language (SQL and Python agree), CSV export and the OpenAPI document."""

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


def member(**fields: Any) -> dict[str, Any]:
    return {
        "label": "Member",
        "label_plural": "Members",
        "title_field": "nick",
        "fields": {
            "nick": {"type": "text"},
            "emails": {"type": "emails", "label": "E-mails", "max_items": 3},
            "phones": {"type": "phones", "label": "Phones", "default_region": "FR"},
            **fields,
        },
    }


def members_pack(root: Path, version: str = "1.0.0", **fields: Any) -> Path:
    return write_pack(root, "club", version, {"member": member(**fields)})


BAD_SETTINGS = """\
kind: entity
name: member
fields:
  emails:
    type: emails
    max_items: 0
  phones:
    type: phones
    labels: [Work]
"""
BAD_DEFINITIONS = """\
kind: entity
name: member
fields:
  phones:
    type: phones
    default_region: XY
  emails:
    type: emails
    unique: true
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            BAD_SETTINGS,
            [
                ":6:16: fields.emails.max_items: 0 is less than the minimum of 1",
                ":9:14: fields.phones.labels[0]: ",
            ],
        ),
        (
            BAD_DEFINITIONS,
            [
                ":4:3: fields.phones: default_region: 'XY' is not an ISO 3166-1 alpha-2 country code",
                ":7:3: fields.emails: unique: ",
            ],
        ),
    ],
    ids=["schema", "definitions"],
)
def test_bad_settings_are_refused_at_their_file_and_line(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    pack = write_files_pack(tmp_path, {"entities/member.yaml": text}, name="club", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for line in expected:
        assert f"entities/member.yaml{line}" in result.output, result.output


def test_good_settings_validate(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["pack", "validate", str(members_pack(tmp_path))], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output


# --- plan, apply, retype -------------------------------------------------------------------
def test_retype_email_and_phone_keep_the_value_as_the_primary_item(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    install(engine, registry, members_pack(tmp_path, mail={"type": "email"}, tel={"type": "phone"}))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO x_member (created_at, updated_at, version, mail, tel) VALUES "
                "(:t, :t, 1, 'ada@example.com', '01 23 45 67 89'), (:t, :t, 1, NULL, '12')"
            ),
            {"t": NOW},
        )
    refused = plan(
        engine,
        registry,
        members_pack(
            tmp_path, "2.0.0", mail={"type": "emails"}, tel={"type": "phones", "default_region": "FR"}
        ),
    )
    assert refused.plan.blocked
    [change] = [c for c in refused.plan.changes if c.field == "tel"]
    assert "1 of 2 rows do not convert" in change.risks[0].message
    assert "'12' is not a valid phone number" in change.risks[0].message
    with pytest.raises(Exception):  # noqa: B017 - apply re-checks every value itself
        installer.install(engine, refused, author="test")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_member SET tel = NULL WHERE tel = '12'"))
    install(
        engine,
        registry,
        members_pack(
            tmp_path, "3.0.0", mail={"type": "emails"}, tel={"type": "phones", "default_region": "FR"}
        ),
    )
    app_rows = _values(engine, registry, "mail", "tel")
    assert app_rows[0] == (
        [{"value": "ada@example.com", "label": "work", "primary": True, "opted_out": False}],
        [{"value": "+33123456789", "label": "work", "primary": True, "opted_out": False}],
    )
    assert app_rows[1] == (None, None)


def _values(engine: sa.Engine, registry: FieldTypeRegistry, *names: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        runtime = build_runtime(number, metamodel, registry)
        entity = compile_entities(metamodel.entities, runtime.tables, registry)["member"]
        found = conn.execute(entity.select.order_by(entity.table.c.id)).mappings().all()
    return [tuple(entity.fields[n].from_row(r) for n in names) for r in found]


# --- API, forms, pages, CSV, OpenAPI --------------------------------------------------------
@pytest.fixture
def club(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Iterator[TestClient]:
    install(engine, registry, members_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def make(client: TestClient, **values: object) -> int:
    response = client.post("/api/v1/member", json=values)
    assert response.status_code == 201, response.text
    made: int = response.json()["id"]
    return made


def test_api_round_trip_puts_the_primary_first_and_refusals_name_the_item(club: TestClient) -> None:
    made = make(
        club,
        nick="ada",
        emails=[
            {"value": "ada@Example.COM", "label": "home"},
            {"value": "lovelace@example.org", "primary": True, "opted_out": True},
        ],
        phones=[{"value": "06 12 34 56 78", "label": "mobile"}, "+1 201-555-0123"],
    )
    record = club.get(f"/api/v1/member/{made}").json()
    assert record["emails"] == [
        {"value": "lovelace@example.org", "label": "work", "primary": True, "opted_out": True},
        {"value": "ada@example.com", "label": "home", "primary": False, "opted_out": False},
    ]
    assert record["phones"] == [
        {"value": "+33612345678", "label": "mobile", "primary": True, "opted_out": False},
        {"value": "+12015550123", "label": "work", "primary": False, "opted_out": False},
    ]
    cleared = club.patch(f"/api/v1/member/{made}", json={"emails": [], "version": record["version"]})
    assert cleared.status_code == 200 and cleared.json()["emails"] is None
    for field, bad, message in (
        ("emails", [{"value": "nope"}], "item 1: value: 'nope' is not an e-mail address"),
        ("emails", ["a@b.co", "A@B.CO"], "item 2: A@b.co is given twice"),
        (
            "emails",
            [{"value": "a@b.co", "primary": True}, {"value": "c@d.co", "primary": True}],
            "2 e-mail addresses are marked primary",
        ),
        ("emails", ["a@b.co", "b@b.co", "c@b.co", "d@b.co"], "has 4 e-mail addresses; at most 3"),
        ("emails", [{"value": "a@b.co", "label": "fax"}], "item 1: label: 'fax' is not one of work, home"),
        ("emails", [{"value": "a@b.co", "primary": "yes"}], "item 1: primary: expected true or false"),
        ("emails", [{"value": "a@b.co", "kind": "x"}], "item 1: unknown key 'kind'"),
        ("emails", "a@b.co", "expected a list of e-mail addresses, got text"),
        ("phones", ["12"], "item 1: value: '12' is not a valid phone number"),
        ("phones", ["+33 1 23 45 67 89 ext. 12"], "has an extension"),
        ("phones", [{"value": 33123456789}], "item 1: value: expected text, got a number"),
    ):
        refused = club.post("/api/v1/member", json={field: bad})
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["errors"][field][0], refused.json()


@pytest.mark.parametrize(
    "value",
    [
        True,
        2**70,
        {"value": "a@b.co"},
        [[1]],
        [None, 3],
        [{"value": "x" * 100_000}],
        ["a\x00@b.co"],
        [{"value": "a@b.co", "label": ["work"]}],
    ],
    ids=repr,
)
def test_hostile_values_are_refused_never_a_server_error(club: TestClient, value: object) -> None:
    for field in ("emails", "phones"):
        refused = club.post("/api/v1/member", json={field: value})
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][field]


def test_list_search_finds_any_value_and_rules_look_into_the_list(club: TestClient) -> None:
    ada = make(club, nick="a", emails=["ada@example.com", "countess@lovelace.org"], phones=["01 23 45 67 89"])
    alan = make(club, nick="b", emails=["alan@example.com"], phones=["+44 121 234 5678"])
    none = make(club, nick="c")

    def ids(**params: str) -> list[int]:
        response = club.get("/api/v1/member", params={"sort": "id", **params})
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]]

    assert ids(q="countess") == [ada]
    assert ids(q="lovelace.org") == [ada]
    assert ids(q="+33123456789") == [ada]
    assert ids(q="0123456789") == [ada]  # the national number
    assert ids(q="example.com") == [ada, alan]
    assert ids(filter='emails contains "alan@example.com"') == [alan]
    assert ids(filter='"countess@lovelace.org" in emails') == [ada]
    assert ids(filter='"countess@lovelace.org" not in emails') == [alan]  # a blank list: unknown
    assert ids(filter='phones contains "+33123456789" or emails is blank') == [ada, none]
    assert ids(filter="len(emails) = 2") == [ada]
    refused = club.get("/api/v1/member", params={"filter": "emails contains 3"})
    assert refused.status_code == 400


def test_form_rows_save_without_javascript_and_pages_link_each_value(club: TestClient) -> None:
    form = club.get("/e/member/new").text
    assert 'class="several emails-input"' in form
    assert form.count('name="emails__0"') == 1 and 'name="emails__1"' not in form  # one blank row
    sent = {
        "_fields": ["nick", "emails", "phones"],
        "nick": "ada",
        "emails__0": "ada@example.com",
        "emails__0_label": "home",
        "emails__1": "",
        "emails__1_label": "work",
        "emails__2": "countess@lovelace.org",
        "emails__2_label": "work",
        "emails__primary": "2",
        "emails__opted_out": "0",
        "phones__0": "01 23 45 67 89",
        "phones__0_label": "mobile",
    }
    made = club.post("/e/member/new", data=sent, follow_redirects=False)
    assert made.status_code == 303, made.text
    record = club.get(made.headers["location"].replace("/e/", "/api/v1/")).json()
    assert [(e["value"], e["label"], e["primary"], e["opted_out"]) for e in record["emails"]] == [
        ("countess@lovelace.org", "work", True, False),
        ("ada@example.com", "home", False, True),
    ]
    page = club.get(made.headers["location"]).text
    assert '<a href="mailto:countess@lovelace.org">countess@lovelace.org</a>' in page
    assert page.index("countess@lovelace.org") < page.index("ada@example.com")  # the primary first
    assert '<a href="tel:+33123456789">+33 1 23 45 67 89</a>' in page and "opted out" in page
    edit = club.get(made.headers["location"] + "/edit").text
    assert 'name="emails__1" type="email" value="ada@example.com"' in edit
    assert 'name="emails__2" type="email" value=""' in edit  # the blank row after them
    assert 'name="emails__3"' not in edit
    refused = club.post("/e/member/new", data={**sent, "phones__0": "12"}, follow_redirects=False)
    assert (
        refused.status_code == 422
        and "item 1: value: &#39;12&#39; is not a valid phone number" in refused.text
    )
    assert 'value="countess@lovelace.org"' in refused.text  # nothing typed is lost


def test_csv_export_writes_each_value_with_its_label(club: TestClient) -> None:
    make(
        club, nick="ada", emails=["ada@example.com", {"value": "x@y.org", "label": "home", "opted_out": True}]
    )
    rows = list(csv.reader(io.StringIO(club.get("/e/member/export.csv").text)))
    assert rows[0] == ["id", "Nick", "E-mails", "Phones"]
    assert rows[1][1:] == ["ada", "ada@example.com (work); x@y.org (home, opted out)", ""]


def test_openapi_describes_a_list_of_items(club: TestClient) -> None:
    from openapi_spec_validator import validate

    validate(club.get("/api/v1/openapi.json").json())  # a valid OpenAPI document
    schemas = club.get("/api/v1/openapi.json").json()["components"]["schemas"]
    shown = schemas["Member"]["properties"]["emails"]["anyOf"][0]
    assert shown["type"] == "array" and shown["maxItems"] == 3
    assert shown["items"]["required"] == ["value", "label", "primary", "opted_out"]
    given_ = schemas["MemberInput"]["properties"]["phones"]["anyOf"][0]
    assert "+33123456789" in given_["items"]["properties"]["value"]["enum"]


# --- the rule language: SQL and Python agree ------------------------------------------------
CONTEXT = RuleContext(now=NOW, user_id=1, user_roles=("sales",))
ADDRESSES = ["a@x.org", "b@x.org", "c@y.org"]
lists = st.one_of(st.none(), st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=3, unique=True))
conditions = st.one_of(
    st.builds(lambda a: f'emails contains "{a}"', st.sampled_from([*ADDRESSES, "z@z.org"])),
    st.builds(lambda a: f'"{a}" in emails', st.sampled_from(ADDRESSES)),
    st.builds(lambda a: f'"{a}" not in emails', st.sampled_from(ADDRESSES)),
    st.sampled_from(["emails is blank", "len(emails) >= 2", 'phones contains "+33123456789"']),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    values=st.lists(st.tuples(lists, st.booleans()), min_size=1, max_size=10),
    condition=conditions,
    negate=st.booleans(),
)
def test_rule_filters_on_lists_select_the_same_records_in_sql_and_python(
    engine: sa.Engine,
    registry: FieldTypeRegistry,
    tmp_path_factory: pytest.TempPathFactory,
    values: list[tuple[Any, bool]],
    condition: str,
    negate: bool,
) -> None:
    if not sa.inspect(engine).has_table("x_member"):  # once per database, not per example
        install(engine, registry, members_pack(tmp_path_factory.mktemp("club")))
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
    runtime = build_runtime(number, metamodel, registry)
    entity = compile_entities(metamodel.entities, runtime.tables, registry)["member"]
    emails, phones = entity.fields["emails"], entity.fields["phones"]
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
                    **emails.to_row(emails.type.coerce(e, emails.field)),
                    **phones.to_row(phones.type.coerce(["+33123456789"] if p else None, phones.field)),
                }
                for i, (e, p) in enumerate(values, start=1)
            ],
        )
    text = f"not ({condition})" if negate else condition
    checked = check(text, metamodel, "member")
    closure = compile_python(checked.typed)
    with engine.connect() as conn:
        records = [
            {"id": r["id"], **{n: f.from_row(r) for n, f in entity.fields.items()}}
            for r in conn.execute(entity.select.order_by(entity.table.c.id)).mappings()
        ]
        where = SqlCompiler(runtime.tables, engine.dialect.name, registry).condition(checked.typed, "member")
        in_sql = set(conn.execute(sa.select(entity.table.c.id).where(where(CONTEXT))).scalars())
    in_python = {r["id"] for r in records if closure(r, CONTEXT) is True}
    assert in_python == in_sql, f"{text}: Python {sorted(in_python)}, SQL {sorted(in_sql)}"


# --- hostile requests: every answer a 4xx naming the field, never a 5xx -------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["+33123456789", "a@b.co", "FR", "Dr.", "", " ", "\x00", "work", "<script>"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "value",
                    "label",
                    "primary",
                    "opted_out",
                    "street",
                    "city",
                    "country",
                    "salutation",
                    "last",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=10,
)


@pytest.fixture
def everything(
    engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path
) -> Iterator[TestClient]:
    install(engine, registry, members_pack(tmp_path, name={"type": "person_name"}, home={"type": "address"}))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    field=st.sampled_from(["emails", "phones", "name", "home"]),
    value=json_values,
    key=st.sampled_from(
        [
            "home.city",
            "home.country__gte",
            "name.last__blank",
            "home.x",
            "name.",
            ".last",
            "emails",
            "phones__ne",
            "home",
        ]
    ),
    text=st.text(max_size=20),
)
def test_hostile_bodies_and_filters_are_4xx_never_5xx(
    everything: TestClient, field: str, value: object, key: str, text: str
) -> None:
    made = everything.post("/api/v1/member", json={field: value})
    assert made.status_code in (201, 422), made.text
    if made.status_code == 422:
        assert made.json()["errors"][field]
    listed = everything.get("/api/v1/member", params={key: text})
    assert listed.status_code in (200, 400), listed.text
