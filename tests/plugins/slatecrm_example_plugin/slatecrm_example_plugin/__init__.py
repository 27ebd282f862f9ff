"""A field type SlateCRM does not ship: `color`, a hex RGB colour shown as a swatch.

Installed as its own package and found through the `slatecrm` entry point, it proves that
a type registered by a plugin works everywhere at once (form widget, list cell, record
page, search, rule filters, OpenAPI, CSV) without the platform knowing its name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import CoercionError, FieldType
from slatecrm.metamodel.rules.types import TEXT, Type

if TYPE_CHECKING:
    from collections.abc import Sequence

    from slatecrm.metamodel.fieldtypes.base import SampleSource
    from slatecrm.metamodel.model import Field

hookimpl = pluggy.HookimplMarker("slatecrm")

_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
TEMPLATES = Path(__file__).parent / "templates"


class Colour(FieldType):
    """`#rrggbb`, lower case; `#abc` and `ABCDEF` are read as `#aabbcc` and `#abcdef`."""

    name = "color"
    label = "Colour"
    widget_template = "widgets/color.html"
    value_template = "values/color.html"
    searchable = True
    list_rank = 10

    @classmethod
    def template_folders(cls) -> Sequence[Path]:
        return (TEMPLATES,)

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String(7)

    def convert(self, value: Any, field: Field) -> str:
        if not isinstance(value, str):
            raise CoercionError("expected a colour like #1a2b3c")
        match = _HEX.fullmatch(value.strip())
        if match is None:
            raise CoercionError(f"{value.strip()!r} is not a colour (#rrggbb)")
        digits = match.group(1).lower()
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return f"#{digits}"

    def colour(self, value: Any, field: Field) -> str | None:
        return value if isinstance(value, str) else None

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "pattern": "^#[0-9a-f]{6}$", "format": "color"}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # What `convert` reads: six or three hex digits, `#` optional, either case.
        return {"type": "string", "pattern": "^#?(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})$"}

    def rule_type(self, field: Field) -> Type | None:
        return TEXT

    def sample(self, field: Field, pick: SampleSource) -> Any:
        return f"#{pick.random.randrange(0x1000000):06x}"


@hookimpl
def slatecrm_field_types() -> list[FieldType]:
    return [Colour()]
