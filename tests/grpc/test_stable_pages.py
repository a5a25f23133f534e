"""Pages of a search fit together when scores tie: each document once, in one order, in
dense and keyword modes (twelve equal texts tie under both)."""

from __future__ import annotations

from typing import Any

import pytest

from embedserve.client import EmbedClient


@pytest.fixture
def client(start_server: Any, minilm_model: Any) -> Any:
    server = start_server(loaded=minilm_model)
    with EmbedClient(server.target) as client:
        client.create_collection("ties", bm25=True)
        same = [{"id": f"t{i:02d}", "text": "apple pie"} for i in range(12)]
        client.upsert("ties", [*same, {"id": "other", "text": "a bicycle with a flat tyre"}])
        yield client


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_pages_of_tied_hits_hold_each_document_once(client: Any, mode: str) -> None:
    pages = [
        [h.id for h in client.search("ties", "apple", mode=mode, limit=4, offset=offset)]
        for offset in (0, 4, 8)
    ]
    seen = [doc for page in pages for doc in page]
    assert sorted(seen) == [f"t{i:02d}" for i in range(12)], pages
    whole = [h.id for h in client.search("ties", "apple", mode=mode, limit=12)]
    assert whole == seen  # one order, cut into pages


def test_grouped_hybrid_hits_score_as_in_the_ungrouped_search(
    start_server: Any, minilm_model: Any
) -> None:
    """Groups of an indexed field were filled by searches within the open groups; a hybrid
    search fuses ranks, so those searches scored their members higher than the search did
    (a group's third hit above its first)."""
    server = start_server(loaded=minilm_model)
    topics = ["water filter", "coffee machine", "error code", "door seal", "ice maker"]
    with EmbedClient(server.target) as client:
        client.create_collection("parts", bm25=True, payload_indexes={"grp": "keyword"})
        client.upsert(
            "parts",
            [
                {
                    "id": f"d{g:02d}{m}",
                    "text": f"{topics[(g + m) % 5]} {topics[(g * m) % 5]} part {g}",
                    "payload": {"grp": f"g{g}"},
                }
                for g in range(40)
                for m in range(4)
            ],
        )
        query = "water filter error code"
        ungrouped = {h.id: h.score for h in client.search("parts", query, mode="hybrid", limit=160)}
        groups = client.search_groups(
            "parts", query, group_by="grp", group_size=3, limit=8, mode="hybrid"
        )
    assert len(groups) == 8
    for group in groups:
        scores = [h.score for h in group.hits]
        assert scores == sorted(scores, reverse=True), group
        assert scores == pytest.approx([ungrouped[h.id] for h in group.hits], rel=1e-6)
    firsts = [group.hits[0].score for group in groups]
    assert firsts == sorted(firsts, reverse=True)
