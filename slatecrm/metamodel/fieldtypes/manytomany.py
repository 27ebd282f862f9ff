"""`many_to_many`: links between records of two entities, kept in a junction table.

The first field type stored apart (base.py `FieldType.stored_apart`): the field has no
column; its values are the rows (record id, linked id) of the junction table
`x_<entity>__<field>`, with a composite primary key and a foreign key to each side that
cascades on delete. The field's value is the sorted tuple of linked ids (`Links`, which
also carries the titles the read path found); a client may send the whole list, or
`{"add": [...], "remove": [...]}` to change it without rewriting it.

With `through: <entity>` the links have attributes (a contact's role on an opportunity):
they are the records of that link entity, whose two reference fields (`through_fields`,
by default the fields named like the two entities) hold the pair, unique together. The
field then has no table of its own; it reads the link entity's table, and its links are
made, changed and removed as link records (their own API, forms and related lists), never
through the field, which is read-only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..model import ENTITY_TABLE_PREFIX
from .base import (
    ApartRelation,
    ApartStore,
    CoercionError,
    FieldType,
    FormInputs,
    apart_table_name,
)
from .sqltypes import record_id

if TYPE_CHECKING:
    from ..model import Field
    from ..rules.types import Type

INT64 = 2**63 - 1
#: Links one value may hold (and one change may add or remove) at most.
MAX_LINKS = 1000
#: The junction table's columns: the record's id and the linked record's id.
SOURCE, TARGET = "source_id", "target_id"
#: What a linked record the reader may not read shows in place of its title.
RESTRICTED = "(restricted)"


class Links(tuple[int, ...]):
    """A many-to-many value: the linked ids, sorted, each once. Compares as the plain tuple
    (the write pipeline compares values to find changes); `titles` are the linked records'
    titles the read path found (empty for a value a client gave)."""

    titles: Mapping[int, str]

    def __new__(cls, ids: Iterable[int] = (), titles: Mapping[int, str] | None = None) -> Links:
        made = super().__new__(cls, sorted(set(ids)))
        made.titles = dict(titles or {})
        return made

    def title(self, linked: int) -> str:
        return self.titles.get(linked, f"#{linked}")


@dataclass(frozen=True)
class LinkChange:
    """`{"add": [...], "remove": [...]}`: a change relative to the stored links."""

    add: tuple[int, ...] = ()
    remove: tuple[int, ...] = ()


def _link_id(value: Any) -> int:
    if isinstance(value, Mapping) and "id" in value:
        value = value["id"]
    if isinstance(value, bool):
        raise CoercionError("expected a record id, got true/false")
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,19}\s*", value):
        value = int(value.strip())
    if not isinstance(value, int) or value <= 0 or value > INT64:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
        raise CoercionError(f"{shown} is not a record id")
    return value


def _ids(values: Any, what: str) -> list[int]:
    if not isinstance(values, list | tuple):
        raise CoercionError(f"{what} must be a list of record ids")
    if len(values) > MAX_LINKS:
        raise CoercionError(f"{what} holds {len(values):,} ids; at most {MAX_LINKS:,} at once")
    return [_link_id(v) for v in values]


class ManyToMany(FieldType):
    name = "many_to_many"
    label = "Many-to-many link"
    settings_schema = {
        "target": {"$ref": "#/$defs/name"},
        #: The name the links have on the target's side (its related list, its API path).
        "inverse": {"$ref": "#/$defs/name"},
        #: A link entity whose records are the links (link attributes).
        "through": {"$ref": "#/$defs/name"},
        #: Its reference fields to this entity and to the target (default: named like them).
        "through_fields": {"type": "array", "items": {"$ref": "#/$defs/name"},
                           "minItems": 2, "maxItems": 2},
    }
    required_settings = ("target",)
    stored_apart = True
    widget_template = "widgets/many_to_many.html"
    value_template = "values/many_to_many.html"
    section = "related"
    sortable = False
    filterable = False
    computable = False

    # --- storage: the junction table ---------------------------------------------------
    def columns(self, field: Field) -> list[Any]:
        return []

    def apart_tables(self, field: Field, entity: str, metadata: sa.MetaData) -> list[sa.Table]:
        if field.settings.get("through"):
            return []  # the link entity's own table holds the links
        name = apart_table_name(entity, field.name)
        if name in metadata.tables:
            return [metadata.tables[name]]
        target = str(field.settings["target"])
        # Short constraint names: the table's name is near the identifier limit already.
        digest = name[-8:] if len(name) > 40 else name.removeprefix(ENTITY_TABLE_PREFIX)
        table = sa.Table(
            name, metadata,
            sa.Column(SOURCE, record_id(), sa.ForeignKey(
                f"{ENTITY_TABLE_PREFIX}{entity}.id", ondelete="CASCADE", name=f"fk_{digest}_s"[:60]),
                primary_key=True, nullable=False),
            sa.Column(TARGET, record_id(), sa.ForeignKey(
                f"{ENTITY_TABLE_PREFIX}{target}.id", ondelete="CASCADE", name=f"fk_{digest}_t"[:60]),
                primary_key=True, nullable=False),
            info={"part": ""})
        # The primary key serves "the links of a record"; this index serves the other side.
        sa.Index(f"ix_{digest}_t"[:60], table.c[TARGET], table.c[SOURCE])
        return [table]

    def apart_blank(self, field: Field) -> Links:
        return Links()

    def _pair(self, store: ApartStore, field: Field, entity: str) -> tuple[Any, Any]:
        """The columns (record, linked record) of the table that holds the links."""
        relation = self.apart_related(field, entity)
        assert relation is not None
        if field.settings.get("through"):
            table = store.table(str(field.settings["through"]))
        else:
            table = store.apart_table(entity, field.name)
        return table.c[relation.source_column], table.c[relation.target_column]

    def load_apart(self, store: ApartStore, field: Field, entity: str,
                   ids: Sequence[int]) -> dict[int, Any]:
        source, target = self._pair(store, field, entity)
        rows = store.conn.execute(
            sa.select(source, target).distinct()
            .where(source.in_(sorted(set(ids))), target.isnot(None))
            .order_by(source, target)).all()
        linked: dict[int, list[int]] = {}
        for source, target in rows:
            linked.setdefault(source, []).append(target)
        if not store.titled:  # a write's stored value: compared, never shown
            return {source: Links(targets) for source, targets in linked.items()}
        titles = store.titles(str(field.settings["target"]), {t for _, t in rows})
        return {source: Links(targets, {t: titles.get(t, RESTRICTED) for t in targets})
                for source, targets in linked.items()}

    def check_apart(self, store: ApartStore, field: Field, entity: str,
                    values: Sequence[Any]) -> list[list[str]]:
        target = str(field.settings["target"])
        wanted = {i for value in values for i in (value or ())}
        found = store.visible_ids(target, wanted)
        out = []
        for value in values:
            ids = tuple(value or ())
            messages = [f"there is no {target} with id {i}" for i in ids if i not in found]
            if len(ids) > MAX_LINKS:
                messages.append(f"links {len(ids):,} records; at most {MAX_LINKS:,}")
            out.append(messages)
        return out

    def save_apart(self, store: ApartStore, field: Field, entity: str, record_id: int,
                   before: Any, after: Any) -> None:
        if field.settings.get("through"):
            return  # read-only: never changed through the field
        junction = store.apart_table(entity, field.name)
        old, new = set(before or ()), set(after or ())
        if old - new:
            store.conn.execute(junction.delete().where(
                junction.c[SOURCE] == record_id, junction.c[TARGET].in_(sorted(old - new))))
        if new - old:
            store.conn.execute(junction.insert(), [{SOURCE: record_id, TARGET: t} for t in sorted(new - old)])

    def apart_related(self, field: Field, entity: str) -> ApartRelation | None:
        inverse = field.settings.get("inverse")
        target = str(field.settings["target"])
        through = field.settings.get("through")
        if through:
            source_field, target_field = self.through_fields(field, entity)
            return ApartRelation(field.name, entity, target, ENTITY_TABLE_PREFIX + str(through),
                                 source_field, target_field, str(inverse) if inverse else None,
                                 editable=False)
        return ApartRelation(field.name, entity, target, apart_table_name(entity, field.name), SOURCE, TARGET,
                             str(inverse) if inverse else None)

    @staticmethod
    def through_fields(field: Field, entity: str) -> tuple[str, str]:
        """The link entity's reference fields to `entity` and to the target."""
        given = field.settings.get("through_fields")
        if given:
            return str(given[0]), str(given[1])
        return entity, str(field.settings["target"])

    def coerce_given(self, value: Any, field: Field) -> Any:
        through = field.settings.get("through")
        if through and value is not None:
            raise CoercionError(f"links with attributes are {through} records: create, change or delete "
                                f"those (POST /api/v1/{through})")
        return self.coerce(value, field)

    def merge_apart(self, before: Any, given: Any, field: Field) -> Any:
        if field.settings.get("through"):
            return before  # read-only: the link records are the links
        if isinstance(given, LinkChange):
            return Links((set(before or ()) - set(given.remove)) | set(given.add))
        return Links(given or ())

    def rule_type(self, field: Field) -> Type | None:
        """A list of links: rules ask `x in f`, `count(f)`, `any(x in f: …)`, `f is blank`."""
        from ..rules.types import Type

        return Type("links", target=str(field.settings["target"]))

    # --- values ----------------------------------------------------------------------
    def coerce(self, value: Any, field: Field) -> Any:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        return self.convert(value, field)

    def convert(self, value: Any, field: Field) -> Any:
        if isinstance(value, LinkChange | Links):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"add", "remove"}
            if unknown or not value:
                raise CoercionError('expected a list of record ids, or {"add": [ids], "remove": [ids]}')
            add = _ids(value.get("add", []), "add")
            remove = _ids(value.get("remove", []), "remove")
            if both := set(add) & set(remove):
                raise CoercionError(f"id {min(both)} is both added and removed")
            return LinkChange(tuple(add), tuple(remove))
        if isinstance(value, str):
            return Links(_link_id(part) for part in re.split(r"[,;\s]+", value.strip()) if part)
        return Links(_ids(value, "the value"))

    def parse_text(self, text: str, field: Field) -> Any:
        return self.coerce(text, field)

    def to_json(self, value: Any, field: Field) -> Any:
        links = value if isinstance(value, Links) else Links(value or ())
        return [{"id": i, "title": links.title(i)} for i in links]

    def display(self, value: Any, field: Field) -> str:
        if not value:
            return ""
        links = value if isinstance(value, Links) else Links(value)
        return ", ".join(links.title(i) for i in links)

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "array", "items": {
            "type": "object", "required": ["id", "title"],
            "properties": {"id": {"type": "integer", "minimum": 1}, "title": {"type": "string"}}}}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        if field.settings.get("through"):
            return {"not": {}, "description": f"read-only: the links are {field.settings['through']} records"}
        record = {"type": "integer", "minimum": 1, "maximum": INT64}
        item = {"anyOf": [record, {"type": "object", "required": ["id"], "properties": {"id": record}}]}
        ids = {"type": "array", "items": record, "maxItems": MAX_LINKS, "uniqueItems": True}
        whole = {"type": "array", "items": item, "maxItems": MAX_LINKS,
                 **({"minItems": 1} if required else {})}
        change = {"type": "object", "additionalProperties": False, "minProperties": 1,
                  "properties": {"add": ids, "remove": ids},
                  "description": "links to add and to remove, the others kept"}
        return {"anyOf": [whole, change]}

    # --- HTML ------------------------------------------------------------------------
    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        return {"": [str(i) for i in (value or ())]}

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        if field.settings.get("through"):
            return None  # shown, never sent: its links are the link entity's records
        return [t for t in inputs("") if t.strip()]

    def link(self, value: Any, field: Field) -> str | None:
        return None

    def check_definition(self, field: Field) -> Any:
        if field.default is not None:
            yield ("default", "a many_to_many field has no default")
        if field.formula is not None or field.default_expression is not None:
            yield ("formula", "a many_to_many field cannot be computed")
