"""``score_threshold`` for the recommendation strategies that score as similarities.

Qdrant cuts a threshold by the collection's distance: on EUCLID and MANHATTAN it keeps
the hits scoring at most the threshold. ``best_score`` and ``sum_scores`` score larger
is better on every distance, so that cut keeps every hit or none (Qdrant 1.18's server,
qdrant-edge and qdrant-client's local mode alike). For those the threshold is applied
here: hits come best first, so cutting a page equals paging the cut list.
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
    """``query(params)``, with the threshold kept out of the engine where it would cut the
    wrong way; strict, as the engine's is."""
    threshold = params.score_threshold
    if threshold is None or strategy not in _SIMILARITIES or distance not in _DISTANCES:
        return query(params)
    hits = query(dataclasses.replace(params, score_threshold=None))
    return [hit for hit in hits if hit.score > threshold]
