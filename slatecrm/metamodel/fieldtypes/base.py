"""The contract every field type fulfils, and the registry that holds them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

if TYPE_CHECKING:
    from ..model import Field
    from ..rules.types import Type

#: Form inputs of one field, by suffix ("" is the main input, named like the field; a
#: companion input is named `<field>__<suffix>`). A value is the texts sent (blank ones
#: left out): one for most inputs, several for a group of checkboxes.
FormInputs = Callable[[str], list[str]]

#: Where a field is shown on a record page and in a form.
SECTIONS = ("details", "related", "notes")


class CoercionError(ValueError):
    """A value that cannot become a value of the field's type; the message is for people."""


@dataclass(frozen=True)
class ColumnSpec:
    """One physical column of a field. `suffix` is "" for the main column.

    Companion columns (a currency's code) get `__<suffix>`; `references` names the
    target entity of a foreign key, `references_table` a platform table (`slate_user`)
    the foreign key points to instead of an entity's.
    """

    suffix: str
    type: sa.types.TypeEngine[Any]
    references: str | None = None
    on_delete: str | None = None
    references_table: str | None = None

    @property
    def has_foreign_key(self) -> bool:
        return bool(self.references or self.references_table)

    def column_name(self, field_name: str) -> str:
        return field_name if not self.suffix else f"{field_name}__{self.suffix}"


class FieldType:
    """Base class of field types. Subclasses set the class attributes and override hooks."""

    name: ClassVar[str]
    label: ClassVar[str]
    #: JSON Schema `properties` for the settings only this type accepts.
    settings_schema: ClassVar[Mapping[str, Any]] = {}
    #: Settings a definition of this type must give.
    required_settings: ClassVar[tuple[str, ...]] = ()
    #: Whether fields of this type get an index without asking (references, stages).
    index_by_default: ClassVar[bool] = False
    #: Whether users may write values (auto numbers are written by the engine).
    writable: ClassVar[bool] = True

    # --- behaviour the platform asks about (it never branches on a type's name) ------
    #: The Jinja template that renders a field's label and input(s) in a form, resolved by
    #: name: built-in widgets live in the web layer's `widgets/`; a plugin ships its own
    #: next to its type and names the folder in `template_folders`.
    widget_template: ClassVar[str] = "widgets/text.html"
    #: The template of a shown value (list cell, record page); None: the text of
    #: `display`, a link when `link` gives one, a badge when `colour` gives one.
    value_template: ClassVar[str | None] = None
    #: Whether the list's text search looks into this field.
    searchable: ClassVar[bool] = False
    #: Whether lists sort on this field and filter it by value (a list of options does not).
    sortable: ClassVar[bool] = True
    filterable: ClassVar[bool] = True
    #: Whether boards add this field up; `sum_groups` says what may not be added together.
    summable: ClassVar[bool] = False
    #: When a board adds up without being asked: the first field of the lowest rank
    #: (None: never picked unasked, e.g. percentages, whose sum means nothing).
    sum_rank: ClassVar[int | None] = None
    #: Whether values are one of a fixed set of options (boards and quick filters group by them).
    groupable: ClassVar[bool] = False
    #: Whether values are ids of another entity's records, shown by that record's title.
    links_records: ClassVar[bool] = False
    #: Whether values are ids of the platform's users (like a record's owner): the write
    #: pipeline checks that each exists, reads show the user's name (`record.titles`).
    links_users: ClassVar[bool] = False
    #: The section of record pages and forms: details, related (links), notes (long texts).
    section: ClassVar[str] = "details"
    #: Rank among a list's default columns (lower first); None: never a default column.
    list_rank: ClassVar[int | None] = None
    #: Settings whose change can make stored values invalid: the schema planner checks the
    #: stored values again when one of them changes.
    constraint_settings: ClassVar[tuple[str, ...]] = ()
    #: Whether a formula or a default expression may give a value (a rule gives one plain
    #: value: not a record id, a list, an amount without its currency, a stage or a number
    #: the engine hands out).
    computable: ClassVar[bool] = True
    #: Whether sample data makes a value from a hint in the field's name (`city`, `email`).
    sample_by_name: ClassVar[bool] = False
    #: Whether the engine hands out the values from a per-field sequence when a record is
    #: created (auto numbers); it then asks `format` for each number's value.
    numbered: ClassVar[bool] = False

    @classmethod
    def template_folders(cls) -> Sequence[Path]:
        """Folders of templates this type ships (its widget): searched after a deployment's
        overrides and before the built-in templates."""
        return ()

    # --- storage -----------------------------------------------------------------
    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        raise NotImplementedError

    def columns(self, field: Field) -> list[ColumnSpec]:
        return [ColumnSpec("", self.sql_type(field))]

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        """The column values (by suffix) that store a coerced value."""
        return {"": value}

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        return values.get("")

    # --- values --------------------------------------------------------------------
    def format(self, number: int, field: Field) -> Any:
        """The value of the `number`-th record, for a `numbered` type."""
        raise NotImplementedError(f"{self.name} is not numbered")

    def coerce(self, value: Any, field: Field) -> Any:
        """A JSON or Python value → the canonical Python value, or CoercionError.

        None and "" mean blank and give None; subclasses implement `convert`.
        """
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        return self.convert(value, field)

    def convert(self, value: Any, field: Field) -> Any:
        raise NotImplementedError

    def coerce_given(self, value: Any, field: Field) -> Any:
        """A value a client gave for a record (a JSON body, a form's text, a bulk row) → the
        canonical value, or CoercionError: `coerce` unless the type is stricter with what
        a client sends than with the values the platform converts (a retype's stored
        values, a pack's default, a formula's result). The text types are: a JSON number
        for a name or a web address is a client's mistake, not text (a retype from integer
        to text still converts 12 to "12")."""
        return self.coerce(value, field)

    def parse_text(self, text: str, field: Field) -> Any:
        """Text typed in a form or found in a CSV cell → the canonical value."""
        return self.coerce(text, field)

    def to_json(self, value: Any, field: Field) -> Any:
        return value

    def display(self, value: Any, field: Field) -> str:
        return "" if value is None else str(value)

    def value_schema(self, field: Field) -> dict[str, Any]:
        """JSON Schema of this field's value in the API (without null)."""
        return {}

    # --- the API's contract (web/openapi.py; a schemathesis run holds the server to it) ----
    def output_schema(self, field: Field) -> dict[str, Any]:
        """JSON Schema (without null) of every value `to_json` gives for this field."""
        return self.value_schema(field)

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        """JSON Schema (without null) of values a client may send: every value it admits
        is one `coerce_given` accepts and the field's settings allow, so a request the
        document calls valid is never refused for its form. It may admit less than the
        type reads (a person's "yes" for a boolean): the document states the canonical
        forms. `required`: the field must have a value, so the blanks that `coerce` turns
        into None ("", spaces, an empty list) are left out too."""
        return self.value_schema(field)

    def filter_schema(self, field: Field) -> dict[str, Any]:
        """JSON Schema of one list filter's value (a query parameter, read by `parse_text`;
        a blank is refused there): by default a required input, which a query string
        carries as its text."""
        return self.input_schema(field, required=True)

    # --- HTML ------------------------------------------------------------------------
    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        """What the form's inputs show for a (coerced) value, by suffix (see FormInputs):
        a text, or a list of texts for a group of checkboxes."""
        return {"": "" if value is None else str(value)}

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        """The value a submitted form gives (before coercion): None when blank."""
        texts = inputs("")
        return texts[0] if texts else None

    def link(self, value: Any, field: Field) -> str | None:
        """Where a shown value links to (an e-mail's mailto:, a record's page), or None.
        The web layer only makes safe schemes into links."""
        return None

    def colour(self, value: Any, field: Field) -> str | None:
        """The colour (#rgb or #rrggbb) a shown value is marked with, or None."""
        return None

    # --- lists, boards, rules ----------------------------------------------------------
    def sort_columns(self, field: Field) -> tuple[str, ...]:
        """The columns (by suffix) a sort on this field orders by, most significant first."""
        return ("",)

    def sum_groups(self, field: Field) -> tuple[str, ...]:
        """Companion columns (by suffix) whose values may not be added together: a board
        sums per value of these (an amount per currency)."""
        return ()

    def total(self, amount: Any, group: Mapping[str, Any], field: Field) -> Any:
        """The field value that stands for a sum (`group`: the companion values it was
        summed for), shown with `display_total`."""
        return amount

    def display_total(self, value: Any, field: Field) -> str:
        return self.display(value, field)

    def rule_type(self, field: Field) -> Type | None:
        """The type of this field's values in the rule language; None: rules cannot read it."""
        return None

    def rule_value(self, value: Any, field: Field) -> Any:
        """The value rules see (a currency amount's number, say)."""
        return value

    def from_rule_value(self, value: Any, field: Field) -> Any:
        """A value a formula computed → a value to coerce (rounded to the field's places)."""
        return value

    def stored_scale(self, field: Field) -> int | None:
        """Decimal places when the main column is an exact decimal, which SQLite keeps as an
        integer scaled by 10^places (rule SQL must scale too); None for other columns."""
        return None

    def sample(self, field: Field, pick: SampleSource) -> Any:
        """A made-up value for sample data, or None for none."""
        return None

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        """Problems of a definition that a schema cannot see: (settings path, message)."""
        return iter(())

    def rule_parts(self, field: Field) -> Mapping[str, Type]:
        """Companion columns (by suffix) rules may read as `<field>.<suffix>`, with their
        rule types (a polymorphic reference's `entity`)."""
        return {}

    def value_carries_companions(self, field: Field) -> bool:
        """Whether a value (`from_columns`) holds everything its companion columns keep, so
        that a retype dropping them loses nothing the new type's coercer accepted (a
        polymorphic reference's entity; not a currency's code, which a number drops)."""
        return False

    def retyped(self, value: Any, old: Field, new: Field) -> Any:
        """A stored value of `old` as this type's coercer should see it when a field is
        retyped (a single reference's id → the pair of a polymorphic one); by default as is."""
        return value

    # --- references (`links_records`) --------------------------------------------------
    def reference_text(self, entity: str, record_id: int, field: Field) -> str:
        """The text of a list filter selecting the records whose value points to
        `record_id` of `entity` (a record page's related lists)."""
        return str(record_id)

    def refers_to(self, columns: Mapping[str, Any], entity: str, ids: Any, field: Field) -> Any:
        """The SQL condition (over the field's columns, by suffix) of the rows pointing to
        one of `ids` of `entity`: a delete carries out `on_delete` for them."""
        return columns[""].in_(ids)


class SampleSource:
    """What a type may use to make up a sample value (sample data, demos)."""

    def __init__(self, random: Any, fake: Any, today: Any):
        self.random = random
        self.fake = fake
        self.today = today

    def number(self, field: Field, low: float, high: float) -> float:
        low = float(field.settings.get("min", low))
        high = float(field.settings.get("max", high))
        return float(self.random.uniform(low, max(low, high)))

    def decimal(self, field: Field, low: float, high: float, places: str = "0.01") -> str:
        return str(Decimal(self.number(field, low, high)).quantize(Decimal(places)))


class FieldTypeRegistry:
    """Field types by name; built from the plugin hooks (see slatecrm.plugins)."""

    def __init__(self, types: Iterable[FieldType] = ()):
        self._types: dict[str, FieldType] = {}
        for field_type in types:
            self.register(field_type)

    def register(self, field_type: FieldType) -> None:
        if field_type.name in self._types:
            raise ValueError(f"field type {field_type.name!r} is registered twice")
        if field_type.section not in SECTIONS:
            raise ValueError(f"field type {field_type.name!r}: section {field_type.section!r} "
                             f"is not one of {', '.join(SECTIONS)}")
        self._types[field_type.name] = field_type

    def template_folders(self) -> list[Path]:
        """Every type's template folders, in registration order, each once."""
        folders: list[Path] = []
        for field_type in self:
            folders += [Path(f) for f in field_type.template_folders() if Path(f) not in folders]
        return folders

    def __getitem__(self, name: str) -> FieldType:
        return self._types[name]

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return list(self._types)

    def __iter__(self) -> Iterator[FieldType]:
        return iter(self._types.values())
