"""Equal texts are duplicates at a threshold of 1, though float32 rounding scores their unit
vectors a little under 1 as often as not."""

from __future__ import annotations

import numpy as np

from embedserve.server.analysis_duplicates import PairCollector, compare_in_blocks


def a_unit_vector_scoring_itself_under_one() -> np.ndarray:
    rng = np.random.default_rng(0)
    for _ in range(1000):
        v = rng.standard_normal(384).astype(np.float32)
        v /= np.linalg.norm(v)
        if np.dot(v, v) < 1.0:
            return v
    raise AssertionError("no such vector in 1000 draws")


def test_equal_vectors_reach_a_threshold_of_one_by_either_method() -> None:
    v = a_unit_vector_scoring_itself_under_one()
    other = np.roll(v, 1)
    vectors = np.stack([v, v.copy(), other])
    in_blocks = PairCollector(threshold=1.0)
    compare_in_blocks(["a", "b", "c"], vectors, in_blocks, max_neighbors=2)
    assert [(a, b) for a, b, _ in in_blocks.ranked_pairs()] == [("a", "b")]
    by_queries = PairCollector(threshold=1.0)  # as the store's searches report them
    by_queries.add_neighbours("a", [("b", float(np.dot(v, v))), ("c", float(np.dot(v, other)))])
    assert [(a, b) for a, b, _ in by_queries.ranked_pairs()] == [("a", "b")]
