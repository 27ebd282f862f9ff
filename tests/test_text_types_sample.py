"""Sample data for the rich_text, json and tags field types, on SQLite and PostgreSQL: every
made-up value passes the records service (sanitised HTML, a value the schema accepts, tags)."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.fieldtypes.richtext import sanitise
from slatecrm.platform.cli import main
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.runtime import RuntimeHolder

from .packs import install
from .text_types_pack import articles_pack


def test_sample_data_makes_values_of_every_text_type(
    engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path
) -> None:
    schema = {"type": "object", "properties": {"size": {"type": "integer"}}, "examples": [{"size": 4}]}
    install(
        engine,
        registry,
        articles_pack(tmp_path, anything={"type": "json"}, sized={"type": "json", "schema": schema}),
    )
    result = CliRunner().invoke(
        main, ["sample-data", "--database", db_url, "--count", "12", "--seed", "5", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["created"]["article"] == 12
    records = RecordsService(engine, RuntimeHolder(engine, registry), registry).page("article", None).records
    bodies = [r.values["body"] for r in records if r.values["body"]]
    assert bodies and all(b == sanitise(b) and "<strong>" in b for b in bodies)  # optional: some blank
    anything = [r.values["anything"] for r in records if r.values["anything"] is not None]
    assert anything and all(isinstance(v, dict) for v in anything)
    sized = [r.values["sized"] for r in records if r.values["sized"] is not None]
    assert sized and all(v == {"size": 4} for v in sized)
    assert all(r.values["specs"] is None for r in records)  # a schema without examples: no made-up value
    tagged = [r.values["labels"] for r in records if r.values["labels"]]
    assert tagged and all(len(t) <= 3 and all(tag == tag.lower() for tag in t) for t in tagged)
