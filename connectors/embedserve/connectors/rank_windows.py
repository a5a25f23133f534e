"""Second-stage rankings (a reranker's, a weighing's) that pages can be cut from.

A second stage reorders the first stage's hits in windows: the best ``window`` among
themselves, then the next ``window``, and so on. Every page of one limit is cut from that
one order, so pages fit together (each document once) however deep they go; a window that
grew with the offset would reorder a different set of hits on every page.
"""

from __future__ import annotations

from collections.abc import Sequence

from .types import ScoredPoint, SearchParams


def first_stage_span(window: int, params: SearchParams) -> tuple[int, int]:
    """The offset and limit of the first-stage hits the page ``params`` asks for is cut
    from: the windows it overlaps, whole."""
    start = params.offset // window * window
    end = -(-(params.offset + params.limit) // window) * window  # rounded up
    return start, end - start


def in_windows(hits: Sequence[ScoredPoint], window: int) -> list[ScoredPoint]:
    """``hits``, in the first stage's order and carrying second-stage scores, reordered
    within each run of ``window``: best first, equal scores by id."""
    return [
        hit
        for start in range(0, len(hits), window)
        for hit in sorted(hits[start : start + window], key=lambda hit: (-hit.score, hit.id))
    ]


def page_of(ordered: Sequence[ScoredPoint], start: int, params: SearchParams) -> list[ScoredPoint]:
    """The page ``params`` asks for, of hits ``ordered`` from first-stage position ``start``."""
    at = params.offset - start
    return list(ordered[at : at + params.limit])
