"""The three-way merge of the organisation's definitions by name: its roles, user attributes,
workflows, views and layouts that replace a pack's of the same name (customisation.py).

A replacement is a whole document: the organisation's view holds every key of the pack's
view it copied, the columns it changed and the filter it did not touch alike. Compared as
one thing, a new version that changed the filter would either silently lose (the
organisation's copy keeps the old filter) or force a conflict on a key nobody customised.
So each top-level key of the replacement is a leaf, compared with the pack's own document
of that name in the installed version (base) and in the new one, as written in the pack:

- the organisation did not change the key, the new version did: the new version's value is
  taken into the replacement (an *adoption*, listed with what is kept);
- the organisation changed it, the new version did not: kept;
- both changed it, differently: a conflict, resolved `new` (the new version's value is
  written into the replacement) or `mine`.

Where there is no pack document to compare with key by key (the organisation's definition
meets a name the new version now defines, or replaces one the new version removes), the
replacement is one leaf, as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

from slatecrm.metamodel.packs import MANIFEST, Pack
from slatecrm.metamodel.yamlsource import SourceDocument, parse_yaml

from .layers import Documents

#: Documents that replace a pack's definition of the same name, as a whole.
NAMED_KINDS = ("role", "user_attribute", "workflow", "view", "layout")
#: Keys that say what a document is, not what it defines: never a leaf of their own.
IDENTITY = ("kind", "name")


def pack_documents(pack: Pack | None) -> Documents:
    """The definitions by name of `pack` as written in its files, keyed (kind, name) like
    the organisation's documents (a layout's name is its entity's when not given)."""
    return dict(_documents(pack)) if pack is not None else {}


@lru_cache(maxsize=32)
def _cached(files: tuple[tuple[str, str], ...]) -> tuple[tuple[tuple[str, str], dict[str, Any]], ...]:
    found = []
    for path, text in files:
        if path == MANIFEST or not PurePosixPath(path).name.endswith((".yaml", ".yml")):
            continue
        source = parse_yaml(text, path)
        if not isinstance(source, SourceDocument) or not isinstance(source.data, dict):
            continue  # the pack was read already: it cannot be malformed here
        data = source.data
        kind = data.get("kind")
        name = data.get("name") or (data.get("entity") if kind == "layout" else None)
        if kind in NAMED_KINDS and isinstance(name, str):
            found.append(((str(kind), name), data))
    return tuple(found)


def _documents(pack: Pack) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
    return iter(_cached(tuple(sorted(pack.files.items()))))


def changed_keys(base: Mapping[str, Any], new: Mapping[str, Any], mine: Mapping[str, Any],
                 absent: object) -> Iterator[tuple[str, Any, Any, Any]]:
    """(key, base, new, mine) for each top-level key that the organisation or the new
    version changed; `absent` stands for a key a document does not give."""
    for key in sorted({*base, *new, *mine} - set(IDENTITY)):
        values = (base.get(key, absent), new.get(key, absent), mine.get(key, absent))
        if values[1] != values[0] or values[2] != values[0]:
            yield key, *values


#: Steps into a list: the item equal to a name, and the item at an index (threeway.Step).
ITEM, INDEX = "=", "#"
#: A view's keys naming one field each, and those listing fields (`-name`: descending).
VIEW_FIELD = ("totals", "field", "end_field", "duration_field")
VIEW_FIELDS = ("columns", "card_fields", "sort")


def named_in(rule: str, names: set[str]) -> list[str]:
    """The names of `names` that `rule` uses as words (a field it reads)."""
    return sorted(n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}\b", rule))


def field_uses(kind: str, document: Mapping[str, Any],
               removed: set[str]) -> Iterator[tuple[tuple[Any, ...], str, str]]:
    """Where a view or layout of the organisation names a field of `removed`: (steps to the
    list item naming it, or () when only the whole document can go; the key; the field)."""
    def listed(steps: tuple[Any, ...], names: Any, key: str) -> Iterator[tuple[tuple[Any, ...], str, str]]:
        for item in names if isinstance(names, list) else ():
            if str(item).lstrip("-") in removed:
                yield (*steps, (ITEM, item)), key, str(item).lstrip("-")

    if kind == "view":
        for key in VIEW_FIELDS:
            yield from listed((key,), document.get(key), key)
        for key in VIEW_FIELD:
            if document.get(key) in removed:
                yield (), key, str(document[key])
        for name in named_in(str(document.get("filter") or ""), removed):
            yield (), "filter", name
    elif kind == "layout":
        top = "tabs" if "tabs" in document else "sections"
        tabs = document.get("tabs") or [{"sections": document.get("sections") or []}]
        for t, tab in enumerate(tabs):
            where: tuple[Any, ...] = ("tabs", (INDEX, str(t))) if top == "tabs" else ()
            for s, section in enumerate(tab.get("sections") or []):
                yield from listed((*where, "sections", (INDEX, str(s)), "fields"), section.get("fields"), top)
        yield from listed(("compact", "fields"), (document.get("compact") or {}).get("fields"), "compact")
