"""Search options end to end with MiniLM, over gRPC and HTTP: diversity (maximal marginal
relevance) and the payload keys the hits carry."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from embedserve.client import EmbedClient

TEXTS = {
    "recall-1": "The laptop battery recall covers models sold in March",
    "recall-2": "A recall of laptop batteries covers the models sold in March",
    "recall-3": "Laptops sold in March are part of a battery recall",
    "swelling": "A swollen phone battery should be replaced at once",
    "charger": "Use the charger that came with the laptop",
    "bread": "Sourdough bread needs a slow rise",
}


@pytest.fixture
def client(both: Any) -> Any:
    with EmbedClient(both.target) as client:
        client.create_collection("news", bm25=True)
        client.upsert("news", [{"id": k, "text": t} for k, t in TEXTS.items()])
        yield client


def test_diversity_trades_near_copies_for_other_results(client: Any) -> None:
    query = "laptop battery recall"
    plain = client.search("news", query, limit=3, exact=True)
    assert {h.id for h in plain} == {"recall-1", "recall-2", "recall-3"}
    diverse = client.search("news", query, limit=3, exact=True, diversity=0.7)
    assert diverse[0].id == plain[0].id
    assert sum(h.id.startswith("recall") for h in diverse) < 3
    # Scores stay the similarities to the query.
    documents = client.embed(list(TEXTS.values()), task="document")
    vectors = dict(zip(TEXTS, documents, strict=True))
    query_vector = client.embed(query, task="query")[0]
    for hit in diverse:
        assert hit.score == pytest.approx(float(np.dot(vectors[hit.id], query_vector)), abs=1e-4)


def test_http_matches_grpc_and_misuse_is_refused(both: Any, client: Any) -> None:
    params = {"limit": 3, "exact": True, "diversity": 0.7, "diversity_candidates": 5}
    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post(
            "/api/v1/collections/news/search", json={"text": "battery", "params": params}
        )
        assert reply.status_code == 200, reply.text
        expected = client.search("news", "battery", **params)
        assert [h["id"] for h in reply.json()["results"]] == [h.id for h in expected]
        too_few = http.post(
            "/api/v1/collections/news/search",
            json={"text": "battery", "params": {**params, "diversity_candidates": 2}},
        )
        assert too_few.status_code == 400 and "at least limit + offset" in too_few.text
        out_of_range = http.post(
            "/api/v1/collections/news/search",
            json={"text": "battery", "params": {"diversity": 2}},
        )
        assert out_of_range.status_code == 400
    for call in (
        lambda: client.search("news", "battery", mode="hybrid", diversity=0.5),
        lambda: client.recommend("news", ["bread"], diversity=0.5),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "diversity applies to searches by vector" in refused.value.details()


def test_payload_keys_leave_out_the_rest(both: Any, client: Any) -> None:
    documents = [
        {"id": k, "text": t, "payload": {"title": k.upper(), "year": 2024}}
        for k, t in TEXTS.items()
    ]
    client.create_collection("docs")
    client.upsert("docs", documents, store_text=True)
    hits = client.search("docs", "battery", limit=2, payload_keys=["title"])
    assert [h.payload for h in hits] == [{"title": h.id.upper()} for h in hits]
    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post(
            "/api/v1/collections/docs/search",
            json={"text": "battery", "params": {"limit": 2, "payload_keys": ["year", "text"]}},
        )
        results = reply.json()["results"]
        assert [set(r["payload"]) for r in results] == [{"year", "text"}] * 2
        assert results[0]["payload"]["text"] == TEXTS[results[0]["id"]]
