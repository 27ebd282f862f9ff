"""Definitions merged across packs by name: roles, user attributes, workflows.

The organisation's layer may replace a pack's definition of the same name (that is what the
layer is for: the organisation's own version of a pack's role or workflow). A pack may not:
two packs giving one name two meanings would make one of them act on the other's definition,
depending on the order they were installed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, TypeVar

from .errors import Location, Problem

#: The organisation's layer (platform/layers.py ORGANISATION).
ORGANISATION_LAYER = "organisation"


class Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def pack(self) -> str: ...

    @property
    def source(self) -> Location: ...


T = TypeVar("T", bound=Named)


def merged_by_name(packs: Iterable[tuple[str, str, Sequence[T]]], what: str,
                   problems: list[Problem]) -> Iterator[tuple[str, str, T]]:
    """Each definition of `packs` ((pack, origin, definitions), in dependency order) that
    takes its name, with its pack and origin; a pack's second use of a name is a problem
    (`what`: "role", "workflow"…) added to `problems`, the organisation's replaces."""
    taken: dict[str, T] = {}
    for pack, origin, definitions in packs:
        for definition in definitions:
            first = taken.get(definition.name)
            if first is not None and pack != ORGANISATION_LAYER:
                problems.append(Problem(
                    f"{what} {definition.name!r} is already defined by pack {first.pack!r} "
                    f"({first.source}); give this one another name (the organisation may replace a "
                    f"pack's {what}, a pack may not)", definition.source, origin))
                continue
            taken[definition.name] = definition
            yield pack, origin, definition
