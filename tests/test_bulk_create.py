"""Bulk create (records/inserts.py: executemany on SQLite, COPY on PostgreSQL) checks and
writes everything a single create does: auto numbers in order, history rows and stage
visits, hooks per record, every refused record named by index and field with nothing
written, references and unique values looked up once per batch. Issue 11, section 1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records.errors import ValidationFailed
from slatecrm.platform.records.inserts import COPY_FROM
from slatecrm.platform.records.pipeline import Draft, Saved, WriteRequest
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.runtime import RuntimeHolder

from .defaults import make_app, signed_in
from .packs import install, write_pack

CLUB: dict[str, dict[str, Any]] = {
    "region": {"title_field": "name", "fields": {"name": {"type": "text", "required": True}}},
    "member": {
        "title_field": "name",
        "unique": [["region", "seat"]],
        "fields": {
            "code": {"type": "auto_number", "prefix": "M-", "digits": 4},
            "name": {"type": "text", "required": True},
            "email": {"type": "email", "unique": True},
            "region": {"type": "reference", "target": "region"},
            "home": {"type": "reference", "target": "region"},
            "seat": {"type": "integer"},
            "joined": {"type": "date"},
            "fee": {"type": "decimal", "scale": 2},
        },
        "pipelines": {"membership": {"field": "status", "stages": [{"key": "applied"}, {"key": "active"}]}},
    },
}


@pytest.fixture
def records(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> Iterator[RecordsService]:
    install(engine, registry, write_pack(tmp_path, "club", "1.0.0", CLUB))
    yield RecordsService(engine, RuntimeHolder(engine, registry), registry)


def members(count: int, **more: Any) -> list[dict[str, Any]]:
    return [{"name": f"Member {i}", "joined": f"2024-01-{i % 28 + 1:02d}", "fee": "12.50", **more}
            for i in range(count)]


def scalar(engine: sa.Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def test_a_batch_gets_numbers_in_order_history_and_stage_visits(records: RecordsService,
                                                                engine: sa.Engine) -> None:
    north = records.create("region", {"name": "North"})
    made = records.create_many("member", members(300, region=north.id))
    assert len(made) == 300 > COPY_FROM  # PostgreSQL wrote them by COPY
    assert [m.values["code"] for m in made] == [f"M-{i:04d}" for i in range(1, 301)]
    assert [m.id for m in made] == sorted({m.id for m in made})
    assert [m.values["name"] for m in made] == [f"Member {i}" for i in range(300)]
    assert {(m.titles["region"], m.values["status"], str(m.values["fee"]), m.version) for m in made} == {
        ("North", "applied", "12.50", 1)}
    assert made[30].values["joined"].isoformat() == "2024-01-03"
    stored = records.get("member", made[-1].id)
    assert (stored.values, stored.title) == (made[-1].values, "Member 299")
    history = records.history("member", made[7].id)
    assert [(h.version, h.action) for h in history] == [(1, "create")]
    assert history[0].changes["code"] == [None, "M-0008"]
    assert history[0].changes["joined"] == [None, "2024-01-08"]
    assert history[0].changes["fee"] == [None, "12.50"]
    assert [(v.stage, v.left_at) for v in records.stage_history("member", made[7].id)] == [("applied", None)]
    assert scalar(engine, "SELECT count(*) FROM slate_history WHERE entity = 'member'") == 300
    # the next batch goes on where this one stopped, a single create too
    more = records.create_many("member", members(3))
    assert [m.values["code"] for m in more] == ["M-0301", "M-0302", "M-0303"]
    assert records.create("member", {"name": "Solo"}).values["code"] == "M-0304"


def test_one_bad_record_refuses_the_batch_naming_each_by_index(records: RecordsService,
                                                              engine: sa.Engine) -> None:
    rows = members(100)
    rows[50]["joined"] = "2024-13-45"
    rows[70]["name"] = " "
    rows[80]["colour"] = "red"
    with pytest.raises(ValidationFailed) as refused:
        records.create_many("member", rows)
    assert refused.value.errors == {"[50].joined": ["'2024-13-45' is not a date (YYYY-MM-DD)"],
                                    "[70].name": ["is required"],
                                    "[80].colour": ["member has no field 'colour'"]}
    assert scalar(engine, "SELECT count(*) FROM x_member") == 0  # all or nothing
    assert scalar(engine, "SELECT count(*) FROM slate_history WHERE entity = 'member'") == 0
    assert scalar(engine, "SELECT count(*) FROM slate_stage_history") == 0
    assert records.create("member", {"name": "First"}).values["code"] == "M-0001"  # no number used up


def test_references_are_looked_up_once_per_referenced_entity(records: RecordsService,
                                                             engine: sa.Engine) -> None:
    regions = records.create_many("region", [{"name": f"R{i}"} for i in range(3)])
    rows = members(40)
    for i, row in enumerate(rows):
        row.update(region=regions[i % 3].id, home=regions[(i + 1) % 3].id)
    rows[5]["region"], rows[9]["home"] = 999, 998
    statements: list[str] = []

    def log(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", log)
    try:
        with pytest.raises(ValidationFailed) as refused:
            records.create_many("member", rows)
    finally:
        sa.event.remove(engine, "before_cursor_execute", log)
    assert refused.value.errors == {"[5].region": ["there is no region with id 999"],
                                    "[9].home": ["there is no region with id 998"]}
    assert len([s for s in statements if "FROM x_region" in s]) == 1  # two fields, one entity
    del rows[9]["home"], rows[5]["region"]
    made = records.create_many("member", rows)
    assert [m.titles.get("home") for m in made[:3]] == ["R1", "R2", "R0"]


def test_unique_values_clash_with_stored_records_and_within_the_batch(records: RecordsService,
                                                                      engine: sa.Engine) -> None:
    north = records.create("region", {"name": "North"})
    kept = records.create("member", {"name": "Kept", "email": "a@example.com", "region": north.id, "seat": 1})
    rows = members(20, region=north.id)
    for i, row in enumerate(rows):
        row.update(email=f"m{i}@example.com", seat=i + 2)
    rows[3]["email"] = "a@EXAMPLE.com"  # kept with the domain in lower case: a@example.com
    rows[12]["email"] = rows[4]["email"]
    rows[15]["seat"] = 1
    rows[17]["seat"] = rows[16]["seat"]
    with pytest.raises(ValidationFailed) as refused:
        records.create_many("member", rows)
    pair = "Region and Seat"
    assert refused.value.errors == {
        "[3].email": [f"is already used by member {kept.id}"],
        "[12].email": ["is already used by record [4] of this batch"],
        "[15].region": [f"member {kept.id} already has this combination of {pair}"],
        "[15].seat": [f"member {kept.id} already has this combination of {pair}"],
        "[17].region": [f"record [16] of this batch already has this combination of {pair}"],
        "[17].seat": [f"record [16] of this batch already has this combination of {pair}"],
    }
    assert scalar(engine, "SELECT count(*) FROM x_member") == 1
    for i in (3, 12):
        rows[i]["email"] = f"fixed{i}@example.com"
    rows[15]["seat"], rows[17]["region"] = 100, None  # a blank never clashes
    assert len(records.create_many("member", rows)) == 20


def test_hooks_run_for_each_record_and_once_after_the_commit(records: RecordsService) -> None:
    seen: list[str] = []
    saved: list[Saved] = []

    def shout(conn: sa.Connection, request: WriteRequest, draft: Draft, context: object) -> None:
        seen.append(draft.values["name"])
        draft.values["name"] = (draft.values["name"] or "").upper()

    records.pipeline.hooks.before_save.append(shout)
    records.pipeline.hooks.after_commit.append(saved.append)
    made = records.create_many("member", members(25))
    assert seen == [f"Member {i}" for i in range(25)]
    assert [m.values["name"] for m in made] == [f"MEMBER {i}" for i in range(25)]
    assert len(saved) == 1 and [r.id for r in saved[0].records] == [m.id for m in made]
    assert [h["record_id"] for h in saved[0].history] == [m.id for m in made]
    assert saved[0].history[0]["changes"]["name"] == [None, "MEMBER 0"]
    with pytest.raises(ValidationFailed):
        records.create_many("member", [{"name": "Fine"}, {"name": ""}])
    assert len(saved) == 1  # nothing committed, nothing heard


def test_the_api_creates_a_list_through_the_same_path(engine: sa.Engine, db_url: str,
                                                      registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, write_pack(tmp_path, "club", "1.0.0", CLUB))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        made = http.post("/api/v1/member", json=members(30))
        assert made.status_code == 201, made.text
        assert [m["code"] for m in made.json()["data"]] == [f"M-{i:04d}" for i in range(1, 31)]
        refused = http.post("/api/v1/member", json=[{"name": "A"}, {"name": "B", "seat": "many"}])
        assert refused.status_code == 422
        assert refused.json()["errors"] == {"[1].seat": ["'many' is not a whole number"]}
        assert http.get("/api/v1/member?count=true").json()["count"] == 30
    app.state.engine.dispose()
