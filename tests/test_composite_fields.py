"""The composite field types `address` and `person_name` in every layer, on SQLite and
PostgreSQL: pack validation, plan / apply / retype, the API, the form and the pages, rule
paths into their parts (SQL and Python agree), list filters and sorts by part, the text
search, titles, CSV export and the OpenAPI document."""

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
from slatecrm.metamodel.rules import RuleContext, RuleError, check, compile_python
from slatecrm.platform import installer
from slatecrm.platform.cli import main
from slatecrm.platform.records.compiled import compile_entities
from slatecrm.platform.records.rulesql import SqlCompiler
from slatecrm.platform.storage import revisions
from slatecrm.platform.storage.runtime import build_runtime

from .defaults import make_app, signed_in
from .packs import install, plan, write_files_pack, write_pack
from .rules.strategies import NOW


def person(**fields: Any) -> dict[str, Any]:
    """A person entity named by a person_name, with an address, and `fields`."""
    return {
        "label": "Person",
        "label_plural": "People",
        "title_field": "name",
        "fields": {
            "name": {"type": "person_name", "label": "Name"},
            "home": {"type": "address", "label": "Home", "default_country": "FR"},
            "note": {"type": "text"},
            **fields,
        },
    }


def people_pack(root: Path, version: str = "1.0.0", **fields: Any) -> Path:
    return write_pack(root, "folk", version, {"person": person(**fields)})


# --- pack validation ------------------------------------------------------------------------
BAD_SETTINGS = """\
kind: entity
name: person
fields:
  name:
    type: person_name
    salutations: []
  home:
    type: address
    default_country: France
"""
BAD_DEFINITIONS = """\
kind: entity
name: person
fields:
  home:
    type: address
    default_country: XX
  work:
    type: address
    countries: [FR, QQ]
  other:
    type: person_name
    unique: true
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            BAD_SETTINGS,
            [":6:18: fields.name.salutations: must not be empty", ":9:22: fields.home.default_country: "],
        ),
        (
            BAD_DEFINITIONS,
            [
                ":4:3: fields.home: default_country: 'XX' is not an ISO 3166-1 alpha-2 country code",
                ":7:3: fields.work: countries: 'QQ' is not an ISO 3166-1 alpha-2 country code",
                ":10:3: fields.other: unique: a person_name field cannot be unique",
            ],
        ),
    ],
    ids=["schema", "definitions"],
)
def test_bad_settings_are_refused_at_their_file_and_line(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    pack = write_files_pack(tmp_path, {"entities/person.yaml": text}, name="folk", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for line in expected:
        assert f"entities/person.yaml{line}" in result.output, result.output


def test_good_settings_validate(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["pack", "validate", str(people_pack(tmp_path))], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output


# --- plan, apply, retype -------------------------------------------------------------------
def rows(engine: sa.Engine, *columns: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(sa.text(f"SELECT {', '.join(columns)} FROM x_person ORDER BY id"))
        ]


def test_install_makes_a_text_column_per_part(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    install(engine, registry, people_pack(tmp_path))
    columns = {c["name"] for c in sa.inspect(engine).get_columns("x_person")}
    assert {
        "home",
        "home__city",
        "home__region",
        "home__postal_code",
        "home__country",
        "name",
        "name__salutation",
        "name__first",
        "name__middle",
    } <= columns


def test_retype_text_to_address_and_person_name_keeps_the_values(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    install(engine, registry, people_pack(tmp_path, street={"type": "text"}, fullname={"type": "text"}))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO x_person (created_at, updated_at, version, street, fullname) "
                "VALUES (:t, :t, 1, '1 Rue de Rivoli', 'Dr. Ada King Lovelace'), "
                "(:t, :t, 1, NULL, 'Turing')"
            ),
            {"t": NOW},
        )
    install(
        engine,
        registry,
        people_pack(tmp_path, "2.0.0", street={"type": "address"}, fullname={"type": "person_name"}),
    )
    assert rows(
        engine,
        "street",
        "street__city",
        "fullname",
        "fullname__salutation",
        "fullname__first",
        "fullname__middle",
    ) == [
        ("1 Rue de Rivoli", None, "Lovelace", "Dr.", "Ada", "King"),
        (None, None, "Turing", None, None, None),
    ]
    # The text search reads the new part columns (its index follows the retype).
    from slatecrm.platform.records.listing import ListQuery
    from slatecrm.platform.records.service import RecordsService
    from slatecrm.platform.storage.runtime import RuntimeHolder

    records = RecordsService(engine, RuntimeHolder(engine, registry), registry)
    assert [r.id for r in records.page("person", ListQuery(search="rivoli")).records] == [1]
    assert [r.id for r in records.page("person", ListQuery(search="lovelace")).records] == [1]
    # address → text would drop the city and country columns: reported before anything changes.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE x_person SET street__city = 'Paris' WHERE id = 1"))
    back = plan(
        engine,
        registry,
        people_pack(tmp_path, "3.0.0", street={"type": "text"}, fullname={"type": "person_name"}),
    )
    assert back.plan.blocked
    [change] = [c for c in back.plan.changes if c.field == "street"]
    assert any(
        "do not convert" in r.message and "expected text, got an object" in r.message for r in change.risks
    )
    with pytest.raises(Exception):  # noqa: B017 - apply re-checks every value itself
        installer.install(engine, back, author="test")
    assert rows(engine, "street", "street__city") == [("1 Rue de Rivoli", "Paris"), (None, None)]


def test_narrowing_the_countries_reports_stored_values(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    install(engine, registry, people_pack(tmp_path))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO x_person (created_at, updated_at, version, home__city, home__country) "
                "VALUES (:t, :t, 1, 'Bonn', 'DE')"
            ),
            {"t": NOW},
        )
    narrowed = plan(
        engine, registry, people_pack(tmp_path, "2.0.0", home={"type": "address", "countries": ["FR"]})
    )
    [change] = [c for c in narrowed.plan.changes if c.field == "home"]
    assert not narrowed.plan.blocked
    assert "1 of 1 rows hold values the new definition refuses" in change.risks[0].message
    assert "country: DE is not allowed" in change.risks[0].message


# --- API, forms, pages, CSV, OpenAPI --------------------------------------------------------
@pytest.fixture
def folk(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Iterator[TestClient]:
    install(engine, registry, people_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def make(client: TestClient, **values: object) -> int:
    response = client.post("/api/v1/person", json=values)
    assert response.status_code == 201, response.text
    made: int = response.json()["id"]
    return made


ADA = {"salutation": "dr", "first": " Ada ", "last": "Lovelace"}
RIVOLI = {"street": "1 Rue de Rivoli\n3e étage", "city": "Paris", "postal_code": "75001", "country": "fr"}


def test_api_round_trip_title_and_refusals_name_the_field_and_part(folk: TestClient) -> None:
    made = make(folk, name=ADA, home=RIVOLI)
    record = folk.get(f"/api/v1/person/{made}").json()
    assert record["name"] == {"salutation": "Dr.", "first": "Ada", "last": "Lovelace"}
    assert record["home"] == {
        "street": "1 Rue de Rivoli\n3e étage",
        "city": "Paris",
        "postal_code": "75001",
        "country": "FR",
    }
    assert record["_title"] == "Dr. Ada Lovelace"
    version = record["version"]
    changed = folk.patch(
        f"/api/v1/person/{made}", json={"home": {"city": "Lyon", "country": "France"}, "version": version}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["home"] == {"city": "Lyon", "country": "FR"}  # the object is the whole value
    for typed, code in (
        ("fra", "FR"),
        ("Russia", "RU"),
        ("british virgin islands", "VG"),
        ("Korea, Republic of", "KR"),
    ):  # names from ISO 3166 and CLDR, any case
        named = folk.post("/api/v1/person", json={"home": {"country": typed}})
        assert named.status_code == 201 and named.json()["home"] == {"country": code}, named.text
    ambiguous = folk.post("/api/v1/person", json={"home": {"country": "Korea"}})  # two countries: no guess
    assert ambiguous.status_code == 422
    for field, bad, message in (
        ("home", {"country": "Atlantis"}, "country: 'Atlantis' is not an ISO 3166 country code"),
        ("home", {"town": "Paris"}, "unknown part 'town'"),
        ("home", {"city": 12}, "city: expected text, got a number"),
        ("home", {"city": "Paris\nLyon"}, "city: must be a single line"),
        (
            "home",
            "1 Main Street",
            "expected an object of street, city, region, postal_code, country, got text",
        ),
        (
            "name",
            {"salutation": "Sir", "last": "Newton"},
            "salutation: 'Sir' is not one of Mr., Ms., Mx., Dr.",
        ),
        ("name", {"last": "x" * 501}, "last: is 501 characters long"),
        ("name", {"first": "A\x00"}, "first: contains a NUL character"),
        ("name", [1, 2], "got a list"),
    ):
        refused = folk.post("/api/v1/person", json={field: bad})
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["errors"][field][0], refused.json()
    cleared = folk.get(f"/api/v1/person/{made}").json()
    cleared = folk.patch(
        f"/api/v1/person/{made}", json={"home": {"city": " "}, "version": cleared["version"]}
    )
    assert cleared.status_code == 200 and cleared.json()["home"] is None


@pytest.mark.parametrize(
    "value",
    [
        True,
        2**70,
        "１",
        [{"city": "x"}],
        {"city": {"a": 1}},
        {"country": ["FR"]},
        {"": "x"},
        {"city": "x" * 100_000},
    ],
    ids=repr,
)
def test_hostile_values_are_refused_never_a_server_error(folk: TestClient, value: object) -> None:
    refused = folk.post("/api/v1/person", json={"home": value})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"]["home"]
    listed = folk.get("/api/v1/person", params={"home.city": "\x00", "home.nowhere": "x"})
    assert listed.status_code == 400, listed.text


def test_list_filters_sorts_and_searches_by_part(folk: TestClient) -> None:
    paris = make(folk, name={"first": "Marie", "last": "Curie"}, home={"city": "Paris", "country": "FR"})
    lyon = make(folk, name={"first": "Ada", "last": "Lovelace"}, home={"city": "Lyon", "country": "FR"})
    bonn = make(folk, name={"first": "Ludwig", "last": "Beethoven"}, home={"city": "Bonn", "country": "DE"})
    nobody = make(folk, note="none", name={"first": "Alan", "last": "Curie"})

    def ids(**params: str) -> list[int]:
        response = folk.get("/api/v1/person", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]]

    assert ids(**{"home.city": "Paris"}) == [paris]
    assert sorted(ids(**{"home.country": "FR"})) == sorted([paris, lyon])
    assert ids(**{"home.city__blank": "true"}) == [nobody]
    assert ids(filter='home.city = "Paris" or name.last = "Beethoven"', sort="id") == [paris, bonn]
    assert ids(filter='name.salutation is blank and name.first starts_with "A"', sort="id") == [lyon, nobody]
    assert ids(sort="name") == [bonn, nobody, paris, lyon]  # last name, then first name
    assert ids(sort="-name") == [lyon, paris, nobody, bonn]
    for sort, expected in (("-name", [lyon, paris, nobody, bonn]), ("name", [bonn, nobody, paris, lyon])):
        paged, after = [], None  # keyset pages of one record follow the two sort columns
        while True:
            page = folk.get(
                "/api/v1/person", params={"sort": sort, "limit": "1", **({"after": after} if after else {})}
            )
            assert page.status_code == 200, page.text
            paged += [r["id"] for r in page.json()["data"]]
            after = page.json().get("next_cursor")
            if not after:
                break
        assert paged == expected
    assert [i for i in ids(sort="home,id") if i != nobody] == [bonn, lyon, paris]  # country, then city
    assert sorted(ids(q="curie")) == sorted([paris, nobody])
    assert ids(q="lyon") == [lyon]
    # The list page and the CSV export take the same part filters.
    page = folk.get("/e/person", params={"home.city": "Lyon"})
    assert page.status_code == 200 and "Lovelace" in page.text and "Curie" not in page.text
    exported = folk.get("/e/person/export.csv", params={"home.country": "DE"}).text
    assert "Beethoven" in exported and "Curie" not in exported
    refused = folk.get("/api/v1/person", params={"home.town": "Paris"})
    assert refused.status_code == 400 and "home has no part 'town'" in refused.text


def test_rules_name_the_parts_and_refuse_the_whole_value(folk: TestClient) -> None:
    wrong = folk.get("/api/v1/person", params={"filter": 'home = "Paris"'})
    assert wrong.status_code == 400 and "read one of its parts: home.street, home.city" in wrong.text
    unknown = folk.get("/api/v1/person", params={"filter": 'home.town = "Paris"'})
    assert unknown.status_code == 400 and "'home' has no part 'town'" in unknown.text
    option = folk.get("/api/v1/person", params={"filter": 'name.salutation = "Sir"'})
    assert option.status_code == 400 and "'Sir' is not an option" in option.text


def test_form_widget_saves_and_pages_show_the_formatted_value(folk: TestClient) -> None:
    form = folk.get("/e/person/new").text
    assert 'class="parts address-input"' in form and 'name="home__city"' in form
    assert '<textarea id="f-home" name="home" rows="2">' in form
    assert '<option value="FR" selected>France (FR)</option>' in form  # the default country
    assert '<option value="Dr.">Dr.</option>' in form
    fields = {"_fields": ["name", "home", "note"]}
    made = folk.post(
        "/e/person/new",
        data={
            **fields,
            "name__first": "Ada",
            "name": "Lovelace",
            "name__salutation": "Dr.",
            "home": "1 Rue de Rivoli",
            "home__city": "Paris",
            "home__country": "FR",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    page = folk.get(made.headers["location"]).text
    assert "Dr. Ada Lovelace" in page and "1 Rue de Rivoli<br>Paris<br>France" in page
    edit = folk.get(made.headers["location"] + "/edit").text
    assert 'name="home__city" type="text" value="Paris"' in edit
    bare = folk.post(
        "/e/person/new", data={**fields, "note": "x", "home__country": "FR"}, follow_redirects=False
    )
    assert bare.status_code == 303  # the default country alone is no address
    assert folk.get(bare.headers["location"].replace("/e/", "/api/v1/")).json()["home"] is None
    refused = folk.post("/e/person/new", data={**fields, "home__country": "ZZ", "home__city": "Nowhere"})
    assert (
        refused.status_code == 422 and "country: &#39;ZZ&#39; is not an ISO 3166 country code" in refused.text
    )


def test_csv_export_writes_the_formatted_value(folk: TestClient) -> None:
    make(folk, name=ADA, home=RIVOLI)
    rows_ = list(csv.reader(io.StringIO(folk.get("/e/person/export.csv").text)))
    assert rows_[0] == ["id", "Name", "Home", "Note"]
    assert rows_[1][1:] == ["Dr. Ada Lovelace", "1 Rue de Rivoli\n3e étage\n75001 Paris\nFrance", ""]


def test_openapi_describes_the_parts(folk: TestClient) -> None:
    from openapi_spec_validator import validate

    document = folk.get("/api/v1/openapi.json").json()
    validate(document)  # a valid OpenAPI document
    listed = {p["name"] for p in document["paths"]["/api/v1/person"]["get"]["parameters"]}
    assert {"home.city", "home.city__gte", "home.country__blank", "name.last__ne"} <= listed
    assert "home" not in listed and "home__ne" not in listed  # no filter on the whole value
    schemas = folk.get("/api/v1/openapi.json").json()["components"]["schemas"]
    given_ = schemas["PersonInput"]["properties"]["home"]["anyOf"][0]
    assert given_["type"] == "object" and given_["additionalProperties"] is False
    assert set(given_["properties"]) == {"street", "city", "region", "postal_code", "country"}
    assert "FR" in given_["properties"]["country"]["anyOf"][0]["enum"]
    shown = schemas["Person"]["properties"]["name"]["anyOf"][0]
    assert shown["properties"]["salutation"] == {
        "type": "string",
        "enum": ["Mr.", "Ms.", "Mx.", "Dr.", "Prof."],
    }


# --- the rule language: SQL and Python agree ------------------------------------------------
CONTEXT = RuleContext(now=NOW, user_id=1, user_roles=("sales",))
CITIES = ["Paris", "Lyon", "paris", "Bonn", "Zürich"]
addresses = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "city": st.sampled_from(CITIES),
            "country": st.sampled_from(["FR", "DE", "CH"]),
            "postal_code": st.sampled_from(["75001", "69001", "53111"]),
        },
    ),
)
names = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "salutation": st.sampled_from(["Dr.", "Ms."]),
            "first": st.sampled_from(["Ada", "Alan", "ada"]),
            "last": st.sampled_from(["Lovelace", "Turing", "Curie"]),
        },
    ),
)
conditions = st.one_of(
    st.builds(
        lambda op, city: f'home.city {op} "{city}"',
        st.sampled_from(["=", "!=", "<", ">="]),
        st.sampled_from(CITIES),
    ),
    st.builds(lambda country: f'home.country in ("{country}", "CH")', st.sampled_from(["FR", "DE"])),
    st.sampled_from(
        [
            "home.postal_code is blank",
            'name.salutation = "Dr."',
            'name.first starts_with "A"',
            'name.last contains "r"',
            "len(name.last) > 5",
            'lower(name.first) = "ada"',
            "name.middle is not blank",
            'home.city matches "^[PL]"',
        ]
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    values=st.lists(st.tuples(addresses, names), min_size=1, max_size=10),
    condition=conditions,
    negate=st.booleans(),
)
def test_rule_filters_on_parts_select_the_same_records_in_sql_and_python(
    engine: sa.Engine,
    registry: FieldTypeRegistry,
    tmp_path_factory: pytest.TempPathFactory,
    values: list[tuple[Any, Any]],
    condition: str,
    negate: bool,
) -> None:
    if not sa.inspect(engine).has_table("x_person"):  # once per database, not per example
        install(engine, registry, people_pack(tmp_path_factory.mktemp("folk")))
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
    runtime = build_runtime(number, metamodel, registry)
    entity = compile_entities(metamodel.entities, runtime.tables, registry)["person"]
    home, name = entity.fields["home"], entity.fields["name"]
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
                    **home.to_row(home.type.coerce(a, home.field)),
                    **name.to_row(name.type.coerce(n, name.field)),
                }
                for i, (a, n) in enumerate(values, start=1)
            ],
        )
    text = f"not ({condition})" if negate else condition
    checked = check(text, metamodel, "person")
    closure = compile_python(checked.typed)
    with engine.connect() as conn:
        records = [
            {"id": r["id"], **{n: f.from_row(r) for n, f in entity.fields.items()}}
            for r in conn.execute(entity.select.order_by(entity.table.c.id)).mappings()
        ]
        where = SqlCompiler(runtime.tables, engine.dialect.name, registry).condition(checked.typed, "person")
        in_sql = set(conn.execute(sa.select(entity.table.c.id).where(where(CONTEXT))).scalars())
    in_python = {r["id"] for r in records if closure(r, CONTEXT) is True}
    assert in_python == in_sql, f"{text}: Python {sorted(in_python)}, SQL {sorted(in_sql)}"


def test_paths_through_a_reference_reach_a_part(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    pack = write_pack(
        tmp_path,
        "folk",
        "1.0.0",
        {
            "person": person(),
            "letter": {
                "label": "Letter",
                "label_plural": "Letters",
                "title_field": "subject",
                "fields": {
                    "subject": {"type": "text"},
                    "recipient": {"type": "reference", "target": "person"},
                },
            },
        },
    )
    install(engine, registry, pack)
    with engine.connect() as conn:
        _, metamodel = revisions.current_metamodel(conn)
    checked = check('recipient.home.city = "Paris" and recipient.name.last != "x"', metamodel, "letter")
    assert checked.typed is not None
    with pytest.raises(RuleError, match="'home' has no part 'cty'"):
        check('recipient.home.cty = "Paris"', metamodel, "letter")
    # A reference to a person shows the person's formatted name; a list filters through it.
    from slatecrm.platform.records.listing import ListQuery
    from slatecrm.platform.records.service import RecordsService
    from slatecrm.platform.storage.runtime import RuntimeHolder

    records = RecordsService(engine, RuntimeHolder(engine, registry), registry)
    ada = records.create(
        "person",
        {"name": {"salutation": "Dr.", "first": "Ada", "last": "Lovelace"}, "home": {"city": "Paris"}},
    )
    alan = records.create("person", {"name": {"first": "Alan", "last": "Turing"}})
    letter = records.create("letter", {"subject": "Notes", "recipient": ada.id})
    records.create("letter", {"subject": "Enigma", "recipient": alan.id})
    assert records.get("letter", letter.id).titles["recipient"] == "Dr. Ada Lovelace"
    found = records.page("letter", ListQuery(expression='recipient.home.city = "Paris"')).records
    assert [r.id for r in found] == [letter.id]


def test_a_renamed_street_field_becomes_an_address_keeping_its_text(
    engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    """The default packs' move from `billing_street` (text) to `billing_address`: one upgrade
    renames and retypes the field (the plan reads the values under the former name), and the
    street is kept; a value that does not convert is reported under the new name."""
    install(engine, registry, people_pack(tmp_path, billing_street={"type": "text"}, tel={"type": "text"}))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO x_person (created_at, updated_at, version, billing_street, tel) "
                "VALUES (:t, :t, 1, 'Quai 1', '12')"
            ),
            {"t": NOW},
        )
    blocked = plan(
        engine,
        registry,
        people_pack(
            tmp_path,
            "2.0.0",
            billing_address={"type": "address", "renamed_from": "billing_street"},
            phones={"type": "phones", "renamed_from": "tel"},
        ),
    )
    assert blocked.plan.blocked
    [change] = [c for c in blocked.plan.changes if c.field == "phones" and c.action == "retype column"]
    assert "retype phones text → phones: 1 of 1 rows do not convert" in change.risks[0].message
    moved = people_pack(
        tmp_path,
        "3.0.0",
        billing_address={"type": "address", "renamed_from": "billing_street"},
        tel={"type": "text"},
    )
    install(engine, registry, moved)
    assert rows(engine, "billing_address", "billing_address__city", "tel") == [("Quai 1", None, "12")]


@pytest.mark.parametrize("kind", ["address", "person_name", "emails", "phones"])
def test_sample_values_are_values_of_the_type(registry: FieldTypeRegistry, kind: str) -> None:
    """What `slatecrm sample-data` makes up for a field is a value the field accepts."""
    import datetime as dt
    import random

    from faker import Faker

    from slatecrm.metamodel.fieldtypes.base import SampleSource
    from slatecrm.metamodel.model import Field

    settings_ = {"phones": {"default_region": "GB"}, "address": {"countries": ["FR", "DE"]}}.get(kind, {})
    field = Field(name="x", type=kind, label="X", settings=settings_)
    field_type = registry[kind]
    for seed in range(30):
        pick = SampleSource(random.Random(seed), Faker(), dt.date(2026, 1, 1))
        made = field_type.sample(field, pick)
        assert made is not None and field_type.coerce_given(made, field) is not None
        if kind == "address":
            assert field_type.coerce(made, field)["country"] in ("FR", "DE")
