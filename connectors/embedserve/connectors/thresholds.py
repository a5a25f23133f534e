"""``score_threshold`` where the engines cut it otherwise than documented: only hits scoring
better than the threshold are kept, strictly.

Qdrant cuts a threshold by the collection's distance: on EUCLID and MANHATTAN it keeps
the hits scoring at most the threshold. ``best_score`` and ``sum_scores`` recommendations
score larger is better on every distance, so that cut keeps every hit or none (Qdrant
1.18's server, qdrant-edge and qdrant-client's local mode alike). qdrant-client's local
mode compares its float64 scores, not the float32 ones it returns (_results.py), so a hit
scoring exactly the threshold once rounded can pass. For those the threshold is applied
here, and to hybrid searches' fused scores (stable_pages.py): hits come best first, so
cutting a page equals paging the cut list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .types import Distance, RecommendStrategy, ScoredPoint, SearchParams

_DISTANCES = (Distance.EUCLID, Distance.MANHATTAN)
_SIMILARITIES = (RecommendStrategy.BEST_SCORE, RecommendStrategy.SUM_SCORES)


def thresholded(
    query: Callable[[SearchParams], list[ScoredPoint]],
    strategy: RecommendStrategy,
    distance: Distance,
    params: SearchParams,
) -> list[ScoredPoint]:
    """``query(params)`` of a recommendation, the threshold kept out of the engine where it
    would cut the wrong way."""
    if strategy not in _SIMILARITIES or distance not in _DISTANCES:
        return query(params)
    return kept_above(query(without_threshold(params)), params.score_threshold)


def without_threshold(params: SearchParams) -> SearchParams:
    return dataclasses.replace(params, score_threshold=None)


def kept_above(hits: list[ScoredPoint], threshold: float | None) -> list[ScoredPoint]:
    """The hits scoring above ``threshold`` (larger is better)."""
    return hits if threshold is None else [hit for hit in hits if hit.score > threshold]


def kept_better(
    hits: list[ScoredPoint], threshold: float | None, smaller_is_better: bool
) -> list[ScoredPoint]:
    """The hits scoring better than ``threshold``: above it, or below it where smaller is
    better (distances)."""
    if threshold is None or not smaller_is_better:
        return kept_above(hits, threshold)
    return [hit for hit in hits if hit.score < threshold]
