"""The contract every field type fulfils, and the registry that holds them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import sqlalchemy as sa

if TYPE_CHECKING:
    from ..model import Entity, Field, Metamodel
    from ..rules.types import Type

#: Form inputs of one field, by suffix ("" is the main input, named like the field; a
#: companion input is named `<field>__<suffix>`). A value is the texts sent (blank ones
#: left out): one for most inputs, several for a group of checkboxes.
FormInputs = Callable[[str], list[str]]

#: Where a field is shown on a record page and in a form.
SECTIONS = ("details", "related", "notes")



# --- JSON Schema patterns of the API's input (input_schema) -------------------------------------
#: What str.strip() removes, spelled as \uXXXX so that a pattern reads the same in ECMA-262
#: (JSON Schema) and Python's re: a text of only these is blank.
SPACE = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x10000)) if c.isspace())


def text_pattern(forbidden: str, *, required: bool) -> str:
    """A text holding none of the `forbidden` characters (a regex class body); a required
    one holds more than spaces, an optional one may be blank (spaces only, any of them)."""
    body = f"[^{forbidden}]*"
    if required:
        return f"^{body}[^{forbidden}{SPACE}]{body}$"
    return f"^(?:[{SPACE}]*|{body})$"


class TypedText(str):
    """Text a person typed into a form's input (a record form, a list's bulk "set field to"),
    as opposed to a value of a JSON body: a type whose JSON values are not all text (json)
    reads it as the text form of a value, as `parse_text` does; every other type sees a str."""

    __slots__ = ()


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


@dataclass(frozen=True)
class Aggregate:
    """A field's value as an aggregate of child records: `function` (count, sum, min, max,
    avg) of the child field `of` (None for count) over the records of `child` whose
    reference `via` points to the record, only those `filter` (a rule over the child) holds
    for."""

    child: str
    via: str
    function: str
    of: str | None = None
    filter: str | None = None


class ApartStore(Protocol):
    """What the platform hands the hooks of a type `stored_apart` (records/apart.py builds
    it): the write's or the read's connection, the tables, and the principal's view of
    other entities. A type never opens a connection or a transaction of its own: whatever
    it reads or writes is part of the request's read or of the write's one transaction."""

    @property
    def conn(self) -> sa.Connection: ...

    @property
    def titled(self) -> bool:
        """Whether the values are read to be shown (a read: give linked records' titles) or
        only to be compared with a write's (a write's stored value: no titles needed)."""
        ...

    def table(self, entity: str) -> sa.Table:
        """The table of an entity of the revision (retired fields' columns included)."""
        ...

    def apart_table(self, entity: str, field: str, part: str = "") -> sa.Table:
        """One of the tables a field keeps its values in (`FieldType.apart_tables`, by part)."""
        ...

    def visible_ids(self, entity: str, ids: Iterable[int]) -> set[int]:
        """Which of `ids` are records of `entity` the principal may read: a link to one it
        may not read is refused as if there were none (its existence is not confirmed)."""
        ...

    def titles(self, entity: str, ids: Iterable[int]) -> dict[int, str]:
        """The titles of the records of `entity` the principal may read (others: absent)."""
        ...

    def entity(self, name: str) -> Any:
        """The compiled entity `name` as the reader may see it (records/compiled.py
        `CompiledEntity`: its table, select and fields), or None: for a type whose values
        are records of another entity (lines)."""
        ...

    def writer(self) -> Any:
        """The records service writing in the write's own transaction, as the same principal
        (writes only): a type whose values are records of another entity (lines) writes them
        through that entity's write pipeline. A refusal (its `errors` by field) refuses the
        whole write."""
        ...


def apart_table_name(entity: str, field: str, part: str = "") -> str:
    """The name of a table a field of `entity` keeps its values in: `x_<entity>__<field>`
    (and `__<part>` for a second one). `__` never occurs in an entity or field name, so it
    never meets an entity's table; names longer than databases allow are shortened with a
    hash (the schema engine uses the same function, storage/tables.py)."""
    from ..model import ENTITY_TABLE_PREFIX
    from ..names import MAX_IDENTIFIER

    name = f"{ENTITY_TABLE_PREFIX}{entity}__{field}" + (f"__{part}" if part else "")
    if len(name) <= MAX_IDENTIFIER:
        return name
    import hashlib

    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER - 9]}_{digest}"


@dataclass(frozen=True)
class Part:
    """A named part of a composite value kept in a column of its own (an address's city):
    readable in rules as `<field>.<name>` and filterable in lists as `<field>.<name>=…`.
    `options`: the keys a part may take (a person's salutation), or None for free text."""

    name: str
    #: The part's column (by suffix, "" for the main column).
    suffix: str
    label: str
    options: tuple[str, ...] | None = None


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
    #: Whether the value is a length of time in whole seconds (a calendar item's duration).
    seconds_long: ClassVar[bool] = False
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
    #: Whether values are kept OUTSIDE the entity's table (a many-to-many junction table,
    #: child records saved with their parent): `columns` is empty, and the platform asks
    #: the "stored apart" hooks below instead of reading and writing columns. Why a flag
    #: and hooks rather than columns: such a value is a set of rows, so a page of records
    #: must load all its values in ONE query per field (`load_apart`, never one per record),
    #: and a write must save them in the write's own transaction (`save_apart`), after the
    #: record's row exists (a new record's id is known only then). The value itself still
    #: travels with the record like any other (`Record.values`, the API, forms, history):
    #: its canonical form must compare equal when nothing changed (a sorted tuple, say),
    #: since the write pipeline writes and versions only changed fields. Such a type is
    #: neither sortable, nor unique, nor indexed, nor searchable as a column; pack
    #: validation refuses those flags (metamodel/checks.py).
    stored_apart: ClassVar[bool] = False

    #: Whether values hold uploaded files (platform/files/): the records service checks that
    #: each file given was uploaded by the writer and is free, fills in its name and type
    #: (`with_files`), attaches it to the record, and deletes it once a committed write
    #: removed it from the record.
    holds_files: ClassVar[bool] = False
    #: Scripts (paths under /static) a form loads when it shows this type's widget: an
    #: enhancement of a widget that works without them (the rich text editor).
    widget_scripts: ClassVar[tuple[str, ...]] = ()
    #: Whether a form suggests values already used on the field (`suggestions`: free tags).
    suggests: ClassVar[bool] = False

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

    def sort_follows_direction(self, suffix: str, field: Field) -> bool:
        """Whether a descending sort reverses this sort column (by suffix): the main column
        does; a currency's code stays ascending, so amounts stay grouped by currency."""
        return suffix == ""

    def search_columns(self, field: Field) -> tuple[str, ...]:
        """The text columns (by suffix) the list's text search reads, for a `searchable`
        type: the main column, or every text part of a composite value."""
        return ("",)

    def parts(self, field: Field) -> tuple[Part, ...]:
        """The parts of a composite value, each in its own text column (rules read them as
        `<field>.<part>`, lists filter on them); () for a value that is one thing."""
        return ()

    def sum_groups(self, field: Field) -> tuple[str, ...]:
        """Companion columns (by suffix) whose values may not be added together: a board
        sums per value of these (an amount per currency)."""
        return ()

    def compared_companions(self, field: Field) -> tuple[str, ...]:
        """Companion columns (by suffix) a list filter compares along with the main column:
        values that differ in them are different values (an amount's currency, a
        polymorphic reference's entity; not an all-day flag, a day being its midnight)."""
        return self.sum_groups(field)

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

    def suggestions(self, values: Iterable[Any], field: Field, limit: int = 50) -> list[str]:
        """For a type that `suggests`: the texts a form offers, from `values` (the field's
        values in the records the user may read, most recently changed first), at most `limit`."""
        return []

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

    def companions_convert(self, field: Field) -> bool:
        """Whether a retype to a type without some of this type's companion columns may
        convert what they hold into the new type's value, so that the plan blocks only on
        the rows whose value would not come back (an all-day flag turned into midnight, a
        currency's code dropped with its amount). False: a dropped companion column that
        holds values blocks the retype, whatever the new type's coercer accepts (rich
        text's HTML, which a text type would keep as markup in place of the text a reader
        sees)."""
        return True

    def retyped(self, value: Any, old: Field, new: Field) -> Any:
        """A stored value of `old` as this type's coercer should see it when a field is
        retyped (a single reference's id → the pair of a polymorphic one); by default as is."""
        return value

    # --- references (`links_records`) --------------------------------------------------
    def reference_text(self, entity: str, record_id: int, field: Field) -> str:
        """The text of a list filter selecting the records whose value points to
        `record_id` of `entity` (a record page's related lists)."""
        return str(record_id)

    def entity_name_columns(self, field: Field) -> tuple[str, ...]:
        """Companion columns (by suffix) whose values are entity names (a polymorphic
        reference's `entity`): an entity's rename rewrites them in the same change."""
        return ()

    def refers_to(self, columns: Mapping[str, Any], entity: str, ids: Any, field: Field) -> Any:
        """The SQL condition (over the field's columns, by suffix) of the rows pointing to
        one of `ids` of `entity`: a delete carries out `on_delete` for them."""
        return columns[""].in_(ids)

    # --- definitions that depend on other entities (roll-ups) ---------------------------------
    def complete(self, field: Field, entity: Entity, metamodel: Metamodel) -> Field:
        """The definition completed from the rest of the effective metamodel (a roll-up's
        result type comes from the child field it aggregates); called for every field when
        packs are merged, before they are checked."""
        return field

    def aggregates(self, field: Field) -> Aggregate | None:
        """What a field's values are computed from when they are an aggregate of child
        records (a roll-up): the engine keeps them exact on every write of a child."""
        return None

    def check_in(self, field: Field, entity: Entity, metamodel: Metamodel,
                 registry: FieldTypeRegistry) -> Iterator[str]:
        """Problems of a definition against the rest of the metamodel (another entity it
        names), each message starting with the setting it is about."""
        return iter(())

    # --- stored apart (only for `stored_apart` types; see that flag) --------------------
    def apart_tables(self, field: Field, entity: str, metadata: sa.MetaData) -> list[sa.Table]:
        """The tables a field of `entity` keeps its values in, built in `metadata` (which
        holds the entities' tables, so foreign keys to them resolve). The schema engine
        creates them with the field (or its entity), keeps them when the field is retired
        (data kept, like a retired column), and drops them only when the field is purged.
        Name them with `apart_table_name(entity, field.name, part)`; a table's `info["part"]`
        is its part ("" for the first). Empty for a type whose values live in other
        entities' tables (child records)."""
        return []

    def load_apart(self, store: ApartStore, field: Field, entity: str,
                   ids: Sequence[int]) -> dict[int, Any]:
        """The values of the field for the records `ids` of `entity` (a page, a record read
        back after a write), by record id: ONE query for all of them. A record left out
        has the blank value (`apart_blank`)."""
        return {}

    def apart_blank(self, field: Field) -> Any:
        """The value of a record that has nothing stored apart (an empty tuple)."""
        return None

    def merge_apart(self, before: Any, given: Any, field: Field) -> Any:
        """The value to save when a client sends `given` (already through `coerce_given`)
        for a stored value `before` (the blank value for a new record): `given` replaces
        it, unless the type takes changes relative to it (a many-to-many's add / remove)."""
        return given

    def check_apart(self, store: ApartStore, field: Field, entity: str,
                    values: Sequence[Any]) -> list[list[str]]:
        """Problems of each value of a batch about to be saved (links to records that do
        not exist or the principal may not read), one list of messages per value, found
        with one query for the whole batch. The messages name what is wrong (an id), the
        platform names the field."""
        return [[] for _ in values]

    def save_apart(self, store: ApartStore, field: Field, entity: str, record_id: int,
                   before: Any, after: Any) -> None:
        """Store `after` for the record (`before`: what was stored, the blank value for a
        new record) in the write's transaction, after the record's row is written; called
        only when the value changed."""

    def apart_related(self, field: Field, entity: str) -> ApartRelation | None:
        """How a related list pages the records the field links to (None: it has none)."""
        return None

    # --- uploaded files (types with `holds_files`) ------------------------------------------
    def file_ids(self, value: Any, field: Field) -> list[int]:
        """The ids of the uploaded files a (coerced) value holds, in order."""
        return []

    def with_files(self, value: Any, files: Mapping[int, Mapping[str, Any]], field: Field) -> Any:
        """`value` with what the file table knows of each file (`files`: its rows by id)."""
        return value

    def check_file(self, info: Mapping[str, Any], field: Field) -> str | None:
        """Why an uploaded file (its row in the file table) may not be in this field, or None."""
        return None


@dataclass(frozen=True)
class ApartRelation:
    """A relation a stored-apart field makes between two entities, for related lists on
    both sides: from a record of `source` (the field's entity) its records of `target` are
    the `target_column` of the rows of `table` whose `source_column` is its id; the
    inverse side reads the same table the other way round. `inverse` is the name the
    relation has on the target's side (None: no name, shown as `<source>.<field>`)."""

    field: str
    source: str
    target: str
    table: str
    source_column: str
    target_column: str
    inverse: str | None = None
    #: Whether links are made and removed through the field (False: they are records of a
    #: link entity, made through its own API and forms; the field only reads them).
    editable: bool = True


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

    def of(self, field: Field) -> FieldType | None:
        """The type of `field`, or None when no registered type has its name (a stored
        revision naming a plugin's type that is not installed)."""
        return self._types.get(field.type)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return list(self._types)

    @property
    def default_type(self) -> str:
        """The type a new field takes when nobody chose one (the designer's new field, a new
        entity's title field): the first type registered that people write, that needs no
        settings and whose values are searched as text — a single line of text among the
        built-ins, which are registered first. The registry decides, so that the platform
        names no type; with no such type, the first registered."""
        for field_type in self:
            if field_type.writable and not field_type.required_settings and field_type.searchable:
                return field_type.name
        for field_type in self:
            return field_type.name
        raise LookupError("no field type is registered")

    def __iter__(self) -> Iterator[FieldType]:
        return iter(self._types.values())
