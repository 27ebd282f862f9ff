"""Bounded dicts of things built once and used again (statements, filters, shapes).

What the read path keeps per user or per shape of query must not grow with the users or
queries a long-lived process has seen: past `most` entries, the oldest goes (dicts keep
their insertion order), which is enough for caches whose entries cost a fraction of a
millisecond to rebuild.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypeVar

T = TypeVar("T")


def keep(store: dict[Any, Any], key: Hashable, value: T, most: int) -> T:
    """`value`, kept in `store` under `key`, the oldest entry dropped when `store` is full."""
    if len(store) >= most:
        store.pop(next(iter(store), key), None)
    store[key] = value
    return value
