"""The layout editor's actions as pure functions (slatecrm/platform/layout_edits.py): each
returns a new body, the one given unchanged; fields, sections and tabs move where asked;
removing a section or a tab sends its fields back to the unplaced ones; related lists start
from the default (every one offered); the compact layout keeps its limit; an action that
cannot apply is refused with the place named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from slatecrm.platform import layout_edits as edits
from slatecrm.platform.layout_edits import EditRefused

FLAT: dict[str, Any] = {"entity": "vehicle", "sections": [
    {"label": "Main", "columns": 2, "fields": ["plate", "price"]},
    {"label": "Dates", "columns": 1, "fields": ["registered"]}]}
TABBED: dict[str, Any] = {"entity": "vehicle", "tabs": [
    {"label": "One", "sections": [{"label": "A", "fields": ["plate"]}, {"label": "B", "fields": ["price"]}]},
    {"label": "Two", "sections": [{"label": "C", "fields": ["registered"]}]}],
    "compact": {"fields": ["plate"]}}
OFFERED = ["contact.account", "deal.account"]


def fields_of(body: dict[str, Any]) -> list[list[list[str]]]:
    return [[list(s["fields"]) for s in t["sections"]] for t in edits.tabs_of(body)]


def test_a_field_moves_between_sections_at_an_index_and_to_and_from_the_tray() -> None:
    before = copy.deepcopy(FLAT)
    moved = edits.move_field(FLAT, "registered", 0, 0, 1)
    assert fields_of(moved) == [[["plate", "registered", "price"], []]]
    assert before == FLAT  # the body given is not changed
    assert "sections" in moved and "tabs" not in moved
    out = edits.move_field(FLAT, "plate", None, None)
    assert fields_of(out) == [[["price"], ["registered"]]]
    back = edits.move_field(out, "plate", 0, 1, 0)
    assert fields_of(back) == [[["price"], ["plate", "registered"]]]


def test_sections_move_within_and_between_tabs_with_their_fields() -> None:
    moved = edits.move_section(TABBED, 0, 1, 1, 0)
    assert fields_of(moved) == [[["plate"]], [["price"], ["registered"]]]
    within = edits.move_section(TABBED, 0, 1, 0, 0)
    assert [s["label"] for s in within["tabs"][0]["sections"]] == ["B", "A"]


def test_tabs_are_added_reordered_renamed_and_removed() -> None:
    tabbed = edits.add_tab(FLAT)
    assert [t["label"] for t in tabbed["tabs"]] == ["Main", "New tab"]
    assert tabbed["tabs"][1]["sections"][0]["fields"] == [] and "sections" not in tabbed
    again = edits.add_tab(tabbed)
    assert again["tabs"][2]["label"] == "New tab 2"
    assert [t["label"] for t in edits.move_tab(TABBED, 1, 0)["tabs"]] == ["Two", "One"]
    assert edits.rename_tab(TABBED, 1, " Later ")["tabs"][1]["label"] == "Later"
    removed = edits.remove_tab(TABBED, 0)
    assert fields_of(removed) == [[["registered"]]]  # plate and price are unplaced now
    with pytest.raises(EditRefused, match="at least one tab"):
        edits.remove_tab(removed, 0)
    with pytest.raises(EditRefused, match="needs a label"):
        edits.rename_tab(TABBED, 0, " ")


def test_sections_are_added_renamed_given_columns_and_removed() -> None:
    added = edits.add_section(FLAT, 0)
    assert added["sections"][2] == {"label": "New section", "columns": 1, "fields": []}
    assert edits.rename_section(FLAT, 0, 1, "When")["sections"][1]["label"] == "When"
    assert edits.set_columns(FLAT, 0, 1, 2)["sections"][1]["columns"] == 2
    assert fields_of(edits.remove_section(FLAT, 0, 0)) == [[["registered"]]]
    with pytest.raises(EditRefused, match="1 or 2 columns"):
        edits.set_columns(FLAT, 0, 0, 3)
    with pytest.raises(EditRefused, match="no section 5 in tab 1"):
        edits.remove_section(FLAT, 0, 4)
    with pytest.raises(EditRefused, match="no tab 3"):
        edits.add_section(TABBED, 2)


def test_related_lists_start_from_every_one_offered() -> None:
    removed = edits.remove_related(FLAT, 0, OFFERED)
    assert removed["related_lists"] == [{"entity": "deal", "field": "account"}]
    added = edits.add_related(removed, "contact.account", OFFERED)
    assert [edits.related_key(r) for r in added["related_lists"]] == ["deal.account", "contact.account"]
    ordered = edits.move_related(added, 1, 0, OFFERED)
    assert [edits.related_key(r) for r in ordered["related_lists"]] == ["contact.account", "deal.account"]
    with pytest.raises(EditRefused, match="shown already"):
        edits.add_related(added, "deal.account", OFFERED)
    with pytest.raises(EditRefused, match="no related list"):
        edits.add_related(added, "task.account", OFFERED)


def test_compact_fields_are_added_reordered_and_removed_within_the_limit() -> None:
    added = edits.add_compact(TABBED, "price")
    assert added["compact"]["fields"] == ["plate", "price"]
    assert edits.move_compact(added, "price", 0)["compact"]["fields"] == ["price", "plate"]
    assert "compact" not in edits.remove_compact(TABBED, "plate")  # none: the default card
    full = {**FLAT, "compact": {"fields": [f"f{i}" for i in range(edits.COMPACT_LIMIT)]}}
    with pytest.raises(EditRefused, match="at most 6"):
        edits.add_compact(full, "plate")
    with pytest.raises(EditRefused, match="already"):
        edits.add_compact(TABBED, "plate")
