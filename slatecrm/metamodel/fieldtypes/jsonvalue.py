"""The `json` field type: a structured value (an object, a list, a number…) checked against
the JSON Schema (Draft 2020-12) the field definition gives in its `schema` setting.

Stored in a JSON column (JSONB on PostgreSQL, JSON text on SQLite); a blank value is SQL
NULL, so the JSON value `null` cannot be told from blank. Rules can only test whether it is
blank; lists neither sort nor filter by it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from sqlalchemy.dialects.postgresql import JSONB

from ..rules.types import Type
from .base import CoercionError, FieldType, FormInputs, SampleSource, TypedText

if TYPE_CHECKING:
    from ..model import Field

#: The rule type of a JSON value: rules test it with `is blank` only.
JSON_RULE_TYPE = Type("json")
#: Nesting deeper than this is refused (a validator or a database walks it recursively).
MAX_DEPTH = 32
#: The longest value, as compact JSON text.
MAX_CHARACTERS = 100_000


def _path(parts: Any) -> str:
    """A place inside a value, as `$.address.city` or `$.items[2]`."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _walk(value: Any, depth: int = 0, where: str = "$") -> None:
    """Refuses what JSON or a database cannot hold: NaN and infinities, NUL characters and
    lone surrogates (PostgreSQL's JSONB refuses both), nesting beyond MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise CoercionError(f"is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if value.bit_length() > 1024:
            raise CoercionError(f"at {where}: the number is too large")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CoercionError(f"at {where}: {value} is not a JSON number")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CoercionError(f"at {where}: an object's keys are text")
            _check_text(key, where)
            _walk(item, depth + 1, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, depth + 1, f"{where}[{index}]")
    else:
        raise CoercionError(f"at {where}: {type(value).__name__} is not a JSON value")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise CoercionError(f"at {where}: contains a NUL character, which JSON text here cannot hold")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CoercionError(f"at {where}: contains a lone surrogate, which is not text") from None


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def parse(text: str) -> Any:
    """A JSON document → its value, or CoercionError naming where it stops being JSON."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise CoercionError(f"is not JSON: {error.msg} at line {error.lineno} column {error.colno}") \
            from None
    except RecursionError:
        raise CoercionError(f"is nested more than {MAX_DEPTH} levels deep") from None


def _no_constant(name: str) -> Any:
    raise CoercionError(f"is not JSON: {name} is not a JSON number")


class JsonValue(FieldType):
    name = "json"
    label = "JSON value"
    settings_schema = {
        "schema": {"type": ["object", "boolean"],
                   "description": "the JSON Schema (Draft 2020-12) every value must satisfy"},
    }
    constraint_settings = ("schema",)
    computable = False
    widget_template = "widgets/json.html"
    value_template = "values/json.html"
    section = "notes"
    sortable = False
    filterable = False
    list_rank: ClassVar[int | None] = None

    def validator(self, field: Field) -> Draft202012Validator | None:
        schema = field.settings.get("schema")
        return None if schema is None else Draft202012Validator(schema)

    # --- storage ----------------------------------------------------------------------------
    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

    # --- values ---------------------------------------------------------------------------------
    def coerce(self, value: Any, field: Field) -> Any:
        """A value the platform converts: a text (a retyped text field's, a CSV cell) is a
        JSON document to parse."""
        if isinstance(value, str):
            return self.parse_text(value, field)
        return self.coerce_given(value, field)

    def coerce_given(self, value: Any, field: Field) -> Any:
        """A JSON body's value is the value itself (a string is a JSON string), except text
        typed into a form (TypedText: the record form's textarea, a bulk "set field to"),
        which is parsed as JSON."""
        if isinstance(value, TypedText):
            return self.parse_text(value, field)
        if value is None or value == "":
            return None
        return self.convert(value, field)

    def parse_text(self, text: str, field: Field) -> Any:
        if not text.strip():
            return None
        if len(text) > 4 * MAX_CHARACTERS:
            raise CoercionError(f"is longer than {MAX_CHARACTERS:,} characters of JSON")
        return self.convert(parse(text), field)

    def convert(self, value: Any, field: Field) -> Any:
        _walk(value)
        if isinstance(value, tuple):
            value = list(value)
        text = compact(value)
        if len(text) > MAX_CHARACTERS:
            raise CoercionError(f"is {len(text):,} characters of JSON; "
                                f"at most {MAX_CHARACTERS:,} are allowed")
        validator = self.validator(field)
        if validator is not None:
            try:
                error = best_match(validator.iter_errors(value))
            except Exception as problem:  # an unresolvable $ref, a bad pattern: the schema's fault
                raise CoercionError(f"cannot be checked against the field's schema: {problem}") from None
            if error is not None:
                raise CoercionError(f"at {_path(error.absolute_path)}: {_message(error)}")
        return json.loads(text)  # a plain copy: lists, not tuples

    def to_json(self, value: Any, field: Field) -> Any:
        return value

    def display(self, value: Any, field: Field) -> str:
        """Compact JSON text (CSV export, history)."""
        return "" if value is None else compact(value)

    def pretty(self, value: Any, field: Field) -> str:
        """Indented JSON (record pages, the form's textarea)."""
        return "" if value is None else json.dumps(value, ensure_ascii=False, indent=2)

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        return {"": self.pretty(value, field)}

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        texts = inputs("")
        return TypedText(texts[0]) if texts else None

    def sample(self, field: Field, pick: SampleSource) -> Any:
        schema = field.settings.get("schema")
        if not isinstance(schema, dict):
            return {"source": pick.fake.word(), "score": pick.random.randint(1, 100)} if schema is None \
                else None
        for candidate in [*schema.get("examples", []), schema.get("default")]:
            try:
                if candidate is not None:
                    return self.convert(candidate, field)
            except CoercionError:
                continue
        return None

    # --- the API ------------------------------------------------------------------------------
    def value_schema(self, field: Field) -> dict[str, Any]:
        """The field's own schema, when it can stand inside the API's document (a schema with
        references would resolve them against the document: then any JSON value)."""
        schema = field.settings.get("schema")
        if schema is None or schema is True:
            return {}
        if schema is False:
            return {"not": {}}
        if _has_reference(schema):
            return {"description": "a JSON value valid against the field's JSON Schema"}
        return {k: v for k, v in schema.items() if k not in ("$schema", "$id")}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        schema = self.value_schema(field)
        if required:
            # "" is blank, as null is
            return {"allOf": [schema, {"not": {"const": ""}}]} if schema else {"not": {"const": ""}}
        return schema

    # --- rules: only `is blank` -----------------------------------------------------------------
    def rule_type(self, field: Field) -> Type | None:
        return JSON_RULE_TYPE

    def rule_value(self, value: Any, field: Field) -> Any:
        # The compact text: never blank (an empty list or "" is a value here), as in SQL,
        # where only a NULL column is blank.
        return None if value is None else compact(value)

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        schema = field.settings.get("schema")
        if schema is None:
            return
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            where = ".".join(str(p) for p in error.absolute_path)
            yield (f"schema{'.' + where if where else ''}",
                   f"not a valid JSON Schema (Draft 2020-12): {error.message}")
            return
        try:
            Draft202012Validator(schema).is_valid(None)
        except Exception as error:  # an unresolvable reference
            yield "schema", f"cannot be used: {error}"


def _message(error: ValidationError) -> str:
    message = str(error.message)
    return message if len(message) <= 200 else message[:199] + "…"


def _has_reference(schema: Any) -> bool:
    if isinstance(schema, dict):
        return any(k in ("$ref", "$dynamicRef") or _has_reference(v) for k, v in schema.items())
    if isinstance(schema, list):
        return any(_has_reference(v) for v in schema)
    return False
