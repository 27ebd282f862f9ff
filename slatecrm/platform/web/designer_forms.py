"""The designer's field form and a field's definition, both ways.

The form shows what a pack file would hold for the field (`kind: entity` `fields:` entry):
the common keys as inputs, a choice's options as rows (key, label, colour), a reference's
target as a list of entities, the type's simple settings (numbers, texts) as inputs, and its
other settings as YAML. Posting the form gives back the same definition, which goes to
`customisation.put_field` exactly as the admin API's body would: one way to define a field,
whoever edits it. Nothing here knows a field type by name; the type's `settings_schema` says
what it takes.

A field's form logic (`visible_if`, `required_if`, `read_only_if`, `options_if`) has an
input each, for the organisation's fields and a pack's alike: on a pack's field the form's
changes become the organisation's `field_overrides` of it (`override_of`: only what differs
from the field in force, plus what the organisation overrode already). An option filter is
one rule over the record offered for a type that links records, and `option: rule` lines
for a type with options; the type says which (`logic_form`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from starlette.datastructures import FormData, QueryParams

from slatecrm.metamodel.errors import Problem
from slatecrm.metamodel.fieldtypes import FieldType, FieldTypeRegistry
from slatecrm.metamodel.model import LOGIC_KEYS, Field
from slatecrm.metamodel.names import NAME_PATTERN
from slatecrm.metamodel.yamlsource import parse_yaml

#: Yes / no keys of every field, in the form's order.
FLAGS = ("required", "unique", "indexed", "read_only", "read_only_after_create")
#: Rule keys of every field, checked live as they are typed.
RULES = ("formula", "default_expression")
#: Settings the form shows with editors of their own.
OWN_EDITORS = ("options", "target")
SIMPLE = {"integer", "number", "string"}
#: The form-logic inputs and their labels, in the form's order (metamodel LOGIC_KEYS).
LOGIC_LABELS = {"visible_if": "Visible if", "required_if": "Required if", "read_only_if": "Read-only if",
                "options_if": "Options filter"}
#: What a pack's field takes from the form (customisation.OVERRIDABLE has the read-only
#: flags too, which this form does not show for it: an override of them is kept as it is).
LOCKED_INPUTS = ("label", "help", "default", "options", *LOGIC_KEYS)


def naming(what: str = "name") -> str:
    """What a designer form says of a name (an entity's, a field's, a stage's key) it refuses."""
    return f"give a {what} of lower-case letters, digits and _, starting with a letter"


def valid_name(name: str) -> bool:
    """Whether `name` can name an entity, a field, a validation or a stage (metamodel/names.py)."""
    return bool(re.fullmatch(NAME_PATTERN, name))


@dataclass
class FormValues:
    """What the field form shows: every input's text, as posted or as defined."""

    type: str = ""
    label: str = ""
    help: str = ""
    default: str = ""
    flags: set[str] = field(default_factory=set)
    rules: dict[str, str] = field(default_factory=dict)
    options: list[dict[str, str]] = field(default_factory=list)
    target: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    more: str = ""
    #: Form logic as typed: a rule per key; `options_if` as `logic_text` writes it.
    logic: dict[str, str] = field(default_factory=dict)


class FormRefused(Exception):
    """The form's values do not make a definition; `errors` by input name."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


def simple_settings(ftype: FieldType) -> list[str]:
    """The type's settings shown as one input each (a number or a text)."""
    return [name for name, schema in ftype.settings_schema.items()
            if name not in OWN_EDITORS and schema.get("type") in SIMPLE]


def logic_form(ftype: FieldType | None) -> str:
    """How the type takes an option filter: "record" (one rule over the record offered, for a
    type that links records), "options" (a rule per option, for a type with options), or ""
    (none: the type has no options to filter)."""
    if ftype is None:
        return ""
    if ftype.links_records:
        return "record"
    return "options" if "options" in ftype.settings_schema else ""


def logic_text(value: Any) -> str:
    """A form-logic value as its input shows it: a rule as it is, an option filter's mapping
    as `option: rule` lines."""
    if isinstance(value, Mapping):
        return "\n".join(f"{k}: {' '.join(str(v).split())}" for k, v in value.items())
    return str(value)


def option_rules(text: str) -> tuple[dict[str, str], list[str]]:
    """An option filter's `option: rule` lines as a mapping, and what is wrong with them
    (each naming its line). Blank lines are left out."""
    rules: dict[str, str] = {}
    lines: dict[str, int] = {}
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, colon, rule = line.partition(":")
        key = key.strip()
        if not colon or not valid_name(key) or not rule.strip():
            errors.append(f"line {number}: give an option's key and its rule, as `option: rule`")
        elif key in rules:
            errors.append(f"line {number}: option {key!r} has a rule already (line {lines[key]})")
        else:
            rules[key], lines[key] = rule.strip(), number
    return rules, errors


def override_of(body: Mapping[str, Any], current: Mapping[str, Any], stored: Mapping[str, Any] | None,
                pack_rules: Collection[str] = ()) -> dict[str, Any]:
    """What the organisation's override of a pack's field holds after the form `body` is
    posted: what differs from the field in force (`current`, body_of), and the keys it
    overrode already (`stored`), so that the pack keeps the rest and an upgrade of the pack
    changes them. A key the form does not show (the read-only flags) stays as stored.
    `pack_rules`: the form-logic keys a pack gave the field; an override can replace such a
    rule but not remove it (FormRefused when its input is left blank)."""
    stored = stored or {}
    blanked = [k for k in pack_rules if k not in body]
    if blanked:
        raise FormRefused({k: [f"the pack gives this rule ({logic_text(current.get(k))}); "
                               "the organisation may replace it, not remove it"] for k in blanked})
    kept: dict[str, Any] = {"type": body.get("type", current.get("type"))}
    kept.update({k: v for k, v in stored.items() if k not in LOCKED_INPUTS and k != "type"})
    kept.update({k: v for k, v in body.items()
                 if k != "type" and (k in stored or v != current.get(k))})
    return kept


def body_of(f: Field) -> dict[str, Any]:
    """A field of the metamodel as the definition a pack file (or the API) gives."""
    body: dict[str, Any] = {"type": f.type, "label": f.label}
    if f.help:
        body["help"] = f.help
    for flag in FLAGS:
        if getattr(f, flag):
            body[flag] = True
    if f.default is not None:
        body["default"] = f.default
    for rule in RULES:
        if getattr(f, rule) is not None:
            body[rule] = getattr(f, rule)
    for key in LOGIC_KEYS:  # form logic: an input each
        value = getattr(f, key)
        if value is not None:
            body[key] = dict(value) if isinstance(value, Mapping) else value
    body.update({k: v for k, v in f.settings.items() if k != "options"})
    if f.choices:
        body["options"] = [{"key": c.key, "label": c.label, **({"colour": c.colour} if c.colour else {})}
                           for c in sorted(f.choices, key=lambda c: c.order)]
    return body


def values_of(body: Mapping[str, Any], registry: FieldTypeRegistry) -> FormValues:
    """A definition as the form's inputs."""
    type_name = str(body.get("type") or registry.default_type)
    ftype = registry[type_name] if type_name in registry else None  # noqa: SIM401 (no .get)
    simple = simple_settings(ftype) if ftype else []
    values = FormValues(type=type_name, label=str(body.get("label") or ""), help=str(body.get("help") or ""),
                        default="" if body.get("default") is None else _scalar_text(body["default"]),
                        flags={f for f in FLAGS if body.get(f)},
                        rules={r: str(body[r]) for r in RULES if body.get(r) is not None},
                        target=str(body.get("target") or ""),
                        logic={k: logic_text(body[k]) for k in LOGIC_KEYS if body.get(k) is not None})
    for option in body.get("options") or []:
        if isinstance(option, Mapping):
            values.options.append({"key": str(option.get("key", "")), "label": str(option.get("label") or ""),
                                   "colour": str(option.get("colour") or "")})
    values.settings = {k: _scalar_text(body[k]) for k in simple if body.get(k) is not None}
    common = {"type", "label", "help", "default", "renamed_from", *FLAGS, *RULES, *OWN_EDITORS, *LOGIC_KEYS}
    rest = {k: v for k, v in body.items() if k not in common and k not in simple}
    values.more = _yaml(rest) if rest else ""
    return values


def posted(form: FormData | QueryParams, registry: FieldTypeRegistry) -> FormValues:
    """The inputs as posted, before they are judged (to show them again as typed)."""
    keys, labels, colours = (form.getlist(n) for n in ("option_key", "option_label", "option_colour"))
    options = [{"key": str(k).strip(), "label": str(lb).strip(), "colour": str(c).strip()}
               for k, lb, c in zip(keys, labels, colours, strict=False)]
    return FormValues(
        type=str(form.get("type") or registry.default_type), label=str(form.get("label") or "").strip(),
        help=str(form.get("help") or "").strip(), default=str(form.get("default") or "").strip(),
        flags={f for f in FLAGS if form.get(f)},
        rules={r: str(form.get(r)) for r in RULES if str(form.get(r) or "").strip()},
        options=[o for o in options if o["key"] or o["label"]], target=str(form.get("target") or ""),
        settings={str(k)[len("setting."):]: str(v).strip() for k, v in form.multi_items()
                  if str(k).startswith("setting.") and str(v).strip()},
        more=str(form.get("more") or ""),
        logic={k: str(form.get(k)).strip() for k in LOGIC_KEYS if str(form.get(k) or "").strip()})


def definition(values: FormValues, registry: FieldTypeRegistry, *,
               allowed: frozenset[str] | None = None) -> dict[str, Any]:
    """The field's definition from the form (FormRefused naming the input at fault).
    `allowed`: the only keys the organisation may set (a pack's field), `type` kept."""
    if values.type not in registry:
        raise FormRefused({"type": [f"{values.type!r} is not a field type"]})
    ftype = registry[values.type]
    errors: dict[str, list[str]] = {}
    body: dict[str, Any] = {"type": values.type}
    for key in ("label", "help"):
        if getattr(values, key):
            body[key] = getattr(values, key)
    if values.default:
        body["default"] = _scalar(values.default)
    body.update({flag: True for flag in FLAGS if flag in values.flags})
    body.update(values.rules)
    if "options" in ftype.settings_schema:
        options = []
        for number, option in enumerate(values.options, 1):
            if not option["key"]:
                errors.setdefault("options", []).append(f"option {number} ({option['label']}) needs a key")
                continue
            options.append({"key": option["key"], **({"label": option["label"]} if option["label"] else {}),
                            **({"colour": option["colour"]} if option["colour"] else {})})
        if options or "options" in ftype.required_settings:
            body["options"] = options
    if "target" in ftype.settings_schema and values.target:
        body["target"] = values.target
    schema = ftype.settings_schema
    for name, text in values.settings.items():
        if name not in schema:
            continue
        amount = _number(text, integer=schema[name].get("type") == "integer")
        if schema[name].get("type") in {"integer", "number"} and amount is None:
            errors.setdefault(f"setting.{name}", []).append(f"{name}: give a number, not {text!r}")
            continue
        body[name] = amount if amount is not None and schema[name].get("type") != "string" else text
    for key, text in values.logic.items():
        if key != "options_if":
            body[key] = text
        elif logic_form(ftype) == "options":
            rules, wrong = option_rules(text)
            if wrong:
                errors.setdefault(key, []).extend(wrong)
            elif rules:
                body[key] = rules
        else:
            body[key] = text
    if values.more.strip():
        parsed = parse_yaml(values.more, "more settings")
        if isinstance(parsed, Problem) or not isinstance(parsed.data, dict):
            errors.setdefault("more", []).append(str(parsed) if isinstance(parsed, Problem)
                                                 else "give the other settings as a YAML mapping")
        else:
            body.update(parsed.data)
    if errors:
        raise FormRefused(errors)
    if allowed is not None:
        body = {k: v for k, v in body.items() if k in allowed or k == "type"}
    return body


def _number(text: str, *, integer: bool) -> int | float | None:
    try:
        return int(text) if integer else float(text) if "." in text or "e" in text.lower() else int(text)
    except ValueError:
        return None


def _scalar(text: str) -> Any:
    """A default typed as YAML reads a scalar: 3 is a number, true a yes, anything else text."""
    parsed = parse_yaml(text, "default")
    if isinstance(parsed, Problem) or isinstance(parsed.data, dict | list) or parsed.data is None:
        return text
    return parsed.data


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _yaml(value).strip() if isinstance(value, dict | list) else str(value)


def _yaml(data: Any) -> str:
    out = io.StringIO()
    dumper = YAML(typ="safe", pure=True)
    dumper.default_flow_style = False
    dumper.dump(data, out)
    return out.getvalue()
