"""Diverse search (maximal marginal relevance), the same on every backend, against a
greedy MMR computed here."""

from __future__ import annotations

import numpy as np
import pytest

from embedserve.connectors import (
    CollectionSpec,
    InvalidRequest,
    PointRecord,
    SearchParams,
    VectorStore,
    query_terms,
)

DIM = 16


def near_duplicates(rng: np.random.Generator) -> np.ndarray:
    """Five tight clusters of 20 unit vectors: the nearest hits are near-copies."""
    centres = rng.standard_normal((5, DIM))
    vectors = np.concatenate([c + 0.05 * rng.standard_normal((20, DIM)) for c in centres])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def greedy_mmr(vectors: np.ndarray, query: np.ndarray, diversity: float, k: int) -> list[int]:
    relevance = vectors @ query
    pool = list(np.argsort(-relevance)[:100])
    chosen = [pool.pop(0)]
    while len(chosen) < k:
        unlike = [max(vectors[c] @ vectors[s] for s in chosen) for c in pool]
        scores = [
            (1 - diversity) * relevance[c] - diversity * u
            for c, u in zip(pool, unlike, strict=True)
        ]
        chosen.append(pool.pop(int(np.argmax(scores))))
    return chosen


@pytest.fixture
def clustered(store: VectorStore) -> tuple[VectorStore, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    vectors = near_duplicates(rng)
    store.create_collection(CollectionSpec("c", vector_size=DIM, bm25=True))
    store.upsert("c", [PointRecord(f"p{i}", v) for i, v in enumerate(vectors)])
    query = vectors[0] + 0.6 * vectors[20]
    return store, vectors, query / np.linalg.norm(query)


@pytest.mark.parametrize("diversity", [0.3, 0.7])
def test_diverse_search_is_maximal_marginal_relevance(
    clustered: tuple[VectorStore, np.ndarray, np.ndarray], diversity: float
) -> None:
    store, vectors, query = clustered
    params = SearchParams(limit=5, diversity=diversity, exact=True)
    hits = store.search("c", query, params=params)
    assert [h.id for h in hits] == [f"p{i}" for i in greedy_mmr(vectors, query, diversity, 5)]
    # Scores stay the similarities to the query, not the re-ranking's.
    for hit in hits:
        assert hit.score == pytest.approx(float(vectors[int(hit.id[1:])] @ query), abs=1e-5)
    clusters = {int(h.id[1:]) // 20 for h in hits}
    plain = store.search("c", query, params=SearchParams(limit=5, exact=True))
    assert len(clusters) > len({int(h.id[1:]) // 20 for h in plain}) == 1


def test_no_diversity_is_the_order_of_relevance(
    clustered: tuple[VectorStore, np.ndarray, np.ndarray],
) -> None:
    store, _, query = clustered
    plain = store.search("c", query, params=SearchParams(limit=8, exact=True))
    none = store.search("c", query, params=SearchParams(limit=8, exact=True, diversity=0.0))
    assert [h.id for h in none] == [h.id for h in plain]


def test_diversity_is_checked(clustered: tuple[VectorStore, np.ndarray, np.ndarray]) -> None:
    store, _, query = clustered
    with pytest.raises(InvalidRequest, match="from 0 to 1"):
        SearchParams(diversity=1.5)
    with pytest.raises(InvalidRequest, match="at least limit \\+ offset"):
        SearchParams(limit=10, offset=5, diversity=0.5, diversity_candidates=12)
    with pytest.raises(InvalidRequest, match="applies to searches with a diversity"):
        SearchParams(diversity_candidates=50)
    # Qdrant's cap: the re-ranking's memory grows with the square of the candidates.
    with pytest.raises(InvalidRequest, match=r"^diversity_candidates \(16385\) must be at most"):
        SearchParams(diversity=0.5, diversity_candidates=16_385)
    # Each result picked is compared with every candidate: 9,000 of 16,384 took minutes.
    work = r"results \(9000\) with each of its 16384 candidates: their product must be at most"
    with pytest.raises(InvalidRequest, match=work):
        SearchParams(limit=8_000, offset=1_000, diversity=0.5, diversity_candidates=16_384)
    with pytest.raises(InvalidRequest, match=r"results \(2049\) with each of its 2049 cand"):
        SearchParams(limit=2_000, offset=49, diversity=0.5)
    assert SearchParams(limit=2_000, offset=48, diversity=0.5).limit == 2_000  # at the cap
    assert SearchParams(limit=256, diversity=0.5, diversity_candidates=16_384).limit == 256
    with pytest.raises(InvalidRequest, match="offset must be a non-negative integer"):
        SearchParams(limit=10, offset="1", diversity=0.5)  # type: ignore[arg-type]
    diverse = SearchParams(diversity=0.5)
    with pytest.raises(InvalidRequest, match="searches by vector alone"):
        store.search("c", query, params=diverse, keywords=query_terms("x"))
    with pytest.raises(InvalidRequest, match="not recommendations"):
        store.recommend("c", ["p1"], params=diverse)
