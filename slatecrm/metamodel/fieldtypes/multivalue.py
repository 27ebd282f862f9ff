"""Multi-value contact fields: `emails` and `phones`, several values per record.

Each item is {value, label, primary, opted_out}: a label from a short list (work, home,
mobile, other; configurable), exactly one primary item when there is any (the first one
when none is marked; it is kept first), and an opted-out flag (the person asked not to be
reached there). E-mails are checked and their domain lower-cased as the `email` type does;
phone numbers are normalised to E.164 with the `phonenumbers` library (a number typed
without + is read in the field's `default_region`).

Stored as a JSON list (the main column) and, beside it, the values joined by spaces in a
text column `<field>__search`, which the list's text search indexes on both databases.
Rules read the values: `emails contains "ada@example.com"`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import phonenumbers
import sqlalchemy as sa

from ..rules.types import Type
from .base import CoercionError, ColumnSpec, FieldType, FormInputs, SampleSource
from .composite import COUNTRIES
from .sqltypes import json_list

if TYPE_CHECKING:
    from ..model import Field

DEFAULT_LABELS = ("work", "home", "mobile", "other")
#: Items a field keeps unless its `max_items` says otherwise (and at most ever).
DEFAULT_MAX_ITEMS = 10
MAX_ITEMS = 50
_ITEM_KEYS = ("value", "label", "primary", "opted_out")
_SPLIT = re.compile(r"[;,\n]")
#: Valid numbers of a few regions in E.164 (the API document's examples of a phone).
EXAMPLE_NUMBERS = tuple(
    phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
    for n in (phonenumbers.example_number(r) for r in ("US", "GB", "FR", "DE", "JP")) if n is not None)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return "text" if isinstance(value, str) else type(value).__name__


class _Several(FieldType):
    computable = False
    searchable = True  # through the `search` companion column
    filterable = False  # a rule filters: `emails contains "…"`
    sortable = False
    widget_template: ClassVar[str] = "widgets/several.html"
    value_template: ClassVar[str | None] = "values/several.html"
    input_type: ClassVar[str] = "text"
    #: What one item is called in messages ("e-mail address").
    noun: ClassVar[str] = "value"
    nouns: ClassVar[str] = "values"
    link_scheme: ClassVar[str] = ""
    constraint_settings: ClassVar[tuple[str, ...]] = ("labels", "max_items")
    list_rank: ClassVar[int | None] = 9
    settings_schema: ClassVar[Mapping[str, Any]] = {
        "labels": {"type": "array", "minItems": 1, "uniqueItems": True,
                   "items": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,29}$"},
                   "description": "the labels an item may have (default work, home, mobile, other)"},
        "max_items": {"type": "integer", "minimum": 1, "maximum": MAX_ITEMS},
    }

    # --- settings ----------------------------------------------------------------------
    def labels(self, field: Field) -> tuple[str, ...]:
        return tuple(field.settings.get("labels") or DEFAULT_LABELS)

    def max_items(self, field: Field) -> int:
        return int(field.settings.get("max_items", DEFAULT_MAX_ITEMS))

    # --- storage -----------------------------------------------------------------------
    def columns(self, field: Field) -> list[ColumnSpec]:
        return [ColumnSpec("", json_list()), ColumnSpec("search", sa.String())]

    def search_columns(self, field: Field) -> tuple[str, ...]:
        return ("search",)

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        if not value:
            return {"": None, "search": None}
        return {"": value, "search": " ".join(self.searched(item["value"]) for item in value)}

    def searched(self, value: str) -> str:
        """The words a value is found by in the list's text search."""
        return value

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        return values.get("") or None

    # --- values ------------------------------------------------------------------------
    def normalise(self, text: str, field: Field) -> str:
        raise NotImplementedError

    def coerce(self, value: Any, field: Field) -> Any:
        if value is None or value == [] or (isinstance(value, str) and not value.strip()):
            return None
        return self.convert(value, field)

    def convert(self, value: Any, field: Field) -> Any:
        if isinstance(value, str):  # "a@b.com; c@d.org": a CSV cell, a retype from one value
            value = [part for part in _SPLIT.split(value) if part.strip()]
        if not isinstance(value, list | tuple):
            raise CoercionError(f"expected a list of {self.nouns}, got {_kind(value)}")
        labels = self.labels(field)
        items: list[dict[str, Any]] = []
        for index, given in enumerate(value, start=1):
            where = f"item {index}"
            if isinstance(given, str):
                given = {"value": given}
            if not isinstance(given, Mapping):
                article = "an" if self.noun[:1] in "aeiou" else "a"
                raise CoercionError(f"{where}: expected {article} {self.noun} or an object, "
                                    f"got {_kind(given)}")
            unknown = [k for k in given if k not in _ITEM_KEYS]
            if unknown:
                raise CoercionError(f"{where}: unknown key {str(unknown[0])[:40]!r}; "
                                    f"keys: {', '.join(_ITEM_KEYS)}")
            text = given.get("value")
            if text is None or (isinstance(text, str) and not text.strip()):
                continue  # a blank row of a form
            if not isinstance(text, str):
                raise CoercionError(f"{where}: value: expected text, got {_kind(text)}")
            if "\x00" in text:
                raise CoercionError(f"{where}: value: contains a NUL character, which text cannot hold")
            try:
                normal = self.normalise(text, field)
            except CoercionError as problem:
                raise CoercionError(f"{where}: value: {problem}") from None
            label = given.get("label") or labels[0]
            if not isinstance(label, str) or label not in labels:
                raise CoercionError(f"{where}: label: {str(label)[:40]!r} is not one of {', '.join(labels)}")
            flags = {}
            for flag in ("primary", "opted_out"):
                answer = given.get(flag, False)
                if answer is None:
                    answer = False
                if not isinstance(answer, bool):
                    raise CoercionError(f"{where}: {flag}: expected true or false, got {_kind(answer)}")
                flags[flag] = answer
            if any(item["value"].casefold() == normal.casefold() for item in items):
                raise CoercionError(f"{where}: {normal} is given twice")
            items.append({"value": normal, "label": label, **flags})
        if not items:
            return None
        if len(items) > self.max_items(field):
            raise CoercionError(f"has {len(items)} {self.nouns}; at most {self.max_items(field)} are allowed")
        primaries = [i for i, item in enumerate(items) if item["primary"]]
        if len(primaries) > 1:
            raise CoercionError(f"{len(primaries)} {self.nouns} are marked primary; mark one")
        first = primaries[0] if primaries else 0
        items[first]["primary"] = True
        return [items[first], *items[:first], *items[first + 1:]]  # the primary first

    def coerce_given(self, value: Any, field: Field) -> Any:
        if isinstance(value, str) and value.strip():
            raise CoercionError(f"expected a list of {self.nouns}, got text: send [{{\"value\": …}}]")
        return self.coerce(value, field)

    def to_json(self, value: Any, field: Field) -> Any:
        return None if not value else [dict(item) for item in value]

    def shown(self, value: str) -> str:
        return value

    def display(self, value: Any, field: Field) -> str:
        if not value:
            return ""
        texts = []
        for item in value:
            notes = [item["label"]] + (["opted out"] if item.get("opted_out") else [])
            texts.append(f"{self.shown(item['value'])} ({', '.join(notes)})")
        return "; ".join(texts)

    def link(self, value: Any, field: Field) -> str | None:
        return None if not value else f"{self.link_scheme}{value[0]['value']}"

    def item_link(self, item: Mapping[str, Any]) -> str:
        return f"{self.link_scheme}{item['value']}"

    # --- rules -------------------------------------------------------------------------
    def rule_type(self, field: Field) -> Type | None:
        return Type("list", item_key="value")

    def rule_value(self, value: Any, field: Field) -> Any:
        return [item["value"] for item in value] if value else None

    # --- the API's contract ------------------------------------------------------------
    def value_pattern(self) -> str:
        return "^.+$"

    def item_schema(self, field: Field, *, output: bool) -> dict[str, Any]:
        value: dict[str, Any] = {"type": "string", "pattern": self.value_pattern()}
        schema: dict[str, Any] = {
            "type": "object", "additionalProperties": False, "required": ["value"],
            "properties": {"value": value, "label": {"type": "string", "enum": list(self.labels(field))},
                           "primary": {"type": "boolean"}, "opted_out": {"type": "boolean"}}}
        if output:
            schema["required"] = list(_ITEM_KEYS)
        return schema

    def value_schema(self, field: Field) -> dict[str, Any]:
        return self.output_schema(field)

    def output_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "maxItems": self.max_items(field),
                "items": self.item_schema(field, output=True)}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # One item at most: two items might repeat a value, or both be marked primary,
        # which a schema cannot say (`coerce_given` refuses them, naming the item).
        return {"type": "array", "minItems": 1 if required else 0, "maxItems": 1,
                "items": {**self.item_schema(field, output=False),
                          "properties": {**self.item_schema(field, output=False)["properties"],
                                         "primary": {"type": "boolean"}}}}

    def filter_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string"}

    # --- HTML: a row per item and one blank row; no JavaScript needed -------------------
    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        """Row i's inputs are `<field>__<i>` (the value) and `<field>__<i>_label`; the radio
        `<field>__primary` and the checkboxes `<field>__opted_out` hold row numbers."""
        items = list(value or [])
        inputs: dict[str, Any] = {}
        for index in range(self.max_items(field)):
            item = items[index] if index < len(items) else None
            inputs[str(index)] = "" if item is None else self.shown(item["value"])
            inputs[f"{index}_label"] = self.labels(field)[0] if item is None else item["label"]
        inputs["primary"] = "0"
        for index, item in enumerate(items):
            if item.get("primary"):
                inputs["primary"] = str(index)
        inputs["opted_out"] = [str(i) for i, item in enumerate(items) if item.get("opted_out")]
        return inputs

    def rows_shown(self, raw: Mapping[str, Any], name: str, field: Field) -> list[int]:
        """The rows a form shows: those with a value, and one blank row (when allowed)."""
        filled = [i for i in range(self.max_items(field)) if raw.get(f"{name}__{i}")]
        blank = next((i for i in range(self.max_items(field)) if i not in filled), None)
        return sorted(filled + ([blank] if blank is not None else []))

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        primary = inputs("primary")
        opted = set(inputs("opted_out"))
        items = []
        for index in range(self.max_items(field)):
            texts = inputs(str(index))
            if not texts:
                continue
            label = inputs(f"{index}_label")
            items.append({"value": texts[0], "label": label[0] if label else None,
                          "primary": bool(primary) and primary[0] == str(index),
                          "opted_out": str(index) in opted})
        return items or None

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        if field.unique:
            yield "unique", f"a {self.name} field cannot be unique"


class Emails(_Several):
    name = "emails"
    label = "E-mail addresses"
    noun = "e-mail address"
    nouns = "e-mail addresses"
    link_scheme = "mailto:"
    input_type = "email"
    def normalise(self, text: str, field: Field) -> str:
        from .builtin import Email  # builtin.py lists this module's types

        return str(Email().normalise(text))

    def value_pattern(self) -> str:
        from .builtin import _EMAIL

        return _EMAIL.pattern

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return [{"value": pick.fake.email(), "label": "work"}]


class Phones(_Several):
    name = "phones"
    label = "Phone numbers"
    noun = "phone number"
    nouns = "phone numbers"
    link_scheme = "tel:"
    input_type = "tel"
    list_rank = 10
    settings_schema = {
        **_Several.settings_schema,
        "default_region": {"type": "string", "pattern": "^[A-Z]{2}$",
                           "description": "the country (ISO 3166-1 alpha-2) of numbers typed without +"},
    }
    constraint_settings = ("labels", "max_items", "default_region")

    def region(self, field: Field) -> str | None:
        region = field.settings.get("default_region")
        return str(region) if region else None

    def normalise(self, text: str, field: Field) -> str:
        typed = " ".join(text.split())
        if len(typed) > 40:
            raise CoercionError("is too long for a phone number")
        try:
            number = phonenumbers.parse(typed, self.region(field))
        except phonenumbers.NumberParseException:
            hint = "" if self.region(field) else " (start it with + and the country code)"
            raise CoercionError(f"{typed!r} is not a phone number{hint}") from None
        if number.extension:
            raise CoercionError(f"{typed!r} has an extension, which E.164 cannot keep")
        # A possible number (its length fits its country's plan), not only an assigned one:
        # numbering plans change faster than a CRM's stored numbers.
        reason = phonenumbers.is_possible_number_with_reason(number)
        if reason not in (phonenumbers.ValidationResult.IS_POSSIBLE,
                          phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
            why = {phonenumbers.ValidationResult.TOO_SHORT: "too short",
                   phonenumbers.ValidationResult.TOO_LONG: "too long",
                   phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "no such country code"}.get(
                reason, "a wrong length")
            raise CoercionError(f"{typed!r} is not a valid phone number ({why} for its country)")
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))

    def shown(self, value: str) -> str:
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            return value
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))

    def searched(self, value: str) -> str:
        """The E.164 number and its national digits: "+33123456789 0123456789"."""
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            return value
        national = re.sub(r"[^0-9]", "", phonenumbers.format_number(
            number, phonenumbers.PhoneNumberFormat.NATIONAL))
        return f"{value} {national}" if national else value

    def value_pattern(self) -> str:
        return r"^\+[1-9][0-9]{1,14}$"

    def item_schema(self, field: Field, *, output: bool) -> dict[str, Any]:
        schema = super().item_schema(field, output=output)
        if not output:
            # Whether a number is valid depends on its country's numbering plan, which no
            # pattern says: the document admits example numbers (E.164, any region).
            schema["properties"]["value"] = {"type": "string", "enum": list(EXAMPLE_NUMBERS),
                                             "description": "a phone number, E.164 (+ country code)"}
        return schema

    def sample(self, field: Field, pick: SampleSource) -> Any:
        region = self.region(field) or "US"
        number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE) or \
            phonenumbers.example_number(region)
        if number is None:
            return None
        return [{"value": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                 "label": "mobile" if "mobile" in self.labels(field) else self.labels(field)[0]}]

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        yield from super().check_definition(field)
        region = field.settings.get("default_region")
        if region is not None and region not in COUNTRIES:
            yield "default_region", f"{region!r} is not an ISO 3166-1 alpha-2 country code"
        elif region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
            yield "default_region", f"{region!r} has no telephone numbering plan phonenumbers knows"
