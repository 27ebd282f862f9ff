"""Steps 3 and 4 of the write pipeline (coerce, defaults), compiled once per entity and revision.

Every key a client may give is looked up once in a table made from the entity's fields:
the field type's `coerce_given` and the field, or the refusal a system-set or computed
field gets. What each key means and what each refusal says is decided here once, not
again for every record of a batch (bulk create coerces tens of thousands of values a
second). The coercion itself stays the field type's: nothing here knows a type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from slatecrm.metamodel.fieldtypes import CoercionError
from slatecrm.metamodel.model import Field
from slatecrm.metamodel.names import suggest

from .compiled import CompiledEntity

#: Keys a client may send back unchanged from a record it read: they are ignored. `owner` is
#: writable; `_title` is the record's display title (no field name can start with `_`).
READ_ONLY = frozenset({"id", "version", "created_at", "updated_at", "created_by", "updated_by", "_title"})

#: Values one default may give every record of a batch without a copy each.
_IMMUTABLE = (str, int, float, bool, Decimal, date, datetime, tuple, frozenset)

Coercer = Callable[[Any, Field], Any]
_IGNORED = "ignored"
_OWNER = "owner"


@dataclass(frozen=True)
class _Default:
    name: str
    #: The coerced default, shared by every record when it cannot be changed in place.
    value: Any
    #: Otherwise (a list, or a default its type refuses): coerced for each record.
    each: Callable[[], Any] | None


class EntityCoercion:
    """How one entity's given values become its record's values (see the module's doc)."""

    def __init__(self, ce: CompiledEntity):
        self.ce = ce
        #: key → (coercer, field), or the refusal's message, or _IGNORED / _OWNER.
        self._keys: dict[str, tuple[Coercer, Field] | str] = {}
        for name, compiled in ce.fields.items():
            if not compiled.type.writable:
                self._keys[name] = "is set by the system"
            elif compiled.field.formula is not None:
                self._keys[name] = "is computed by its formula and cannot be set"
            else:
                self._keys[name] = (compiled.type.coerce_given, compiled.field)
        self._keys.update(dict.fromkeys(READ_ONLY, _IGNORED))
        self._keys[_OWNER] = _OWNER
        self._defaults = tuple(self._default(name) for name, compiled in ce.fields.items()
                               if compiled.type.writable)

    def _default(self, name: str) -> _Default:
        ce = self.ce
        compiled = ce.fields[name]
        default = compiled.field.default
        if default is None and name in ce.pipelines:  # a stage field: its pipeline's first stage
            default = ce.pipelines[name].stages[0].key if ce.pipelines[name].stages else None
        if default is None:
            return _Default(name, None, None)

        def each() -> Any:
            return compiled.type.coerce(default, compiled.field)
        try:
            value = each()
        except CoercionError:  # refused for each record, as a save of it would be
            return _Default(name, None, each)
        if value is None or isinstance(value, _IMMUTABLE):
            return _Default(name, value, None)
        return _Default(name, None, each)

    def given(self, data: Mapping[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
        """Step 3: each given value through its field type's coercer; unknown, system-set and
        computed fields are refused by name (nothing is dropped silently)."""
        values: dict[str, Any] = {}
        keys = self._keys
        for key, raw in data.items():
            known = keys.get(key)
            if type(known) is tuple:
                coerce, field = known
                try:
                    values[key] = coerce(raw, field)
                except CoercionError as error:
                    errors.setdefault(key, []).append(str(error))
            elif known is _IGNORED:
                continue
            elif known is _OWNER:
                values["owner"] = raw
            elif known is None:
                errors.setdefault(key, []).append(
                    f"{self.ce.name} has no field {key!r}{suggest(key, self.ce.fields)}")
            else:
                errors.setdefault(key, []).append(str(known))
        return values

    def defaults(self, values: dict[str, Any]) -> None:
        """Step 4 (new records): each field left out gets its default (a stage field: its
        pipeline's first stage), or None."""
        for default in self._defaults:
            if default.name not in values:
                values[default.name] = default.value if default.each is None else default.each()
