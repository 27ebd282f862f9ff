"""What every page of the UI shares: the navigation built from the metamodel, and the
helpers templates use to show a value of any field type."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from slatecrm.metamodel.model import Entity

from ..records.compiled import CompiledEntity, CompiledField
from ..records.service import Record
from . import widgets
from .calendar_spec import date_fields
from .pinning import records_of

#: Link schemes a URL field may become a link with; anything else is shown as text.
SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tel"})


@dataclass(frozen=True)
class NavEntity:
    name: str
    label: str
    label_plural: str
    boards: list[tuple[str, str]]


@dataclass(frozen=True)
class NavGroup:
    pack: str
    title: str
    entities: list[NavEntity]


def pack_title(pack: str) -> str:
    if not pack:
        return "Custom"
    words = pack.replace("_", "-").split("-")
    return " ".join(w.upper() if len(w) <= 3 else w.capitalize() for w in words)


def navigation(entities: Iterable[Entity]) -> list[NavGroup]:
    """Entities grouped by the pack that defines them, in install order. Read from the
    metamodel, not the compiled entities, so a page compiles only the entities it shows."""
    groups: dict[str, list[NavEntity]] = {}
    for entity in entities:
        boards = [(p.name, p.label) for p in entity.pipelines]
        groups.setdefault(entity.pack, []).append(
            NavEntity(entity.name, entity.label, entity.label_plural, boards))
    return [NavGroup(pack, pack_title(pack), items) for pack, items in groups.items()]


async def base_context(request: Request, *, entity: str | None = None, title: str = "") -> dict[str, Any]:
    records = records_of(request)
    snapshot = await run_in_threadpool(records.snapshot)
    return {"nav": navigation(snapshot.metamodel.active_entities), "current_entity": entity,
            "page_title": title, "search_text": "", "ui": UI}


def field_display(compiled: CompiledField, record: Record) -> str:
    value = record.values.get(compiled.name)
    if compiled.type.links_records or compiled.type.links_users:
        return record.titles.get(compiled.name, "") if value is not None else ""
    return compiled.type.display(value, compiled.field)


def safe_link(text: str) -> str | None:
    """A URL safe to put in href, or None (javascript:, data: and friends stay text)."""
    scheme = urlsplit(text.strip()).scheme.lower()
    return text.strip() if scheme in SAFE_SCHEMES else None


def link_of(compiled: CompiledField, record: Record) -> str | None:
    """Where a shown value links to, as its type says (the record a reference points to,
    an e-mail, a URL); only a page of this site or a safe scheme becomes a link."""
    value = record.values.get(compiled.name)
    if value is None:
        return None
    href = compiled.type.link(value, compiled.field)
    if href is None:
        return None
    on_site = href.startswith("/") and not href.startswith("//")
    return href if on_site else safe_link(href)


def colour_of(compiled: CompiledField, record: Record) -> str | None:
    """The colour a value is marked with, as its type says (a choice's option colour), if
    it is a hex colour: it goes into a style attribute."""
    colour = compiled.type.colour(record.values.get(compiled.name), compiled.field)
    return colour if colour and _hex_colour(colour) else None


def _hex_colour(text: str) -> bool:
    return len(text) in (4, 7) and text.startswith("#") and all(c in "0123456789abcdefABCDEF"
                                                                 for c in text[1:])


def history_value(ce: CompiledEntity, name: str, value: Any,
                  titles: Mapping[str, Mapping[int, str]] | None = None) -> str:
    """A value as history stored it (JSON), shown the way the field shows values: a
    reference by the title of the record it points to (`titles`, by entity and id, as
    the record page read them), or `#id` when that record is gone or not visible."""
    compiled = ce.fields.get(name)
    if value is None:
        return ""
    if compiled is None:
        return str(value)
    if compiled.type.links_records and compiled.field.target:
        known = (titles or {}).get(compiled.field.target, {})
        return (known.get(value) if isinstance(value, int) else None) or f"#{value}"
    try:
        return compiled.type.display(compiled.type.coerce(value, compiled.field), compiled.field)
    except (ValueError, TypeError, KeyError):
        return str(value)


def query_with(request: Request, **changes: Any) -> str:
    """The current query string with some parameters changed (None removes one)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in changes and v != ""]
    params += [(k, str(v)) for k, v in changes.items() if v is not None and v != ""]
    return "?" + urlencode(params) if params else "?"


def when(moment: Any) -> str:
    if isinstance(moment, dt.datetime):
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "" if moment is None else str(moment)


def pointing(compiled: CompiledField, entity: str, record_id: int) -> str:
    """The value of `compiled` (a reference) pointing to `record_id` of `entity`, as a list
    filter and a new record's form read it: the id, or `entity:id` for a polymorphic one."""
    return compiled.type.reference_text(entity, record_id, compiled.field)


class UI:
    """Helpers handed to every template (as `ui`)."""

    pointing = staticmethod(pointing)
    display = staticmethod(field_display)
    link = staticmethod(link_of)
    colour = staticmethod(colour_of)
    widget = staticmethod(widgets.widget)
    value_template = staticmethod(lambda compiled: compiled.type.value_template)
    input_names = staticmethod(lambda compiled: list(widgets.raw_inputs(compiled, None)))
    widget_scripts = staticmethod(widgets.widget_scripts)
    when = staticmethod(when)
    query_with = staticmethod(query_with)
    history_value = staticmethod(history_value)
    safe_colour = staticmethod(_hex_colour)
    calendar_fields = staticmethod(date_fields)
