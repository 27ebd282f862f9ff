"""A batch of database-only runs: committed at once when all of them succeed, and run again one
savepoint each when one fails or was taken over (jobs.py `_run_at_once`), so each run's own
outcome is recorded and none is done twice; a batch's records read at once, as its earlier
runs left them; and the INSERT of several jobs (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.storage import system
from slatecrm.platform.workflows.outbox import insert_jobs

from .workflow_support import START, Automation, automation

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

FILES = {
    "entities/batch_item.yaml": """\
        kind: entity
        name: batch_item
        title_field: name
        fields:
          name:
            type: text
            required: true
          counter:
            type: integer
        """,
    # The record whose counter is 3 is refused (its name made blank): that run fails, for good.
    "workflows/count.yaml": """\
        kind: workflow
        name: count
        entity: batch_item
        trigger: {kind: created}
        actions:
          - kind: update
            set:
              counter: "counter + 1"
              name: "if(counter = 3, '', name)"
        """,
}


@pytest.fixture
def auto(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> Automation:
    made = automation(engine, registry, tmp_path)
    made.install(FILES)
    return made


def counters(auto: Automation, ids: list[int]) -> dict[str, int]:
    return {(v := auto.records.get("batch_item", i).values)["name"]: v["counter"] for i in ids}


def updates(auto: Automation, record_id: int) -> int:
    return sum(1 for h in auto.records.history("batch_item", record_id) if h.action == "update")


def test_a_batch_with_a_failing_run_commits_the_others_once(auto: Automation) -> None:
    ids = [auto.records.create("batch_item", {"name": f"item {i}", "counter": i}).id for i in range(5)]
    assert auto.run() == 5
    assert counters(auto, ids) == {"item 0": 1, "item 1": 2, "item 2": 3, "item 3": 3, "item 4": 5}
    by_record = {j.record_id: j for j in auto.jobs()}
    assert [by_record[i].status for i in ids] == ["done", "done", "done", "dead", "done"]
    runs = auto.runs()
    assert sorted((r.record_id, r.status) for r in runs) == sorted(
        [(i, "done") for i in ids if i != ids[3]] + [(ids[3], "dead")])
    assert "name" in (next(r for r in runs if r.record_id == ids[3]).error or "")
    assert [updates(auto, i) for i in ids] == [1, 1, 1, 0, 1]


def test_a_batch_with_a_job_taken_over_commits_only_this_claims_runs(auto: Automation) -> None:
    ids = [auto.records.create("batch_item", {"name": f"item {i}", "counter": 0}).id for i in range(3)]
    worker = auto.worker("w1")
    claims = worker.runner.claim(10)
    assert [c.record_id for c in claims] == ids
    jobs = system.workflow_jobs
    with auto.engine.begin() as conn:  # another worker took the second job over (its lease ran out)
        conn.execute(jobs.update().where(jobs.c.id == claims[1].id)
                     .values(attempts=jobs.c.attempts + 1, lease_owner="w2"))
    worker.runner.run_all(claims)
    assert [j.status for j in auto.jobs()] == ["done", "running", "done"]
    assert [updates(auto, i) for i in ids] == [1, 0, 1]
    assert sorted(r.record_id for r in auto.runs()) == [ids[0], ids[2]]


def test_a_batch_that_succeeds_is_one_commit_with_every_run_logged(auto: Automation) -> None:
    ids = [auto.records.create("batch_item", {"name": f"item {i}", "counter": 10}).id for i in range(4)]
    assert auto.run() == 4
    assert set(counters(auto, ids).values()) == {11}
    assert [j.status for j in auto.jobs()] == ["done"] * 4
    assert [(r.record_id, r.status, r.attempt) for r in auto.runs()] == [(i, "done", 1) for i in ids]
    assert auto.run() == 0


def test_jobs_inserted_together_read_back_as_given(auto: Automation) -> None:
    """The outbox's INSERT of several jobs (on PostgreSQL one JSON parameter expanded by
    json_populate_recordset) stores each value as its column's type: times in UTC, JSON as
    JSON (nested, unicode, nulls), NULLs as NULL."""
    paris = dt.timezone(dt.timedelta(hours=1))
    base = {"workflow": "count", "version": "v1", "entity": "batch_item", "trigger": "created",
            "status": "pending", "finished_at": None, "attempts": 0, "lease_owner": None, "lease_until": None,
            "progress": {}, "chain": ["a", "b"], "last_error": None, "dedupe_key": None}
    rows = [{**base, "record_id": 7, "event": {"changes": {"name": ["Zoë", "Zoé “quoted”"]}, "user": None},
             "due_at": dt.datetime(2026, 3, 2, 10, 30, tzinfo=paris), "created_at": START},
            {**base, "record_id": None, "event": {"changes": {}, "user": 3, "n": [1, 2.5, True, None]},
             "due_at": START, "created_at": START, "dedupe_key": "time:x:1"}]
    with auto.engine.begin() as conn:
        insert_jobs(conn, rows)
    stored = auto.jobs()
    assert [(j.record_id, j.event, j.due_at, j.created_at, j.chain, j.progress, j.dedupe_key, j.status,
             j.attempts, j.lease_until) for j in stored] == [
        (7, rows[0]["event"], dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC), START, ["a", "b"], {}, None,
         "pending", 0, None),
        (None, rows[1]["event"], START, START, ["a", "b"], {}, "time:x:1", "pending", 0, None)]
    assert stored[0].id < stored[1].id


STEPS = {
    "workflows/a_first.yaml": """\
        kind: workflow
        name: a_first
        entity: batch_item
        trigger: {kind: created}
        condition: "counter = 0"
        actions:
          - kind: update
            set:
              counter: "counter + 1"
        """,
    "workflows/b_second.yaml": """\
        kind: workflow
        name: b_second
        entity: batch_item
        trigger: {kind: created}
        condition: "counter = 1"
        actions:
          - kind: update
            set:
              counter: "counter + 10"
        """,
}


def test_a_run_reads_its_record_as_the_batchs_earlier_runs_left_it(engine: sa.Engine,
                                                                   registry: FieldTypeRegistry,
                                                                   tmp_path: Path) -> None:
    """The batch reads its records at once, but a run whose record an earlier run of the batch
    changed reads it again: the second workflow's condition sees the first one's update."""
    auto = automation(engine, registry, tmp_path)
    auto.install({"entities/batch_item.yaml": FILES["entities/batch_item.yaml"], **STEPS})
    ids = [auto.records.create("batch_item", {"name": f"item {i}", "counter": 0}).id for i in range(3)]
    assert [(j.workflow, j.record_id) for j in auto.jobs()] == [
        (w, i) for i in ids for w in ("a_first", "b_second")]
    assert auto.run() == 6
    assert set(counters(auto, ids).values()) == {11}
    assert {(r.workflow, r.status, r.condition) for r in auto.runs()} == {("a_first", "done", True),
                                                                          ("b_second", "done", True)}
