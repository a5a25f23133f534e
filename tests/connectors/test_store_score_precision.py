"""Scores are float32, as Qdrant computes them and gRPC carries them, on every backend:
qdrant-client's local mode computes some in float64, and its ties and threshold cuts must
be those of the float32 scores it returns."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from embedserve.connectors import (
    CollectionSpec,
    Distance,
    PointRecord,
    SearchParams,
    VectorStore,
)
from embedserve.connectors.stable_pages import stable_page

DIM, N = 16, 300


def _fill(store: VectorStore, distance: Distance) -> list[float]:
    """Vectors of two decimals (some repeated): sums of them that are equal in decimals
    differ in float64 by rounding, and are equal again in float32. Returns a query."""
    rng = np.random.default_rng(0)
    vectors = np.round(rng.normal(size=(N, DIM)), 2)
    vectors[10:20] = vectors[0:10]
    store.create_collection(CollectionSpec("s", vector_size=DIM, distance=distance))
    # Written in an order unlike the ids'.
    order = rng.permutation(N)
    store.upsert("s", [PointRecord(f"d{n:03d}", vectors[n].tolist()) for n in order])
    return np.round(np.random.default_rng(7).normal(size=DIM), 2).tolist()


@pytest.mark.parametrize("distance", [Distance.MANHATTAN, Distance.EUCLID, Distance.COSINE])
def test_equal_float32_scores_tie_and_the_threshold_cuts_them(
    store: VectorStore, distance: Distance
) -> None:
    query = _fill(store, distance)
    ranked = functools.partial(store.search, "s", query)
    hits = stable_page(ranked, None, SearchParams(limit=N, with_payload=False, exact=True))
    assert len(hits) == N
    assert all(float(np.float32(h.score)) == h.score for h in hits)
    for a, b in itertools.pairwise(hits):
        assert a.score != b.score or a.id < b.id, (a, b)
    # A threshold equal to a returned score leaves out every hit scoring it (the wire's
    # threshold is a float32, as the scores are).
    for at in range(20, N, 20):
        threshold = hits[at].score
        params = SearchParams(limit=N, with_payload=False, exact=True, score_threshold=threshold)
        first = next(i for i, h in enumerate(hits) if h.score == threshold)
        kept = stable_page(ranked, None, params)
        assert [h.id for h in kept] == [h.id for h in hits[:first]]
