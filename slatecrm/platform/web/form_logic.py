"""Form logic in the record form: the fields as the logic shows them (required marks, the
options offered, read-only ones locked, hidden ones left out), decided by the server.

The browser runs no rule: each input already asks the server on change (validation on
change, record_pages.validate), which answers, besides the error slots, the rows of the
fields a rule decides about, re-rendered for the form's current values (htmx out-of-band
swaps). Without JavaScript, the form shows the state of the values it was opened (or
re-shown) with, and the records service refuses a save the logic forbids, naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from slatecrm.digits import RECORD_ID_MAX, parse_digits

from ..records.compiled import CompiledEntity, CompiledField
from ..records.formlogic import FormState


def shown(compiled: CompiledField, state: FormState, raw: Mapping[str, Any]) -> CompiledField:
    """`compiled` as the logic shows it: required when a rule requires it, read-only when a
    rule locks it (its widget says so), and only the options offered (and the one chosen
    already, so that opening a form never drops a stored value: the service decides)."""
    name = compiled.name
    changes: dict[str, Any] = {}
    if name in state.required:
        changes["required"] = True
    if name in state.read_only:
        changes["read_only"] = True
    refused = state.refused_options.get(name)
    if refused:
        chosen = raw.get(name)
        kept = set(chosen) if isinstance(chosen, list) else {chosen}
        changes["choices"] = tuple(o for o in compiled.field.choices if o.key not in refused or o.key in kept)
    return replace(compiled, field=replace(compiled.field, **changes)) if changes else compiled


def shown_fields(fields: Iterable[CompiledField], state: FormState,
                 raw: Mapping[str, Any]) -> list[CompiledField]:
    return [shown(f, state, raw) for f in fields]


def candidates(ce: CompiledEntity, options: Mapping[str, list[Any]]) -> dict[str, list[int]]:
    """The records each reference's select would offer, to ask which the logic allows."""
    return {name: [i for i, _ in options.get(name, []) if isinstance(i, int)]
            for name in ce.references() if name in options}


def offered(options: Mapping[str, list[Any]], state: FormState,
            raw: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each reference's options less the records its rule does not offer (the one chosen
    stays: the service refuses it, if it must, naming the field)."""
    out = dict(options)
    for name, allowed in state.offered.items():
        chosen = parse_digits(str(raw.get(name) or ""), RECORD_ID_MAX)
        out[name] = [(i, title) for i, title in options.get(name, []) if i in allowed or i == chosen]
    return out
