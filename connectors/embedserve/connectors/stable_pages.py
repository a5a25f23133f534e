"""Pages of a ranking that fit together when hits tie.

An engine breaks ties between equal scores its own way, and that way changes with how many
hits it is asked for: pages 1 and 2 (limit 4, offsets 0 and 4) could both show one of twelve
equally scored documents and neither show another. Short texts tie often under BM25.
Here every page is cut from one order: the engine's, with each run of equal scores ordered
by id, and the run that crosses a page's end read whole, so every page sees the same run.

A hybrid search's two rankings are fused here too (``fused_page``), not by the engines:
they rank each list's equal scores in their own orders before fusing, so that copies of
one document fused to different scores, and each engine to others. Here equal scores in
a list share a rank, and the fused ranking is ordered by score, then id.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence

from ._results import as_float32s
from .keywords import RRF_K, fusing_as_asked, fusion_depth
from .thresholds import kept_above
from .types import Filter, ScoredPoint, SearchParams

# A ranked query of the store (a search or a recommendation) under a filter.
Ranked = Callable[[Filter | None, SearchParams], list[ScoredPoint]]

# How many hits are read, at most, to find where a run of equal scores at a page's end stops;
# past that the engine's own order of that run stands.
MAX_TIED_READ = 10_000


def stable_page(ranked: Ranked, filter: Filter | None, params: SearchParams) -> list[ScoredPoint]:
    """The page ``params`` asks for (offset, limit) of ``ranked``, ties ordered by id. A
    diverse ranking (MMR) is not in score order, and is taken as the engine gives it."""
    if params.diversity is not None:
        return ranked(filter, params)
    params = fusing_as_asked(params)
    end = params.offset + params.limit
    hits = through_ties(
        lambda count: ranked(filter, dataclasses.replace(params, offset=0, limit=count)), end
    )
    ordered = [
        hit
        for _, run in itertools.groupby(hits, key=lambda hit: hit.score)
        for hit in sorted(run, key=lambda hit: hit.id)
    ]
    return ordered[params.offset : end]


def through_ties(read: Callable[[int], list[ScoredPoint]], count: int) -> list[ScoredPoint]:
    """The first ``count`` hits of a ranking best first, of which ``read(n)`` gives the
    first ``n``, and the hits past them tied with the last, in the engine's order: the
    whole run of equal scores that crosses ``count``."""
    if count <= 0:
        return []
    size = count + 1
    while True:
        hits = read(size)
        if len(hits) < size or hits[-1].score != hits[count - 1].score or size >= MAX_TIED_READ:
            break  # every hit tied with the last one counted has been read
        size = min(size * 2, MAX_TIED_READ)
    if len(hits) <= count:
        return hits
    last = hits[count - 1].score
    return hits[:count] + list(itertools.takewhile(lambda hit: hit.score == last, hits[count:]))


def fused_page(
    rankings: Sequence[Callable[[SearchParams], list[ScoredPoint]]],
    named: Callable[[list[ScoredPoint], SearchParams], list[ScoredPoint]],
    params: SearchParams,
) -> list[ScoredPoint]:
    """The page ``params`` asks for of a hybrid search: ``rankings`` (the dense query's and
    the keywords', each run with the params it is given, hits named by point id) fused by
    reciprocal rank, the threshold cut from the fused scores, equal scores by id.
    ``named`` gives hits under the caller's ids with the payloads and vectors asked for:
    those of the page, and of the runs of equal scores that cross its ends, whose order
    the ids decide."""
    candidates = [_candidates(ranking, params) for ranking in rankings]
    ranking = kept_above(_fused(candidates, [1.0, params.keyword_weight]), params.score_threshold)
    end = params.offset + params.limit
    start, stop = _whole_runs(ranking, params.offset, end)
    window = sorted(named(ranking[start:stop], params), key=lambda hit: (-hit.score, hit.id))
    return window[params.offset - start : end - start]


def _whole_runs(ranking: Sequence[ScoredPoint], start: int, stop: int) -> tuple[int, int]:
    """``start`` and ``stop`` moved out to take in whole the runs of equal scores they
    fall into."""
    if start >= len(ranking):
        return start, start
    stop = min(stop, len(ranking))
    while start > 0 and ranking[start - 1].score == ranking[start].score:
        start -= 1
    while stop < len(ranking) and ranking[stop].score == ranking[stop - 1].score:
        stop += 1
    return start, stop


def _candidates(
    query: Callable[[SearchParams], list[ScoredPoint]], params: SearchParams
) -> list[ScoredPoint]:
    """What one ranking gives the fusion: its best ``fusion_depth`` hits and those tied
    with the last, so that equal documents count all or none. Without payloads or vectors
    (fetched for the page alone) or a threshold (it cuts the fused scores)."""
    bare = dataclasses.replace(
        params,
        offset=0,
        score_threshold=None,
        with_payload=False,
        payload_keys=None,
        with_vectors=False,
    )
    depth = fusion_depth(params)
    return through_ties(lambda count: query(dataclasses.replace(bare, limit=count)), depth)


def _fused(
    rankings: Sequence[Sequence[ScoredPoint]], weights: Sequence[float]
) -> list[ScoredPoint]:
    """The hits of ``rankings`` (each best first) by reciprocal rank fusion, as Qdrant's
    weighted RRF scores it: rank r (from 0) of a ranking of weight w adds 1 / ((r + 1) / w +
    RRF_K - 1), hits of equal score sharing the rank of the first of them. Best first."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        rank = 0
        for at, hit in enumerate(ranking):
            if at and hit.score != ranking[at - 1].score:
                rank = at
            scores[hit.id] = scores.get(hit.id, 0.0) + 1 / ((rank + 1) / weight + RRF_K - 1)
    fused = zip(scores, as_float32s(list(scores.values())), strict=True)
    return sorted((ScoredPoint(i, score) for i, score in fused), key=lambda hit: -hit.score)
