"""Composite field types: one value made of named text parts, each part in a column of its
own (`billing_address`, `billing_address__city`, …), so that lists sort and filter on a
part and rules read one (`billing_address.city = "Paris"`).

- `address`: street (several lines), city, region, postal code and country (an ISO 3166-1
  alpha-2 code from pycountry's list, which follows the ISO 3166 maintenance agency).
- `person_name`: salutation (one of a short, configurable list), first, middle and last
  names; shown "Dr. Ada Lovelace", sorted by last then first name; a person-like entity's
  title.

The value in the API is an object of the parts (blank parts left out); a value whose parts
are all blank is null.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pycountry
import sqlalchemy as sa
from babel import Locale

from ..rules.types import TEXT, Type
from .base import CoercionError, ColumnSpec, FieldType, FormInputs, Part, SampleSource

if TYPE_CHECKING:
    from ..model import Field

#: ISO 3166-1 alpha-2 codes and their short names, from pycountry (the ISO 3166 list).
COUNTRIES: dict[str, str] = {c.alpha_2: getattr(c, "common_name", c.name) for c in pycountry.countries}
#: The longest text one part keeps (a street may have several lines within it).
PART_MAX = 500
#: A part's text may not hold these (a one-line part: no line breaks either).
_NUL = "\x00"


#: English country names from Unicode CLDR (babel): "Russia", "South Korea", "Czechia".
_CLDR_NAMES: dict[str, str] = dict(Locale("en").territories)


def _names(country: Any) -> Iterator[str]:
    """The names a person may call a country by: its short, common and official names, its
    English name in CLDR, and
    a short name with its qualifier first ("Virgin Islands, British" → "British Virgin
    Islands", "Korea, Republic of" → "Republic of Korea")."""
    for name in (country.name, getattr(country, "common_name", ""), getattr(country, "official_name", ""),
                 _CLDR_NAMES.get(country.alpha_2, "")):
        if name:
            yield name.casefold()
            if ", " in name:
                head, _, qualifier = name.partition(", ")
                yield f"{qualifier} {head}".casefold()


#: Each country by every name `_names` gives (a name of two countries is left out).
_BY_NAME: dict[str, str] = {}
for _country in pycountry.countries:
    for _name in _names(_country):
        _known = _BY_NAME.get(_name, _country.alpha_2)
        _BY_NAME[_name] = _country.alpha_2 if _known == _country.alpha_2 else ""


def country_by_name(text: str) -> str | None:
    """The code of the country a person named ("France", "Bolivia", "British Virgin
    Islands"), any case; None when no country, or several, have that name. No guessing
    ("Korea" is two countries): an unknown name is refused, and the person picks."""
    return _BY_NAME.get(" ".join(text.split()).casefold()) or None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


class _Composite(FieldType):
    """A value of named text parts, each in its own column; the first part is the main
    column. Subclasses list their parts and say which are several lines."""

    computable = False  # a rule gives one plain value, not a value of parts
    searchable = True  # every part (search_columns)
    filterable = False  # a list filters on a part: `<field>.<part>=…`
    widget_template: ClassVar[str] = "widgets/parts.html"
    #: Parts whose text may hold line breaks.
    multiline: ClassVar[tuple[str, ...]] = ()
    #: (name, label) of each part, the main column's first.
    part_names: ClassVar[tuple[tuple[str, str], ...]] = ()

    def suffix(self, part: str) -> str:
        return "" if part == self.part_names[0][0] else part

    def options(self, part: str, field: Field) -> tuple[str, ...] | None:
        """The keys a part may take (a salutation, a country), or None for free text."""
        return None

    def option_label(self, part: str, option: str) -> str:
        """How a form's select shows one of a part's options."""
        return option

    def parts(self, field: Field) -> tuple[Part, ...]:
        return tuple(Part(name, self.suffix(name), label, self.options(name, field))
                     for name, label in self.part_names)

    def part_labels(self) -> dict[str, str]:
        return dict(self.part_names)

    def columns(self, field: Field) -> list[ColumnSpec]:
        return [ColumnSpec(self.suffix(name), sa.String()) for name, _ in self.part_names]

    def search_columns(self, field: Field) -> tuple[str, ...]:
        return tuple(self.suffix(name) for name, _ in self.part_names)

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        value = value or {}
        return {self.suffix(name): value.get(name) for name, _ in self.part_names}

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        parts = {name: values.get(self.suffix(name)) for name, _ in self.part_names}
        found = {name: text for name, text in parts.items() if text is not None}
        return found or None

    # --- values --------------------------------------------------------------------------
    def coerce(self, value: Any, field: Field) -> Any:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        if isinstance(value, Mapping) and not value:
            return None
        return self.convert(value, field)

    def convert(self, value: Any, field: Field) -> Any:
        if isinstance(value, str):
            value = self.from_text(value, field)
        if not isinstance(value, Mapping):
            raise CoercionError(f"expected an object of {', '.join(self.part_labels())}, "
                                f"got {_kind(value)}")
        unknown = [k for k in value if k not in self.part_labels()]
        if unknown:
            raise CoercionError(f"unknown part {str(unknown[0])[:40]!r}; "
                                f"parts: {', '.join(self.part_labels())}")
        out: dict[str, str] = {}
        for name, _ in self.part_names:
            text = value.get(name)
            if text is None:
                continue
            if not isinstance(text, str):
                raise CoercionError(f"{name}: expected text, got {_kind(text)}")
            cleaned = self.clean(name, text, field)
            if cleaned:
                out[name] = cleaned
        return out or None

    def clean(self, part: str, text: str, field: Field) -> str | None:
        """A part's text, trimmed and checked; None when blank."""
        if _NUL in text:
            raise CoercionError(f"{part}: contains a NUL character, which text cannot hold")
        if part in self.multiline:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            lines = [" ".join(line.split()) for line in text.split("\n")]
            text = "\n".join(line for line in lines if line)
        else:
            if "\n" in text or "\r" in text:
                raise CoercionError(f"{part}: must be a single line")
            text = " ".join(text.split())
        if len(text) > PART_MAX:
            raise CoercionError(f"{part}: is {len(text)} characters long; at most {PART_MAX} are allowed")
        return text or None

    def from_text(self, text: str, field: Field) -> Any:
        """A value from one text (a CSV cell, a retype from a text field)."""
        raise CoercionError(f"expected an object of {', '.join(self.part_labels())}")

    def coerce_given(self, value: Any, field: Field) -> Any:
        # A client sends the parts; one text is what a retype or a CSV cell has.
        if isinstance(value, str) and value.strip():
            raise CoercionError(f"expected an object of {', '.join(self.part_labels())}, got text")
        return self.coerce(value, field)

    def to_json(self, value: Any, field: Field) -> Any:
        return None if value is None else {name: value[name] for name, _ in self.part_names if name in value}

    # --- the API's contract --------------------------------------------------------------
    def part_schema(self, part: str, field: Field, *, output: bool) -> dict[str, Any]:
        options = self.options(part, field)
        if options is not None:
            return {"type": "string", "enum": list(options)}
        if output:
            return {"type": "string", "minLength": 1, "maxLength": PART_MAX}
        forbidden = "\\u0000" if part in self.multiline else "\\u0000\\n\\r"
        return {"type": "string", "maxLength": PART_MAX, "pattern": f"^[^{forbidden}]*$"}

    def value_schema(self, field: Field) -> dict[str, Any]:
        return self.output_schema(field)

    def output_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False, "minProperties": 1,
                "properties": {name: self.part_schema(name, field, output=True)
                               for name, _ in self.part_names}}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        properties: dict[str, Any] = {
            name: {"anyOf": [self.part_schema(name, field, output=False), {"type": "null"}]}
            for name, _ in self.part_names}
        schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                                  "properties": properties}
        if required:  # at least one part that is not blank: the main one, documented simply
            main = self.part_names[0][0]
            schema["required"] = [main]
            properties[main] = {"allOf": [self.part_schema(main, field, output=False),
                                          {"type": "string", "pattern": "[^\\s]"}]}
        return schema

    def filter_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string"}

    # --- HTML ------------------------------------------------------------------------------
    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        value = value or {}
        return {self.suffix(name): value.get(name) or "" for name, _ in self.part_names}

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        found = {}
        for name, _ in self.part_names:
            texts = inputs(self.suffix(name))
            if texts:
                found[name] = texts[0]
        return found or None

    def rule_type(self, field: Field) -> Type | None:
        return None  # a rule reads one part: `<field>.<part>`

    def part_rule_type(self, part: Part) -> Type:
        return TEXT if part.options is None else Type("text", part.options)

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        if field.unique:
            yield "unique", f"a {self.name} field cannot be unique"


class Address(_Composite):
    """A postal address: street (several lines), city, region, postal code, country."""

    name = "address"
    label = "Address"
    multiline = ("street",)
    part_names = (("street", "Street"), ("city", "City"), ("region", "Region"),
                  ("postal_code", "Postal code"), ("country", "Country"))
    settings_schema = {
        "default_country": {"type": "string", "pattern": "^[A-Z]{2}$",
                            "description": "the country a new address starts with in a form"},
        "countries": {"type": "array", "minItems": 1, "uniqueItems": True,
                      "items": {"type": "string", "pattern": "^[A-Z]{2}$"},
                      "description": "the countries an address may be in (default: every country)"},
    }
    constraint_settings = ("countries",)
    list_rank: ClassVar[int | None] = 15
    value_template: ClassVar[str | None] = "values/text_lines.html"

    def countries(self, field: Field) -> tuple[str, ...]:
        return tuple(field.settings.get("countries") or sorted(COUNTRIES))

    def options(self, part: str, field: Field) -> tuple[str, ...] | None:
        return self.countries(field) if part == "country" else None

    def option_label(self, part: str, option: str) -> str:
        return f"{self.country_name(option)} ({option})" if part == "country" else option

    def country_name(self, code: str) -> str:
        return COUNTRIES.get(code, code)

    def clean(self, part: str, text: str, field: Field) -> str | None:
        cleaned = super().clean(part, text, field)
        if part != "country" or cleaned is None:
            return cleaned
        code = cleaned.upper()
        if code not in COUNTRIES:
            by_code = pycountry.countries.get(alpha_3=code) if len(code) == 3 else None
            named = by_code.alpha_2 if by_code is not None else country_by_name(cleaned)
            if named is None:
                raise CoercionError(f"country: {cleaned[:40]!r} is not an ISO 3166 country code "
                                    "(like FR or US)")
            code = named
        allowed = field.settings.get("countries")
        if allowed and code not in allowed:
            raise CoercionError(f"country: {code} is not allowed; allowed: {', '.join(allowed)}")
        return code

    def from_text(self, text: str, field: Field) -> Any:
        return {"street": text}  # a retype from text keeps the text as the street

    def sort_columns(self, field: Field) -> tuple[str, ...]:
        return ("country", "city")  # docs/packs.md: addresses sort by country, then city

    def sort_follows_direction(self, suffix: str, field: Field) -> bool:
        return True

    def lines(self, value: Any, field: Field) -> list[str]:
        """The address as it is written on an envelope (international layout)."""
        if not value:
            return []
        lines = list(value.get("street", "").splitlines())
        locality = " ".join(p for p in (value.get("postal_code"), value.get("city")) if p)
        if value.get("region"):
            locality = f"{locality}, {value['region']}" if locality else value["region"]
        if locality:
            lines.append(locality)
        if value.get("country"):
            lines.append(self.country_name(value["country"]))
        return lines

    def display(self, value: Any, field: Field) -> str:
        return "\n".join(self.lines(value, field))

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        inputs = super().form_inputs(value, field)
        if value is None and field.settings.get("default_country"):
            inputs["country"] = field.settings["default_country"]
        return inputs

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        found = super().read_form(inputs, field)
        # A country alone is the form's default, not an address.
        if found is not None and set(found) == {"country"} and found["country"] == \
                field.settings.get("default_country"):
            return None
        return found

    def sample(self, field: Field, pick: SampleSource) -> Any:
        country = field.settings.get("default_country") or pick.random.choice(self.countries(field))
        return {"street": pick.fake.street_address(), "city": pick.fake.city(),
                "postal_code": pick.fake.postcode(), "country": country}

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        yield from super().check_definition(field)
        for code in [*field.settings.get("countries", [])]:
            if code not in COUNTRIES:
                yield "countries", f"{code!r} is not an ISO 3166-1 alpha-2 country code"
        default = field.settings.get("default_country")
        if default is not None and default not in COUNTRIES:
            yield "default_country", f"{default!r} is not an ISO 3166-1 alpha-2 country code"
        allowed = field.settings.get("countries")
        if default and allowed and default not in allowed:
            yield "default_country", "the default country is not among the allowed countries"


DEFAULT_SALUTATIONS = ("Mr.", "Ms.", "Mx.", "Dr.", "Prof.")


class PersonName(_Composite):
    """A person's name: salutation, first, middle and last names."""

    name = "person_name"
    label = "Person name"
    part_names = (("last", "Last name"), ("salutation", "Salutation"), ("first", "First name"),
                  ("middle", "Middle name"))
    settings_schema = {
        "salutations": {"type": "array", "minItems": 1, "uniqueItems": True,
                        "items": {"type": "string", "minLength": 1, "maxLength": 20,
                                  "pattern": "^[^\\s,]+(?: [^\\s,]+)*$"},
                        "description": "the salutations offered (default Mr., Ms., Mx., Dr., Prof.)"},
    }
    constraint_settings = ("salutations",)
    list_rank: ClassVar[int | None] = 8
    #: The order people read a name in (the columns keep the last name first: it sorts).
    shown_order: ClassVar[tuple[str, ...]] = ("salutation", "first", "middle", "last")

    def parts(self, field: Field) -> tuple[Part, ...]:
        by_name = {part.name: part for part in super().parts(field)}
        return tuple(by_name[name] for name in self.shown_order)  # the form's order too

    def salutations(self, field: Field) -> tuple[str, ...]:
        return tuple(field.settings.get("salutations") or DEFAULT_SALUTATIONS)

    def options(self, part: str, field: Field) -> tuple[str, ...] | None:
        return self.salutations(field) if part == "salutation" else None

    def clean(self, part: str, text: str, field: Field) -> str | None:
        cleaned = super().clean(part, text, field)
        if part != "salutation" or cleaned is None:
            return cleaned
        for option in self.salutations(field):  # "dr", "Dr" and "DR." are Dr.
            if option.casefold().rstrip(".") == cleaned.casefold().rstrip("."):
                return option
        raise CoercionError(f"salutation: {cleaned[:40]!r} is not one of "
                            f"{', '.join(self.salutations(field))}")

    def from_text(self, text: str, field: Field) -> Any:
        """"Dr. Ada King Lovelace" → salutation, first, middle(s), last; one word is a last name."""
        words = text.split()
        value: dict[str, str] = {}
        if len(words) > 1:
            for option in self.salutations(field):
                if option.casefold().rstrip(".") == words[0].casefold().rstrip("."):
                    value["salutation"] = option
                    words = words[1:]
                    break
        if not words:
            return value
        value["last"] = words[-1]
        if len(words) > 1:
            value["first"] = words[0]
        if len(words) > 2:
            value["middle"] = " ".join(words[1:-1])
        return value

    def parse_text(self, text: str, field: Field) -> Any:
        return self.coerce(text, field)

    def display(self, value: Any, field: Field) -> str:
        if not value:
            return ""
        return " ".join(value[p] for p in self.shown_order if value.get(p))

    def to_json(self, value: Any, field: Field) -> Any:
        return None if value is None else {p: value[p] for p in self.shown_order if p in value}

    def sort_columns(self, field: Field) -> tuple[str, ...]:
        return ("", "first")  # last name, then first name

    def sort_follows_direction(self, suffix: str, field: Field) -> bool:
        return True

    def sample(self, field: Field, pick: SampleSource) -> Any:
        value = {"first": pick.fake.first_name(), "last": pick.fake.last_name()}
        if pick.random.random() < 0.2:
            value["salutation"] = pick.random.choice(self.salutations(field))
        return value
