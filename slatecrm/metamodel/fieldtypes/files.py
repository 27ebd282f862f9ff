"""Uploaded files as field values: `file` (one), `files` (attachments, several) and `image`.

The bytes live in a storage backend and their metadata in the platform's file table
(platform/files/); a field keeps, per file, its id in that table and, beside it, the
file's name and detected content type (companion columns), so that lists, record pages,
CSV exports and rules show and test the name without a look-up. Those two are copies
the records service writes from the file table when a file is attached; a client only
ever gives ids (an upload's id), never a name or a type the platform would believe.

Values (Python and JSON): a file is `{"id": 12, "name": "offer.pdf", "content_type":
"application/pdf"}`; `files` is a list of them, in the order given. A client writes a
file by its id (a number, or an object with `id`).

Rules read a `file` or `image` as its file name (text: `is blank`, `ends_with ".pdf"`)
and `files` as the list of its file names (`is blank`, `contains "offer.pdf"`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from ..rules.types import TEXT, TEXT_LIST, Type
from .base import CoercionError, ColumnSpec, FieldType, FormInputs
from .sqltypes import json_list, record_id

if TYPE_CHECKING:
    from ..model import Field

INT64 = 2**63 - 1
#: A content type or a family of them (`image/*`), as `accept` lists them.
MEDIA_RANGE = r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/(\*|[a-z0-9][a-z0-9!#$&^_.+-]{0,126})$"
#: What an `image` field accepts when its definition names nothing: raster images
#: Pillow reads and browsers show (SVG is not one: it can carry scripts).
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
#: The largest `max_size` a definition may give (the deployment's own cap applies as well).
MAX_SIZE_LIMIT = 2**40

_FILE_SETTINGS: dict[str, Any] = {
    "max_size": {"type": "integer", "minimum": 1, "maximum": MAX_SIZE_LIMIT,
                 "description": "the largest file, in bytes (the deployment's SLATECRM_MAX_UPLOAD_BYTES "
                                "caps every upload as well)"},
    "accept": {"type": "array", "minItems": 1, "uniqueItems": True,
               "items": {"type": "string", "pattern": MEDIA_RANGE},
               "description": "content types allowed (`application/pdf`, `image/*`), detected from "
                              "the file's content, not its name"},
}


def accepts(accept: Sequence[str], content_type: str) -> bool:
    """Whether `content_type` is one of `accept` (`image/*` takes every image type)."""
    family = content_type.split("/", 1)[0] + "/*"
    return content_type in accept or family in accept


def _file_id(value: Any) -> int:
    if isinstance(value, Mapping) and "id" in value:
        value = value["id"]
    if isinstance(value, bool):
        raise CoercionError("expected a file id, got true/false")
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or value <= 0 or value > INT64:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
        raise CoercionError(f"{shown} is not a file id (upload the file first: POST /api/v1/_files)")
    return value


def file_value(file_id: int, name: str | None, content_type: str | None) -> dict[str, Any]:
    """One file as a field holds it."""
    return {"id": file_id, "name": name, "content_type": content_type}


def _stored(value: Any) -> dict[str, Any]:
    """A file as the platform hands it over (a stored value, a retype's): id and name both."""
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise CoercionError(f"expected a stored file (id and name), got {_kind(value)}")
    content_type = value.get("content_type")
    return file_value(_file_id(value), value["name"], content_type if isinstance(content_type, str) else None)


class File(FieldType):
    """One uploaded file: its id, with its name and content type beside it."""

    name = "file"
    label = "File"
    settings_schema = _FILE_SETTINGS
    computable = False
    widget_template = "widgets/file.html"
    value_template = "values/file.html"
    searchable = False
    sortable = True
    filterable = False
    section = "details"
    list_rank: ClassVar[int | None] = None
    holds_files = True

    # --- what the platform asks about stored files -------------------------------------------
    def file_ids(self, value: Any, field: Field) -> list[int]:
        """The ids of the files a (coerced) value holds, in order."""
        return [] if value is None else [value["id"]]

    def with_files(self, value: Any, files: Mapping[int, Mapping[str, Any]], field: Field) -> Any:
        """`value` with each file's name and type from `files` (by id: the file table's rows)."""
        if value is None:
            return None
        found = files[value["id"]]
        return file_value(value["id"], found["name"], found["content_type"])

    def accept(self, field: Field) -> tuple[str, ...]:
        """The content types the field takes; () for any."""
        return tuple(field.settings.get("accept", ()))

    def max_size(self, field: Field) -> int | None:
        size = field.settings.get("max_size")
        return int(size) if size is not None else None

    def check_file(self, info: Mapping[str, Any], field: Field) -> str | None:
        """Why an uploaded file (its row: size, content_type, image) may not be this field's
        value, or None."""
        limit = self.max_size(field)
        if limit is not None and info["size"] > limit:
            return f"{info['name']} is {info['size']:,} bytes; at most {limit:,} are allowed"
        accept = self.accept(field)
        if accept and not accepts(accept, info["content_type"]):
            return f"{info['name']} is {info['content_type']}; allowed: {', '.join(accept)}"
        return None

    # --- storage --------------------------------------------------------------------------------
    def columns(self, field: Field) -> list[ColumnSpec]:
        return [ColumnSpec("", sa.String()), ColumnSpec("id", record_id()), ColumnSpec("type", sa.String())]

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String()

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        if value is None:
            return {"": None, "id": None, "type": None}
        return {"": value["name"], "id": value["id"], "type": value["content_type"]}

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        if values.get("id") is None:
            return None
        return file_value(int(values["id"]), values.get(""), values.get("type"))

    # --- values -----------------------------------------------------------------------------------
    def coerce(self, value: Any, field: Field) -> Any:
        """Values the platform converts (a stored value, a retype's): a file with its name. A
        bare number is not a file, so an integer field is not retyped into dangling files."""
        if value is None or value == [] or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, list | tuple):
            if len(value) != 1:
                raise CoercionError(f"holds {len(value)} files; a {self.name} field holds one")
            value = value[0]
        return self.check_value(_stored(value), field)

    def check_value(self, value: dict[str, Any], field: Field) -> dict[str, Any]:
        return value

    def coerce_given(self, value: Any, field: Field) -> Any:
        """What a client sends: a file id (an upload's), or an object with `id` (a value as
        read: its name and type are ignored, the file table's are kept)."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, list | tuple):
            raise CoercionError(f"expected one file id, got {_kind(value)}")
        if not isinstance(value, int | str | Mapping):
            raise CoercionError(f"expected a file id, got {_kind(value)}")
        return file_value(_file_id(value), None, None)

    def parse_text(self, text: str, field: Field) -> Any:
        return self.coerce_given(text, field)

    def to_json(self, value: Any, field: Field) -> Any:
        return None if value is None else dict(value)

    def display(self, value: Any, field: Field) -> str:
        if value is None:
            return ""
        return str(value.get("name") or f"file {value['id']}")

    def link(self, value: Any, field: Field) -> str | None:
        return None if value is None else f"/files/{value['id']}"

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "object", "required": ["id", "name", "content_type"], "properties": {
            "id": {"type": "integer", "minimum": 1},
            "name": {"type": "string"},
            "content_type": {"type": ["string", "null"]}}}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        file_id = {"type": "integer", "minimum": 1, "maximum": INT64,
                   "description": "the id of an uploaded file (POST /api/v1/_files)"}
        return {"anyOf": [file_id, {"type": "object", "required": ["id"], "properties": {"id": file_id}}]}

    def filter_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": INT64}

    # --- HTML -------------------------------------------------------------------------------
    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        """"" is the file input (the web layer puts the id of what was uploaded in its place),
        `keep` the stored file's id, `remove` a check box that clears it."""
        return {"": "", "keep": "" if value is None else str(value["id"]), "remove": ""}

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        uploaded, keep = inputs(""), inputs("keep")
        if uploaded:
            return uploaded[-1]
        if inputs("remove"):
            return None
        return keep[0] if keep else None

    # --- lists and rules ----------------------------------------------------------------------
    def sort_columns(self, field: Field) -> tuple[str, ...]:
        return ("",)

    def rule_type(self, field: Field) -> Type | None:
        return TEXT

    def rule_value(self, value: Any, field: Field) -> Any:
        return None if value is None else value.get("name")

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        if field.default is not None:
            yield "default", f"a {self.name} field has no default: its values are uploaded files"
        if field.unique:
            yield "unique", f"a {self.name} field cannot be unique"


class Image(File):
    """One uploaded image (PNG, JPEG, GIF or WebP unless `accept` says otherwise): checked
    to be one when uploaded, shown as a thumbnail."""

    name = "image"
    label = "Image"
    widget_template = "widgets/image.html"
    value_template = "values/image.html"

    def accept(self, field: Field) -> tuple[str, ...]:
        return tuple(field.settings.get("accept", IMAGE_TYPES))

    def check_file(self, info: Mapping[str, Any], field: Field) -> str | None:
        if not info.get("image"):
            return f"{info['name']} is not an image ({info['content_type']})"
        return super().check_file(info, field)

    def check_value(self, value: dict[str, Any], field: Field) -> dict[str, Any]:
        content_type = value.get("content_type") or ""
        if not content_type.startswith("image/"):
            raise CoercionError(f"{value['name']} is not an image ({content_type or 'unknown type'})")
        return value

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        yield from super().check_definition(field)
        for index, item in enumerate(field.settings.get("accept", ())):
            if not str(item).startswith("image/") or str(item) == "image/svg+xml":
                yield f"accept[{index}]", (f"{item!r} is not a raster image type: an image field takes "
                                           f"image types such as {', '.join(IMAGE_TYPES)}")


class Files(File):
    """Several uploaded files (attachments), in the order given."""

    name = "files"
    label = "Files"
    settings_schema = {**_FILE_SETTINGS, "max_items": {"type": "integer", "minimum": 1, "maximum": 1000}}
    constraint_settings = ("max_items",)
    widget_template = "widgets/files.html"
    value_template = "values/files.html"
    sortable = False
    section = "notes"

    def file_ids(self, value: Any, field: Field) -> list[int]:
        return [item["id"] for item in value or ()]

    def with_files(self, value: Any, files: Mapping[int, Mapping[str, Any]], field: Field) -> Any:
        if not value:
            return None
        return [file_value(item["id"], files[item["id"]]["name"], files[item["id"]]["content_type"])
                for item in value]

    def columns(self, field: Field) -> list[ColumnSpec]:
        # The companions have a file's suffixes (lists here), so a retype file ⇄ files keeps them.
        return [ColumnSpec("", json_list()), ColumnSpec("id", json_list()), ColumnSpec("type", json_list())]

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return json_list()

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        if not value:
            return {"": None, "id": None, "type": None}
        return {"": [item["name"] for item in value], "id": [item["id"] for item in value],
                "type": [item["content_type"] for item in value]}

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        ids = values.get("id")
        if not ids:
            return None
        names = list(values.get("") or [])
        types = list(values.get("type") or [])
        return [file_value(int(file_id), names[i] if i < len(names) else None,
                           types[i] if i < len(types) else None) for i, file_id in enumerate(ids)]

    def _limited(self, items: list[dict[str, Any]], field: Field) -> Any:
        limit = field.settings.get("max_items")
        if limit is not None and len(items) > limit:
            raise CoercionError(f"has {len(items)} files; at most {limit} are allowed")
        return items or None

    def coerce(self, value: Any, field: Field) -> Any:
        if value is None or value == [] or (isinstance(value, str) and not value.strip()):
            return None
        items = value if isinstance(value, list | tuple) else [value]
        files: list[dict[str, Any]] = []
        for item in items:
            stored = _stored(item)
            if stored["id"] not in [f["id"] for f in files]:
                files.append(stored)
        return self._limited(files, field)

    def coerce_given(self, value: Any, field: Field) -> Any:
        if value is None or value == [] or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            value = [part for part in re.split(r"[;,]", value) if part.strip()]
        if not isinstance(value, list | tuple):
            raise CoercionError(f"expected a list of file ids, got {_kind(value)}")
        files: list[dict[str, Any]] = []
        for item in value:
            if not isinstance(item, int | str | Mapping):
                raise CoercionError(f"expected a file id, got {_kind(item)}")
            file_id = _file_id(item)
            if file_id not in [f["id"] for f in files]:
                files.append(file_value(file_id, None, None))
        return self._limited(files, field)

    def to_json(self, value: Any, field: Field) -> Any:
        return None if value is None else [dict(item) for item in value]

    def display(self, value: Any, field: Field) -> str:
        return ", ".join(str(item.get("name") or f"file {item['id']}") for item in value or ())

    def link(self, value: Any, field: Field) -> str | None:
        return None

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "array", "items": super().value_schema(field)}

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": super().input_schema(field, required=True)}
        if required:
            schema["minItems"] = 1
        if "max_items" in field.settings:
            schema["maxItems"] = field.settings["max_items"]
        return schema

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        """"" is the file input (several files; the web layer puts the ids of what was
        uploaded in its place), `keep` one check box per stored file, checked."""
        return {"": [], "keep": [str(item["id"]) for item in value or ()]}

    def read_form(self, inputs: FormInputs, field: Field) -> Any:
        ids = [*inputs("keep"), *inputs("")]
        return ids or None

    def rule_type(self, field: Field) -> Type | None:
        return TEXT_LIST

    def rule_value(self, value: Any, field: Field) -> Any:
        return [item.get("name") for item in value] if value else None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


FILE_TYPES: tuple[FieldType, ...] = (File(), Files(), Image())
