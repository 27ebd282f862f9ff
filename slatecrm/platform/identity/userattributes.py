"""Users' attribute values (slate_user_attribute): a region, a business unit, whatever the
metamodel's `kind: user_attribute` definitions declare, set by an administrator (CLI, admin
API, admin page) and read by sharing rules as `current_user.<name>`.

A value is checked against its definition in the head revision's metamodel when it is set,
by the coercion of the definition's field type, so the API, the CLI and the rules agree on
what `2026-03-01` or `12.5` means; an unknown attribute or a bad value is refused with the
known attributes or the allowed values, and nothing of the change is applied. A value of an
attribute no longer defined is kept and ignored (shown nowhere, read by no rule): defining
the attribute again brings it back. Every change is audited (`user.attributes`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import BUILTIN_TYPES, FieldTypeRegistry
from slatecrm.metamodel.fieldtypes.base import CoercionError
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.names import suggest
from slatecrm.metamodel.userattributes import UserAttribute

from ..storage import revisions, system
from . import audit
from .errors import IdentityError
from .principal import SYSTEM, Principal
from .writes import writing

table = system.user_attributes
_REGISTRY = FieldTypeRegistry(BUILTIN_TYPES)


class InvalidAttribute(IdentityError):
    """A change names an attribute no definition has, or gives a value its type refuses.
    `problems` holds each attribute's reason, so every wrong one is named at once."""

    def __init__(self, problems: Mapping[str, str]):
        self.problems = dict(problems)
        super().__init__("; ".join(f"{name}: {why}" for name, why in self.problems.items()))


def definitions(conn: sa.Connection) -> tuple[UserAttribute, ...]:
    """The user attributes of the head revision's metamodel."""
    _, metamodel = revisions.current_metamodel(conn)
    return metamodel.user_attributes


def checked(defined: Iterable[UserAttribute], changes: Mapping[str, Any]) -> dict[str, str | None]:
    """`changes` (name → value, None to remove) as the JSON texts to store (None: remove),
    or InvalidAttribute naming each unknown attribute and each refused value."""
    by_name = {a.name: a for a in defined}
    problems: dict[str, str] = {}
    out: dict[str, str | None] = {}
    for name, value in changes.items():
        found = by_name.get(name)
        if found is None:
            known = ", ".join(by_name) or "none are defined (kind: user_attribute in a pack)"
            problems[name] = (f"there is no user attribute {name!r}{suggest(name, by_name)}; "
                              f"attributes: {known}")
            continue
        if value is None:
            out[name] = None
            continue
        field = found.field
        field_type = _REGISTRY[field.type]
        try:
            coerced = field_type.coerce_given(value, field)
        except CoercionError as error:
            problems[name] = f"{error} ({found.label}, a {found.type})"
            continue
        out[name] = None if coerced is None else json.dumps(_json(found, field_type.to_json(coerced, field)))
    if problems:
        raise InvalidAttribute(problems)
    return out


def _json(found: UserAttribute, value: Any) -> Any:
    """A number without the trailing zeros of its scale ("12.5", not "12.500000")."""
    if found.type == "number" and isinstance(value, str):
        return format(Decimal(value).normalize(), "f")
    return value


def parse_assignments(texts: Iterable[str]) -> dict[str, str]:
    """`--set name=value` options as a mapping (the text is the value: each type parses it)."""
    out: dict[str, str] = {}
    for text in texts:
        name, equals, value = text.partition("=")
        if not equals or not name.strip():
            raise InvalidAttribute({text: "write --set NAME=VALUE (an attribute's name, =, its value)"})
        out[name.strip()] = value
    return out


def stored(conn: sa.Connection, user_id: int) -> dict[str, Any]:
    """Every stored value of the user (those of removed attributes too), as JSON values."""
    rows = conn.execute(sa.select(table.c.name, table.c.value).where(table.c.user_id == user_id))
    return {row.name: json.loads(row.value) for row in rows}


def shown(metamodel: Metamodel, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of defined attributes, in definition order (a removed one's is ignored)."""
    return {a.name: values[a.name] for a in metamodel.user_attributes if a.name in values}


def of_user(conn: sa.Connection, user_id: int) -> dict[str, Any]:
    """The user's values of the defined attributes."""
    _, metamodel = revisions.current_metamodel(conn)
    return shown(metamodel, stored(conn, user_id))


def of_users(engine: sa.Engine, user_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Each user's values of the defined attributes (lists of users), in one query."""
    wanted = list(user_ids)
    out: dict[int, dict[str, Any]] = {i: {} for i in wanted}
    if not wanted:
        return out
    with engine.connect() as conn:
        _, metamodel = revisions.current_metamodel(conn)
        rows = conn.execute(sa.select(table).where(table.c.user_id.in_(wanted)))
        for row in rows:
            out[int(row.user_id)][row.name] = json.loads(row.value)
    return {i: shown(metamodel, v) for i, v in out.items()}


def apply(conn: sa.Connection, user_id: int, email: str | None, values: Mapping[str, str | None],
          actor: Principal = SYSTEM) -> dict[str, list[Any]]:
    """Store checked `values` (from `checked`) in the caller's transaction; audited as
    `user.attributes` with each changed attribute's [before, after]. Returns the changes."""
    before = stored(conn, user_id)
    changes: dict[str, list[Any]] = {}
    for name, text in values.items():
        after = None if text is None else json.loads(text)
        if before.get(name) == after and (name in before) == (text is not None):
            continue
        conn.execute(table.delete().where(table.c.user_id == user_id, table.c.name == name))
        if text is not None:
            conn.execute(table.insert().values(user_id=user_id, name=name, value=text))
        changes[name] = [before.get(name), after]
    if changes:
        audit.record(conn, "user.attributes", principal=actor, object_kind="user", object_id=user_id,
                     detail={"email": email, "changes": changes})
    return changes


def setting(changes: Mapping[str, Any], email: str | None, actor: Principal = SYSTEM
            ) -> Callable[[sa.Connection, int], object] | None:
    """What checks and stores `changes` in a user change's own transaction (users.py `Then`):
    a user is made or changed with its attributes, or not at all. Checked again there, against
    the definitions of that moment."""
    if not changes:
        return None
    return lambda conn, user_id: apply(conn, user_id, email, checked(definitions(conn), changes), actor)


def change(engine: sa.Engine, user_id: int, email: str | None, changes: Mapping[str, Any],
           actor: Principal = SYSTEM) -> dict[str, list[Any]]:
    """Check and store `changes` (name → value, None removes) in one transaction."""
    with writing(engine) as conn:
        values = checked(definitions(conn), changes)
        return apply(conn, user_id, email, values, actor)
