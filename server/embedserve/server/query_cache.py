"""The pooled vectors of short windows computed lately, so that a text asked for again (a
search's next page, a popular query) skips the queue and the model.

Only short windows of the interactive lane are kept (queries, not documents written: a
document's text rarely comes twice, and its key would be long). A window's key is what
the model reads (its token ids, prompt included) and how it is pooled, so a different
prompt, cut or pooling is another entry; the vector is the model's own output for it,
normalised and truncated afterwards per request as a fresh one is. Used on the event
loop only, so it needs no lock.
"""

from __future__ import annotations

import collections
import dataclasses

from embedserve.server.metrics import Metrics
from embedserve.server.model_spec import PoolingMode
from embedserve.server.windows import FloatArray, Window

_Key = tuple[tuple[int, ...], int, PoolingMode]


@dataclasses.dataclass(frozen=True)
class QueryCacheSettings:
    """The query-cache section of the settings."""

    query_cache_size: int = 0  # windows kept, least recently used out first; 0: off
    query_cache_max_tokens: int = 64  # only windows of at most this many tokens


class QueryCache:
    def __init__(self, settings: QueryCacheSettings, metrics: Metrics | None = None) -> None:
        self._size = settings.query_cache_size
        self._max_tokens = settings.query_cache_max_tokens
        self._metrics = metrics
        self._vectors: collections.OrderedDict[_Key, FloatArray] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._vectors)

    def _key(self, window: Window) -> _Key | None:
        if not self._size or window.pooling is None or len(window.ids) > self._max_tokens:
            return None
        return window.ids, window.pool_start, window.pooling

    def get(self, window: Window) -> FloatArray | None:
        key = self._key(window)
        if key is None:
            return None
        vector = self._vectors.get(key)
        if vector is not None:
            self._vectors.move_to_end(key)
        if self._metrics is not None:
            metrics = self._metrics
            (metrics.query_cache_misses if vector is None else metrics.query_cache_hits).inc()
        return vector

    def put(self, window: Window, vector: FloatArray) -> None:
        key = self._key(window)
        if key is None:
            return
        kept = vector.copy()
        kept.setflags(write=False)  # shared by every later request of the text
        self._vectors[key] = kept
        self._vectors.move_to_end(key)
        while len(self._vectors) > self._size:
            self._vectors.popitem(last=False)
