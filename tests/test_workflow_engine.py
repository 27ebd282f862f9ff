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
