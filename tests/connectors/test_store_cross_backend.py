"""The same data and queries give the same answers on the embedded and the server backends
(qdrant-client's local mode and a real Qdrant server)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from connectors_testdata import Array, StoreFactory, clustered

from embedserve.connectors import (
    CollectionSpec,
    Distance,
    Filter,
    InvalidFilter,
    MatchAny,
    MatchValue,
    PayloadIndexKind,
    PointRecord,
    Range,
    RecommendStrategy,
    SearchParams,
    VectorStore,
)

DIM = 32


def _fill(store: VectorStore, distance: Distance) -> Array:
    vectors, labels, centres = clustered(np.random.default_rng(21), 4, 60, DIM, spread=0.8)
    store.create_collection(CollectionSpec("x", vector_size=DIM, distance=distance))
    store.upsert(
        "x",
        [
            PointRecord(f"p{i}", vectors[i], {"topic": int(labels[i]), "i": i})
            for i in range(len(labels))
        ],
    )
    return centres


@pytest.mark.parametrize("other", ["qdrant-local", "qdrant-server"])
@pytest.mark.parametrize("distance", [Distance.COSINE, Distance.DOT, Distance.EUCLID])
def test_backends_agree(make_store: StoreFactory, distance: Distance, other: str) -> None:
    edge, local = make_store("edge"), make_store(other)
    centres = _fill(edge, distance)
    _fill(local, distance)
    rng = np.random.default_rng(5)
    exact = SearchParams(limit=15, exact=True)
    flt = Filter(must=(MatchAny("topic", (0, 2)),), must_not=(Range("i", lt=20),))

    def same(run: object) -> None:
        assert callable(run)
        a, b = run(edge), run(local)
        assert [p.id for p in a] == [p.id for p in b]
        np.testing.assert_allclose([p.score for p in a], [p.score for p in b], rtol=1e-3, atol=1e-3)
        assert [p.payload for p in a] == [p.payload for p in b]

    for q in rng.standard_normal((4, DIM)):
        same(lambda s, q=q: s.search("x", q, params=exact))
        same(lambda s, q=q: s.search("x", q, flt, exact))
    for strategy in RecommendStrategy:
        same(lambda s, st=strategy: s.recommend("x", ["p1", "p2"], ["p70"], st, params=exact))
        same(lambda s, st=strategy: s.recommend("x", [centres[1]], [centres[3]], st, flt, exact))
        same(lambda s, st=strategy: s.recommend("x", ["p130", centres[2]], [], st, params=exact))
    assert edge.count("x", flt) == local.count("x", flt)


@pytest.mark.parametrize("index", [None, PayloadIndexKind.FLOAT, PayloadIndexKind.INTEGER])
@pytest.mark.parametrize(
    ("bounds", "kept"),
    [
        ({"gt": 1, "gte": 3}, [3, 4]),
        ({"gt": 3, "gte": 3}, [4]),
        ({"lt": 4, "lte": 2}, [1, 2]),
        ({"gte": 2, "gt": 1, "lt": 4, "lte": 3}, [2, 3]),
    ],
)
def test_a_range_with_both_kinds_of_a_bound_keeps_the_tighter(
    store: VectorStore, index: PayloadIndexKind | None, bounds: dict[str, int], kept: list[int]
) -> None:
    """An index keeps one lower and one upper bound (gt over gte): it matched more than a
    scan, and a delete by the filter removed fewer than its count said."""
    indexes = {} if index is None else {"x": index}
    store.create_collection(CollectionSpec("r", vector_size=2, payload_indexes=indexes))
    store.upsert("r", [PointRecord(f"v{x}", [1.0, float(x)], {"x": x}) for x in (1, 2, 3, 4)])
    within = Filter(must=(Range("x", **bounds),))
    assert sorted(r.payload["x"] for r in store.scroll("r", within).records) == kept
    assert store.count("r", within) == len(kept)
    store.delete("r", filter=within)
    assert store.count("r") == 4 - len(kept)


@pytest.mark.parametrize("key", ["a[", "a..b", "a key", "$x", "\N{KEY}"])
def test_a_condition_key_that_is_no_payload_path_is_refused_alike(
    store: VectorStore, key: str
) -> None:
    """Each engine named a bad path its own way (local mode: "Invalid path", naming none)."""
    store.create_collection(CollectionSpec("k", vector_size=2))
    with pytest.raises(InvalidFilter, match=f"condition key {re.escape(repr(key))} is no payload"):
        store.count("k", Filter(must=(MatchValue(key, 1),)))


@pytest.mark.parametrize("kind", ["edge", "qdrant-server"])
@pytest.mark.parametrize("key", ["\u0928\u093e\u092e", "\u0627\u0633\u0645\u064f"])  # नाम, اسمُ
def test_keys_with_the_marks_of_their_script_are_payload_paths(
    make_store: StoreFactory, kind: str, key: str
) -> None:
    """Qdrant's keys take what Rust calls alphanumeric: the vowel signs of Devanagari and
    Arabic words too, which Python's \\w leaves out; such keys were refused here."""
    store = make_store(kind)
    store.create_collection(CollectionSpec("k", vector_size=2))
    store.upsert("k", [PointRecord("a", [1.0, 0.0], {key: "x"})])
    assert store.count("k", Filter(must=(MatchValue(key, "x"),))) == 1
