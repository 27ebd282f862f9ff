"""Fields in HTML: the widget each field type gets, the text a value shows in an input,
and the form data read back into the values the records service expects.

The service coerces and validates; this module only moves values between the shapes of
HTML inputs and the service's JSON-like input (a currency is two inputs, a multi-choice
several checkboxes), so every rule stays in one place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from slatecrm.digits import RECORD_ID_MAX, parse_digits

from ..records.compiled import CompiledEntity, CompiledField

#: Field type → widget name (templates/_widgets.html has one macro per widget).
WIDGETS = {
    "text": "text", "email": "email", "phone": "tel", "url": "url",
    "long_text": "textarea", "rich_text": "textarea",
    "integer": "number", "decimal": "number", "percent": "number", "currency": "currency",
    "boolean": "boolean", "date": "date", "datetime": "datetime",
    "choice": "select", "stage": "select", "multi_choice": "multi", "reference": "reference",
}
#: Types whose text is shown as typed (and so are the targets of the XSS tests).
TEXT_LIKE = frozenset({"text", "long_text", "rich_text", "email", "phone", "url"})


def widget(compiled: CompiledField) -> str:
    if not compiled.type.writable:
        return "readonly"
    return WIDGETS.get(compiled.field.type, "text")


def input_value(compiled: CompiledField, value: Any) -> Any:
    """The value an input shows: text, or for multi-choice the list of chosen keys."""
    if value is None:
        return [] if compiled.field.type == "multi_choice" else ""
    kind = compiled.field.type
    if kind == "currency":
        return str(value["amount"])
    if kind == "datetime" and isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")
    if kind == "date" and isinstance(value, dt.date):
        return value.isoformat()
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "multi_choice":
        return list(value)
    return str(value)


def currency_code(compiled: CompiledField, value: Any) -> str:
    if isinstance(value, dict) and value.get("currency"):
        return str(value["currency"])
    return str(compiled.type.default_code(compiled.field))  # type: ignore[attr-defined]


def currencies(compiled: CompiledField, value: Any) -> list[str]:
    allowed = list(compiled.field.settings.get("currencies") or [])
    for code in (currency_code(compiled, value), *(["USD", "EUR", "GBP"] if not allowed else [])):
        if code not in allowed:
            allowed.append(code)
    return allowed


def editable(ce: CompiledEntity) -> list[CompiledField]:
    return [f for f in ce.fields.values() if f.type.writable]


#: The system column a form may set besides the fields: who the record belongs to.
OWNER = "owner"
#: Prefix of the hidden inputs that keep the values an edit form started from.
WAS = "_was."


def read_form(ce: CompiledEntity, form: FormData, *, keep_blank: bool) -> dict[str, Any]:
    """The service's input from a submitted form. Blank inputs clear a value on edit
    (`keep_blank`) and are left out on create, so defaults apply. An edit form sends only
    the fields the user changed (compared with the values it started from, kept in hidden
    `_was.` inputs), so re-applying after a conflict never undoes someone else's change."""
    data: dict[str, Any] = {}
    present = set(form.getlist("_fields")) or set(form.keys())
    for compiled in editable(ce):
        name = compiled.name
        if name not in present:
            continue
        if keep_blank and f"{WAS}{name}" in form and _unchanged(form, name):
            continue
        kind = compiled.field.type
        value: Any
        if kind == "multi_choice":
            value = [v for v in form.getlist(name) if isinstance(v, str) and v] or None
        elif kind == "currency":
            amount = _text(form.get(name))
            code = _text(form.get(f"{name}__currency"))
            value = {"amount": amount, "currency": code or None} if amount else None
        else:
            value = _text(form.get(name)) or None
        if value is not None or keep_blank:
            data[name] = value
    if OWNER in present and not (keep_blank and f"{WAS}{OWNER}" in form and _unchanged(form, OWNER)):
        owner = _text(form.get(OWNER))
        if owner or keep_blank:
            owner_id = parse_digits(owner, RECORD_ID_MAX)
            data[OWNER] = owner_id if owner_id is not None else owner or None
    return data


def _unchanged(form: FormData, name: str) -> bool:
    def values(key: str) -> list[str]:
        return sorted(t for v in form.getlist(key) if (t := _text(v)))
    return all(values(key) == values(WAS + key) for key in (name, f"{name}__currency")
               if key == name or WAS + key in form)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def field_of_source(ce: CompiledEntity, source: str) -> str | None:
    """The field an htmx request came from: its `HX-Source` is `input#f-<name>`."""
    _, _, ident = source.partition("#")
    name = ident.removeprefix("f-").split("__")[0]
    return name if name in ce.fields else None


@dataclass(frozen=True)
class Section:
    title: str
    fields: list[CompiledField]


def sections(ce: CompiledEntity, fields: Iterable[CompiledField] | None = None) -> list[Section]:
    """Fields grouped for a record page or a form: details, links to other records,
    and long texts, in definition order within each."""
    chosen = list(fields if fields is not None else ce.fields.values())
    groups = [
        ("Details", [f for f in chosen if f.field.type not in ("reference", "long_text", "rich_text")]),
        ("Related records", [f for f in chosen if f.field.type == "reference"]),
        ("Notes", [f for f in chosen if f.field.type in ("long_text", "rich_text")]),
    ]
    return [Section(title, items) for title, items in groups if items]


def default_columns(ce: CompiledEntity, limit: int = 7) -> list[str]:
    """List columns when no view names them: the title, then the fields people scan a
    list by (stages and choices, links, amounts, dates), never long texts."""
    title = ce.entity.title_field
    order = ["stage", "choice", "reference", "currency", "decimal", "integer", "percent", "date",
             "datetime", "email", "phone", "text", "auto_number", "boolean", "url"]
    names = [title] if title in ce.fields else []
    ranked = sorted((f for f in ce.fields.values() if f.name != title and f.field.type in order),
                    key=lambda f: order.index(f.field.type))
    by_definition = {f.name: i for i, f in enumerate(ce.fields.values())}
    picked = [f.name for f in ranked][: max(0, limit - len(names))]
    return names + sorted(picked, key=by_definition.__getitem__)
