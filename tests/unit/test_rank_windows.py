"""Which first-stage hits a second stage's page is cut from: the windows it overlaps,
whole; and the order within each window."""

from __future__ import annotations

import pytest

from embedserve.connectors.rank_windows import first_stage_span, in_windows, page_of
from embedserve.connectors.types import ScoredPoint, SearchParams
from embedserve.server.search_rerank import RerankStage


@pytest.mark.parametrize(
    ("candidates", "limit", "offset", "span"),
    [
        (None, 10, 0, (0, 50)),
        (None, 10, 40, (0, 50)),
        (None, 10, 45, (0, 100)),  # crosses into the second window of 50
        (None, 10, 50, (50, 50)),
        (None, 80, 0, (0, 80)),  # a limit past 50 is the window
        (None, 80, 80, (80, 80)),
        (3, 2, 2, (0, 6)),
        (3, 1, 5, (3, 3)),
    ],
)
def test_reranked_pages_read_the_windows_they_overlap(
    candidates: int | None, limit: int, offset: int, span: tuple[int, int]
) -> None:
    params = SearchParams(limit=limit, offset=offset)
    assert first_stage_span(RerankStage("text", candidates).window(params), params) == span


def test_each_window_is_ordered_alone_ties_by_id() -> None:
    scores = {"a": 0.1, "b": 0.9, "c": 0.5, "e": 0.7, "d": 0.7, "f": 0.2}
    hits = [ScoredPoint(id=i, score=s) for i, s in scores.items()]
    ordered = in_windows(hits, 3)
    assert [h.id for h in ordered] == ["b", "c", "a", "d", "e", "f"]
    page = page_of(ordered[3:], 3, SearchParams(limit=2, offset=4))  # read from hit 3
    assert [h.id for h in page] == ["e", "f"]
