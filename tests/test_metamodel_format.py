"""The stored metamodel's format version: today's revisions read back, older ones too, and
one from a newer SlateCRM is refused with a clear message (on SQLite and PostgreSQL).

tests/data/metamodel-format-1.json is the metamodel of crm-core and sales exactly as
SlateCRM stored it before the format number existed (written by commit ca5ec97's
`Metamodel.as_dict`): format 1, without the key.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from slatecrm import __version__
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import (
    FORMAT_VERSION,
    CompositeKey,
    Metamodel,
    MetamodelFormatError,
)
from slatecrm.platform import installer
from slatecrm.platform.cli import EXIT_DATABASE, main
from slatecrm.platform.storage import revisions
from slatecrm.platform.storage.runtime import build_runtime
from slatecrm.platform.storage.system import revisions as revision_table

from .packs import install, plan

FORMAT_1 = Path(__file__).parent / "data" / "metamodel-format-1.json"


def default_metamodel(registry: FieldTypeRegistry) -> Metamodel:
    return merge(installer.load_packs(["crm-core", "sales"], registry), registry)


def store(engine: sa.Engine, metamodel: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(revision_table.update().where(revision_table.c.id == 1).values(metamodel=metamodel))


def tables_as_stored(engine: sa.Engine, registry: FieldTypeRegistry) -> None:
    """The entity tables as the stored revision has them, in place of those today's packs
    made (crm-core 0.1.1 folded the fixture's billing and name fields into composite ones):
    the next plan reads the columns the revision names."""
    with engine.begin() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        today = sa.MetaData()
        today.reflect(conn, only=lambda name, _: name.startswith("x_"))
        today.drop_all(conn, tables=[t for t in today.sorted_tables if t.name.startswith("x_")])
        stored = build_runtime(number, metamodel, registry, engine.dialect.name).metadata
        stored.create_all(conn, tables=[t for t in stored.sorted_tables if t.name.startswith("x_")])


def test_the_stored_form_carries_its_format_and_reads_back(registry: FieldTypeRegistry) -> None:
    metamodel = default_metamodel(registry)
    entity = metamodel.entities[0]
    names = tuple(f.name for f in entity.active_fields[:2])
    metamodel = metamodel.with_entities((
        replace(entity, unique=(CompositeKey(names, "crm-core"),),
                indexes=(CompositeKey(names[::-1], "crm-core"),)),
        *metamodel.entities[1:]))
    stored = json.loads(json.dumps(metamodel.as_dict()))
    assert stored["format"] == FORMAT_VERSION == 5
    assert stored["entities"][0]["unique"][0]["fields"] == list(names)
    assert Metamodel.from_dict(stored) == metamodel


def test_a_revision_stored_before_the_format_version_reads_as_it_was(
        engine: sa.Engine, registry: FieldTypeRegistry) -> None:
    install(engine, registry, "crm-core", "sales")
    old = json.loads(FORMAT_1.read_text())
    assert "format" not in old and all("unique" not in e for e in old["entities"])
    store(engine, old)
    with engine.connect() as conn:
        read = revisions.current(conn)
    tables_as_stored(engine, registry)
    # Its entities as they were; roles came with format 3 (and sales 0.2.1 with them), user
    # attributes with format 4 (and sales 0.2.2), workflows with format 5 (and sales 0.2.3).
    # (The fixture holds crm-core 0.1.0 and sales 0.2.0's entities: every one of its fields
    # reads back with its name, type, settings and place.)
    assert read is not None
    assert [e.name for e in read.metamodel.entities] == [e["name"] for e in old["entities"]]
    for stored, entity in zip(old["entities"], read.metamodel.entities, strict=True):
        assert [(f["name"], f["type"], f["settings"], f["source"]["line"]) for f in stored["fields"]] == [
            (f.name, f.type, dict(f.settings), f.source.line if f.source else None) for f in entity.fields]
    assert read.metamodel.roles == () and read.metamodel.user_attributes == ()
    assert read.metamodel.workflows == ()
    # The next install plans against it: its roles, user attributes and workflows, which
    # format 1 did not store, are added, with what the packs' later versions changed.
    actions = [c.action for c in plan(engine, registry, "crm-core", "sales").plan.changes]
    assert actions.count("add role") == 2 and actions.count("add user attribute") == 1
    assert actions.count("add workflow") == 8 and "create table" in actions  # opportunity_contact


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, "2", 0])
def test_a_format_this_version_cannot_read_is_a_clear_error(
        engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, version: object) -> None:
    install(engine, registry, "crm-core", "sales")
    store(engine, {**json.loads(FORMAT_1.read_text()), "format": version})
    with engine.connect() as conn, pytest.raises(MetamodelFormatError, match="revision 1 "):
        revisions.current(conn)
    result = CliRunner().invoke(main, ["pack", "plan", "crm-core", "--database", db_url],
                                catch_exceptions=False)
    assert result.exit_code == EXIT_DATABASE, result.output
    assert "Traceback" not in result.output
    if version == FORMAT_VERSION + 1:
        assert (f"revision 1 (stored by SlateCRM {__version__}): the stored metamodel has format "
                f"{FORMAT_VERSION + 1}, newer than this version of SlateCRM reads (up to "
                f"{FORMAT_VERSION}): upgrade SlateCRM to read it") in " ".join(result.output.split())
    else:
        assert f"has an invalid format {version!r}" in result.output
