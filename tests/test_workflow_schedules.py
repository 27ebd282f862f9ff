"""Time-based and cron workflows with a clock the test moves (no sleeping), and the integrity
of registrations: deactivate → activate, a new version, worker restarts (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.storage import system
from slatecrm.platform.workflows import schedules

from .workflow_support import Automation, automation


@pytest.fixture
def auto(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> Automation:
    return automation(engine, registry, tmp_path)


REMINDER = """\
    kind: workflow
    name: reminder
    entity: lead
    active: {active}
    trigger: {{kind: time, field: timeline, offset: {offset}}}
    condition: "rating = 'hot'"
    actions:
      - kind: note
        text: "{text} {{{{ record.timeline }}}}"
    """


def reminder(active: bool = True, offset: str = "3 days before", text: str = "due") -> dict[str, str]:
    return {"workflows/reminder.yaml": REMINDER.format(active=str(active).lower(), offset=offset, text=text)}


def notes(auto: Automation, record_id: int) -> list[str]:
    return [h.changes["note"][1] for h in auto.records.history("lead", record_id) if h.action == "note"]


def test_a_time_trigger_is_scheduled_moved_and_cancelled(auto: Automation) -> None:
    auto.install(reminder())
    made = auto.records.create("lead", {"last_name": "Doe", "company": "Acme", "rating": "hot",
                                        "timeline": "2026-03-20"})
    (job,) = auto.jobs(status="pending")
    assert job.trigger == "time" and job.due_at == dt.datetime(2026, 3, 17, tzinfo=dt.UTC)
    # The date moves: the moment moves with it (one pending job, the new moment).
    made = auto.records.update("lead", made.id, {"timeline": "2026-03-25"}, version=made.version)
    (pending,) = auto.jobs(status="pending")
    assert pending.due_at == dt.datetime(2026, 3, 22, tzinfo=dt.UTC)
    assert [j.status for j in auto.jobs()] == ["cancelled", "pending"]
    # Not yet.
    auto.clock.now = dt.datetime(2026, 3, 21, 23, 59, tzinfo=dt.UTC)
    assert auto.run() == 0
    # Its moment: it runs, once.
    auto.clock.now = dt.datetime(2026, 3, 22, 0, 0, tzinfo=dt.UTC)
    assert auto.run() == 1
    assert notes(auto, made.id) == ["due 2026-03-25"]
    assert auto.run() == 0
    # Saving again does not schedule the moment that already ran.
    made = auto.records.get("lead", made.id)
    made = auto.records.update("lead", made.id, {"job_title": "CEO"}, version=made.version)
    assert auto.jobs(status="pending") == []
    # The condition no longer holds: a new moment is not scheduled, a pending one is cancelled.
    made = auto.records.update("lead", made.id, {"timeline": "2026-04-30"}, version=made.version)
    assert len(auto.jobs(status="pending")) == 1
    made = auto.records.update("lead", made.id, {"rating": "cold"}, version=made.version)
    assert auto.jobs(status="pending") == []
    # Deleted: nothing stays pending.
    made = auto.records.update("lead", made.id, {"rating": "hot"}, version=made.version)
    assert len(auto.jobs(status="pending")) == 1
    auto.records.delete("lead", made.id)
    assert auto.jobs(status="pending") == []
    auto.clock.now = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    assert auto.run() == 0


def test_hours_after_a_datetime_and_a_moment_already_past_runs_at_once(auto: Automation) -> None:
    auto.install({"workflows/after.yaml": """\
        kind: workflow
        name: after_created
        entity: lead
        trigger: {kind: time, field: created_at, offset: 2 hours after}
        actions:
          - kind: update
            set: {job_title: "'followed up'"}
        """})
    made = auto.records.create("lead", {"last_name": "Doe", "company": "Acme"})
    (job,) = auto.jobs()
    assert job.due_at == made.system["created_at"] + dt.timedelta(hours=2)
    auto.clock.now = job.due_at - dt.timedelta(seconds=1)
    assert auto.run() == 0
    auto.clock.now = job.due_at
    assert auto.run() == 1
    assert auto.records.get("lead", made.id).values["job_title"] == "followed up"


DIGEST = """\
    kind: workflow
    name: digest
    entity: lead
    active: {active}
    trigger:
      kind: schedule
      cron: "0 8 * * 1"
      timezone: Europe/Paris
      filter: "rating = 'hot'"
    actions:
      - kind: note
        text: "{text}"
    """


def digest(active: bool = True, text: str = "weekly") -> dict[str, str]:
    return {"workflows/digest.yaml": DIGEST.format(active=str(active).lower(), text=text)}


def test_a_schedule_fires_at_its_moment_in_its_time_zone_over_its_filter(auto: Automation) -> None:
    auto.install(digest())
    hot = auto.records.create("lead", {"last_name": "Hot", "company": "Acme", "rating": "hot"}).id
    cold = auto.records.create("lead", {"last_name": "Cold", "company": "Acme", "rating": "cold"}).id
    assert auto.run() == 0  # registered (START is Monday 9:00 UTC = 10:00 in Paris: past this week's 8:00)
    (row,) = _schedules(auto)
    # Next Monday 8:00 in Paris (winter time, UTC+1) is 7:00 UTC.
    assert row.next_at == dt.datetime(2026, 3, 9, 7, 0, tzinfo=dt.UTC)
    auto.clock.now = dt.datetime(2026, 3, 9, 6, 59, tzinfo=dt.UTC)
    assert auto.run() == 0
    auto.clock.now = dt.datetime(2026, 3, 9, 7, 0, 30, tzinfo=dt.UTC)
    assert auto.run() == 1
    assert notes(auto, hot) == ["weekly"] and notes(auto, cold) == []
    # A second worker at the same moment makes no second firing.
    assert auto.worker("w2").run_until_idle() == 0
    (row,) = _schedules(auto)
    assert row.next_at == dt.datetime(2026, 3, 16, 7, 0, tzinfo=dt.UTC)
    # Summer time (from 29 March): 8:00 in Paris is 6:00 UTC.
    auto.clock.now = dt.datetime(2026, 3, 30, 6, 0, tzinfo=dt.UTC)
    assert auto.run() == 1  # the missed firings (16 and 23 March) are not caught up one by one
    assert notes(auto, hot) == ["weekly", "weekly"]
    assert _schedules(auto)[0].next_at == dt.datetime(2026, 4, 6, 6, 0, tzinfo=dt.UTC)


def _schedules(auto: Automation) -> list[sa.Row]:  # type: ignore[type-arg]
    with auto.engine.connect() as conn:
        return list(conn.execute(sa.select(system.workflow_schedules)).all())


def _healthy(auto: Automation) -> bool:
    with auto.engine.connect() as conn:
        found = schedules.registrations(conn, auto.records.full_snapshot())
        return all(r.healthy for r in found) and not schedules.stray(conn, auto.records.full_snapshot())


def test_deactivate_activate_upgrade_and_restarts_give_exactly_one_run(auto: Automation) -> None:
    auto.install(reminder())
    made = auto.records.create("lead", {"last_name": "Doe", "company": "Acme", "rating": "hot",
                                        "timeline": "2026-03-20"})
    auto.run()
    assert _healthy(auto) and len(auto.jobs(status="pending")) == 1
    # Deactivated: the pending moment is cancelled, the registration removed.
    auto.install(reminder(active=False))
    auto.run()
    assert auto.jobs(status="pending") == [] and _schedules(auto) == [] and _healthy(auto)
    # Activated again: the moment is scheduled again, once.
    auto.install(reminder())
    auto.run()
    assert len(auto.jobs(status="pending")) == 1 and _healthy(auto)
    # A new version (another offset): the old version's moment is cancelled, the new one's scheduled.
    auto.install(reminder(offset="1 day before", text="soon"))
    auto.run()
    (pending,) = auto.jobs(status="pending")
    assert pending.due_at == dt.datetime(2026, 3, 19, tzinfo=dt.UTC) and _healthy(auto)
    # Workers restart (new workers, new names) several times: still one pending job.
    for name in ("w2", "w3", "w4"):
        auto.worker(name).run_until_idle()
    assert len(auto.jobs(status="pending")) == 1
    # The moment comes: exactly one run, of the new version.
    auto.clock.now = dt.datetime(2026, 3, 19, 0, 1, tzinfo=dt.UTC)
    ran = sum(auto.worker(name).run_until_idle() for name in ("w5", "w6"))
    assert ran == 1
    assert notes(auto, made.id) == ["soon 2026-03-20"]
    # A change-triggered workflow: after each of these, one change gives exactly one run.
    rated = """\
        kind: workflow
        name: rated
        entity: lead
        active: {active}
        trigger: {{kind: updated, fields: [job_title]}}
        actions:
          - kind: note
            text: "{text}"
        """
    steps = [("installed", True, "title"), ("deactivated", False, "title"), ("activated", True, "title"),
             ("upgraded", True, "title v2"), ("restarted", True, "title v2")]
    for step, active, text in steps:
        if step != "restarted":
            auto.install({**reminder(offset="1 day before", text="soon"),
                          "workflows/rated.yaml": rated.format(active=str(active).lower(), text=text)})
        current = auto.records.get("lead", made.id)
        auto.records.update("lead", made.id, {"job_title": step}, version=current.version)
        ran = sum(auto.worker(f"{step}-{n}").run_until_idle() for n in range(2))
        assert ran == (1 if active else 0), step
    assert [n for n in notes(auto, made.id) if n.startswith("title")] == ["title", "title", "title v2",
                                                                          "title v2"]


def test_a_schedule_version_change_moves_its_registration(auto: Automation) -> None:
    auto.install(digest())
    auto.run()
    first = _schedules(auto)[0].version
    auto.install(digest(text="changed"))
    auto.run()
    (row,) = _schedules(auto)
    assert row.version != first and _healthy(auto)
    auto.install(digest(active=False))
    auto.run()
    assert _schedules(auto) == []
