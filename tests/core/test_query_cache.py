"""The query cache on its own: what it keeps, for how long, and what it leaves alone."""

from __future__ import annotations

import numpy as np
import pytest

from embedserve.server.model_spec import PoolingMode
from embedserve.server.query_cache import QueryCache, QueryCacheSettings
from embedserve.server.windows import Window


def _vector(value: float) -> np.ndarray:
    return np.full(4, value, dtype=np.float32)


def test_the_least_recently_used_window_goes_first() -> None:
    cache = QueryCache(QueryCacheSettings(query_cache_size=2))
    a, b, c = (Window((101, n, 102)) for n in (1, 2, 3))
    cache.put(a, _vector(1))
    cache.put(b, _vector(2))
    assert cache.get(a) is not None  # a is now the most recent
    cache.put(c, _vector(3))
    assert cache.get(b) is None and len(cache) == 2
    np.testing.assert_array_equal(cache.get(a), _vector(1))
    np.testing.assert_array_equal(cache.get(c), _vector(3))


def test_a_window_is_known_by_its_tokens_prompt_start_and_pooling() -> None:
    cache = QueryCache(QueryCacheSettings(query_cache_size=10))
    window = Window((101, 7, 8, 102), pool_start=0, pooling=PoolingMode.MEAN)
    cache.put(window, _vector(1))
    assert cache.get(Window((101, 7, 8, 102), 0, PoolingMode.MEAN)) is not None
    assert cache.get(Window((101, 7, 8, 102), 1, PoolingMode.MEAN)) is None
    assert cache.get(Window((101, 7, 8, 102), 0, PoolingMode.CLS)) is None
    assert cache.get(Window((101, 7, 9, 102), 0, PoolingMode.MEAN)) is None


def test_long_windows_token_vectors_and_a_cache_of_size_zero_keep_nothing() -> None:
    short = Window((101, 5, 102))
    long = Window(tuple(range(65)))
    tokens = Window((101, 5, 102), pooling=None)
    cache = QueryCache(QueryCacheSettings(query_cache_size=10, query_cache_max_tokens=64))
    for window in (long, tokens):
        cache.put(window, _vector(1))
        assert cache.get(window) is None
    off = QueryCache(QueryCacheSettings(query_cache_size=0))
    off.put(short, _vector(1))
    assert off.get(short) is None and len(off) == 0


def test_a_kept_vector_is_a_read_only_copy() -> None:
    cache = QueryCache(QueryCacheSettings(query_cache_size=1))
    window = Window((101, 5, 102))
    original = _vector(1)
    cache.put(window, original)
    original[:] = 9  # the caller's array is its own
    kept = cache.get(window)
    assert kept is not None
    np.testing.assert_array_equal(kept, _vector(1))
    with pytest.raises(ValueError, match="read-only"):
        kept[0] = 2
