"""Collection settings kept between calls, for as long as they can be trusted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from .types import CollectionSpec

# How long collection settings read from a Qdrant server are used before they are read
# again. Other clients (other embedserve replicas, other tools) may re-create or change a
# collection there and nothing tells this process; a few seconds bounds how long it works
# from stale settings, at the cost of one settings read per collection per period.
SETTINGS_TTL_S: Final = 5.0


class SpecCache:
    """Collection settings by the name they were asked under (a collection's or an
    alias's), each kept for ``ttl_s`` seconds, or until dropped where ``ttl_s`` is None
    (a store that only this process changes). Safe to share between threads."""

    def __init__(self, ttl_s: float | None, clock: Callable[[], float] = time.monotonic):
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[CollectionSpec, float]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CollectionSpec | None:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                return None
            spec, read_at = entry
            if self._ttl_s is not None and self._clock() - read_at >= self._ttl_s:
                del self._entries[name]
                return None
            return spec

    def put(self, name: str, spec: CollectionSpec) -> None:
        with self._lock:
            self._entries[name] = (spec, self._clock())

    def drop(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
