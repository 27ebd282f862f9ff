"""`kind: view` definitions: read from packs, validated by the JSON Schema, checked against the
merged metamodel with every problem at its file:line, layered (a pack may replace a view of a
pack it requires, the organisation any; unrelated packs may not share a name), stored with
each revision, and shown in plans (no DDL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.packs import Pack
from slatecrm.platform import installer
from slatecrm.platform.storage import revisions

from .packs import install, plan, write_files_pack

VALID = {
    "views/my_open_opportunities.yaml": """\
        kind: view
        name: my_open_opportunities
        label: My open opportunities
        entity: opportunity
        columns: [name, account, amount, close_date, stage]
        filter: "owner = current_user.id and stage not in ('closed_won', 'closed_lost')"
        sort: [close_date, -amount]
        page_size: 25
        """,
    "views/pipeline_board.yaml": """\
        kind: view
        name: pipeline_board
        label: Pipeline by amount
        entity: opportunity
        type: kanban
        pipeline: sales
        card_fields: [account, amount, close_date]
        totals: amount
        filter: "amount > 0"
        """,
}


def write_pack(root: Path, files: dict[str, str], *, name: str = "views-pack",
               requires: dict[str, str] | None = None) -> Path:
    return write_files_pack(root, files, name=name, requires=requires)


def packs(registry: FieldTypeRegistry, *paths: Path) -> list[Pack]:
    return installer.load_packs(["crm-core", "sales", *map(str, paths)], registry)


def merged(registry: FieldTypeRegistry, *paths: Path) -> Metamodel:
    return merge(packs(registry, *paths), registry)


def problems(registry: FieldTypeRegistry, *paths: Path) -> list[str]:
    """Each problem as `file:line:column: message` (the file relative to its pack)."""
    with pytest.raises(DefinitionError) as error:
        merged(registry, *paths)
    return [f"{p.location}: {p.message}" for p in error.value.problems]


def test_a_list_and_a_kanban_view_load_merge_and_are_stored(tmp_path: Path,
                                                           registry: FieldTypeRegistry) -> None:
    metamodel = merged(registry, write_pack(tmp_path, VALID))
    mine = metamodel.view("my_open_opportunities")
    assert mine is not None and mine.type == "list" and mine.page_size == 25
    assert mine.columns == ("name", "account", "amount", "close_date", "stage")
    assert mine.sort == ("close_date", "-amount") and mine.pack == "views-pack"
    assert mine.source.file == "views/my_open_opportunities.yaml" and mine.source.line == 2
    board = metamodel.view("pipeline_board")
    assert board is not None and (board.pipeline, board.totals) == ("sales", "amount")
    # the sales pack's own kanban view, and this pack's
    assert [v.name for v in metamodel.views_of("opportunity", "kanban")] == ["opportunity_pipeline",
                                                                            "pipeline_board"]
    stored = json.loads(json.dumps(metamodel.as_dict()))
    assert Metamodel.from_dict(stored) == metamodel
    assert Metamodel.from_dict(stored).as_dict() == stored
    assert Metamodel.from_dict(stored).view("pipeline_board").locate("totals").line == 8  # type: ignore[union-attr]


def test_a_metamodel_without_views_is_stored_as_before(registry: FieldTypeRegistry) -> None:
    stored = merge(installer.load_packs(["crm-core"], registry), registry).as_dict()  # it has none
    assert "views" not in stored


BAD = {
    "views/bad_list.yaml": """\
        kind: view
        name: bad_list
        entity: opportunity
        columns: [name, amont]
        filter: "amount >"
        sort: [-clos_date]
        pipeline: sales
        """,
    "views/bad_board.yaml": """\
        kind: view
        name: bad_board
        entity: opportunity
        type: kanban
        pipeline: salez
        card_fields: [acount]
        totals: name
        """,
    "views/no_pipeline.yaml": """\
        kind: view
        name: no_pipeline
        entity: opportunity
        type: kanban
        """,
    "views/nowhere.yaml": """\
        kind: view
        name: nowhere
        entity: oportunity
        """,
}


def test_every_problem_of_a_bad_view_is_reported_at_its_line(tmp_path: Path,
                                                            registry: FieldTypeRegistry) -> None:
    found = problems(registry, write_pack(tmp_path, BAD))
    text = "\n".join(found)
    # What the pack reader finds (the kind's own keys) comes first, before any merging.
    assert "views/bad_list.yaml:7:11: view 'bad_list': pipeline is for a kanban view" in text
    assert "views/no_pipeline.yaml:4:7: view 'no_pipeline': a kanban view names the pipeline" in text
    kept = {k: v for k, v in BAD.items() if "no_pipeline" not in k}
    kept["views/bad_list.yaml"] = BAD["views/bad_list.yaml"].replace("pipeline: sales\n", "")
    packs_only = write_pack(tmp_path / "merge", kept)
    text = "\n".join(problems(registry, packs_only))
    assert "views/bad_list.yaml:4:17: view 'bad_list': 'opportunity' has no field 'amont'" in text
    assert "did you mean 'amount'" in text
    assert "views/bad_list.yaml:5:9: view 'bad_list': filter:" in text
    assert "views/bad_list.yaml:6:8: view 'bad_list': sort: 'opportunity' has no field 'clos_date'" in text
    assert "views/bad_board.yaml:5:11: view 'bad_board': 'opportunity' has no pipeline 'salez'" in text
    assert "views/bad_board.yaml:6:15: view 'bad_board': 'opportunity' has no field 'acount'" in text
    assert "views/bad_board.yaml:7:9: view 'bad_board': totals: 'name' is a text field" in text
    assert "views/nowhere.yaml:3:9: view 'nowhere': entity 'oportunity' is not defined" in text


def test_the_schema_refuses_unknown_keys_and_bad_values_at_their_line(tmp_path: Path,
                                                                       registry: FieldTypeRegistry) -> None:
    found = "\n".join(problems(registry, write_pack(tmp_path, {"views/odd.yaml": """\
        kind: view
        name: odd
        entity: opportunity
        type: agenda
        colums: [name]
        page_size: 0
        """})))
    assert "views/odd.yaml:4:7: 'agenda' is not one of 'list', 'kanban', 'calendar'" in found
    assert "views/odd.yaml:5:1: unknown key 'colums'" in found
    assert "views/odd.yaml:6:12:" in found


def test_a_pack_replaces_a_view_of_a_pack_it_requires_but_not_of_another(
        tmp_path: Path, registry: FieldTypeRegistry) -> None:
    base = write_pack(tmp_path, VALID)
    mine = dict(VALID)
    mine["views/my_open_opportunities.yaml"] = VALID["views/my_open_opportunities.yaml"].replace(
        "page_size: 25", "page_size: 10")
    child = write_pack(tmp_path, {k: v for k, v in mine.items() if "my_open" in k}, name="child",
                       requires={"sales": "^0.2.0", "views-pack": "^1.0.0"})
    metamodel = merged(registry, base, child)
    replaced = metamodel.view("my_open_opportunities")
    assert replaced is not None and replaced.pack == "child" and replaced.page_size == 10
    stranger = write_pack(tmp_path, {k: v for k, v in mine.items() if "my_open" in k}, name="stranger")
    text = "\n".join(problems(registry, base, stranger))
    # Neither requires the other: the second in dependency order is refused, naming the first.
    assert "view 'my_open_opportunities' is already defined by pack 'stranger'" in text
    assert "which pack 'views-pack' does not require" in text


def test_views_are_part_of_plans_and_revisions_without_ddl(tmp_path: Path, engine: sa.Engine,
                                                          registry: FieldTypeRegistry) -> None:
    install(engine, registry, "crm-core", "sales")
    first = write_pack(tmp_path, VALID)
    planned = plan(engine, registry, "crm-core", "sales", first).plan
    added = [c for c in planned.changes if c.action == "add view"]
    assert sorted(c.summary for c in added) == ["add view my_open_opportunities (opportunity, list)",
                                                "add view pipeline_board (opportunity, kanban)"]
    assert all(not c.sql for c in added)
    install(engine, registry, "crm-core", "sales", first)
    with engine.connect() as conn:
        _, current = revisions.current_metamodel(conn)
    assert current.view("pipeline_board") is not None
    changed = dict(VALID)
    board = VALID["views/pipeline_board.yaml"]
    changed["views/pipeline_board.yaml"] = board.replace("amount > 0", "amount > 10")
    del changed["views/my_open_opportunities.yaml"]
    second = write_files_pack(tmp_path / "v2", changed, name="views-pack", version="1.1.0")
    summaries = sorted(c.summary for c in plan(engine, registry, "crm-core", "sales", second).plan.changes)
    assert summaries == ["change view pipeline_board (opportunity, kanban)",
                         "remove view my_open_opportunities (opportunity)"]


# --- calendar views ------------------------------------------------------------------------------
CALENDARS = {
    "views/closing.yaml": """\
        kind: view
        name: closing
        label: Closing dates
        entity: opportunity
        type: calendar
        field: close_date
        mode: week
        filter: "amount > 0"
        """,
    "views/agenda.yaml": """\
        kind: view
        name: agenda
        entity: activity
        type: calendar
        field: due_date
        """,
}


def test_a_calendar_view_loads_is_stored_and_planned(tmp_path: Path, engine: sa.Engine,
                                                    registry: FieldTypeRegistry) -> None:
    metamodel = merged(registry, write_pack(tmp_path, CALENDARS))
    closing = metamodel.view("closing")
    assert closing is not None and closing.type == "calendar"
    assert (closing.field, closing.mode, closing.filter) == ("close_date", "week", "amount > 0")
    agenda = metamodel.view("agenda")
    assert agenda is not None and agenda.mode is None and agenda.field == "due_date"  # date_or_datetime
    assert [v.name for v in metamodel.views_of("opportunity", "calendar")] == ["closing"]
    stored = json.loads(json.dumps(metamodel.as_dict()))
    assert Metamodel.from_dict(stored) == metamodel and Metamodel.from_dict(stored).as_dict() == stored
    install(engine, registry, "crm-core", "sales")
    planned = plan(engine, registry, "crm-core", "sales", write_pack(tmp_path / "p", CALENDARS)).plan
    assert "add view closing (opportunity, calendar)" in [c.summary for c in planned.changes]


BAD_CALENDARS = {
    "views/no_field.yaml": """\
        kind: view
        name: no_field
        entity: opportunity
        type: calendar
        sort: [close_date]
        columns: [name]
        """,
    "views/both_ends.yaml": """\
        kind: view
        name: both_ends
        entity: activity
        type: calendar
        field: due_date
        end_field: due_date
        duration_field: duration_minutes
        """,
    "views/on_a_list.yaml": """\
        kind: view
        name: on_a_list
        entity: opportunity
        mode: month
        """,
}

BAD_CALENDAR_FIELDS = {
    "views/not_a_date.yaml": """\
        kind: view
        name: not_a_date
        entity: opportunity
        type: calendar
        field: amount
        filter: "amount >"
        """,
    "views/unknown.yaml": """\
        kind: view
        name: unknown
        entity: opportunity
        type: calendar
        field: close_dat
        """,
    "views/same_end.yaml": """\
        kind: view
        name: same_end
        entity: activity
        type: calendar
        field: due_date
        end_field: due_date
        """,
    "views/not_a_duration.yaml": """\
        kind: view
        name: not_a_duration
        entity: activity
        type: calendar
        field: due_date
        duration_field: duration_minutes
        """,
}


def test_every_problem_of_a_bad_calendar_view_is_reported_at_its_line(
        tmp_path: Path, registry: FieldTypeRegistry) -> None:
    text = "\n".join(problems(registry, write_pack(tmp_path, BAD_CALENDARS)))
    assert "views/no_field.yaml:4:7: view 'no_field': a calendar view names the date field" in text
    assert "views/no_field.yaml:5:7: view 'no_field': sort is for a list or kanban view" in text
    assert "views/no_field.yaml:6:10: view 'no_field': columns is for a list view, this one is a " \
           "calendar view" in text
    assert "views/both_ends.yaml:7:17: view 'both_ends': give end_field or duration_field, not both" in text
    assert "views/on_a_list.yaml:4:7: view 'on_a_list': mode is for a calendar view, this one is a list " \
           "view (type: calendar makes it one)" in text

    text = "\n".join(problems(registry, write_pack(tmp_path / "fields", BAD_CALENDAR_FIELDS)))
    assert "views/not_a_date.yaml:5:8: view 'not_a_date': field: 'amount' is not a date field (its type " \
           "is currency); a calendar places records by a date or a date and time: close_date" in text
    assert "views/not_a_date.yaml:6:9: view 'not_a_date': filter:" in text
    assert "views/unknown.yaml:5:8: view 'unknown': 'opportunity' has no field 'close_dat' " \
           "(did you mean 'close_date'?)" in text
    assert "views/same_end.yaml:6:12: view 'same_end': end_field: 'due_date' is the calendar's field" in text
    assert "views/not_a_duration.yaml:6:17: view 'not_a_duration': duration_field: 'duration_minutes' is " \
           "not a duration field (its type is integer)" in text


def test_the_schema_refuses_a_bad_mode_at_its_line(tmp_path: Path, registry: FieldTypeRegistry) -> None:
    found = "\n".join(problems(registry, write_pack(tmp_path, {"views/yearly.yaml": """\
        kind: view
        name: yearly
        entity: opportunity
        type: calendar
        field: close_date
        mode: year
        """})))
    assert "views/yearly.yaml:6:7: 'year' is not one of 'month', 'week', 'day'" in found
