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
