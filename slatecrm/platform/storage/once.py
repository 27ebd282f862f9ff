"""Values built once per key, on first use, by whichever thread asks first.

A revision's tables and compiled entities are many (hundreds of entities) and a request
needs a few of them, so each is built when first asked for rather than all before the
first request. Several request threads may ask for the same one at once: the first
builds it, the others wait for that one result (never a second build), and threads
asking for other keys are not held up, because each key has its own lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Once(Generic[K, V]):
    """A cache whose every entry is built by exactly one call of its `build`."""

    def __init__(self) -> None:
        self._values: dict[K, V] = {}
        self._locks: dict[K, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: K, build: Callable[[], V]) -> V:
        try:
            return self._values[key]
        except KeyError:
            pass
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                self._values[key] = build()
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values


class LazyMapping(Mapping[K, V]):
    """A read-only mapping whose keys are known up front and whose values are built by
    `build(key)` when first looked up (iterating keys, `in` and `len` build nothing;
    `values()` and `items()` build every value)."""

    def __init__(self, keys: Iterable[K], build: Callable[[K], V]):
        self._keys = dict.fromkeys(keys)
        self._build = build
        self._once: Once[K, V] = Once()

    def __getitem__(self, key: K) -> V:
        if key not in self._keys:
            raise KeyError(key)
        return self._once.get(key, lambda: self._build(key))

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[K]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def is_built(self, key: K) -> bool:
        """Whether `key`'s value has been built (what laziness is tested by)."""
        return key in self._once
