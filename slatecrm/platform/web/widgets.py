"""Fields in HTML: the widget template each field type names, the texts a value shows in
its inputs, and the form data read back into the values the records service expects.

The service coerces and validates; the field types move values between the shapes of
HTML inputs and the service's JSON-like input (a currency is two inputs, a multi-choice
several checkboxes), and this module only hands them the form: no type is named here.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from slatecrm.digits import RECORD_ID_MAX, parse_digits

from ..records.compiled import CompiledEntity, CompiledField

#: The widget of a field nobody may write (auto numbers, formulas' results are shown).
READONLY_WIDGET = "widgets/readonly.html"
#: The widget of a field the user's roles make read-only: its value as text, no input sent.
LOCKED_WIDGET = "widgets/locked.html"


def widget(compiled: CompiledField, locked: Container[str] = frozenset()) -> str:
    """The template that renders the field's label and inputs in a form; `locked`: the
    fields the user may see but not change (identity/access.py `read_only_fields`)."""
    if not compiled.type.writable:
        return READONLY_WIDGET
    if compiled.name in locked:
        return LOCKED_WIDGET
    return compiled.type.widget_template


def widget_scripts(ce: CompiledEntity) -> list[str]:
    """The scripts the widgets of a form of `ce` load (each once, in field order)."""
    scripts = [s for f in form_fields(ce) for s in f.type.widget_scripts]
    return list(dict.fromkeys(scripts))


def raw_inputs(compiled: CompiledField, value: Any) -> dict[str, Any]:
    """The texts a form's inputs show for a coerced value, by input name (`<field>` and
    `<field>__<suffix>` for a companion input)."""
    return {(compiled.name if not suffix else f"{compiled.name}__{suffix}"): text
            for suffix, text in compiled.type.form_inputs(value, compiled.field).items()}


def submitted(form: FormData, compiled: CompiledField, prefix: str = "") -> dict[str, Any]:
    """The texts a submitted form holds for a field's inputs, by input name, in the shape
    `raw_inputs` gives (a list where the type shows a list)."""
    shapes = compiled.type.form_inputs(None, compiled.field)
    out: dict[str, Any] = {}
    for suffix, shape in shapes.items():
        name = compiled.name if not suffix else f"{compiled.name}__{suffix}"
        if isinstance(shape, list):
            out[name] = [v for v in form.getlist(prefix + name) if isinstance(v, str) and v]
        else:
            out[name] = str(form.get(prefix + name) or "")
    return out


def form_fields(ce: CompiledEntity) -> list[CompiledField]:
    """The fields a form shows: every field a user can write (some may be locked for them)."""
    return [f for f in ce.fields.values() if f.type.writable]


def editable(ce: CompiledEntity, locked: Container[str] = frozenset()) -> list[CompiledField]:
    """The fields a form sends: writable ones, less those the user's roles make read-only."""
    return [f for f in form_fields(ce) if f.name not in locked]


#: The system column a form may set besides the fields: who the record belongs to.
OWNER = "owner"
#: Prefix of the hidden inputs that keep the values an edit form started from.
WAS = "_was."


def read_form(ce: CompiledEntity, form: FormData, *, keep_blank: bool,
              locked: Container[str] = frozenset()) -> dict[str, Any]:
    """The service's input from a submitted form. Blank inputs clear a value on edit
    (`keep_blank`) and are left out on create, so defaults apply. An edit form sends only
    the fields the user changed (compared with the values it started from, kept in hidden
    `_was.` inputs), so re-applying after a conflict never undoes someone else's change.
    `locked` fields are never read (the form shows them as text): a tampered form gets
    no further than an untouched one."""
    data: dict[str, Any] = {}
    # A form without `_fields` (a script's plain POST) names a field by any of its inputs: a
    # composite's or a list's inputs may all be `<field>__<part>`.
    present = set(form.getlist("_fields")) or {key.split("__")[0] for key in form}
    for compiled in editable(ce, locked):
        name = compiled.name
        if name not in present:
            continue
        if keep_blank and f"{WAS}{name}" in form and _unchanged(form, name):
            continue
        def inputs(suffix: str, name: str = name) -> list[str]:
            key = name if not suffix else f"{name}__{suffix}"
            return [t for v in form.getlist(key) if (t := _text(v))]
        value = compiled.type.read_form(inputs, compiled.field)
        if value is not None or keep_blank:
            data[name] = value
    if OWNER in present and not (keep_blank and f"{WAS}{OWNER}" in form and _unchanged(form, OWNER)):
        owner = _text(form.get(OWNER))
        if owner or keep_blank:
            owner_id = parse_digits(owner, RECORD_ID_MAX)
            data[OWNER] = owner_id if owner_id is not None else owner or None
    return data


def _unchanged(form: FormData, name: str) -> bool:
    """Whether every input of the field (its companions' too) still holds what it started with."""
    def values(key: str) -> list[str]:
        return sorted(t for v in form.getlist(key) if (t := _text(v)))
    companions = [key for key in form if key.startswith(f"{WAS}{name}__")]
    keys = [name, *[key.removeprefix(WAS) for key in companions]]
    return all(values(key) == values(WAS + key) for key in keys)


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
    #: 1 or 2: a layout's section shows its fields in one column or side by side.
    columns: int = 0


def sections(ce: CompiledEntity, fields: Iterable[CompiledField] | None = None) -> list[Section]:
    """Fields grouped for a record page or a form: details, links to other records,
    and long texts, in definition order within each."""
    chosen = list(fields if fields is not None else ce.fields.values())
    titles = {"details": "Details", "related": "Related records", "notes": "Notes"}
    groups = [(title, [f for f in chosen if f.type.section == key]) for key, title in titles.items()]
    return [Section(title, items) for title, items in groups if items]


def default_columns(ce: CompiledEntity, limit: int = 7) -> list[str]:
    """List columns when no view names them: the title, then the fields people scan a
    list by (stages and choices, links, amounts, dates), never long texts."""
    title = ce.entity.title_field
    names = [title] if title in ce.fields else []
    ranked = sorted((f for f in ce.fields.values() if f.name != title and f.type.list_rank is not None),
                    key=lambda f: f.type.list_rank or 0)
    by_definition = {f.name: i for i, f in enumerate(ce.fields.values())}
    picked = [f.name for f in ranked][: max(0, limit - len(names))]
    return names + sorted(picked, key=by_definition.__getitem__)
