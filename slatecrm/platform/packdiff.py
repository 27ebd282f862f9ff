"""What differs between two packs, or two metamodels: `slatecrm pack diff`, and the
round-trip check of `pack export`.

Both sides are first brought to one comparable shape (`pack_shape`, `metamodel_shape`):
the storage form of the definitions (model.py's as_dict), without where each one was
written (file positions) nor which pack it came from, and with every list of named things
(entities, fields, pipelines, stages, choice options, roles, workflows) made a mapping by
name. Comparing two shapes then needs no knowledge of the metamodel's kinds: a member of
a named collection is added or removed, any other key is an attribute that changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.packs import Pack

#: Keys that say where or by whom a definition was written, not what it is (and any key
#: ending in _source or _sources).
PROVENANCE = frozenset({"source", "locations", "option_sources", "rule_sources", "condition_source",
                        "field_source", "pack", "extended_by", "format", "packs"})
#: Collections of named things, with the kind of their members (for people).
COLLECTIONS: Mapping[str, str] = {
    "entities": "entity", "extensions": "extension", "fields": "field", "field_overrides": "field",
    "pipelines": "pipeline", "stages": "stage", "choices": "option", "options": "option",
    "roles": "role", "workflows": "workflow", "user_attributes": "user attribute",
}
_MISSING = object()


@dataclass(frozen=True)
class Difference:
    change: str  # added, removed, changed
    kind: str
    #: Names from the top down (entity, field…), without the collections' keys.
    name: str
    #: The full path in the shape: collection keys and names.
    path: tuple[str, ...]
    attribute: str | None = None
    before: Any = None
    after: Any = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"change": self.change, "kind": self.kind, "name": self.name,
                                "path": list(self.path)}
        if self.change == "changed":
            data.update(attribute=self.attribute, before=self.before, after=self.after)
        return data

    def text(self) -> str:
        mark = {"added": "+", "removed": "-", "changed": "~"}[self.change]
        where = f" {self.name}" if self.name else ""
        extension = " (extension)" if self.path[:1] == ("extensions",) and self.kind != "extension" else ""
        if self.change != "changed":
            return f"{mark} {self.kind}{where}{extension}"
        return (f"{mark} {self.kind}{where}{extension}: {self.attribute}: {_short(self.before)} → "
                f"{_short(self.after)}")


def _short(value: Any) -> str:
    if value is _MISSING or value is None:
        return "(none)"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def normalised(value: Any) -> Any:
    """`value` without provenance keys, its lists of named things made mappings by name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): normalised(v) for k, v in value.items()
                if k not in PROVENANCE and not str(k).endswith(("_source", "_sources"))}
    if isinstance(value, list | tuple):
        items = [normalised(v) for v in value]
        keyed = [_name_of(v) for v in items]
        if items and all(k is not None for k in keyed) and len(set(keyed)) == len(keyed):
            return {str(k): v for k, v in zip(keyed, items, strict=True)}
        return items
    return value


def _name_of(value: Any) -> str | None:
    if isinstance(value, Mapping):
        for key in ("name", "key", "field", "entity"):
            if isinstance(value.get(key), str):
                return str(value[key])
        if isinstance(value.get("stage"), Mapping):  # a stage an extension adds
            return _name_of(value["stage"])
    return None


def pack_shape(pack: Pack) -> dict[str, Any]:
    """What a pack defines, comparable with another version of it."""
    model = Metamodel(entities=pack.entities, roles=pack.roles, user_attributes=pack.user_attributes,
                      workflows=pack.workflows).as_dict()
    manifest = pack.manifest
    shape = normalised({
        "version": manifest.version, "title": manifest.title, "description": manifest.description,
        "requires": {r.pack: r.range for r in manifest.requires},
        "entities": model["entities"], "extensions": list(pack.extensions), "roles": model["roles"],
        "user_attributes": model["user_attributes"], "workflows": model["workflows"],
    })
    assert isinstance(shape, dict)
    return shape


def metamodel_shape(metamodel: Metamodel, *, retired: bool = False) -> dict[str, Any]:
    """An effective metamodel, comparable with another database's (without retired entities
    and fields unless `retired`)."""
    data = metamodel.as_dict()
    if not retired:
        data["entities"] = [{**e, "fields": [f for f in e["fields"] if not f.get("retired")]}
                            for e in data["entities"] if not e.get("retired")]
    shape = normalised(data)
    assert isinstance(shape, dict)
    return shape


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Difference]:
    """Every difference of two shapes, from the top down."""
    found: list[Difference] = []
    _walk(before, after, (), (), "pack", found)
    return found


def _walk(before: Mapping[str, Any], after: Mapping[str, Any], path: tuple[str, ...],
          names: tuple[str, ...], kind: str, found: list[Difference]) -> None:
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key, _MISSING), after.get(key, _MISSING)
        collection = COLLECTIONS.get(key)
        if collection is not None:  # an empty collection is an empty list in the storage form
            old, new = ({} if v == [] else v for v in (old, new))
        if collection is not None and all(v is _MISSING or isinstance(v, Mapping) for v in (old, new)):
            olds = old if isinstance(old, Mapping) else {}
            news = new if isinstance(new, Mapping) else {}
            kept = [m for m in olds if m in news]
            if kept != [m for m in news if m in olds]:  # the same members in another order
                found.append(Difference("changed", kind, ".".join(names), (*path, key), f"{key} order",
                                        kept, [m for m in news if m in olds]))
            for member in [*olds, *(m for m in news if m not in olds)]:
                where, called = (*path, key, member), ".".join((*names, member))
                if member not in news:
                    found.append(Difference("removed", collection, called, where))
                elif member not in olds:
                    found.append(Difference("added", collection, called, where))
                elif isinstance(olds[member], Mapping) and isinstance(news[member], Mapping):
                    _walk(olds[member], news[member], where, (*names, member), collection, found)
                elif olds[member] != news[member]:
                    found.append(Difference("changed", collection, called, where, "value",
                                            olds[member], news[member]))
        elif old != new:
            found.append(Difference("changed", kind, ".".join(names), (*path, key), key,
                                    None if old is _MISSING else old, None if new is _MISSING else new))


def summary(found: Sequence[Difference]) -> dict[str, int]:
    counts = {"added": 0, "removed": 0, "changed": 0}
    for difference in found:
        counts[difference.change] += 1
    return counts
