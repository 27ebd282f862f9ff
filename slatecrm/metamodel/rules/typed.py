"""The checked tree: every node typed and every name resolved against the metamodel.

Both compilers read this tree, never the text: what they may see is only what the
checker let through (declared fields, known functions, literal regular expressions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as attribute
from typing import Any

from ..model import Field
from .functions import RuleFunction
from .types import Type


@dataclass(frozen=True)
class T:
    type: Type

    def children(self) -> tuple[T, ...]:
        return ()

    @property
    def record_free(self) -> bool:
        """No field, change function or record in it: the same value for every record."""
        return all(child.record_free for child in self.children())


@dataclass(frozen=True)
class Const(T):
    value: Any


@dataclass(frozen=True)
class Hop:
    """A step through a reference field of `entity` to its target entity."""

    entity: str
    field: Field


@dataclass(frozen=True)
class FieldRef(T):
    entity: str
    field: Field
    hops: tuple[Hop, ...] = ()
    #: The field type's `rule_value` (a currency's amount), or None when rules see the
    #: stored value itself (most types: such reads are inlined).
    value_of: Callable[[Any], Any] | None = attribute(default=None, compare=False, repr=False)
    #: A part of a composite value (`billing_address.city`): the column suffix that keeps
    #: it (`value_of` reads it from the value); None for the whole value.
    part: str | None = None

    @property
    def record_free(self) -> bool:
        return False


@dataclass(frozen=True)
class PartRef(T):
    """A part of a field's value kept in a companion column (`<field>__<part>`): a
    polymorphic reference's `entity`. Python reads the part's key of the field's value."""

    entity: str
    field: Field
    part: str

    @property
    def record_free(self) -> bool:
        return False


@dataclass(frozen=True)
class AnyPath(T):
    """A field of the record a polymorphic reference (`field`, of the record itself) points
    to: `targets` gives that field on each target entity, with its type's `rule_value`
    (None when read as stored). Null when the reference is blank or the record is gone."""

    entity: str
    field: Field
    targets: tuple[tuple[str, Field, Callable[[Any], Any] | None], ...] = attribute(compare=False)

    @property
    def record_free(self) -> bool:
        return False


@dataclass(frozen=True)
class UserRef(T):
    attribute: str  # id, roles, teams or manager


@dataclass(frozen=True)
class UserAttr(T):
    """`current_user.<name>` of a `kind: user_attribute` definition: the user's value, as
    stored (JSON), through `value_of` (its field type's coercion: a value the definition no
    longer admits, such as a removed option, reads as null)."""

    name: str
    value_of: Callable[[Any], Any] = attribute(compare=False, repr=False)


@dataclass(frozen=True)
class Change(T):
    """is_new(), changed(field), previous(field): record contexts only, never SQL."""

    kind: str
    field: Field | None
    value_of: Callable[[Any], Any] | None = attribute(default=None, compare=False, repr=False)

    @property
    def record_free(self) -> bool:
        return False


@dataclass(frozen=True)
class Func(T):
    name: str
    args: tuple[T, ...]
    digits: int = 0  # round()
    #: A function a plugin added (its Python and SQL forms); None for the built-ins.
    plugin: RuleFunction | None = None

    def children(self) -> tuple[T, ...]:
        return self.args


@dataclass(frozen=True)
class Not(T):
    operand: T

    def children(self) -> tuple[T, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Neg(T):
    operand: T

    def children(self) -> tuple[T, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Arith(T):
    op: str
    left: T
    right: T

    def children(self) -> tuple[T, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Compare(T):
    op: str
    left: T
    right: T
    #: Stage keys in pipeline order when the comparison is by stage order.
    order: tuple[str, ...] | None = None

    def children(self) -> tuple[T, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Logic(T):
    op: str
    items: tuple[T, ...]

    def children(self) -> tuple[T, ...]:
        return self.items


@dataclass(frozen=True)
class In(T):
    operand: T
    items: tuple[T, ...]
    negated: bool

    def children(self) -> tuple[T, ...]:
        return (self.operand, *self.items)


@dataclass(frozen=True)
class IsBlank(T):
    operand: T
    negated: bool

    def children(self) -> tuple[T, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class TextTest(T):
    """contains / starts_with on texts; `list_contains` when the left side is a multi-choice."""

    op: str
    left: T
    right: T

    def children(self) -> tuple[T, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Matches(T):
    operand: T
    pattern: str

    def children(self) -> tuple[T, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Links(T):
    """A question about the records a many-to-many field of the record links (`field` of
    `entity`, linking `target` records, kept in the junction table `table`): `count` (how
    many: a number), `has` (whether `operand`, an id, is one of them: null when it is null)
    or `any` (whether one of them holds `condition`, checked on the `target` entity: never
    null, as SQL's EXISTS)."""

    kind: str
    entity: str
    field: Field
    target: str
    table: str
    #: The table's columns holding the record's id and the linked record's.
    source_column: str
    target_column: str
    operand: T | None = None
    condition: T | None = None
    negated: bool = False

    def children(self) -> tuple[T, ...]:
        return tuple(c for c in (self.operand,) if c is not None)

    @property
    def record_free(self) -> bool:
        return False
