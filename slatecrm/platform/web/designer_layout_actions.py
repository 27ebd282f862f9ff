"""The layout editor's actions as the browser posts them (web/designer_layouts.py
`edit`): an action is one word and its arguments joined by colons (`move_field:price:0:1:2`,
`remove_section:0:1`), so a button's value, an hx-vals and a drop all say it the same way;
a label or a chosen field travels in its own input. This module reads the action and calls
layout_edits.py; the field names it may place are the entity's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import layout_edits as edits
from ..layout_edits import Body, EditRefused

#: The actions, with how many arguments each takes (`move_field` with none after the field:
#: back to the unplaced fields).
ARITY: Mapping[str, tuple[int, ...]] = {
    "move_field": (1, 3, 4), "add_section": (1,), "move_section": (3, 4), "rename_section": (2,),
    "columns": (3,), "remove_section": (2,), "add_tab": (0,), "move_tab": (2,), "rename_tab": (1,),
    "remove_tab": (1,), "add_related": (0,), "move_related": (2,), "remove_related": (1,),
    "add_compact": (0,), "move_compact": (2,), "remove_compact": (1,), "labels": (0,),
}


def _renamed(body: Body, form: Mapping[str, Any]) -> Body:
    """Every label whose input the user changed (it differs from the `was.` input beside it):
    Enter in a label without a script submits the form so, with no action of its own."""
    for key in list(form.keys()):
        if not key.startswith("label.") or form.get(f"was.{key}") is None \
                or form.get(key) == form.get(f"was.{key}"):
            continue
        place = [_number(part, "labels") for part in key.split(".")[1:]]
        label = str(form.get(key) or "")
        if len(place) == 1:
            body = edits.rename_tab(body, place[0], label)
        elif len(place) == 2:
            body = edits.rename_section(body, place[0], place[1], label)
    return body


def _number(text: str, action: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise EditRefused(f"{action}: {text!r} is not a position") from None


def apply_action(body: Body, action: str, form: Mapping[str, Any], fields: Sequence[str],
                 offered: Sequence[str]) -> Body:
    """`body` changed by `action` (`verb:arg:...`); `form` holds the labels (`label.<tab>`,
    `label.<tab>.<section>`) and the chosen related list (`related`) or compact field
    (`compact_field`); `fields`: the entity's field names; `offered`: its related lists
    (`entity.field`). EditRefused names what cannot be done."""
    verb, *args = action.split(":")
    if verb not in ARITY:
        raise EditRefused(f"there is no layout action {verb!r}")
    if len(args) not in ARITY[verb]:
        counts = " or ".join(str(n) for n in ARITY[verb])
        raise EditRefused(f"{verb}: give {counts} arguments, not {len(args)}")
    if verb in {"move_field", "move_compact", "remove_compact"}:
        if args[0] not in fields:
            raise EditRefused(f"the entity has no field {args[0]!r}")
        at = [_number(a, verb) for a in args[1:]]
        if verb == "move_field":
            return edits.move_field(body, args[0], at[0] if at else None, at[1] if at else None,
                                    index=at[2] if len(at) > 2 else None)
        if verb == "move_compact":
            return edits.move_compact(body, args[0], at[0])
        return edits.remove_compact(body, args[0])
    n = [_number(a, verb) for a in args]
    match verb:
        case "add_section":
            return edits.add_section(body, n[0])
        case "move_section":
            return edits.move_section(body, n[0], n[1], n[2], n[3] if len(n) > 3 else None)
        case "rename_section":
            return edits.rename_section(body, n[0], n[1], str(form.get(f"label.{n[0]}.{n[1]}") or ""))
        case "columns":
            return edits.set_columns(body, n[0], n[1], n[2])
        case "remove_section":
            return edits.remove_section(body, n[0], n[1])
        case "add_tab":
            return edits.add_tab(body)
        case "labels":
            return _renamed(body, form)
        case "move_tab":
            return edits.move_tab(body, n[0], n[1])
        case "rename_tab":
            return edits.rename_tab(body, n[0], str(form.get(f"label.{n[0]}") or ""))
        case "remove_tab":
            return edits.remove_tab(body, n[0])
        case "add_related":
            return edits.add_related(body, str(form.get("related") or ""), offered)
        case "move_related":
            return edits.move_related(body, n[0], n[1], offered)
        case "remove_related":
            return edits.remove_related(body, n[0], offered)
        case _:  # add_compact
            chosen = str(form.get("compact_field") or "")
            if chosen not in fields:
                raise EditRefused(f"the entity has no field {chosen!r}")
            return edits.add_compact(body, chosen)
