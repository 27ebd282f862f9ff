"""`slatecrm sample-data`: records for every entity, made from the metamodel alone."""

from __future__ import annotations

import json
from collections import Counter

import sqlalchemy as sa
from click.testing import CliRunner

from slatecrm.platform.cli import main
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.runtime import RuntimeHolder

from .defaults import field_types


def run(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.output)
    return out


def test_sample_data_fills_every_entity_and_spreads_stages(db_url: str) -> None:
    run("init", "--database", db_url)
    report = run("sample-data", "--database", db_url, "--count", "60", "--seed", "3")
    assert report["created"] == {"account": 60, "contact": 60, "lead": 60, "opportunity": 60, "activity": 60,
                                 "opportunity_contact": 60}
    assert report["users"] == 6
    engine = sa.create_engine(db_url)
    registry = field_types()
    records = RecordsService(engine, RuntimeHolder(engine, registry), registry)
    deals = records.page("opportunity", None).records
    assert all(r.values["account"] for r in deals)  # required references point somewhere
    stages = Counter(r.values["stage"] for r in records.page("opportunity", None).records)
    assert len(stages) >= 4  # spread over the pipeline, not all in the first stage
    activities = records.page("activity", None).records
    assert all(r.system["owner"] for r in activities)
    assert sum(1 for r in activities if r.values["due_date"]) > 30
    again = run("sample-data", "--database", db_url, "--if-empty")
    assert again["skipped"] is True
    engine.dispose()
