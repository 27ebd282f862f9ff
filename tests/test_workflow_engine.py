"""Workflows run: the outbox written with the change, workers claiming and running jobs, the
run log, retries and dead letters, loop protection (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .workflow_support import Automation, automation

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

RATE_HOT = """\
    kind: workflow
    name: rate_web_leads
    entity: lead
    trigger: {kind: created}
    condition: "source = 'web'"
    actions:
      - kind: update
        set:
          rating: "'hot'"
      - kind: note
        text: "Rated hot: {{ record.company }} came from the web"
    """


@pytest.fixture
def auto(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> Automation:
    return automation(engine, registry, tmp_path)


def lead(auto: Automation, **values: object) -> int:
    data = {"last_name": "Doe", "company": "Acme", **values}
    return auto.records.create("lead", data).id


def test_a_created_record_runs_its_workflow_once_with_its_condition(auto: Automation) -> None:
    auto.install({"workflows/rate.yaml": RATE_HOT})
    web = lead(auto, source="web")
    other = lead(auto, source="event")
    assert [(j.record_id, j.status) for j in auto.jobs()] == [(web, "pending"), (other, "pending")]
    assert auto.run() == 2
    assert auto.records.get("lead", web).values["rating"] == "hot"
    assert auto.records.get("lead", other).values["rating"] is None
    runs = {r.record_id: r for r in auto.runs()}
    assert runs[web].status == "done" and runs[web].condition is True
    assert [a["status"] for a in runs[web].actions] == ["done", "done"]
    assert runs[other].status == "skipped" and runs[other].condition is False
    notes = [h for h in auto.records.history("lead", web) if h.action == "note"]
    assert notes and "Acme came from the web" in notes[0].changes["note"][1]
    # Nothing is run twice: another round finds nothing, and the workflow's own update did
    # not fire it again.
    assert auto.run() == 0
    assert len(auto.runs()) == 2


STAGE_NOTES = """\
    kind: workflow
    name: {name}
    entity: lead
    trigger: {{kind: {kind}, pipeline: qualification, stage: suspect}}
    actions:
      - kind: note
        text: "{kind} {{{{ previous.status }}}} → {{{{ record.status }}}}"
    """

RATING_CHANGED = """\
    kind: workflow
    name: rating_changed
    entity: lead
    trigger: {kind: updated, fields: [rating]}
    condition: "previous(rating) = 'cold' and rating = 'hot'"
    actions:
      - kind: update
        set:
          job_title: "concat('warmed up from ', previous(rating))"
    """


def test_updated_fires_only_for_its_fields_and_reads_the_previous_value(auto: Automation) -> None:
    auto.install({"workflows/rating.yaml": RATING_CHANGED})
    record = auto.records.create("lead", {"last_name": "Doe", "company": "Acme", "rating": "cold"})
    assert auto.jobs() == []  # created: not this workflow's trigger
    record = auto.records.update("lead", record.id, {"phone": "+33 1 23 45 67 89"}, version=record.version)
    assert auto.jobs() == []  # rating did not change
    record = auto.records.update("lead", record.id, {"rating": "hot"}, version=record.version)
    (job,) = auto.jobs()
    assert job.event["changes"] == {"rating": ["cold", "hot"]}
    assert auto.run() == 1
    assert auto.records.get("lead", record.id).values["job_title"] == "warmed up from cold"
    (run,) = auto.runs()
    assert run.condition is True and run.status == "done"


def test_stage_entered_and_left_fire_on_the_move_between_stages(auto: Automation) -> None:
    auto.install({"workflows/entered.yaml": STAGE_NOTES.format(name="entered", kind="stage_entered"),
                  "workflows/left.yaml": STAGE_NOTES.format(name="left", kind="stage_left")})
    record = auto.records.create("lead", {"last_name": "Doe", "company": "Acme", "email": "d@example.com",
                                         "source": "web"})
    assert auto.jobs() == []
    record = auto.records.update("lead", record.id, {"status": "suspect"}, version=record.version)
    assert [j.workflow for j in auto.jobs()] == ["entered"]
    record = auto.records.update("lead", record.id, {"status": "prospect"}, version=record.version)
    assert [j.workflow for j in auto.jobs()] == ["entered", "left"]
    assert auto.run() == 2
    notes = sorted(h.changes["note"][1] for h in auto.records.history("lead",
                                                                      record.id) if h.action == "note")
    # Each run reads the record as it is when it runs (prospect), and the previous value of
    # its own event.
    assert notes == ["stage_entered new → prospect", "stage_left suspect → prospect"]


DELETED = """\
    kind: workflow
    name: on_delete
    entity: lead
    trigger: {kind: deleted}
    condition: "company = 'Acme'"
    actions:
      - kind: create
        entity: account
        set:
          name: "concat('Deleted lead of ', company)"
    """


def test_deleted_runs_on_the_values_the_record_had(auto: Automation) -> None:
    auto.install({"workflows/deleted.yaml": DELETED})
    record = auto.records.create("lead", {"last_name": "Doe", "company": "Acme"})
    auto.records.delete("lead", record.id)
    (job,) = auto.jobs()
    assert job.trigger == "deleted" and job.event["values"]["company"] == "Acme"
    assert auto.run() == 1
    names = [r.values["name"] for r in auto.records.page("account").records]
    assert "Deleted lead of Acme" in names


def test_one_event_per_record_and_workflow_per_transaction(auto: Automation) -> None:
    """Created and changed in one transaction: one job, evaluated on the final state."""
    auto.install({"workflows/rate.yaml": RATE_HOT, "workflows/rating.yaml": RATING_CHANGED})
    with auto.engine.connect() as conn:
        conn.begin()
        bound = auto.records.bound(conn)
        made = bound.create("lead", {"last_name": "Doe", "company": "Acme", "source": "event",
                                     "rating": "cold"})
        bound.update("lead", made.id, {"source": "web", "rating": "hot"}, version=made.version)
        outbox = next(h.__self__ for h in auto.records.pipeline.hooks.before_commit)  # type: ignore[attr-defined]
        outbox.flush(conn)
        conn.commit()
    # One created event (the update in the same transaction is part of the creation).
    assert [(j.workflow, j.trigger) for j in auto.jobs()] == [("rate_web_leads", "created")]
    assert auto.run() == 1
    assert auto.records.get("lead", made.id).values["rating"] == "hot"
    assert auto.runs()[0].condition is True  # source = 'web', the final state


LOOP = """\
    kind: workflow
    name: {name}
    entity: lead
    trigger: {{kind: updated, fields: [{watch}]}}
    actions:
      - kind: update
        set:
          {field}: "concat({field}, '+')"
    """


def test_a_workflow_does_not_trigger_itself_and_a_chain_stops_at_its_depth(auto: Automation) -> None:
    auto.install({"workflows/a.yaml": LOOP.format(name="a", watch="job_title", field="job_title")})
    record = auto.records.create("lead", {"last_name": "Doe", "company": "Acme", "job_title": "x"})
    auto.records.update("lead", record.id, {"job_title": "y"}, version=record.version)
    assert auto.run() == 1
    assert auto.records.get("lead", record.id).values["job_title"] == "y+"
    assert auto.run() == 0  # its own update did not fire it again
    # A chain of workflows each firing the next stops at the configured depth, visibly.
    auto.outbox().depth = 3
    auto.install({"workflows/w1.yaml": LOOP.format(name="w1", watch="first_name", field="need"),
                  "workflows/w2.yaml": LOOP.format(name="w2", watch="need", field="job_title"),
                  "workflows/w3.yaml": LOOP.format(name="w3", watch="job_title", field="company"),
                  "workflows/w4.yaml": LOOP.format(name="w4", watch="company", field="last_name")})
    record = auto.records.create("lead", {"last_name": "Roe", "company": "Acme", "first_name": "f",
                                          "need": "n",
                                          "job_title": "j"})
    auto.records.update("lead", record.id, {"first_name": "g"}, version=record.version)
    assert auto.run() == 3
    (dead,) = auto.jobs(status="dead")
    assert dead.workflow == "w4"
    assert "a chain of 4 workflows (w1 → w2 → w3 → w4) is deeper than 3" in dead.last_error
    values = auto.records.get("lead", record.id).values
    assert (values["need"], values["job_title"], values["company"], values["last_name"]) == ("n+", "j+",
                                                                                             "Acme+", "Roe")


def test_a_silent_write_fires_nothing_and_says_so_in_the_run_log(auto: Automation) -> None:
    auto.install({"workflows/rate.yaml": RATE_HOT})
    quiet = auto.records.silently()
    made = quiet.create("lead", {"last_name": "Doe", "company": "Acme", "source": "web"})
    assert auto.jobs() == []
    (entry,) = auto.runs()
    assert entry.status == "silenced" and entry.workflow == "rate_web_leads" and entry.record_id == made.id
    assert "a silent create" in entry.error
    assert auto.run() == 0
    assert auto.records.get("lead", made.id).values["rating"] is None


PLUGGED = """\
    kind: workflow
    name: plugged
    entity: lead
    trigger: {kind: created}
    actions:
      - kind: plugin
        name: test.stamp
        params: {prefix: "seen"}
    """


def test_a_plugins_action_runs_with_the_record_params_and_a_key(engine: sa.Engine,
                                                                registry: FieldTypeRegistry,
                                                                 tmp_path: Path) -> None:
    from slatecrm.plugins.hookspecs import hookimpl
    from slatecrm.plugins.manager import make_plugin_manager
    from slatecrm.plugins.workflow_actions import WorkflowAction

    calls: list[tuple[str, str, str]] = []

    def stamp(record: dict[str, object], params: dict[str, object], connection: sa.Connection,
              idempotency_key: str) -> dict[str, object]:
        calls.append((str(params["prefix"]), str(record["company"]), idempotency_key))
        return {"stamped": True}

    class Plugin:
        @hookimpl
        def slatecrm_workflow_actions(self) -> list[WorkflowAction]:
            return [WorkflowAction("test.stamp", stamp)]

    auto = automation(engine, registry, tmp_path, plugins=make_plugin_manager(Plugin()))
    auto.install({"workflows/plugged.yaml": PLUGGED})
    made = auto.records.create("lead", {"last_name": "Doe", "company": "Acme"})
    assert auto.run() == 1
    (job,) = auto.jobs()
    assert calls == [("seen", "Acme", f"{job.id}:0")]
    (run,) = auto.runs()
    assert run.status == "done" and run.actions[0]["detail"] == {"stamped": True} and run.record_id == made.id


BEFORE_SAVE = """\
    kind: workflow
    name: title_from_company
    entity: lead
    timing: before_save
    trigger: {kind: updated, fields: [company]}
    condition: "company != previous(company)"
    actions:
      - kind: update
        set:
          job_title: "concat('Buyer at ', company)"
    """


def test_a_before_save_workflow_changes_the_record_in_its_write(auto: Automation) -> None:
    auto.install({"workflows/title.yaml": BEFORE_SAVE})
    made = auto.records.create("lead", {"last_name": "Doe", "company": "Acme"})
    assert made.values["job_title"] is None  # created: not its trigger
    changed = auto.records.update("lead", made.id, {"company": "Initech"}, version=made.version)
    # The saved record (and its one history entry) already has the change: no job, no second write.
    assert changed.values["job_title"] == "Buyer at Initech" and changed.version == made.version + 1
    assert auto.jobs() == []
    (entry,) = [h for h in auto.records.history("lead", made.id) if h.action == "update"]
    assert entry.changes["job_title"] == [None, "Buyer at Initech"]


def test_a_before_save_workflow_over_its_budget_refuses_the_write_naming_it(auto: Automation) -> None:
    from slatecrm.platform.records.errors import ValidationFailed
    from slatecrm.platform.workflows.beforesave import BeforeSave, Budget

    auto.install({"workflows/title.yaml": BEFORE_SAVE.replace(
        "concat('Buyer at ', company)", "concat('Buyer at ', company, ' ', converted_account.name)")})
    hook = next(h.__self__ for h in auto.records.pipeline.hooks.before_save  # type: ignore[attr-defined]
                if isinstance(getattr(h, "__self__", None), BeforeSave))
    hook.budget = Budget(statements=0)
    account = auto.records.create("account", {"name": "Globex"}).id
    made = auto.records.create("lead", {"last_name": "Doe", "company": "Acme", "converted_account": account})
    with pytest.raises(ValidationFailed) as refused:
        auto.records.update("lead", made.id, {"company": "Initech"}, version=made.version)
    assert refused.value.errors == {"": [
        "before-save workflow 'title_from_company' went over its budget: more than 0 look-ups "
        "(SLATECRM_BEFORE_SAVE_STATEMENTS)"]}
    assert auto.records.get("lead", made.id).values["company"] == "Acme"  # nothing written
    hook.budget = Budget()
    changed = auto.records.update("lead", made.id, {"company": "Initech"}, version=made.version)
    assert changed.values["job_title"] == "Buyer at Initech Globex"


def test_finished_jobs_and_runs_are_kept_for_their_days_dead_ones_until_replayed(auto: Automation) -> None:
    auto.install({"workflows/rate.yaml": RATE_HOT, "workflows/assign.yaml": """\
        kind: workflow
        name: assign_nobody
        entity: lead
        trigger: {kind: created}
        actions:
          - kind: assign
            user: nobody@example.com
        """})
    lead(auto, source="web")
    auto.run()
    assert sorted(j.status for j in auto.jobs()) == ["dead", "done"]
    auto.clock.advance(days=29)
    auto.run()
    assert len(auto.jobs()) == 2 and len(auto.runs()) == 2
    auto.clock.advance(days=2)
    auto.run()  # a new worker purges at its first round
    assert [j.status for j in auto.jobs()] == ["dead"]
    assert auto.runs() == []


def test_a_rolled_back_write_leaves_no_job_for_the_connections_next_transaction(auto: Automation) -> None:
    """What a transaction told the outbox and then rolled back is not flushed by the next
    transaction of the same pooled connection."""
    auto.install({"workflows/rate.yaml": RATE_HOT})
    with auto.engine.connect() as conn:
        conn.begin()
        auto.records.bound(conn).create("lead", {"last_name": "Gone", "company": "Acme", "source": "web"})
        conn.rollback()
        conn.begin()
        kept = auto.records.bound(conn).create("lead", {"last_name": "Kept", "company": "Acme",
                                                        "source": "web"})
        auto.outbox().flush(conn)
        conn.commit()
    assert [j.record_id for j in auto.jobs()] == [kept.id]


CREATE_TASK = """\
    kind: workflow
    name: rate_and_follow_up
    entity: lead
    trigger: {kind: created}
    actions:
      - kind: update
        set:
          rating: "'warm'"
      - kind: create
        entity: activity
        set:
          subject: "concat('Call ', company)"
    """


def test_plugins_hear_of_a_runs_writes_once_it_commits(engine: sa.Engine, registry: FieldTypeRegistry,
                                                       tmp_path: Path) -> None:
    """`slatecrm_record_saved` is called for what a workflow's actions wrote, after the run's
    transaction committed (not for writes a rolled-back run made, nor before)."""
    from slatecrm.plugins.hookspecs import hookimpl
    from slatecrm.plugins.manager import make_plugin_manager

    heard: list[tuple[str, str, int]] = []

    class Listener:
        @hookimpl
        def slatecrm_record_saved(self, entity: str, record_id: int, action: str, version: int) -> None:
            heard.append((entity, action, version))

    auto = automation(engine, registry, tmp_path, plugins=make_plugin_manager(Listener()))
    auto.install({"workflows/follow.yaml": CREATE_TASK})
    auto.records.create("lead", {"last_name": "Doe", "company": "Acme"})
    assert heard == [("lead", "create", 1)]
    assert auto.run() == 1
    assert heard[1:] == [("lead", "update", 2), ("activity", "create", 1)]


def test_a_bound_records_service_refuses_to_be_bound_again(auto: Automation) -> None:
    """Binding a bound copy again would make a copy with default settings whose after-commit
    list nobody runs (plugins never heard of a run's writes that way): it refuses, and the
    bound copy still writes."""
    auto.install({"workflows/rate.yaml": RATE_HOT})
    with auto.engine.connect() as conn:
        conn.begin()
        bound = auto.records.bound(conn, savepoints=False)
        with pytest.raises(RuntimeError, match="already bound"):
            bound.bound(conn)
        record = bound.create("lead", {"last_name": "Once", "company": "Acme"})
        conn.commit()
    assert auto.records.get("lead", record.id).values["last_name"] == "Once"


def test_a_writes_jobs_wait_in_the_outbox_until_a_worker_moves_them_once(auto: Automation) -> None:
    """A write transaction adds one outbox row, whatever it fired; a worker's round moves it
    into the queue once (on PostgreSQL two workers moving at once skip each other's events)."""
    from slatecrm.platform.storage import system
    from slatecrm.platform.workflows.outbox import fan_out, waiting

    auto.install({"workflows/rate.yaml": RATE_HOT})
    web = lead(auto, source="web")
    many = [r.id for r in auto.records.create_many("lead", [{"last_name": f"L{i}", "company": "Acme"}
                                                            for i in range(3)])]
    queue, events = system.workflow_jobs, system.workflow_events
    with auto.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(queue)).scalar_one() == 0
        assert waiting(conn) == 4
    if auto.engine.dialect.name == "postgresql":
        with auto.engine.connect() as first, auto.engine.connect() as second:
            first.begin()
            assert fan_out(first, limit=1) == 1  # the first write's event, locked until commit
            second.begin()
            assert fan_out(second) == 3  # the other one, without waiting for the first
            first.commit()
            second.commit()
    assert sorted(j.record_id for j in auto.jobs()) == sorted([web, *many])
    with auto.engine.connect() as conn:
        assert waiting(conn) == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 0
    assert auto.run() == 4
    assert auto.run() == 0
    assert len(auto.runs()) == 4
