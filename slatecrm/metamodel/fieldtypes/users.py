"""`type: user`: a field naming one of the platform's users (assigned to, reviewed by).

The value is a user id, kept in a column with a real foreign key to the platform's user
table (like every record's `owner`), `ON DELETE SET NULL` unless the field says
`on_delete: restrict`. Reads show the user's name; rules compare the id like `owner`
(`assigned_to = current_user.id`, `reviewed_by = current_user.manager`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from ..rules.types import NUMBER, Type
from .base import CoercionError, ColumnSpec, FieldType
from .sqltypes import record_id

if TYPE_CHECKING:
    from ..model import Field

#: The platform's user table (platform/storage/system.py `users`; a test holds them equal:
#: the metamodel layer does not import the platform).
USER_TABLE = "slate_user"
INT64 = 2**63 - 1
#: What becomes of the field when its user is deleted: the default clears it (users are
#: usually deactivated, not deleted); `restrict` refuses deleting a user still named.
USER_ON_DELETE = ("set_null", "restrict")


class UserField(FieldType):
    """A many-to-one link to a user, kept as a foreign key to the user table."""

    name = "user"
    label = "User"
    computable = False
    settings_schema = {
        "on_delete": {"enum": list(USER_ON_DELETE),
                      "description": "when the user is deleted: set_null (the default) or restrict"},
    }
    index_by_default = True
    widget_template = "widgets/user.html"
    links_users = True
    list_rank: ClassVar[int | None] = 3

    def rule_type(self, field: Field) -> Type | None:
        return NUMBER  # a user id, compared like `owner` (= current_user.id)

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return record_id()

    def columns(self, field: Field) -> list[ColumnSpec]:
        return [ColumnSpec("", record_id(), references_table=USER_TABLE,
                           on_delete=field.settings.get("on_delete", "set_null"))]

    def convert(self, value: Any, field: Field) -> int:
        if isinstance(value, Mapping) and "id" in value:
            value = value["id"]  # a user as the API shows it ({"id": …, "name": …})
        if isinstance(value, bool):
            raise CoercionError("expected a user id, got true/false")
        # ASCII digits only (str.isdigit accepts "²"), and no more than a 64-bit id has.
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value.strip()):
            value = int(value.strip())
        if not isinstance(value, int) or value <= 0 or value > INT64:
            raise CoercionError(f"{value!r} is not a user id")
        return value

    def display(self, value: Any, field: Field) -> str:
        # Without the user table at hand (the read path gives the name: `record.titles`).
        return "" if value is None else f"user #{value}"

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": INT64}

    def output_schema(self, field: Field) -> dict[str, Any]:
        # records/service.py `as_json`: the id and the user's name.
        return {"type": "object", "required": ["id", "name"], "properties": {
            "id": {"type": "integer", "minimum": 1}, "name": {"type": "string"}}}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # An id, or a user as the API gives it ({"id": …, "name": …}: the name is ignored).
        user_id = self.value_schema(field)
        return {"anyOf": [user_id, {"type": "object", "required": ["id"], "properties": {"id": user_id}}]}

    def filter_schema(self, field: Field) -> dict[str, Any]:
        return self.value_schema(field)

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        if field.settings.get("on_delete", "set_null") == "set_null" and field.required:
            yield ("on_delete", "a required user field needs on_delete: restrict (set_null, the "
                                "default, would clear it when its user is deleted)")
