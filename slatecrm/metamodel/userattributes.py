"""User attributes: what an organisation knows about its users (a region, a country, a
business unit), declared as metamodel definitions (`kind: user_attribute`, by a pack or the
organisation's layer) so that sharing rules can read them as `current_user.<name>`.

A definition says the attribute's type; its values are platform data, per user
(identity/userattributes.py, table slate_user_attribute). Each type is one of the field
types', so a value is checked by that field type's coercion, not by parsing of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as attribute
from typing import TYPE_CHECKING

from .errors import Location

if TYPE_CHECKING:  # model.py holds user attributes: it imports this module
    from .model import ChoiceOption, Field

#: The attribute types, and the field type whose coercion checks a value of each.
FIELD_TYPES: dict[str, str] = {"text": "text", "choice": "choice", "number": "decimal",
                               "boolean": "boolean", "date": "date"}
#: A number keeps this many decimal places at most (a decimal field's scale), so that its
#: SQL form (SQLite's scaled integers) is the same for every user.
NUMBER_SCALE = 6
#: What `current_user` has besides the attributes: no attribute may take these names.
BUILT_IN = ("id", "roles", "teams", "manager")


@dataclass(frozen=True)
class UserAttribute:
    name: str
    label: str
    type: str
    description: str = ""
    #: A choice's options.
    choices: tuple[ChoiceOption, ...] = ()
    #: The pack that defines it ("organisation" for the organisation's layer).
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)

    @property
    def field(self) -> Field:
        """The attribute as a field of its field type: what checks its values and gives its
        rule type."""
        from .model import Field

        settings = {"precision": 18, "scale": NUMBER_SCALE} if self.type == "number" else {}
        return Field(name=self.name, type=FIELD_TYPES[self.type], label=self.label, settings=settings,
                     choices=self.choices, pack=self.pack, source=self.source)

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(o.key for o in self.choices)

    @property
    def form_options(self) -> tuple[tuple[str, str], ...]:
        """The (value, label) pairs a form offers to pick from (a choice's options, yes or no),
        or none for a typed value: forms ask this rather than branch on the type's name."""
        if self.type == "boolean":
            return (("true", "Yes"), ("false", "No"))
        return tuple((o.key, o.label) for o in self.choices)

    @property
    def input_type(self) -> str:
        """The HTML input type of a typed value."""
        return "date" if self.type == "date" else "text"
