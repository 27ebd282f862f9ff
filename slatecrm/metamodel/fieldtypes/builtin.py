"""The field types SlateCRM ships with."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import sqlalchemy as sa
from babel.numbers import format_currency, format_decimal, list_currencies

from ..rules.python import round_half_up
from ..rules.types import BOOLEAN, DATE, DATETIME, NUMBER, TEXT, Type
from . import polymorphic as poly
from .base import CoercionError, ColumnSpec, FieldType, FormInputs, SampleSource, text_pattern
from .composite import Address, PersonName
from .files import FILE_TYPES
from .jsonvalue import JsonValue
from .manytomany import ManyToMany
from .multivalue import Emails, Phones
from .richtext import RichText
from .sqltypes import UTCDateTime, exact_decimal, json_list, record_id
from .tags import Tags
from .users import UserField

if TYPE_CHECKING:
    from ..model import Field

INT64 = 2**63 - 1
MAX_DECIMAL_PRECISION = 18  # exact on SQLite's 64-bit integers as well
ISO_CURRENCIES = frozenset(list_currencies())

_LENGTH = {"max_length": {"type": "integer", "minimum": 1, "maximum": 1_000_000}}
_INT_RANGE = {"min": {"type": "integer"}, "max": {"type": "integer"}}
_NUM_RANGE = {"min": {"type": "number"}, "max": {"type": "number"}}
_PRECISION = {
    "precision": {"type": "integer", "minimum": 1, "maximum": MAX_DECIMAL_PRECISION},
    "scale": {"type": "integer", "minimum": 0, "maximum": MAX_DECIMAL_PRECISION},
}
_CHOICE_OPTIONS = {
    "options": {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "required": ["key"],
            "additionalProperties": False,
            "properties": {
                "key": {"$ref": "#/$defs/name"},
                "label": {"type": "string", "minLength": 1},
                "colour": {"$ref": "#/$defs/colour"},
                "order": {"type": "integer"},
            },
        },
    }
}


def _check_range(value: Any, field: Field) -> None:
    low, high = field.settings.get("min"), field.settings.get("max")
    if low is not None and value < low:
        raise CoercionError(f"must be at least {low}")
    if high is not None and value > high:
        raise CoercionError(f"must be at most {high}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


# --- JSON Schema patterns of the API's input (input_schema) -------------------------------------
def _bounded_integer(low: Any, high: Any, limit: int) -> dict[str, Any]:
    """Whole numbers within the field's min / max and `limit` either side."""
    low = -limit if low is None else max(-limit, math.ceil(low))
    high = limit if high is None else min(limit, math.floor(high))
    return {"type": "integer", "minimum": low, "maximum": high}


class _Textual(FieldType):
    """Free text kept as typed; one unbounded string column on every database."""

    settings_schema = _LENGTH
    constraint_settings = ("max_length",)
    searchable = True
    list_rank: ClassVar[int | None] = 11

    def rule_type(self, field: Field) -> Type | None:
        return TEXT

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String()

    def convert(self, value: Any, field: Field) -> Any:
        if isinstance(value, dt.time):  # a retype from a time of day: 14:30, 14:30:15
            value = value.strftime("%H:%M:%S" if value.second else "%H:%M")
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise CoercionError(f"expected text, got {_kind(value)}")
        text = value if isinstance(value, str) else str(value)
        if "\x00" in text:  # PostgreSQL cannot store it; SQLite would cut the text there
            raise CoercionError("contains a NUL character, which text cannot hold")
        text = self.normalise(text)
        limit = field.settings.get("max_length")
        if limit is not None and len(text) > limit:
            raise CoercionError(f"is {len(text)} characters long; at most {limit} are allowed")
        return text

    def normalise(self, text: str) -> str:
        return text

    def coerce_given(self, value: Any, field: Field) -> Any:
        # `convert` takes numbers (a retype from integer); a client sends text as a string.
        if _is_number(value):
            raise CoercionError(f"expected text, got a number ({value!r}): send text as a JSON string")
        return super().coerce_given(value, field)

    def value_schema(self, field: Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if "max_length" in field.settings:
            schema["maxLength"] = field.settings["max_length"]
        return schema

    #: Characters a value may not hold, as a regex class body: NUL everywhere (`convert`).
    forbidden: ClassVar[str] = "\\u0000"

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # maxLength counts the text as sent; the limit applies once it is trimmed, so the
        # document admits a little less than the server.
        return {**self.value_schema(field), "pattern": text_pattern(self.forbidden, required=required)}


class Text(_Textual):
    name = "text"
    label = "Text"
    sample_by_name = True
    forbidden = "\\u0000\\n\\r"  # a single line

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return pick.fake.sentence(nb_words=3).rstrip(".")

    def normalise(self, text: str) -> str:
        if "\n" in text or "\r" in text:
            raise CoercionError("must be a single line (use a long_text field for several)")
        return text.strip()


class LongText(_Textual):
    name = "long_text"
    label = "Long text"
    widget_template = "widgets/textarea.html"
    section = "notes"
    searchable = False
    list_rank = None

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return pick.fake.paragraph(nb_sentences=3)


_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


class Email(_Textual):
    name = "email"
    label = "E-mail"
    widget_template = "widgets/email.html"
    list_rank = 9

    def link(self, value: Any, field: Field) -> str | None:
        return None if value is None else f"mailto:{value}"

    def sample(self, field: Field, pick: SampleSource) -> Any:
        if field.unique:
            return f"{pick.fake.user_name()}{pick.random.randrange(10**9)}@{pick.fake.free_email_domain()}"
        return pick.fake.email()

    def normalise(self, text: str) -> str:
        text = text.strip()
        if len(text) > 254 or not _EMAIL.match(text):
            raise CoercionError(f"{text!r} is not an e-mail address")
        local, domain = text.rsplit("@", 1)
        return f"{local}@{domain.lower()}"

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {**super().value_schema(field), "format": "email"}

    def output_schema(self, field: Field) -> dict[str, Any]:
        # The pattern, not the `email` format: RFC 5322 refuses some addresses people have
        # (a local part ending in a dot) that `normalise` keeps.
        return {"type": "string", "pattern": _EMAIL.pattern}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # The very pattern `normalise` checks.
        limit = min(254, field.settings.get("max_length", 254))
        return {"type": "string", "maxLength": limit, "pattern": _EMAIL.pattern}


_PHONE = re.compile(r"^\+?[0-9 ().\-/]+(?:\s*(?:x|ext\.?)\s*[0-9]{1,6})?$", re.IGNORECASE)


class Phone(_Textual):
    name = "phone"
    label = "Phone"
    widget_template = "widgets/tel.html"
    list_rank = 10

    def link(self, value: Any, field: Field) -> str | None:
        return None if value is None else f"tel:{value}"

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return pick.fake.numerify("+1 ###-###-####")

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # 3 to 20 digits among the separators `normalise` allows (extensions left out).
        schema = {"type": "string", "pattern": r"^\+?(?:[ ().\-/]*[0-9]){3,20}[ ().\-/]*$"}
        if "max_length" in field.settings:
            schema["maxLength"] = field.settings["max_length"]
        return schema

    def normalise(self, text: str) -> str:
        text = " ".join(text.split())
        digits = sum(ch.isdigit() for ch in text)
        if not _PHONE.match(text) or not 3 <= digits <= 20:
            raise CoercionError(f"{text!r} is not a phone number")
        return text


class Url(_Textual):
    name = "url"
    label = "URL"
    widget_template = "widgets/url.html"
    list_rank = 14

    def link(self, value: Any, field: Field) -> str | None:
        return None if value is None else str(value)

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return pick.fake.url()

    def normalise(self, text: str) -> str:
        typed = text = text.strip()
        if "://" not in text and not text.lower().startswith(("mailto:", "javascript:", "data:")):
            text = "https://" + text
        try:
            parts = urlsplit(text)
            valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        except ValueError:  # urlsplit refuses a malformed [IPv6] host
            valid = False
        if not valid or " " in text:
            # Quote what the person typed, not the text with the https:// we added.
            raise CoercionError(f"{typed!r} is not a web address (http or https)")
        return text

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {**super().value_schema(field), "format": "uri"}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # An http(s) address with its host, without spaces (`normalise`); the scheme given,
        # so the length counted is the length sent.
        pattern = r"^https?://[A-Za-z0-9][A-Za-z0-9.\-]*(?::[0-9]{1,5})?(?:[/?#][!-~]*)?$"
        return {**super().value_schema(field), "pattern": pattern}

    def output_schema(self, field: Field) -> dict[str, Any]:
        # Not the `uri` format: a stored address may hold characters RFC 3986 would have
        # percent-encoded (a browser sends them as typed).
        return {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9+.-]*://[^ ]+$"}


def whole_number(value: Any) -> int:
    """A whole number within signed 64 bits from JSON or text (`"1_000"`, `1.0`), or
    CoercionError: what the integer and rating types read before their own range checks."""
    if isinstance(value, bool):
        raise CoercionError("expected a whole number, got true/false")
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise CoercionError(f"{value!r} is not a whole number")
        if len(text.lstrip("+-0")) > len(str(INT64)):  # int() refuses > 4300 digits
            raise CoercionError("is too large for a whole number field")
        number = int(text)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float | Decimal):
        if not Decimal(value).is_finite() or Decimal(value) != Decimal(value).to_integral_value():
            raise CoercionError(f"{value} is not a whole number")
        number = int(value)
    else:
        raise CoercionError(f"expected a whole number, got {_kind(value)}")
    if not -INT64 - 1 <= number <= INT64:  # a signed 64-bit column
        raise CoercionError("is too large for a whole number field")
    return number


class _WholeNumberInRules(FieldType):
    """A type rules compare as a number, whose value from a rule is rounded half up to a
    whole number (the integer and rating types)."""

    def rule_type(self, field: Field) -> Type | None:
        return NUMBER

    def from_rule_value(self, value: Any, field: Field) -> Any:
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return int(round_half_up(value, 0))
        return value


class Integer(_WholeNumberInRules):
    name = "integer"
    label = "Whole number"
    settings_schema = _INT_RANGE
    constraint_settings = ("min", "max")
    widget_template = "widgets/number.html"
    summable = True
    sum_rank: ClassVar[int | None] = 2
    list_rank: ClassVar[int | None] = 5

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return int(pick.number(field, 1, 500))

    def total(self, amount: Any, group: Mapping[str, Any], field: Field) -> Any:
        # PostgreSQL's SUM of a BIGINT is a NUMERIC (a Decimal): a whole number again, so a
        # board's JSON can hold it.
        return int(amount)

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.BigInteger()

    def convert(self, value: Any, field: Field) -> int:
        number = whole_number(value)
        _check_range(number, field)
        return number

    def value_schema(self, field: Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if "min" in field.settings:
            schema["minimum"] = field.settings["min"]
        if "max" in field.settings:
            schema["maximum"] = field.settings["max"]
        return schema

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        return _bounded_integer(field.settings.get("min"), field.settings.get("max"), INT64)


class DecimalType(FieldType):
    name = "decimal"
    label = "Decimal number"
    settings_schema = {**_PRECISION, **_NUM_RANGE}
    default_precision: ClassVar[int] = 18
    default_scale: ClassVar[int] = 2
    constraint_settings: ClassVar[tuple[str, ...]] = ("min", "max", "precision", "scale")
    widget_template = "widgets/number.html"
    summable = True
    sum_rank: ClassVar[int | None] = 1
    list_rank: ClassVar[int | None] = 4

    def rule_type(self, field: Field) -> Type | None:
        return NUMBER

    def from_rule_value(self, value: Any, field: Field) -> Any:
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return round_half_up(value, self.precision(field)[1])
        return value

    def stored_scale(self, field: Field) -> int | None:
        return self.precision(field)[1]

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return pick.decimal(field, 1, 1000)

    def precision(self, field: Field) -> tuple[int, int]:
        return (
            int(field.settings.get("precision", self.default_precision)),
            int(field.settings.get("scale", self.default_scale)),
        )

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return exact_decimal(*self.precision(field))

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        precision, scale = self.precision(field)
        if scale > precision:
            yield "scale", f"scale {scale} is larger than precision {precision}"

    def number(self, value: Any, field: Field) -> Decimal:
        if isinstance(value, bool):
            raise CoercionError("expected a number, got true/false")
        if isinstance(value, str):
            text = value.strip().replace(",", "").replace("_", "")
            text = text.removesuffix("%").strip() if self.name == "percent" else text
            try:
                number = Decimal(text)
            except InvalidOperation:
                raise CoercionError(f"{value!r} is not a number") from None
        elif isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        else:
            raise CoercionError(f"expected a number, got {_kind(value)}")
        if not number.is_finite():
            raise CoercionError(f"{value!r} is not a finite number")
        precision, scale = self.precision(field)
        # Digits before the point first: quantize() fails on more than 28 digits in all.
        # Zero is checked by value (0E+50 is zero, whatever its exponent).
        if number and number.adjusted() >= precision - scale:
            raise CoercionError(
                f"{number} has more than {precision - scale} digits before the point")
        rounded = number.quantize(Decimal(1).scaleb(-scale))
        if rounded != number:
            raise CoercionError(f"{number} has more than {scale} decimal places")
        _check_range(rounded, field)
        return rounded

    def convert(self, value: Any, field: Field) -> Any:
        return self.number(value, field)

    def to_json(self, value: Any, field: Field) -> Any:
        # Fixed-point: str() gives "1.0E-7" for small amounts, which value_schema's pattern
        # (and the "12.50 EUR" text form) do not accept.
        return None if value is None else f"{value:f}"

    def display(self, value: Any, field: Field) -> str:
        return "" if value is None else format_decimal(value, locale="en", decimal_quantization=False)

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": ["string", "number"], "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}

    def whole_numbers(self, field: Field) -> dict[str, Any]:
        """The whole numbers the field takes: its digits before the point, its min / max."""
        precision, scale = self.precision(field)
        return _bounded_integer(field.settings.get("min"), field.settings.get("max"),
                                10 ** (precision - scale) - 1)

    def text_pattern(self, field: Field) -> str | None:
        """A pattern of the exact decimal texts the field takes (its digits before and after
        the point), or None when its min / max cannot be said by a pattern (one that only
        keeps out a minus sign can)."""
        low, high = field.settings.get("min"), field.settings.get("max")
        if high is not None or low not in (None, 0):
            return None
        precision, scale = self.precision(field)
        whole = f"[0-9]{{1,{precision - scale}}}" if precision > scale else "0"
        fraction = f"(?:\\.[0-9]{{1,{scale}}})?" if scale else ""
        return f"^{'-?' if low is None else ''}{whole}{fraction}$"

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # A JSON number is documented as a whole number only: a binary fraction (0.57 is
        # 0.56999…) is exact only as text.
        pattern = self.text_pattern(field)
        if pattern is None:
            return self.whole_numbers(field)
        return {"anyOf": [self.whole_numbers(field), {"type": "string", "pattern": pattern}]}


class Percent(DecimalType):
    name = "percent"
    label = "Percent"
    settings_schema = {"scale": _PRECISION["scale"], **_NUM_RANGE}
    default_precision = 9
    default_scale = 2
    sum_rank = None  # a sum of percentages means nothing; add one up only when asked
    list_rank = 6

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return pick.decimal(field, 0, 100, "1")

    def display(self, value: Any, field: Field) -> str:
        # Without decimal_quantization=False babel rounds to 3 places (12.3456 → 12.346).
        return "" if value is None else \
            f"{format_decimal(value, locale='en', decimal_quantization=False)} %"


class Currency(DecimalType):
    """An amount with its ISO 4217 code: two columns, `<name>` and `<name>__currency`."""

    name = "currency"
    label = "Currency amount"
    computable = False
    widget_template = "widgets/currency.html"
    constraint_settings = ("min", "max", "precision", "scale", "currencies")
    sum_rank = 0
    list_rank = 3
    #: Offered in a form when the field allows any currency (besides its default and the
    #: stored one, which are always offered).
    COMMON_CODES: ClassVar[tuple[str, ...]] = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "CNY", "INR")
    settings_schema = {
        **_PRECISION,
        **_NUM_RANGE,
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "currencies": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z]{3}$"},
                       "minItems": 1, "uniqueItems": True},
    }

    def columns(self, field: Field) -> list[ColumnSpec]:
        return [ColumnSpec("", self.sql_type(field)), ColumnSpec("currency", sa.String(3))]

    def default_code(self, field: Field) -> str:
        return str(field.settings.get("currency") or (field.settings.get("currencies") or ["USD"])[0])

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        yield from super().check_definition(field)
        codes = [field.settings.get("currency"), *field.settings.get("currencies", [])]
        for code in codes:
            if code is not None and code not in ISO_CURRENCIES:
                yield "currency", f"{code!r} is not an ISO 4217 currency code"
        allowed = field.settings.get("currencies")
        if allowed and field.settings.get("currency") and field.settings["currency"] not in allowed:
            yield "currency", "the default currency is not among the allowed currencies"

    def convert(self, value: Any, field: Field) -> dict[str, Any] | None:
        code = self.default_code(field)
        if isinstance(value, Mapping):
            unknown = set(value) - {"amount", "currency"}
            if unknown:
                raise CoercionError(f"unknown key {sorted(unknown)[0]!r}; give amount and currency")
            amount = value.get("amount")
            code = value.get("currency") or code
            if amount is None or (isinstance(amount, str) and not amount.strip()):
                return None
        elif isinstance(value, str):
            match = re.fullmatch(r"\s*([A-Za-z]{3})?\s*([^A-Za-z]+?)\s*([A-Za-z]{3})?\s*", value)
            if not match or (match.group(1) and match.group(3)):
                raise CoercionError(f"{value!r} is not an amount (like 12.50 or 12.50 EUR)")
            amount = match.group(2)
            code = (match.group(1) or match.group(3) or code).upper()
        else:
            amount = value
        if not isinstance(code, str) or code not in ISO_CURRENCIES:
            raise CoercionError(f"{code!r} is not an ISO 4217 currency code")
        allowed = field.settings.get("currencies")
        if allowed and code not in allowed:
            raise CoercionError(f"currency {code} is not allowed; allowed: {', '.join(allowed)}")
        return {"amount": self.number(amount, field), "currency": code}

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        if value is None:
            return {"": None, "currency": None}
        return {"": value["amount"], "currency": value["currency"]}

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        if values.get("") is None:
            return None
        return {"amount": values[""], "currency": values.get("currency") or self.default_code(field)}

    def to_json(self, value: Any, field: Field) -> Any:
        if value is None:
            return None
        return {"amount": super().to_json(value["amount"], field), "currency": value["currency"]}

    def display(self, value: Any, field: Field) -> str:
        if value is None:
            return ""
        # Show the stored amount: babel would round it to the currency's usual digits.
        return str(format_currency(value["amount"], value["currency"], locale="en",
                                   decimal_quantization=False))

    # --- the parts of money that must never be silently changed or mixed -------------------
    def codes_offered(self, field: Field, stored: str | None) -> list[str]:
        """The currencies a form offers: the allowed ones (or the default and common ones),
        and always the stored one, so editing another field never changes a currency."""
        allowed = list(field.settings.get("currencies") or [])
        if not allowed:
            allowed = [self.default_code(field), *self.COMMON_CODES]
        if stored and stored not in allowed:
            allowed.append(stored)
        return list(dict.fromkeys(allowed))

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        if value is None:
            return {"": "", "currency": self.default_code(field)}
        return {"": f"{value['amount']:f}", "currency": str(value["currency"])}

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        amount, code = inputs(""), inputs("currency")
        if not amount:
            return None
        return {"amount": amount[0], "currency": code[0] if code else None}

    def sort_columns(self, field: Field) -> tuple[str, ...]:
        # Amounts in different currencies are not comparable: group by currency first.
        return ("currency", "")

    def sum_groups(self, field: Field) -> tuple[str, ...]:
        return ("currency",)

    def total(self, amount: Any, group: Mapping[str, Any], field: Field) -> Any:
        return {"amount": Decimal(amount or 0), "currency": group.get("currency") or self.default_code(field)}

    def display_total(self, value: Any, field: Field) -> str:
        if value is None:
            return ""
        # "USD 1,200.00 · EUR 300.00": the code, never a symbol ($ is several currencies),
        # with the currency's usual digits, and more when the sum has more.
        return str(format_currency(value["amount"], value["currency"], "¤¤ #,##0.00", locale="en",
                                   currency_digits=True, decimal_quantization=False))

    def rule_value(self, value: Any, field: Field) -> Any:
        return None if value is None else value["amount"]

    def sample(self, field: Field, pick: SampleSource) -> Any:
        amount = round(pick.number(field, 1_000, 250_000), -2)
        return {"amount": f"{amount:.0f}", "currency": self.default_code(field)}

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["amount"],
            "additionalProperties": False,
            "properties": {
                "amount": super().value_schema(field),
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            },
        }

    def output_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "object", "required": ["amount", "currency"], "additionalProperties": False,
                "properties": {"amount": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"},
                               "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}}}

    def codes(self, field: Field) -> list[str]:
        """The currencies a value may be in: the allowed ones, or every ISO 4217 code."""
        return sorted(field.settings.get("currencies") or ISO_CURRENCIES)

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        return {"type": "object", "required": ["amount"], "additionalProperties": False,
                "properties": {"amount": super().input_schema(field, required=True),
                               "currency": {"type": "string", "enum": self.codes(field)}}}

    def filter_schema(self, field: Field) -> dict[str, Any]:
        # A filter is text: an amount, in the default currency unless a code follows.
        pattern = self.text_pattern(field)
        if pattern is None:
            whole = self.whole_numbers(field)
            return {"type": "string", "enum": [str(whole["minimum"]), str(whole["maximum"])]}
        codes = "|".join(self.codes(field))
        return {"type": "string", "pattern": f"{pattern[:-1]}(?: (?:{codes}))?$"}


RATING_SCALE = {"max": {"type": "integer", "minimum": 3, "maximum": 10,
                         "description": "the highest rating (default 5); the lowest is 1"}}
FULL_STAR, EMPTY_STAR = "\u2605", "\u2606"


class Rating(_WholeNumberInRules):
    """A score from 1 to `max` (default 5), or blank: a small integer column, compared like
    a number in rules, shown as stars in lists and on record pages (the number stays the
    value in the API, CSV and history, where stars would have to be parsed back)."""

    name = "rating"
    label = "Rating"
    settings_schema = RATING_SCALE
    constraint_settings = ("max",)
    widget_template = "widgets/rating.html"
    value_template = "values/rating.html"
    list_rank: ClassVar[int | None] = 6
    default_top: ClassVar[int] = 5

    def top(self, field: Field) -> int:
        """The highest rating the field allows."""
        return int(field.settings.get("max", self.default_top))

    def choices(self, field: Field) -> list[int]:
        """Every rating a person may pick, lowest first (the form's radio buttons)."""
        return list(range(1, self.top(field) + 1))

    def stars(self, value: int, field: Field) -> str:
        """`value` full stars then empty ones up to the top: ★★★☆☆ for 3 of 5."""
        return FULL_STAR * value + EMPTY_STAR * max(0, self.top(field) - value)

    def spoken(self, value: int, field: Field) -> str:
        """The stars as words, for screen readers: "3 of 5"."""
        return f"{value} of {self.top(field)}"

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.SmallInteger()

    def convert(self, value: Any, field: Field) -> int:
        try:
            number = whole_number(value)
        except CoercionError as problem:
            raise CoercionError(f"{problem}; a rating is a whole number from 1 to {self.top(field)}") \
                from None
        if not 1 <= number <= self.top(field):
            raise CoercionError(f"{number} is not a rating from 1 to {self.top(field)}")
        return number

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return pick.random.randint(1, self.top(field))

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": self.top(field)}


class Boolean(FieldType):
    name = "boolean"
    label = "Yes / no"
    widget_template = "widgets/boolean.html"
    list_rank: ClassVar[int | None] = 13

    def rule_type(self, field: Field) -> Type | None:
        return BOOLEAN

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        return {"": "" if value is None else ("true" if value else "false")}

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return pick.random.random() < 0.5
    _TRUE = frozenset({"true", "yes", "y", "1", "on", "t"})
    _FALSE = frozenset({"false", "no", "n", "0", "off", "f"})

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.Boolean()

    def convert(self, value: Any, field: Field) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | Decimal) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in self._TRUE | self._FALSE:
            return value.strip().lower() in self._TRUE
        raise CoercionError(f"{value!r} is not yes or no")

    def display(self, value: Any, field: Field) -> str:
        return "" if value is None else ("Yes" if value else "No")

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "boolean"}


class Date(FieldType):
    name = "date"
    label = "Date"
    widget_template = "widgets/date.html"
    list_rank: ClassVar[int | None] = 7

    def rule_type(self, field: Field) -> Type | None:
        return DATE

    def from_rule_value(self, value: Any, field: Field) -> Any:
        return value.date() if isinstance(value, dt.datetime) else value

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        if isinstance(value, dt.date):
            return {"": value.isoformat()}
        return {"": "" if value is None else str(value)}

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return (pick.today + dt.timedelta(days=pick.random.randint(-120, 120))).isoformat()

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.Date()

    def convert(self, value: Any, field: Field) -> dt.date:
        if isinstance(value, dt.datetime):
            if value.time() != dt.time(0):
                raise CoercionError(f"{value.isoformat()} has a time of day; a date field keeps none")
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                raise CoercionError(f"{value!r} is not a date (YYYY-MM-DD)") from None
        raise CoercionError(f"expected a date, got {_kind(value)}")

    def to_json(self, value: Any, field: Field) -> Any:
        return None if value is None else value.isoformat()

    def display(self, value: Any, field: Field) -> str:
        return "" if value is None else value.isoformat()

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "format": "date"}


_SUBMINUTE_OFFSET = re.compile(r"([+-])([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{1,6})$")


class DateTime(FieldType):
    name = "datetime"
    label = "Date and time"
    widget_template = "widgets/datetime.html"
    list_rank: ClassVar[int | None] = 8

    def rule_type(self, field: Field) -> Type | None:
        return DATETIME

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        if isinstance(value, dt.datetime):
            return {"": value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")}
        return {"": "" if value is None else str(value)}

    def sample(self, field: Field, pick: SampleSource) -> Any:
        moment = dt.datetime.combine(pick.today, dt.time(9), dt.UTC) + dt.timedelta(
            days=pick.random.randint(-30, 30), hours=pick.random.randint(0, 8))
        return moment.isoformat()

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return UTCDateTime()

    def convert(self, value: Any, field: Field) -> dt.datetime:
        if isinstance(value, dt.datetime):
            moment = value
        elif isinstance(value, dt.date):
            moment = dt.datetime.combine(value, dt.time(0))
        elif isinstance(value, str):
            try:
                moment = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                raise CoercionError(f"{value!r} is not a date and time (ISO 8601)") from None
            if (offset := _SUBMINUTE_OFFSET.search(value.strip())) and moment.tzinfo is not None:
                # Python 3.11's fromisoformat drops an offset's fraction of a second
                # (+00:00:00.000001 is read as +00:00), which isoformat() writes.
                sign = -1 if offset.group(1) == "-" else 1
                moment = moment.replace(tzinfo=dt.timezone(sign * dt.timedelta(
                    hours=int(offset.group(2)), minutes=int(offset.group(3)), seconds=int(offset.group(4)),
                    microseconds=int(offset.group(5).ljust(6, "0")))))
        else:
            raise CoercionError(f"expected a date and time, got {_kind(value)}")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        try:
            return moment.astimezone(dt.UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise CoercionError(f"{moment.isoformat()} is out of range in UTC") from None

    def to_json(self, value: Any, field: Field) -> Any:
        return None if value is None else value.isoformat().replace("+00:00", "Z")

    def display(self, value: Any, field: Field) -> str:
        return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "format": "date-time"}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # RFC 3339 as datetime.fromisoformat reads it: no leap second, at most microseconds.
        return {"type": "string", "format": "date-time", "pattern":
                r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](?:\.[0-9]{1,6})?"
                r"(?:Z|[+-][0-9]{2}:[0-9]{2})$"}


class Choice(FieldType):
    name = "choice"
    label = "Choice"
    settings_schema = _CHOICE_OPTIONS
    required_settings: ClassVar[tuple[str, ...]] = ("options",)
    widget_template = "widgets/select.html"
    groupable = True
    list_rank: ClassVar[int | None] = 1

    def rule_type(self, field: Field) -> Type | None:
        return Type("text", tuple(o.key for o in field.choices))

    def colour(self, value: Any, field: Field) -> str | None:
        for option in field.choices:
            if option.key == value and option.colour:
                return option.colour
        return None

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return pick.random.choice(field.choices).key if field.choices else None

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String()

    def keys(self, field: Field) -> list[str]:
        return [option.key for option in field.choices]

    def convert(self, value: Any, field: Field) -> str:
        if not isinstance(value, str):
            raise CoercionError(f"expected one of {', '.join(self.keys(field))}, got {_kind(value)}")
        key = value.strip()
        if key in self.keys(field):
            return key
        for option in field.choices:  # a person may type the label
            if option.label.casefold() == key.casefold():
                return option.key
        # Quote the stripped text: a multi_choice item split from "a, b" starts with a space.
        raise CoercionError(f"{key!r} is not an option; options: {', '.join(self.keys(field))}")

    def display(self, value: Any, field: Field) -> str:
        for option in field.choices:
            if option.key == value:
                return option.label
        return "" if value is None else str(value)

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "enum": self.keys(field)}


class Stage(Choice):
    """The stage field of a pipeline: its options are the pipeline's stages."""

    name = "stage"
    label = "Stage"
    computable = False
    settings_schema = {}
    required_settings = ()
    index_by_default = True
    list_rank = 0

    def rule_type(self, field: Field) -> Type | None:
        return Type("text", tuple(o.key for o in field.choices), ordered=True)

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return None  # the pipeline decides (sample data picks a stage per funnel)


class MultiChoice(Choice):
    name = "multi_choice"
    label = "Multiple choice"
    computable = False
    settings_schema = {**_CHOICE_OPTIONS, "max_items": {"type": "integer", "minimum": 1}}
    constraint_settings = ("max_items",)
    widget_template = "widgets/checkboxes.html"
    sortable = False
    filterable = False
    groupable = False
    list_rank = None

    def rule_type(self, field: Field) -> Type | None:
        return Type("list", tuple(o.key for o in field.choices))

    def rule_value(self, value: Any, field: Field) -> Any:
        return value or None

    def colour(self, value: Any, field: Field) -> str | None:
        return None

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        return {"": list(value or [])}

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        return inputs("") or None

    def sample(self, field: Field, pick: SampleSource) -> Any:
        keys = [c.key for c in field.choices]
        limit = int(field.settings.get("max_items", len(keys)) or len(keys))
        return pick.random.sample(keys, pick.random.randint(1, max(1, min(limit, len(keys))))) if keys \
            else None

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return json_list()

    def coerce(self, value: Any, field: Field) -> Any:
        if value is None or value == "" or value == []:
            return None
        return self.convert(value, field)

    def convert(self, value: Any, field: Field) -> Any:
        items = [p for p in re.split(r"[;,]", value)] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise CoercionError(f"expected a list of options, got {_kind(value)}")
        keys: list[str] = []
        for item in items:
            if isinstance(item, str) and not item.strip():
                continue
            key = super().convert(item, field)
            if key not in keys:
                keys.append(key)
        limit = field.settings.get("max_items")
        if limit is not None and len(keys) > limit:
            raise CoercionError(f"has {len(keys)} options; at most {limit} may be chosen")
        order = self.keys(field)
        return sorted(keys, key=order.index) or None

    def display(self, value: Any, field: Field) -> str:
        return ", ".join(super(MultiChoice, self).display(key, field) for key in value or [])

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string", "enum": self.keys(field)}, "uniqueItems": True}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        schema = self.value_schema(field)
        if required:
            schema["minItems"] = 1  # an empty list is blank
        if "max_items" in field.settings:
            schema["maxItems"] = field.settings["max_items"]
        return schema


class Reference(FieldType):
    """A many-to-one link to another entity's record, kept as a foreign key; with `targets`
    instead of `target`, a polymorphic link to a record of one of several entities
    (fieldtypes/polymorphic.py)."""

    name = "reference"
    label = "Reference"
    computable = False
    settings_schema = {
        "target": {"$ref": "#/$defs/name"},
        "targets": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/name"},
                    "description": "several entities: a polymorphic reference (related to)"},
        "on_delete": {"enum": ["restrict", "set_null", "cascade"]},
    }
    index_by_default = True
    #: A target taken out of `targets`: the plan reports the values pointing to it.
    constraint_settings = ("targets",)
    widget_template = "widgets/reference.html"
    value_template = "values/reference.html"
    links_records = True
    section = "related"
    list_rank = 2

    def rule_type(self, field: Field) -> Type | None:
        if poly.polymorphic(field):
            return poly.rule_type(field)
        return Type("reference", target=field.target)

    def rule_parts(self, field: Field) -> Mapping[str, Type]:
        return poly.rule_parts(field) if poly.polymorphic(field) else {}

    def entity_name_columns(self, field: Field) -> tuple[str, ...]:
        return (poly.ENTITY,) if poly.polymorphic(field) else ()

    def link(self, value: Any, field: Field) -> str | None:
        if poly.polymorphic(field):
            return poly.link(value)
        return None if value is None else f"/e/{field.settings['target']}/{value}"

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return record_id()

    def columns(self, field: Field) -> list[ColumnSpec]:
        if poly.polymorphic(field):
            return poly.columns(field)
        return [ColumnSpec("", record_id(), references=field.settings.get("target"),
                           on_delete=field.settings.get("on_delete", "restrict"))]

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        return poly.to_columns(value) if poly.polymorphic(field) else {"": value}

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        return poly.from_columns(values) if poly.polymorphic(field) else values.get("")

    def convert(self, value: Any, field: Field) -> Any:
        if poly.polymorphic(field):
            return poly.convert(value, field)
        if isinstance(value, Mapping) and "id" in value:
            if "entity" in value and value["entity"] != field.target:  # a polymorphic value
                raise CoercionError(f"{str(value['entity'])[:40]!r} is not {field.target}: "
                                    f"it points to {field.target} records only")
            value = value["id"]
        if isinstance(value, bool):
            raise CoercionError("expected a record id, got true/false")
        # ASCII digits only (str.isdigit accepts "²"), and no more than a 64-bit id has.
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value.strip()):
            value = int(value.strip())
        if not isinstance(value, int) or value <= 0 or value > INT64:
            raise CoercionError(f"{value!r} is not a record id")
        return value

    def retyped(self, value: Any, old: Field, new: Field) -> Any:
        return poly.retyped(value, old, new) if poly.polymorphic(new) else value

    def value_carries_companions(self, field: Field) -> bool:
        return poly.polymorphic(field)  # {entity, id}: a single reference refuses another entity

    def display(self, value: Any, field: Field) -> str:
        return poly.display(value) if poly.polymorphic(field) else super().display(value, field)

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        return {"": poly.display(value)} if poly.polymorphic(field) else super().form_inputs(value, field)

    def value_schema(self, field: Field) -> dict[str, Any]:
        if poly.polymorphic(field):
            return poly.value_schema(field)
        return {"type": "integer", "minimum": 1}

    def output_schema(self, field: Field) -> dict[str, Any]:
        return poly.output_schema(field) if poly.polymorphic(field) else self.value_schema(field)

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        if poly.polymorphic(field):
            return poly.value_schema(field)
        # An id, or a record as the API gives it ({"id": …, "title": …}: the title is ignored).
        record_id = {"type": "integer", "minimum": 1, "maximum": INT64}
        return {"anyOf": [record_id, {"type": "object", "required": ["id"], "properties": {"id": record_id}}]}

    def filter_schema(self, field: Field) -> dict[str, Any]:
        if poly.polymorphic(field):
            return poly.filter_schema(field)
        return {"type": "integer", "minimum": 1, "maximum": INT64}

    def sort_columns(self, field: Field) -> tuple[str, ...]:
        return (poly.ENTITY, "") if poly.polymorphic(field) else ("",)

    def reference_text(self, entity: str, record_id: int, field: Field) -> str:
        return poly.reference_text(entity, record_id) if poly.polymorphic(field) else str(record_id)

    def compared_companions(self, field: Field) -> tuple[str, ...]:
        return (poly.ENTITY,) if poly.polymorphic(field) else ()

    def refers_to(self, columns: Mapping[str, Any], entity: str, ids: Any, field: Field) -> Any:
        if poly.polymorphic(field):
            return poly.refers_to(columns, entity, ids)
        return columns[""].in_(ids)

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        if "target" not in field.settings and "targets" not in field.settings:
            yield ("target", "a reference needs a target (one entity) or targets (several)")
        yield from poly.check_definition(field)


class AutoNumber(FieldType):
    """A number the engine gives each new record: prefix + zero-padded sequence."""

    name = "auto_number"
    label = "Auto number"
    computable = False
    numbered = True
    settings_schema = {
        "prefix": {"type": "string", "maxLength": 20, "pattern": "^[A-Za-z0-9/_.#-]*$"},
        "digits": {"type": "integer", "minimum": 1, "maximum": 18},
        "start": {"type": "integer", "minimum": 0},
    }
    writable = False
    index_by_default = True
    searchable = True
    list_rank = 12

    def rule_type(self, field: Field) -> Type | None:
        return TEXT

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String()

    def format(self, number: int, field: Field) -> str:
        digits = int(field.settings.get("digits", 5))
        return f"{field.settings.get('prefix', '')}{number:0{digits}d}"

    def convert(self, value: Any, field: Field) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise CoercionError(f"expected an auto number, got {_kind(value)}")
        return str(value).strip()

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "readOnly": True}

    def filter_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "pattern": text_pattern("\\u0000", required=True)}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if _is_number(value):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


from .lines import Lines  # noqa: E402
from .rollup import Rollup  # noqa: E402  (it builds on the number and date types above)

# Types in their own modules build on the ones above (imported last: no import cycle).
from .temporal import DateOrDateTime, Duration, TimeOfDay  # noqa: E402

BUILTIN_TYPES: tuple[FieldType, ...] = (
    Text(), LongText(), Integer(), DecimalType(), Currency(), Percent(), Boolean(), Date(),
    DateTime(), Choice(), MultiChoice(), Email(), Phone(), Url(), Reference(), AutoNumber(),
    Stage(), Rating(),
    UserField(),  # users.py
    TimeOfDay(), Duration(), DateOrDateTime(),  # temporal.py
    RichText(), JsonValue(), Tags(),  # richtext.py, jsonvalue.py, tags.py
    Address(), PersonName(), Emails(), Phones(),  # composite.py, multivalue.py
    ManyToMany(), Rollup(), Lines(),  # manytomany.py, rollup.py, lines.py
    *FILE_TYPES,  # files.py
)
