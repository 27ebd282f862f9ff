"""JSON Schema validation of pack files, with errors in plain words at file:line:column.

The schema shipped in schemas/pack-files.schema.json is completed with the settings of
every registered field type, so that a plugin's field type is validated like a built-in.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from functools import cache, cached_property, lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import Problem
from .fieldtypes import FieldTypeRegistry
from .names import suggest
from .yamlsource import SourceDocument

_JSON_TYPES = {"object": "a mapping", "array": "a list", "string": "text", "integer": "a whole number",
               "number": "a number", "boolean": "true or false", "null": "nothing"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"text {value!r}"
    if value is None:
        return "nothing"
    return f"the number {value}"


class PackSchema:
    """The complete schema of pack files for one field-type registry."""

    def __init__(self, registry: FieldTypeRegistry):
        self.registry = registry

    @cached_property
    def document(self) -> dict[str, Any]:
        """The shipped schema, with one closed sub-schema per field type.

        `$defs/field` checks the type and hands the field to `$defs/field_<type>`, which
        lists the common keys plus that type's settings. (A single open schema with
        `unevaluatedProperties` says the same, but validates about ten times slower.)
        """
        text = resources.files(__package__).joinpath("schemas/pack-files.schema.json").read_text()
        schema = json.loads(text)
        field = schema["$defs"]["field"]
        common = field.pop("properties")
        field.pop("unevaluatedProperties", None)
        field["properties"] = {"type": {"enum": self.registry.names()}}
        for field_type in self.registry:
            closed: dict[str, Any] = {
                "type": "object",
                "properties": {**common, **copy.deepcopy(dict(field_type.settings_schema))},
                "additionalProperties": False,
            }
            if field_type.required_settings:
                closed["required"] = list(field_type.required_settings)
            schema["$defs"][f"field_{field_type.name}"] = closed
            field["allOf"].append({
                "if": {"properties": {"type": {"const": field_type.name}}, "required": ["type"]},
                "then": {"$ref": f"#/$defs/field_{field_type.name}"},
            })
        return schema  # type: ignore[no-any-return]

    def validator(self, definition: str) -> Draft202012Validator:
        return self._validators[definition]

    @cached_property
    def _validators(self) -> dict[str, Draft202012Validator]:
        return _validators_of(json.dumps(self.document, sort_keys=True))

    def check(self, definition: str, source: SourceDocument, pack: str) -> list[Problem]:
        errors = self.validator(definition).iter_errors(source.data)
        problems: list[Problem] = []
        seen: set[tuple[str, str]] = set()
        for error in _leaves(errors):
            for path, message, at_key in self._explain(error, source.data):
                location = source.locate(path, key=at_key)
                if (str(location), message) in seen:
                    continue
                seen.add((str(location), message))
                problems.append(Problem(message, location, pack))
        return problems

    # --- turning jsonschema's errors into sentences -----------------------------------
    def _explain(self, error: ValidationError, root: Any) -> Iterator[tuple[list[Any], str, bool]]:
        path = list(error.absolute_path)
        kind, value, schema = error.validator, error.instance, error.schema
        if kind in ("additionalProperties", "unevaluatedProperties") and isinstance(value, dict):
            allowed = self._allowed_keys(error, path, root)
            if allowed is None:
                return  # the field type itself is wrong; that error says enough
            for key in value:
                if key not in allowed:
                    yield [*path, key], f"unknown key {key!r}{suggest(key, allowed)}", True
        elif kind == "required":
            for key in error.validator_value:
                if isinstance(value, dict) and key not in value:
                    # At the name of what lacks the key (a field's name), like the other
                    # problems of a field, not at whichever key happens to come first.
                    yield path, f"missing required key {key!r}", True
        elif kind == "enum" and path and path[-1] == "type" and "fields" in path:
            known = ", ".join(error.validator_value)
            yield path, f"{value!r} is not a field type; known types: {known}", False
        elif kind == "enum":
            options = ", ".join(repr(v) for v in error.validator_value)
            yield path, f"{value!r} is not one of {options}", False
        elif kind == "const":
            yield path, f"expected {error.validator_value!r}, got {value!r}", False
        elif kind == "type":
            wanted = error.validator_value
            wanted_words = " or ".join(_JSON_TYPES.get(str(t), str(t)) for t in
                                       (wanted if isinstance(wanted, list) else [wanted]))
            got = f"{_json_type(value)}{_quote_hint(wanted, value)}"
            yield path, f"expected {wanted_words}, got {got}", False
        elif kind == "pattern" and "x-message" in schema:
            parent = _node(root, path)
            if isinstance(parent, dict) and isinstance(value, str) and value in parent:
                yield [*path, value], f"{value!r} {schema['x-message']}", True  # a key's name
            else:
                yield path, f"{value!r} {schema['x-message']}", False
        elif kind == "propertyNames":
            for sub in error.context or []:
                message = sub.schema.get("x-message", "is not a valid name")
                yield [*path, value if isinstance(value, str) else sub.instance], \
                    f"{sub.instance!r} {message}", True
        elif f"x-{kind}" in schema:  # a sentence of the schema's own for this keyword
            yield path, f"{value!r} {schema[f'x-{kind}']}", False
        elif (kind == "minItems" and value == []) or (kind == "minLength" and value == "") or \
                (kind == "minProperties" and value == {}):
            yield path, "must not be empty", False
        else:
            yield path, error.message, False

    def _allowed_keys(self, error: ValidationError, path: list[Any], root: Any) -> list[str] | None:
        return list(error.schema.get("properties") or {})


def _quote_hint(wanted: Any, value: Any) -> str:
    """YAML reads `version: 1.0` or `currency: 978` as a number; say how to keep it text."""
    if "string" in (wanted if isinstance(wanted, list) else [wanted]) and \
            isinstance(value, int | float) and not isinstance(value, bool):
        return " (YAML reads it as a number: put it in quotes)"
    return ""


@cache
def pack_schema(registry: FieldTypeRegistry) -> PackSchema:
    """The schema of a registry, built and checked once (that takes longer than validating)."""
    return PackSchema(registry)


#: The definitions a pack file may be: each has a validator (and a `$defs` entry).
DEFINITIONS = ("manifest", "entity", "extension", "role", "user_attribute", "workflow", "view", "layout")


@lru_cache(maxsize=16)
def _validators_of(text: str) -> dict[str, Draft202012Validator]:
    """The validators of a complete schema, checked once per schema text: each command and
    app builds its own field-type registry, and checking the schema costs more than
    validating a pack with it. Validators keep no state between validations."""
    document = json.loads(text)
    Draft202012Validator.check_schema(document)
    defs = document["$defs"]
    out = {}
    for name in DEFINITIONS:
        schema = {"$schema": document["$schema"], **_inline(defs[name], defs)}
        out[name] = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return out


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    """`node` with every local `$ref` replaced by what it names.

    The pack schema has no recursion, and resolving references is most of jsonschema's
    time on it; validators use the inlined form, `pack schema` prints the referencing one.
    """
    if isinstance(node, dict):
        if set(node) == {"$ref"} or ("$ref" in node and node["$ref"].startswith("#/$defs/")):
            target = _inline(defs[node["$ref"].removeprefix("#/$defs/")], defs)
            return {**target, **{k: _inline(v, defs) for k, v in node.items() if k != "$ref"}}
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _node(root: Any, path: list[Any]) -> Any:
    for part in path:
        try:
            root = root[part]
        except (KeyError, IndexError, TypeError):
            return None
    return root


def _leaves(errors: Iterator[ValidationError]) -> Iterator[ValidationError]:
    """The specific errors: for an `allOf` of if/then, the failures inside it."""
    for error in errors:
        if error.validator in ("allOf", "then", "anyOf", "oneOf", "$ref") and error.context:
            yield from _leaves(iter(error.context))
        else:
            yield error




def schema_for_docs(registry: FieldTypeRegistry) -> Mapping[str, Any]:
    """The complete schema (for editors and `slatecrm pack schema`): any pack file."""
    document = pack_schema(registry).document
    return {**document, "anyOf": [{"$ref": f"#/$defs/{kind}"} for kind in DEFINITIONS]}
