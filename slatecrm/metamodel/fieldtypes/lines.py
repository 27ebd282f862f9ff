"""`lines`: child records saved with their parent (line items of a quote, an order, an invoice).

A field stored apart (base.py `FieldType.stored_apart`): its values are records of another
entity, the *child* (`entity:`), whose reference `via` points to the parent and whose whole
number field `position` orders them. The parent's value is the ordered list of its lines,
each an object with the line's `id` and its fields. A write of the parent replaces the whole
list: lines with an `id` are changed (ids kept), lines without one are created, lines left
out are deleted. Each line is written through the child entity's own write pipeline
(coercion, defaults, formulas, validation, history, roll-ups), in the parent's transaction
(`ApartStore.writer`): one refused line refuses the whole document, and the parent's version
is the one version check of the document (its version moves when its lines change).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from .base import ApartStore, CoercionError, ColumnSpec, FieldType, FormInputs

if TYPE_CHECKING:
    from ..model import Entity, Field, Metamodel
    from .base import FieldTypeRegistry

#: Lines one value may hold at most.
MAX_LINES = 500
#: Rows an HTML form offers (its lines and blank rows for new ones; more through the API).
FORM_ROWS = 25
#: Blank rows a form adds after the lines there are.
BLANK_ROWS = 3
#: Child fields a line never shows (set by the engine or computed).
_SYSTEM_SET = ("rollup", "auto_number", "lines", "many_to_many")

Line = dict[str, Any]


class Lines(FieldType):
    """`type: lines` with `entity` (the child), optional `via` (the child's reference to this
    entity; found when it has exactly one) and `position` (its whole-number order field,
    default `position`)."""

    name = "lines"
    label = "Line items"
    settings_schema: ClassVar[Mapping[str, Any]] = {
        "entity": {"type": "string", "description": "the child entity of the lines"},
        "via": {"type": "string", "description": "the child's reference to this entity"},
        "position": {"type": "string", "description": "the child's whole-number field that orders the lines"},
    }
    required_settings = ("entity",)
    stored_apart = True
    computable = False
    sortable = False
    filterable = False
    searchable = False
    section = "related"
    widget_template = "widgets/lines.html"
    #: The rows a form holds (for the template).
    form_rows = FORM_ROWS
    value_template = "values/lines.html"

    # --- the definition -----------------------------------------------------------------------
    def child(self, field: Field) -> str:
        return str(field.settings.get("entity", ""))

    def via(self, field: Field) -> str:
        return str(field.settings.get("via", ""))

    def position(self, field: Field) -> str:
        return str(field.settings.get("position", "position"))

    def shown(self, field: Field) -> list[dict[str, str]]:
        """The child's fields a line shows and a form edits: [{name, label}]."""
        return list(field.settings.get("columns") or [])

    def complete(self, field: Field, entity: Entity, metamodel: Metamodel) -> Field:
        settings = {k: v for k, v in field.settings.items() if k != "columns"}
        child = metamodel.entity(str(settings.get("entity", "")))
        if child is not None:
            if "via" not in settings:
                refs = [f.name for f in child.active_fields if f.target == entity.name]
                if len(refs) == 1:
                    settings["via"] = refs[0]
            skip = {settings.get("via"), settings.get("position", "position")}
            settings["columns"] = [{"name": f.name, "label": f.label} for f in child.active_fields
                                   if f.name not in skip and f.formula is None and f.type not in _SYSTEM_SET]
        return replace(field, settings=settings)

    def check_in(self, field: Field, entity: Entity, metamodel: Metamodel,
                 registry: FieldTypeRegistry) -> Any:
        from ..names import suggest

        name = self.child(field)
        child = metamodel.entity(name)
        if child is None:
            known = [e.name for e in metamodel.active_entities]
            yield f"entity: {name!r} is not an entity{suggest(name, known)}"
            return
        if child.name == entity.name:
            yield "entity: the lines of a record are records of another entity"
            return
        refs = [f for f in child.active_fields if f.target == entity.name]
        given = field.settings.get("via")
        if given is None and len(refs) != 1:
            yield (f"via: {child.name} has {len(refs) or 'no'} reference(s) to {entity.name}; "
                   + ("name the one the lines hang by (via: <field>)" if refs else
                      f"add one (type: reference, target: {entity.name}, on_delete: cascade)"))
            return
        via = child.field(str(given)) if given is not None else refs[0]
        if via is None or via.target != entity.name:
            yield f"via: {child.name}.{given} is not a reference to {entity.name}"
            return
        if via.settings.get("on_delete") != "cascade":
            yield (f"via: {child.name}.{via.name} must have on_delete: cascade (deleting the "
                   f"{entity.name} deletes its lines)")
        position = child.field(self.position(field))
        if position is None or position.type != "integer":
            yield (f"position: {child.name} needs a whole-number field {self.position(field)!r} "
                   "that orders the lines (type: integer)")

    def columns(self, field: Field) -> list[ColumnSpec]:
        return []  # stored apart: the child entity's own records

    # --- values: a tuple of lines --------------------------------------------------------------
    def apart_blank(self, field: Field) -> Any:
        return ()


    def convert(self, value: Any, field: Field) -> Any:
        if isinstance(value, Mapping | str | bytes) or not isinstance(value, Sequence):
            raise CoercionError("give the lines as a list of objects ([{\"id\": 12, …}, {…}])")
        if len(value) > MAX_LINES:
            raise CoercionError(f"{len(value)} lines; a record holds at most {MAX_LINES}")
        lines: list[Line] = []
        seen: set[int] = set()
        for number, item in enumerate(value, start=1):
            if not isinstance(item, Mapping):
                raise CoercionError(f"line {number}: expected an object of the line's fields")
            line = dict(item)
            for key in (self.via(field), self.position(field)):
                if key in line:
                    raise CoercionError(f"line {number}: {key} is set by the order of the lines, not given")
            if line.get("id") is not None:
                line["id"] = _line_id(line["id"], number)
                if line["id"] in seen:
                    raise CoercionError(f"line {number}: line {line['id']} appears twice")
                seen.add(line["id"])
            else:
                line.pop("id", None)
            lines.append(line)
        return tuple(lines)

    def merge_apart(self, before: Any, given: Any, field: Field) -> Any:
        """A line with an id keeps the fields it does not give (so sending back what was read
        changes nothing); a line without one is new."""
        if given is None:
            return ()
        stored = {line["id"]: line for line in before or ()}
        return tuple({**stored[line["id"]], **line} if line.get("id") in stored else line for line in given)

    def to_json(self, value: Any, field: Field) -> Any:
        return [dict(line) for line in value or ()]

    def display(self, value: Any, field: Field) -> str:
        count = len(value or ())
        return f"{count} line{'s' if count != 1 else ''}"

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "array", "maxItems": MAX_LINES,
                "items": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}}}}

    def output_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "object", "required": ["id"],
                                           "properties": {"id": {"type": "integer"}}}}

    # --- stored apart: the child entity's records ------------------------------------------------
    def load_apart(self, store: ApartStore, field: Field, entity: str, ids: Sequence[int]) -> dict[int, Any]:
        child = store.entity(self.child(field))
        if child is None or not ids:
            return {}
        via, position = self.via(field), self.position(field)
        table = child.table
        rows = store.conn.execute(child.select.where(table.c[via].in_(list(ids))).order_by(
            table.c[via], table.c[position], table.c.id)).mappings()
        found: dict[int, list[Line]] = {}
        for row in rows:
            line = {"id": row["id"], **{name: f.to_json(f.from_row(row)) for name, f in child.fields.items()
                                        if name not in (via, position) and not f.type.stored_apart}}
            found.setdefault(row[via], []).append(line)
        return {parent: tuple(lines) for parent, lines in found.items()}

    def save_apart(self, store: ApartStore, field: Field, entity: str, record_id: int,
                   before: Any, after: Any) -> None:
        child, via, position = self.child(field), self.via(field), self.position(field)
        writer = store.writer()
        table = store.table(child)
        stored = {line["id"]: (index, line) for index, line in enumerate(before or ())}
        kept = {line["id"] for line in after or () if line.get("id") is not None}
        for gone in sorted(set(stored) - kept):
            _refused(lambda gone=gone: writer.delete(child, gone), f"line {stored[gone][0] + 1} (id {gone})")
        for index, line in enumerate(after or ()):
            where = f"line {index + 1}"
            data = {k: v for k, v in line.items() if k != "id"}
            if line.get("id") is None:
                _refused(lambda data=data, index=index: writer.create(
                    child, {**data, via: record_id, position: index + 1}), where)
                continue
            if line["id"] not in stored:
                raise CoercionError(f"{where}: id {line['id']} is not a line of this record")
            old_index, old = stored[line["id"]]
            changed = {k: v for k, v in data.items() if old.get(k) != v}
            if old_index != index:
                changed[position] = index + 1
            if changed:
                def update(line_id: int = line["id"], changed: dict[str, Any] = changed) -> None:
                    # The line's version as this transaction sees it: the parent's version is
                    # the document's one check (the parent's row is locked by its update).
                    version = store.conn.execute(sa.select(table.c.version).where(
                        table.c.id == line_id)).scalar_one()
                    writer.update(child, line_id, changed, version=version)
                _refused(update, where)

    # --- HTML: a table of rows, with blank rows for new lines (no JavaScript needed) ----------
    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        lines = list(value or ())
        rows = min(FORM_ROWS, len(lines) + BLANK_ROWS)
        out: dict[str, Any] = {"rows": str(rows)}
        for index in range(FORM_ROWS):
            line = lines[index] if index < len(lines) else {}
            out[f"{index}__id"] = str(line.get("id") or "")
            out[f"{index}__position"] = str(index + 1) if index < rows else ""
            out[f"{index}__remove"] = ""
            for column in self.shown(field):
                out[f"{index}__{column['name']}"] = _text(line.get(column["name"]))
        return out

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        rows: list[tuple[float, int, Line]] = []
        for index in range(FORM_ROWS):
            def one(suffix: str, index: int = index) -> str:
                texts = inputs(f"{index}__{suffix}")
                return texts[0].strip() if texts else ""
            line_id, values = one("id"), {c["name"]: one(c["name"]) for c in self.shown(field)}
            if one("remove") or (not line_id and not any(values.values())):
                continue
            line: Line = {"id": line_id} if line_id else {}
            line.update({name: text or None for name, text in values.items()})
            try:
                order = float(one("position") or index + 1)
            except ValueError:
                order = float(index + 1)
            rows.append((order, index, line))
        return [line for _, _, line in sorted(rows, key=lambda r: (r[0], r[1]))]


def _line_id(value: Any, number: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise CoercionError(f"line {number}: id must be a line's record id")
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise CoercionError(f"line {number}: {value!r} is not a line's record id")
    return int(text)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping) and "amount" in value:
        return f"{value['amount']} {value.get('currency') or ''}".strip()
    if isinstance(value, Mapping) and "id" in value:
        return str(value["id"])
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _refused(write: Any, where: str) -> None:
    """Run one line's write; a refusal (the child pipeline's, with its errors by field)
    becomes the lines field's, naming the line: the platform refuses the whole document."""
    try:
        write()
    except CoercionError:
        raise
    except Exception as error:
        errors = getattr(error, "errors", None)
        if not isinstance(errors, Mapping):
            if type(error).__module__.startswith("slatecrm"):
                raise CoercionError(f"{where}: {error}") from None
            raise
        messages = [f"{where}: {(name + ': ') if name else ''}{message}"
                    for name, found in errors.items() for message in found]
        raise CoercionError("; ".join(messages)) from None
