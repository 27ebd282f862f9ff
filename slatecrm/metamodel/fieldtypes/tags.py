"""The `tags` field type: free labels a person types (vip, partner, churn-risk), as many as
`max_items` allows, unlike a multi_choice, whose options the pack fixes.

A tag is trimmed, its inner runs of spaces made one, and kept in lower case, so "VIP",
" vip " and "Vip" are one tag; it holds no comma or semicolon (the separators of the
text form, "vip; partner") and no control character, and is at most `max_length`
characters long (default 50). The value is a JSON list of distinct tags, in the order
they were given; an empty list is blank.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from ..rules.types import TEXT_LIST, Type
from .base import CoercionError, FieldType, FormInputs, SampleSource
from .sqltypes import json_list

if TYPE_CHECKING:
    from ..model import Field

DEFAULT_TAG_LENGTH = 50
MAX_TAG_LENGTH = 200
#: The most tags a value may hold when the field sets no `max_items`.
MAX_TAGS = 100
#: What a tag may not hold: the separators, and control characters (NUL included).
_FORBIDDEN = re.compile(r"[,;\x00-\x1f\x7f-\x9f]")
#: The same as a JSON Schema pattern (ECMA-262 and Python's re read it alike).
_FORBIDDEN_CLASS = ",;\\u0000-\\u001f\\u007f-\\u009f"
SAMPLE_TAGS = ("vip", "partner", "newsletter", "churn-risk", "referral", "event-2026", "priority")


class Tags(FieldType):
    name = "tags"
    label = "Tags"
    settings_schema = {
        "max_items": {"type": "integer", "minimum": 1, "maximum": MAX_TAGS,
                      "description": "the most tags a record may have"},
        "max_length": {"type": "integer", "minimum": 1, "maximum": MAX_TAG_LENGTH,
                       "description": f"the longest tag, in characters (default {DEFAULT_TAG_LENGTH})"},
    }
    constraint_settings = ("max_items", "max_length")
    computable = False
    widget_template = "widgets/tags.html"
    value_template = "values/tags.html"
    searchable = True
    sortable = False
    filterable = False  # a list filters by a tag with a rule: filter=tags contains "vip"
    suggests = True
    list_rank: ClassVar[int | None] = 15

    def longest(self, field: Field) -> int:
        return int(field.settings.get("max_length", DEFAULT_TAG_LENGTH))

    def most(self, field: Field) -> int:
        return int(field.settings.get("max_items", MAX_TAGS))

    # --- storage and values -----------------------------------------------------------------
    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return json_list()

    def coerce(self, value: Any, field: Field) -> Any:
        if value is None or value == [] or (isinstance(value, str) and not value.strip()):
            return None
        return self.convert(value, field)

    def tag(self, item: Any, field: Field) -> str | None:
        """One tag in its kept form (None for a blank one), or CoercionError."""
        if not isinstance(item, str):
            kind = "true/false" if isinstance(item, bool) else type(item).__name__
            raise CoercionError(f"a tag is text, got {kind}")
        text = re.sub(r" {2,}", " ", item.strip())
        if not text:
            return None
        if _FORBIDDEN.search(text):
            raise CoercionError(f"tag {_short(text)!r} holds a comma, semicolon or control character")
        if len(text) > self.longest(field):
            raise CoercionError(f"tag {_short(text)!r} is {len(text)} characters long; "
                                f"at most {self.longest(field)} are allowed")
        return text.lower()

    def convert(self, value: Any, field: Field) -> Any:
        if isinstance(value, str):
            items: Iterable[Any] = re.split(r"[;,]", value)
        elif isinstance(value, list | tuple):
            items = value
        else:
            kind = "true/false" if isinstance(value, bool) else type(value).__name__
            raise CoercionError(f"expected a list of tags (or a text \"a; b\"), got {kind}")
        tags: list[str] = []
        for item in items:
            tag = self.tag(item, field)
            if tag is not None and tag not in tags:
                tags.append(tag)
            if len(tags) > self.most(field):
                raise CoercionError(f"has more than {self.most(field)} tags; at most "
                                    f"{self.most(field)} are allowed")
        return tags or None

    def display(self, value: Any, field: Field) -> str:
        return "; ".join(value or [])

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        # The tags kept (checkboxes, ticked) and a text box to add more, "a; b".
        return {"": list(value or []), "new": ""}

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        given = [*inputs(""), *inputs("new")]
        return "; ".join(given) if given else None

    def sample(self, field: Field, pick: SampleSource) -> Any:
        count = pick.random.randint(0, min(3, self.most(field)))
        return pick.random.sample(SAMPLE_TAGS, count) or None

    def rule_selecting(self, tag: str, field: Field) -> str:
        """The rule that selects the records with `tag` (a shown tag links to the list filtered by it)."""
        quoted = tag.replace("\\", "\\\\").replace('"', '\\"')
        return f'{field.name} contains "{quoted}"'

    def suggestions(self, values: Iterable[Any], field: Field, limit: int = 50) -> list[str]:
        """The distinct tags among `values` (the field's values in recent records), most used
        first, at most `limit` (the form's suggestions)."""
        counts: dict[str, int] = {}
        for value in values:
            for tag in value or []:
                counts[tag] = counts.get(tag, 0) + 1
        return sorted(counts, key=lambda t: (-counts[t], t))[:limit]

    # --- the API ------------------------------------------------------------------------------
    def tag_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "maxLength": self.longest(field),
                "pattern": f"^[^{_FORBIDDEN_CLASS}]*[^{_FORBIDDEN_CLASS}\\s][^{_FORBIDDEN_CLASS}]*$"}

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "array", "items": self.tag_schema(field), "uniqueItems": True,
                "maxItems": self.most(field)}

    def output_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "minItems": 1}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # Tags differing only in case or spaces are one: the document asks for distinct
        # lower-case ones, so the number sent is the number kept.
        items = {**self.tag_schema(field),
                 "pattern": f"^[^{_FORBIDDEN_CLASS}\\sA-Z]+(?: [^{_FORBIDDEN_CLASS}\\sA-Z]+)*$"}
        schema: dict[str, Any] = {"type": "array", "items": items, "uniqueItems": True,
                                  "maxItems": self.most(field)}
        if required:
            schema["minItems"] = 1
        return schema

    # --- rules: a list of texts (`tags contains "vip"`) -------------------------------------
    def rule_type(self, field: Field) -> Type | None:
        return TEXT_LIST

    def rule_value(self, value: Any, field: Field) -> Any:
        return value or None

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        return iter(())


def _short(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
