"""The built-in field types as the API and forms see them: what is accepted, what it
becomes, what is refused and with which words, and that values survive JSON, text and
the database unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from slatecrm.metamodel.fieldtypes import BUILTIN_TYPES, CoercionError, FieldType
from slatecrm.metamodel.fieldtypes.builtin import INT64, ISO_CURRENCIES
from slatecrm.metamodel.fieldtypes.sqltypes import UTCDateTime, exact_decimal
from slatecrm.metamodel.model import ChoiceOption, Field
from slatecrm.platform.storage.engine import create_engine

from .defaults import field_types

PROPERTY = settings(max_examples=200, deadline=None)
UTC = dt.UTC

STATUS = (
    ChoiceOption("new", "New", order=0),
    ChoiceOption("in_progress", "In progress", order=1),
    ChoiceOption("done", "Done", order=2),
)


def field(type_name: str, choices: tuple[ChoiceOption, ...] = (), **settings: Any) -> Field:
    if type_name in ("choice", "multi_choice", "stage") and not choices:
        choices = STATUS
    if type_name == "reference":
        settings.setdefault("target", "company")
    return Field(name="f", type=type_name, label="F", settings=settings, choices=choices)


def ftype(type_name: str) -> FieldType:
    return field_types()[type_name]


def coerce(type_name: str, value: Any, **settings: Any) -> Any:
    return ftype(type_name).coerce(value, field(type_name, **settings))


def refusal(type_name: str, value: Any, **settings: Any) -> str:
    """The message a person reads when `value` is refused."""
    with pytest.raises(CoercionError) as caught:
        coerce(type_name, value, **settings)
    return str(caught.value)


def valid_json(schema: dict[str, Any], value: Any) -> bool:
    checker = Draft202012Validator.FORMAT_CHECKER
    return Draft202012Validator(schema, format_checker=checker).is_valid(value)


# --- blank ---------------------------------------------------------------------------
@pytest.mark.parametrize("type_name", [t.name for t in BUILTIN_TYPES])
@pytest.mark.parametrize("blank", ["", "   ", "\t\n", None], ids=repr)
def test_blank_is_none_for_every_type(type_name: str, blank: Any) -> None:
    assert coerce(type_name, blank) is None
    assert ftype(type_name).parse_text("", field(type_name)) is None


@pytest.mark.parametrize("blank", [[], (), ", ;", {"amount": None}, {"amount": "  "}], ids=repr)
def test_blank_collections_are_none(blank: Any) -> None:
    type_name = "currency" if isinstance(blank, dict) else "multi_choice"
    assert coerce(type_name, blank) is None


def test_every_builtin_type_is_registered_in_order() -> None:
    builtin = [t.name for t in BUILTIN_TYPES]
    assert field_types().names()[:len(builtin)] == builtin  # then installed plugins' (color)
    assert {"text", "long_text", "integer", "decimal", "currency", "percent", "boolean", "date",
            "datetime", "choice", "multi_choice", "email", "phone", "url", "reference",
            "auto_number", "stage", "rating", "user", "time", "duration", "date_or_datetime",
            "rich_text", "json", "tags", "address", "person_name", "emails", "phones",
            "many_to_many", "rollup", "lines", "file", "files", "image"} == set(builtin)


# --- accepted inputs and their canonical values ---------------------------------------
ACCEPTED: list[tuple[str, dict[str, Any], Any, Any]] = [
    # text
    ("text", {}, "  Acme Ltd  ", "Acme Ltd"),
    ("text", {}, 42, "42"),
    ("text", {"max_length": 5}, " abcde ", "abcde"),
    ("long_text", {}, "  first line\nsecond line  ", "  first line\nsecond line  "),
    # integer
    ("integer", {}, "42", 42),
    ("integer", {}, " 7 ", 7),
    ("integer", {}, "-12", -12),
    ("integer", {}, "+5", 5),
    ("integer", {}, "1_000", 1000),
    ("integer", {}, Decimal("3.00"), 3),
    ("integer", {}, 3.0, 3),
    ("integer", {}, INT64, INT64),
    ("integer", {}, -INT64 - 1, -INT64 - 1),
    ("integer", {}, str(-INT64 - 1), -INT64 - 1),
    ("integer", {"min": 1, "max": 10}, "10", 10),
    # decimal
    ("decimal", {}, "1,234.50", Decimal("1234.50")),
    ("decimal", {}, " -7.5 ", Decimal("-7.50")),
    ("decimal", {}, 3, Decimal("3.00")),
    ("decimal", {}, 0.1, Decimal("0.10")),
    ("decimal", {}, "1e2", Decimal("100.00")),
    ("decimal", {}, "0E+50", Decimal("0.00")),
    ("decimal", {"precision": 5, "scale": 2}, "999.99", Decimal("999.99")),
    ("decimal", {"precision": 5, "scale": 2}, "-999.99", Decimal("-999.99")),
    ("decimal", {"scale": 0}, "12", Decimal("12")),
    ("decimal", {"min": 0, "max": 1.5}, "1.5", Decimal("1.50")),
    ("percent", {}, "12.5%", Decimal("12.50")),
    ("percent", {}, " 12.5 % ", Decimal("12.50")),
    ("percent", {}, 7, Decimal("7.00")),
    # currency
    ("currency", {}, "12.50 EUR", {"amount": Decimal("12.50"), "currency": "EUR"}),
    ("currency", {}, "EUR 12.5", {"amount": Decimal("12.50"), "currency": "EUR"}),
    ("currency", {}, "1,234.5 gbp", {"amount": Decimal("1234.50"), "currency": "GBP"}),
    ("currency", {}, "-3 USD", {"amount": Decimal("-3.00"), "currency": "USD"}),
    ("currency", {}, {"amount": "3", "currency": "USD"}, {"amount": Decimal("3.00"), "currency": "USD"}),
    ("currency", {}, {"amount": 4.25}, {"amount": Decimal("4.25"), "currency": "USD"}),
    ("currency", {}, "12.5", {"amount": Decimal("12.50"), "currency": "USD"}),
    ("currency", {"currency": "EUR"}, "12.5", {"amount": Decimal("12.50"), "currency": "EUR"}),
    ("currency", {"currency": "EUR"}, 12, {"amount": Decimal("12.00"), "currency": "EUR"}),
    ("currency", {"currencies": ["GBP", "EUR"]}, Decimal("7"),
     {"amount": Decimal("7.00"), "currency": "GBP"}),
    ("currency", {"currencies": ["GBP", "EUR"]}, "7 EUR", {"amount": Decimal("7.00"), "currency": "EUR"}),
    # boolean
    ("boolean", {}, "yes", True),
    ("boolean", {}, "no", False),
    ("boolean", {}, "1", True),
    ("boolean", {}, "0", False),
    ("boolean", {}, " TRUE ", True),
    ("boolean", {}, "Off", False),
    ("boolean", {}, "y", True),
    ("boolean", {}, True, True),
    ("boolean", {}, False, False),
    ("boolean", {}, 1, True),
    ("boolean", {}, 0, False),
    # date
    ("date", {}, "2024-02-29", dt.date(2024, 2, 29)),
    ("date", {}, " 2024-02-29 ", dt.date(2024, 2, 29)),
    ("date", {}, dt.date(2024, 2, 29), dt.date(2024, 2, 29)),
    ("date", {}, dt.datetime(2024, 2, 29), dt.date(2024, 2, 29)),
    # choice
    ("choice", {}, "done", "done"),
    ("choice", {}, " in_progress ", "in_progress"),
    ("choice", {}, "In progress", "in_progress"),
    ("choice", {}, "IN PROGRESS", "in_progress"),
    ("choice", {}, "DONE", "done"),
    ("stage", {}, "New", "new"),
    # multi_choice
    ("multi_choice", {}, ["done", "new"], ["new", "done"]),
    ("multi_choice", {}, "done, new", ["new", "done"]),
    ("multi_choice", {}, "Done; in progress,new", ["new", "in_progress", "done"]),
    ("multi_choice", {}, ["done", "Done", " done "], ["done"]),
    ("multi_choice", {}, ("new",), ["new"]),
    ("multi_choice", {"max_items": 2}, "new, done, New", ["new", "done"]),
    # e-mail, phone, url
    ("email", {}, "Ann.Lee@Example.COM", "Ann.Lee@example.com"),
    ("email", {}, "  bob+crm@mail.example.org ", "bob+crm@mail.example.org"),
    ("phone", {}, "+1 (555) 123-4567", "+1 (555) 123-4567"),
    ("phone", {}, "  +44  20 7946 0958 ext. 12 ", "+44 20 7946 0958 ext. 12"),
    ("phone", {}, "030/1234567", "030/1234567"),
    ("url", {}, "example.com", "https://example.com"),
    ("url", {}, " www.example.com/path?q=1 ", "https://www.example.com/path?q=1"),
    ("url", {}, "http://example.com/a", "http://example.com/a"),
    ("url", {}, "HTTPS://Example.com", "HTTPS://Example.com"),
    ("url", {}, "localhost:8080/x", "https://localhost:8080/x"),
    # reference, auto number
    ("reference", {}, 5, 5),
    ("reference", {}, "12", 12),
    ("reference", {}, " 3 ", 3),
    ("reference", {}, {"id": 7, "name": "Acme"}, 7),
    ("reference", {}, INT64, INT64),
    ("auto_number", {}, " INV-00001 ", "INV-00001"),
]


@pytest.mark.parametrize(("type_name", "settings", "given", "expected"), ACCEPTED,
                         ids=[f"{t}-{v!r}" for t, _, v, _ in ACCEPTED])
def test_accepted_inputs_and_canonical_values(type_name: str, settings: dict[str, Any],
                                              given: Any, expected: Any) -> None:
    value = coerce(type_name, given, **settings)
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, Decimal):  # the canonical value has the field's scale
        assert str(value) == str(expected)
    if isinstance(expected, dict):
        assert str(value["amount"]) == str(expected["amount"])


@pytest.mark.parametrize(("given", "expected"), [
    ("2024-03-01T12:30:00+02:00", dt.datetime(2024, 3, 1, 10, 30, tzinfo=UTC)),
    ("2024-03-01T10:30:00Z", dt.datetime(2024, 3, 1, 10, 30, tzinfo=UTC)),
    ("2024-03-01T10:30:00.250-05:30", dt.datetime(2024, 3, 1, 16, 0, 0, 250_000, tzinfo=UTC)),
    ("2024-03-01T10:30", dt.datetime(2024, 3, 1, 10, 30, tzinfo=UTC)),
    ("2024-03-01 10:30:00", dt.datetime(2024, 3, 1, 10, 30, tzinfo=UTC)),
    ("2024-03-01", dt.datetime(2024, 3, 1, tzinfo=UTC)),
    (dt.datetime(2024, 3, 1, 10, 30), dt.datetime(2024, 3, 1, 10, 30, tzinfo=UTC)),
    (dt.datetime(2024, 3, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2))),
     dt.datetime(2024, 3, 2, 1, 30, tzinfo=UTC)),
    (dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, tzinfo=UTC)),
], ids=repr)
def test_datetimes_become_utc(given: Any, expected: dt.datetime) -> None:
    value = coerce("datetime", given)
    assert value == expected
    assert value.tzinfo is UTC  # not merely an equal moment in another zone
    assert value.isoformat() == expected.isoformat()


# --- refused inputs, with the words a person reads --------------------------------------
REFUSED: list[tuple[str, dict[str, Any], Any, list[str]]] = [
    # text
    ("text", {"max_length": 5}, "abcdef", ["6 characters", "at most 5"]),
    ("text", {"max_length": 5}, 123456, ["6 characters", "at most 5"]),
    ("email", {"max_length": 10}, "ann@example.com", ["15 characters", "at most 10"]),
    ("text", {}, "first\nsecond", ["single line", "long_text"]),
    ("text", {}, "first\r\nsecond", ["single line"]),
    ("text", {}, True, ["expected text", "true/false"]),
    ("text", {}, ["a"], ["expected text", "a list"]),
    ("text", {}, {"a": 1}, ["expected text", "an object"]),
    # integer
    ("integer", {}, True, ["whole number", "true/false"]),
    ("integer", {}, 1.5, ["1.5 is not a whole number"]),
    ("integer", {}, Decimal("2.5"), ["2.5 is not a whole number"]),
    ("integer", {}, "1.5", ["'1.5' is not a whole number"]),
    ("integer", {}, "twelve", ["'twelve' is not a whole number"]),
    ("integer", {}, "1 000", ["'1 000' is not a whole number"]),
    ("integer", {}, float("inf"), ["inf is not a whole number"]),
    ("integer", {}, float("nan"), ["nan is not a whole number"]),
    ("integer", {}, INT64 + 1, ["too large"]),
    ("integer", {}, -INT64 - 2, ["too large"]),
    ("integer", {}, str(2**64), ["too large"]),
    ("integer", {}, 1e300, ["too large"]),
    ("integer", {}, "9" * 5000, ["too large"]),  # beyond what int() converts from text
    ("integer", {}, ["1"], ["expected a whole number", "a list"]),
    ("integer", {"min": 1}, "0", ["at least 1"]),
    ("integer", {"max": 10}, 11, ["at most 10"]),
    # decimal
    ("decimal", {}, "1.234", ["1.234", "more than 2 decimal places"]),
    ("decimal", {"scale": 0}, "1.5", ["more than 0 decimal places"]),
    ("decimal", {"precision": 5, "scale": 2}, "1000", ["1000", "more than 3 digits before the point"]),
    ("decimal", {"precision": 5, "scale": 2}, "999.995", ["more than 2 decimal places"]),
    ("decimal", {}, "1e30", ["more than 16 digits before the point"]),
    ("decimal", {}, 10**30, ["more than 16 digits before the point"]),
    ("decimal", {}, "1" * 30, ["more than 16 digits before the point"]),
    ("decimal", {}, "1e-30", ["more than 2 decimal places"]),
    ("decimal", {}, "NaN", ["'NaN' is not a finite number"]),
    ("decimal", {}, "Infinity", ["'Infinity' is not a finite number"]),
    ("decimal", {}, "-inf", ["is not a finite number"]),
    ("decimal", {}, float("nan"), ["is not a finite number"]),
    ("decimal", {}, float("inf"), ["is not a finite number"]),
    ("decimal", {}, Decimal("NaN"), ["is not a finite number"]),
    ("decimal", {}, "12abc", ["'12abc' is not a number"]),
    ("decimal", {}, True, ["expected a number", "true/false"]),
    ("decimal", {}, [1], ["expected a number", "a list"]),
    ("decimal", {"min": 0}, "-0.01", ["at least 0"]),
    ("decimal", {"max": 1.5}, "1.51", ["at most 1.5"]),
    ("percent", {"max": 100}, "100.5%", ["at most 100"]),
    # currency
    ("currency", {}, "12.50 XYZ", ["'XYZ' is not an ISO 4217 currency code"]),
    ("currency", {}, {"amount": "1", "currency": "EURO"}, ["'EURO'", "ISO 4217"]),
    ("currency", {}, {"amount": "1", "currency": "eur"}, ["'eur'", "ISO 4217"]),
    ("currency", {"currencies": ["EUR", "USD"]}, "1 GBP",
     ["currency GBP is not allowed", "allowed: EUR, USD"]),
    ("currency", {"currencies": ["EUR", "USD"]}, {"amount": 1, "currency": "GBP"},
     ["GBP is not allowed", "EUR, USD"]),
    ("currency", {}, {"amount": 1, "price": 2}, ["unknown key 'price'", "amount and currency"]),
    ("currency", {}, "EUR 12 USD", ["not an amount", "12.50 EUR"]),
    ("currency", {}, "twelve euros", ["not an amount"]),
    ("currency", {}, "12.345 EUR", ["more than 2 decimal places"]),
    ("currency", {}, "NaN EUR", ["not an amount"]),
    ("currency", {}, {"amount": "NaN", "currency": "EUR"}, ["not a finite number"]),
    ("currency", {}, True, ["expected a number", "true/false"]),
    ("currency", {"min": 0}, "-1 EUR", ["at least 0"]),
    # boolean
    ("boolean", {}, "maybe", ["'maybe' is not yes or no"]),
    ("boolean", {}, 2, ["2 is not yes or no"]),
    ("boolean", {}, ["yes"], ["is not yes or no"]),
    # date
    ("date", {}, "2024-02-30", ["'2024-02-30' is not a date", "YYYY-MM-DD"]),
    ("date", {}, "2023-02-29", ["is not a date"]),
    ("date", {}, "29/02/2024", ["is not a date"]),
    ("date", {}, dt.datetime(2024, 2, 29, 12, 0), ["has a time of day"]),
    ("date", {}, 20240229, ["expected a date", "a number"]),
    # datetime
    ("datetime", {}, "tomorrow", ["'tomorrow' is not a date and time", "ISO 8601"]),
    ("datetime", {}, "2024-02-30T10:00", ["is not a date and time"]),
    ("datetime", {}, 1709290000, ["expected a date and time", "a number"]),
    ("datetime", {}, "0001-01-01T00:00:00+01:00", ["out of range"]),
    ("datetime", {}, "9999-12-31T23:59:59-01:00", ["out of range"]),
    # choice
    ("choice", {}, "closed", ["'closed' is not an option", "options: new, in_progress, done"]),
    ("choice", {}, 1, ["expected one of new, in_progress, done", "a number"]),
    ("stage", {}, "won", ["'won' is not an option"]),
    ("multi_choice", {}, ["new", "closed"], ["'closed' is not an option", "new, in_progress, done"]),
    ("multi_choice", {}, "new, closed", ["'closed' is not an option"]),
    ("multi_choice", {}, {"new": True}, ["expected a list of options", "an object"]),
    ("multi_choice", {}, [1], ["expected one of", "a number"]),
    ("multi_choice", {"max_items": 2}, "new, done, in progress", ["has 3 options", "at most 2"]),
    # e-mail, phone, url
    ("email", {}, "ann@", ["'ann@' is not an e-mail address"]),
    ("email", {}, "not an email", ["is not an e-mail address"]),
    ("email", {}, "ann@example", ["is not an e-mail address"]),
    ("email", {}, "a b@example.com", ["is not an e-mail address"]),
    ("email", {}, "ann@@example.com", ["is not an e-mail address"]),
    ("phone", {}, "call me", ["'call me' is not a phone number"]),
    ("phone", {}, "12", ["'12' is not a phone number"]),
    ("phone", {}, "+" + "1" * 25, ["is not a phone number"]),
    ("url", {}, "javascript:alert(1)", ["'javascript:alert(1)' is not a web address", "http or https"]),
    ("url", {}, "JavaScript:alert(1)", ["is not a web address"]),
    ("url", {}, "data:text/html,<b>hi</b>", ["is not a web address"]),
    ("url", {}, "mailto:ann@example.com", ["is not a web address"]),
    ("url", {}, "ftp://example.com/file", ["'ftp://example.com/file' is not a web address"]),
    ("url", {}, "http://", ["is not a web address"]),
    ("url", {}, "not a url", ["'not a url' is not a web address"]),  # as typed, no https://
    ("url", {}, "http://[::1", ["is not a web address"]),  # urlsplit's ValueError
    ("url", {}, "https://exa mple.com", ["is not a web address"]),
    # reference
    ("reference", {}, 0, ["0 is not a record id"]),
    ("reference", {}, -1, ["-1 is not a record id"]),
    ("reference", {}, "0", ["is not a record id"]),
    ("reference", {}, "-1", ["'-1' is not a record id"]),
    ("reference", {}, "abc", ["'abc' is not a record id"]),
    ("reference", {}, "²", ["is not a record id"]),  # str.isdigit() says yes, int() says no
    ("reference", {}, "9" * 40, ["is not a record id"]),
    ("reference", {}, INT64 + 1, ["is not a record id"]),
    ("reference", {}, 1.0, ["is not a record id"]),
    ("reference", {}, {"name": "Acme"}, ["is not a record id"]),
    ("reference", {}, True, ["expected a record id", "true/false"]),
    # auto number
    ("auto_number", {}, 1.5, ["expected an auto number"]),
]


@pytest.mark.parametrize(("type_name", "settings", "given", "words"), REFUSED,
                         ids=[f"{t}-{v!r}"[:60] for t, _, v, _ in REFUSED])
def test_refused_inputs_say_why(type_name: str, settings: dict[str, Any], given: Any,
                                words: list[str]) -> None:
    message = refusal(type_name, given, **settings)
    for part in words:
        assert part in message
    assert "Traceback" not in message and "<class" not in message


def test_url_refusal_quotes_what_was_typed() -> None:
    assert "https://" not in refusal("url", "exa mple.com")


# --- display -----------------------------------------------------------------------------
@pytest.mark.parametrize(("type_name", "settings", "value", "shown"), [
    ("boolean", {}, True, "Yes"),
    ("boolean", {}, False, "No"),
    ("decimal", {}, Decimal("1234.50"), "1,234.5"),
    ("decimal", {"scale": 4}, Decimal("-0.1234"), "-0.1234"),
    ("percent", {}, Decimal("12.50"), "12.5 %"),
    ("percent", {"scale": 4}, Decimal("12.3456"), "12.3456 %"),  # not rounded to 12.346
    ("currency", {}, {"amount": Decimal("1234.50"), "currency": "EUR"}, "€1,234.50"),
    ("currency", {}, {"amount": Decimal("3.00"), "currency": "USD"}, "$3.00"),
    ("currency", {"scale": 4}, {"amount": Decimal("1.2345"), "currency": "USD"}, "$1.2345"),
    ("currency", {}, {"amount": Decimal("12.50"), "currency": "JPY"}, "¥12.5"),  # not ¥12
    ("date", {}, dt.date(2024, 2, 29), "2024-02-29"),
    ("datetime", {}, dt.datetime(2024, 3, 1, 10, 30, tzinfo=UTC), "2024-03-01 10:30 UTC"),
    ("choice", {}, "in_progress", "In progress"),
    ("multi_choice", {}, ["new", "done"], "New, Done"),
    ("integer", {}, 42, "42"),
    ("text", {}, "Acme", "Acme"),
])
def test_display(type_name: str, settings: dict[str, Any], value: Any, shown: str) -> None:
    f = field(type_name, **settings)
    assert ftype(type_name).display(value, f) == shown
    assert ftype(type_name).display(None, f) == ""


# --- JSON values and their schemas -------------------------------------------------------
@pytest.mark.parametrize(("type_name", "settings", "value", "expected"), [
    ("decimal", {}, Decimal("1234.50"), "1234.50"),
    ("decimal", {"scale": 8}, Decimal("0.00000010"), "0.00000010"),  # not "1.0E-7"
    ("currency", {"scale": 8}, {"amount": Decimal("1E-7"), "currency": "EUR"},
     {"amount": "0.00000010", "currency": "EUR"}),
    ("currency", {}, {"amount": Decimal("3.00"), "currency": "USD"}, {"amount": "3.00", "currency": "USD"}),
    ("date", {}, dt.date(2024, 2, 29), "2024-02-29"),
    ("datetime", {}, dt.datetime(2024, 3, 1, 10, 30, tzinfo=UTC), "2024-03-01T10:30:00Z"),
    ("boolean", {}, True, True),
    ("multi_choice", {}, ["new", "done"], ["new", "done"]),
])
def test_to_json(type_name: str, settings: dict[str, Any], value: Any, expected: Any) -> None:
    f = field(type_name, **settings)
    value = ftype(type_name).coerce(value, f)
    out = ftype(type_name).to_json(value, f)
    assert out == expected
    assert valid_json(ftype(type_name).value_schema(f), out)
    assert ftype(type_name).to_json(None, f) is None


def test_value_schemas_carry_field_settings() -> None:
    assert ftype("text").value_schema(field("text", max_length=80)) == {"type": "string", "maxLength": 80}
    assert ftype("integer").value_schema(field("integer", min=1, max=5)) == \
        {"type": "integer", "minimum": 1, "maximum": 5}
    assert ftype("choice").value_schema(field("choice"))["enum"] == ["new", "in_progress", "done"]
    assert ftype("auto_number").value_schema(field("auto_number"))["readOnly"] is True
    for field_type in BUILTIN_TYPES:
        Draft202012Validator.check_schema(field_type.value_schema(field(field_type.name)))


# --- columns ------------------------------------------------------------------------------
def test_currency_is_stored_in_two_columns() -> None:
    currency, f = ftype("currency"), field("currency", currency="EUR")
    names = [spec.column_name("price") for spec in currency.columns(f)]
    assert names == ["price", "price__currency"]
    value = currency.coerce("9.99 USD", f)
    assert currency.to_columns(value, f) == {"": Decimal("9.99"), "currency": "USD"}
    assert currency.from_columns(currency.to_columns(value, f), f) == value
    assert currency.to_columns(None, f) == {"": None, "currency": None}
    assert currency.from_columns({"": None, "currency": None}, f) is None
    # A row written before the currency column existed reads with the default currency.
    assert currency.from_columns({"": Decimal("1.00")}, f) == {"amount": Decimal("1.00"), "currency": "EUR"}


def test_reference_column_is_a_foreign_key() -> None:
    [spec] = ftype("reference").columns(field("reference", target="company", on_delete="cascade"))
    assert (spec.references, spec.on_delete) == ("company", "cascade")
    [spec] = ftype("reference").columns(field("reference", target="company"))
    assert spec.on_delete == "restrict"


def test_auto_number_format_and_writability() -> None:
    auto = ftype("auto_number")
    assert auto.format(42, field("auto_number", prefix="INV-", digits=6)) == "INV-000042"
    assert auto.format(7, field("auto_number")) == "00007"
    assert not auto.writable
    assert all(t.writable for t in BUILTIN_TYPES if t.name not in ("auto_number", "rollup"))


# --- definitions (what a pack author reads) ---------------------------------------------
@pytest.mark.parametrize(("type_name", "settings", "expected"), [
    ("decimal", {"precision": 4, "scale": 6}, [("scale", "scale 6 is larger than precision 4")]),
    ("decimal", {"precision": 6, "scale": 6}, []),
    ("currency", {"currency": "EUR", "currencies": ["EUR", "USD"]}, []),
    ("currency", {"currency": "XYZ"}, [("currency", "'XYZ' is not an ISO 4217 currency code")]),
    ("currency", {"currencies": ["EUR", "ABC"]}, [("currency", "'ABC' is not an ISO 4217 currency code")]),
    ("currency", {"currency": "GBP", "currencies": ["EUR", "USD"]},
     [("currency", "the default currency is not among the allowed currencies")]),
    ("text", {}, []),
])
def test_check_definition(type_name: str, settings: dict[str, Any],
                          expected: list[tuple[str, str]]) -> None:
    assert list(ftype(type_name).check_definition(field(type_name, **settings))) == expected


# === properties =============================================================================
#: Anything a JSON body, a CSV cell or a Python caller might hand over.
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(),
    st.decimals(allow_nan=False), st.sampled_from([Decimal("NaN"), Decimal("Infinity")]),
    st.text(), st.from_regex(r"\s*[+-]?[0-9,_]{0,25}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,3})?\s*[%A-Za-z]{0,4}",
                             fullmatch=True),
    st.sampled_from(["yes", "No", "2024-02-29", "2024-02-29T10:00+01:00", "in progress", "Done",
                     "ann@example.com", "example.com", "+1 555 0100", "12.50 EUR", "[::1", "http://[x"]),
    st.dates(), st.datetimes(),
)
anything = st.one_of(
    json_scalars,
    st.lists(json_scalars, max_size=4),
    st.dictionaries(st.sampled_from(["amount", "currency", "id", "other"]), json_scalars, max_size=3),
)


@pytest.mark.parametrize("field_type", BUILTIN_TYPES, ids=lambda t: t.name)
@PROPERTY
@given(value=anything)
def test_coerce_gives_a_value_or_a_coercion_error(field_type: FieldType, value: Any) -> None:
    """Never a crash; and an accepted value survives JSON and matches its schema."""
    f = field(field_type.name)
    try:
        canonical = field_type.coerce(value, f)
    except CoercionError as error:
        assert str(error)
        return
    if canonical is None:
        return
    as_json = field_type.to_json(canonical, f)
    assert field_type.coerce(as_json, f) == canonical
    assert valid_json(field_type.value_schema(f), as_json)
    assert isinstance(field_type.display(canonical, f), str)


def roundtrips(field_type: FieldType, f: Field, value: Any) -> Any:
    """coerce(to_json(coerce(x))) == coerce(x); returns coerce(x)."""
    canonical = field_type.coerce(value, f)
    as_json = field_type.to_json(canonical, f)
    assert field_type.coerce(as_json, f) == canonical
    if canonical is not None:  # value_schema describes values, not null
        assert valid_json(field_type.value_schema(f), as_json)
    return canonical


def spaced(text: str) -> st.SearchStrategy[str]:
    return st.builds(lambda a, b: f"{a}{text}{b}", st.sampled_from(["", " ", "  "]),
                     st.sampled_from(["", " ", "\t"]))


@PROPERTY
@given(number=st.integers(min_value=-INT64 - 1, max_value=INT64), data=st.data())
def test_integer_roundtrip(number: int, data: st.DataObject) -> None:
    f = field("integer")
    given_value = data.draw(st.sampled_from([number, str(number), f" {number} ", Decimal(number),
                                             f"{number:_}"]))
    assert roundtrips(ftype("integer"), f, given_value) == number
    assert ftype("integer").parse_text(ftype("integer").display(number, f), f) == number


@st.composite
def decimal_fields(draw: st.DrawFn) -> tuple[Field, Decimal]:
    precision = draw(st.integers(min_value=1, max_value=18))
    scale = draw(st.integers(min_value=0, max_value=precision))
    limit = Decimal(10) ** (precision - scale) - Decimal(1).scaleb(-scale)
    number = draw(st.decimals(min_value=-limit, max_value=limit, places=scale))
    return field("decimal", precision=precision, scale=scale), number


@PROPERTY
@given(case=decimal_fields(), data=st.data())
def test_decimal_roundtrip(case: tuple[Field, Decimal], data: st.DataObject) -> None:
    f, number = case
    decimal = ftype("decimal")
    given_value = data.draw(st.sampled_from([number, f"{number:f}", f"{number:,f}", f" {number:f} "]))
    value = roundtrips(decimal, f, given_value)
    assert value == number
    assert value.as_tuple().exponent == -f.settings["scale"]  # canonical: the field's scale
    assert decimal.parse_text(decimal.display(value, f), f) == value  # "1,234.5" reads back


@PROPERTY
@given(case=decimal_fields())
def test_decimal_beyond_precision_is_refused(case: tuple[Field, Decimal]) -> None:
    f, number = case
    precision, scale = f.settings["precision"], f.settings["scale"]
    too_big = number.copy_abs() + Decimal(10) ** (precision - scale)
    with pytest.raises(CoercionError, match="digits before the point"):
        ftype("decimal").coerce(too_big, f)
    too_fine = number + Decimal(1).scaleb(-scale - 1)
    with pytest.raises(CoercionError, match=f"more than {scale} decimal places"):
        ftype("decimal").coerce(too_fine, f)


BOOLEAN_WORDS = {"true": True, "yes": True, "y": True, "1": True, "on": True, "t": True,
                 "false": False, "no": False, "n": False, "0": False, "off": False, "f": False}


@PROPERTY
@given(word=st.sampled_from(sorted(BOOLEAN_WORDS)), data=st.data())
def test_boolean_roundtrip(word: str, data: st.DataObject) -> None:
    f, boolean = field("boolean"), ftype("boolean")
    cased = "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in word)
    typed = data.draw(spaced(cased))
    value = roundtrips(boolean, f, typed)
    assert value is BOOLEAN_WORDS[word]
    assert boolean.parse_text(boolean.display(value, f), f) is value  # "Yes"/"No" read back


@PROPERTY
@given(day=st.dates())
def test_date_roundtrip(day: dt.date) -> None:
    f, date = field("date"), ftype("date")
    assert roundtrips(date, f, day) == day
    assert roundtrips(date, f, day.isoformat()) == day
    assert date.parse_text(date.display(day, f), f) == day


offsets = st.builds(dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59),
                                               max_value=dt.timedelta(hours=23, minutes=59)))


@PROPERTY
@given(moment=st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31),
                           timezones=st.none() | st.just(UTC) | offsets))
def test_datetime_roundtrip(moment: dt.datetime) -> None:
    f, datetime = field("datetime"), ftype("datetime")
    expected = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    for given_value in (moment, moment.isoformat()):
        value = roundtrips(datetime, f, given_value)
        assert value == expected
        assert value.utcoffset() == dt.timedelta(0)
    assert datetime.parse_text(datetime.to_json(value, f), f) == expected


#: Near year 1 and year 9999 a time zone can push the moment off the calendar.
edge_datetimes = st.one_of(
    st.datetimes(max_value=dt.datetime(1, 1, 2), timezones=offsets),
    st.datetimes(min_value=dt.datetime(9999, 12, 30), timezones=offsets),
    st.datetimes(timezones=st.none() | offsets),
)


@PROPERTY
@given(moment=edge_datetimes)
def test_datetime_anywhere_in_range_converts_or_is_out_of_range(moment: dt.datetime) -> None:
    try:
        value = ftype("datetime").coerce(moment, field("datetime"))
    except CoercionError as error:
        assert "out of range" in str(error)
    else:
        assert value.tzinfo is UTC


@st.composite
def choice_options(draw: st.DrawFn) -> tuple[ChoiceOption, ...]:
    keys = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
                         min_size=1, max_size=6, unique=True))
    labels = draw(st.lists(
        st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_/&()", min_size=1,
                max_size=15).map(str.strip).filter(bool),
        min_size=len(keys), max_size=len(keys), unique_by=str.casefold))
    # A label that reads as another option's key would pick that option.
    assume(all(label.casefold() not in keys or label.casefold() == key
               for key, label in zip(keys, labels, strict=True)))
    orders = draw(st.permutations(range(len(keys))))
    options = [ChoiceOption(k, lbl, order=o) for k, lbl, o in zip(keys, labels, orders, strict=True)]
    return tuple(sorted(options, key=lambda o: o.order))  # as the pack loader keeps them


def typed_as(option: ChoiceOption) -> st.SearchStrategy[str]:
    """What a person may type for an option: its key, or its label in any case."""
    label_forms = st.sampled_from([option.label, option.label.upper(), option.label.lower(),
                                   option.label.swapcase()])
    return st.one_of(st.just(option.key), label_forms).flatmap(spaced)


@PROPERTY
@given(options=choice_options(), data=st.data())
def test_choice_roundtrip(options: tuple[ChoiceOption, ...], data: st.DataObject) -> None:
    f, choice = field("choice", choices=options), ftype("choice")
    option = data.draw(st.sampled_from(options))
    value = roundtrips(choice, f, data.draw(typed_as(option)))
    assert value == option.key
    assert choice.parse_text(choice.display(value, f), f) == option.key


@PROPERTY
@given(options=choice_options(), data=st.data())
def test_multi_choice_roundtrip(options: tuple[ChoiceOption, ...], data: st.DataObject) -> None:
    f, multi = field("multi_choice", choices=options), ftype("multi_choice")
    picked = data.draw(st.lists(st.sampled_from(options), min_size=1, max_size=8))
    typed = [data.draw(typed_as(option)) for option in picked]
    expected = [o.key for o in options if o in picked]  # once each, in option order
    assert roundtrips(multi, f, typed) == expected
    separator = data.draw(st.sampled_from([",", ", ", ";", " ; "]))
    assert roundtrips(multi, f, separator.join(typed)) == expected
    assert multi.parse_text(multi.display(expected, f), f) == expected


@PROPERTY
@given(text=st.text().filter(lambda t: "\n" not in t and "\r" not in t and "\x00" not in t))
def test_text_roundtrip(text: str) -> None:
    f = field("text")
    value = roundtrips(ftype("text"), f, text)
    assert value == (text.strip() or None)
    assert ftype("text").parse_text(text, f) == value


@PROPERTY
@given(text=st.text(min_size=1), limit=st.integers(min_value=1, max_value=30))
def test_long_text_keeps_text_and_counts_characters(text: str, limit: int) -> None:
    assume(text.strip() and "\x00" not in text)
    f = field("long_text", max_length=limit)
    if len(text) <= limit:
        assert roundtrips(ftype("long_text"), f, text) == text
    else:
        with pytest.raises(CoercionError, match=f"{len(text)} characters long; at most {limit}"):
            ftype("long_text").coerce(text, f)


CURRENCY_CODES = sorted(ISO_CURRENCIES)


@PROPERTY
@given(amount=st.decimals(min_value=Decimal("-9999999999999999.99"),
                          max_value=Decimal("9999999999999999.99"), places=2),
       code=st.sampled_from(CURRENCY_CODES), data=st.data())
def test_currency_roundtrip(amount: Decimal, code: str, data: st.DataObject) -> None:
    f, currency = field("currency"), ftype("currency")
    expected = {"amount": amount, "currency": code}
    forms = [f"{amount:f} {code}", f"{code} {amount:f}", f"{amount:,f}{code.lower()}",
             {"amount": f"{amount:f}", "currency": code}, {"amount": amount, "currency": code}]
    value = roundtrips(currency, f, data.draw(st.sampled_from(forms)))
    assert value == expected
    as_json = currency.to_json(value, f)
    assert currency.parse_text(f"{as_json['amount']} {as_json['currency']}", f) == expected


@PROPERTY
@given(amount=st.decimals(min_value=-1000, max_value=1000, places=2),
       code=st.sampled_from(CURRENCY_CODES), allowed=st.lists(st.sampled_from(CURRENCY_CODES),
                                                              min_size=1, max_size=3, unique=True))
def test_currency_only_allowed_codes(amount: Decimal, code: str, allowed: list[str]) -> None:
    f = field("currency", currencies=allowed)
    if code in allowed:
        assert ftype("currency").coerce(f"{amount:f} {code}", f)["currency"] == code
    else:
        with pytest.raises(CoercionError, match=f"currency {code} is not allowed"):
            ftype("currency").coerce(f"{amount:f} {code}", f)
    assert ftype("currency").coerce(f"{amount:f}", f)["currency"] == allowed[0]


# --- through a real SQLite database ------------------------------------------------------
@pytest.fixture(scope="module")
def sqlite() -> Iterator[sa.Engine]:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE amounts (id INTEGER PRIMARY KEY, amount BIGINT)")
        conn.exec_driver_sql("CREATE TABLE moments (id INTEGER PRIMARY KEY, at DATETIME)")
    yield engine
    engine.dispose()


@PROPERTY
@given(case=decimal_fields())
def test_decimals_through_sqlite_are_exact(sqlite: sa.Engine, case: tuple[Field, Decimal]) -> None:
    f, number = case
    scale = f.settings["scale"]
    value = ftype("decimal").coerce(number, f)
    column_type = ftype("decimal").sql_type(f)  # exact_decimal(): ScaledInteger on SQLite
    amounts = sa.table("amounts", sa.column("id"), sa.column("amount", column_type))
    with sqlite.begin() as conn:
        conn.execute(amounts.delete())
        conn.execute(amounts.insert().values(id=1, amount=value))
        stored = conn.exec_driver_sql("SELECT amount FROM amounts").scalar_one()
        back = conn.execute(sa.select(amounts.c.amount)).scalar_one()
    assert isinstance(stored, int) and stored == value.scaleb(scale)  # a scaled integer
    assert isinstance(back, Decimal) and back == value
    assert back.as_tuple().exponent == -scale


@PROPERTY
@given(moment=st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31),
                           timezones=st.none() | st.just(UTC) | offsets))
def test_datetimes_through_sqlite_come_back_aware(sqlite: sa.Engine, moment: dt.datetime) -> None:
    moments = sa.table("moments", sa.column("id"), sa.column("at", UTCDateTime()))
    with sqlite.begin() as conn:
        conn.execute(moments.delete())
        conn.execute(moments.insert().values(id=1, at=moment))
        back = conn.execute(sa.select(moments.c.at)).scalar_one()
    assert back.tzinfo is UTC
    assert back == (moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def test_sqlite_keeps_blank_as_null(sqlite: sa.Engine) -> None:
    amounts = sa.table("amounts", sa.column("id"), sa.column("amount", exact_decimal(18, 2)))
    moments = sa.table("moments", sa.column("id"), sa.column("at", UTCDateTime()))
    with sqlite.begin() as conn:
        for table, column in ((amounts, "amount"), (moments, "at")):
            conn.execute(table.delete())
            conn.execute(table.insert().values(id=1, **{column: None}))
            assert conn.execute(sa.select(table.c[column])).scalar_one() is None


@pytest.mark.parametrize("kind", ["text", "long_text", "email", "phone", "url"])
def test_text_with_a_nul_character_is_refused(kind: str) -> None:
    """PostgreSQL cannot store NUL in text and SQLite would cut the text there."""
    with pytest.raises(CoercionError, match="contains a NUL character"):
        ftype(kind).coerce("a\x00b", field(kind))


def test_datetime_keeps_an_offsets_fraction_of_a_second() -> None:
    """isoformat() writes an offset of 1 µs as +00:00:00.000001; Python 3.11 reads it as +00:00."""
    moment = dt.datetime(2000, 1, 1, tzinfo=dt.timezone(dt.timedelta(microseconds=1)))
    assert ftype("datetime").coerce(moment.isoformat(), field("datetime")) == moment
