"""Keyword (BM25) and hybrid search, and full-text filters, end to end over gRPC and HTTP,
with MiniLM."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
import httpx
import pytest

from embedserve.client import EmbedClient
from embedserve.connectors.keywords import RRF_K
from embedserve.v1 import vector_pb2, vector_pb2_grpc

TEXTS = {
    "battery": "Recall notice: laptop model ZQ7734 has a faulty battery pack",
    "laptops": "Choosing a laptop for travel: weight, screen and battery life",
    # Lengths differ, so that no two BM25 scores tie: equal scores come back in either order.
    "phones": "The new phone has a bright screen, a fast chip and a long battery life",
    "bread": "Sourdough bread needs a lively starter and a slow rise",
    "pasta": "Fresh pasta dough rests for thirty minutes before rolling",
    "stars": "Amateur astronomers photograph distant galaxies with small telescopes",
}


def ranked(hits: Iterable[tuple[str, float]]) -> list[tuple[float, str]]:
    """Hits best first, equal scores (reciprocal rank fusion makes many) by id: the
    engine may return those in either order."""
    return sorted((-round(score, 6), hit_id) for hit_id, score in hits)


@pytest.fixture
def client(both: Any) -> Any:
    with EmbedClient(both.target) as client:
        client.create_collection("kb", bm25=True)
        client.create_collection("plain")
        documents = [
            {"id": k, "text": t, "payload": {"n": i}} for i, (k, t) in enumerate(TEXTS.items())
        ]
        assert client.ingest("kb", documents[:3], batch_size=2) == 3  # streamed
        assert client.upsert("kb", documents[3:]) == 3
        client.upsert("kb", [{"id": "by-vector", "vector": client.embed("a laptop battery")[0]}])
        yield client


def test_keyword_search_ranks_bm25_matches_without_embedding(client: Any) -> None:
    hits = client.search("kb", "ZQ7734 battery", mode="keyword", limit=10)
    # Every document with a query word, the rare code first; no vector-only point.
    assert hits[0].id == "battery"
    assert {h.id for h in hits} == {"battery", "laptops", "phones"}
    assert hits[0].score > hits[1].score >= hits[2].score > 0
    assert client.search("kb", "pizza", mode="keyword") == []


def test_hybrid_search_fuses_the_dense_and_keyword_rankings(client: Any) -> None:
    query = "ZQ7734 battery"
    dense = client.search("kb", query, limit=10, exact=True)
    keyword = client.search("kb", query, mode="keyword", limit=10)
    expected: dict[str, float] = {}
    for ranking in (dense, keyword):
        for rank, hit in enumerate(ranking):
            expected[hit.id] = expected.get(hit.id, 0.0) + 1 / (RRF_K + rank)
    fused = client.search("kb", query, mode="hybrid", limit=4, exact=True)
    assert [h.score for h in fused] == pytest.approx(sorted(expected.values())[::-1][:4])
    assert all(h.score == pytest.approx(expected[h.id]) for h in fused)
    assert fused[0].id == "battery"
    # A weighted keyword list: rank r counts as rank (r + 1) / w - 1 of the dense one.
    weighted = client.search("kb", query, mode="hybrid", limit=4, exact=True, keyword_weight=5)
    tilted: dict[str, float] = {}
    for ranking, weight in ((dense, 1.0), (keyword, 5.0)):
        for rank, hit in enumerate(ranking):
            tilted[hit.id] = tilted.get(hit.id, 0.0) + 1 / ((rank + 1) / weight + RRF_K - 1)
    assert all(h.score == pytest.approx(tilted[h.id]) for h in weighted)
    with pytest.raises(grpc.RpcError) as refused:
        client.search("kb", query, keyword_weight=5)
    assert "keyword_weight applies to hybrid searches" in refused.value.details()
    only_late = {"must": [{"range": {"key": "n", "gte": 2}}]}
    filtered = client.search("kb", query, mode="hybrid", filter=only_late)
    assert {h.id for h in filtered} == {"phones", "bread", "pasta", "stars"}


def test_collection_reports_bm25_and_refuses_what_cannot_work(client: Any) -> None:
    assert client.get_collection("kb").config.bm25
    assert not client.get_collection("plain").config.bm25
    with pytest.raises(grpc.RpcError) as refused:
        client.search("plain", "battery", mode="keyword")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "created without bm25" in refused.value.details()
    vector = client.embed("battery")[0]
    with pytest.raises(grpc.RpcError) as refused:
        client.search("kb", vector=vector, mode="hybrid")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs a text query" in refused.value.details()
    with pytest.raises(ValueError, match="unknown search mode"):
        client.search("kb", "battery", mode="sparse")


def test_http_matches_grpc(both: Any, client: Any) -> None:
    with httpx.Client(base_url=both.url, timeout=60) as http:
        created = http.post("/api/v1/collections", json={"name": "web", "config": {"bm25": True}})
        assert created.status_code == 200, created.text
        assert created.json()["collection"]["config"]["bm25"] is True
        for mode in ("keyword", "hybrid"):
            reply = http.post(
                "/api/v1/collections/kb/search",
                json={"text": "laptop battery", "mode": mode, "params": {"exact": True}},
            )
            assert reply.status_code == 200, reply.text
            grpc_hits = client.search("kb", "laptop battery", mode=mode, exact=True)
            got = [(h["id"], h["score"]) for h in reply.json()["results"]]
            assert ranked(got) == ranked((h.id, h.score) for h in grpc_hits)
        keyword_tokens = http.post(
            "/api/v1/collections/kb/search", json={"text": "battery", "mode": "keyword"}
        ).json()["usage"]["total_tokens"]
        assert keyword_tokens == 0
        refused = http.post(
            "/api/v1/collections/kb/search", json={"text": "battery", "mode": "sparse"}
        )
        assert refused.status_code == 400 and "mode" in refused.text


def test_match_text_filters_by_words_over_both_transports(both: Any, client: Any) -> None:
    client.create_collection("titled", payload_indexes={"title": "text"})
    client.upsert(
        "titled",
        [
            {"id": "a", "text": "x", "payload": {"title": "Battery Recall Notice"}},
            {"id": "b", "text": "y", "payload": {"title": "Battery life tips"}},
            {"id": "c", "text": "z", "payload": {"title": "Recall of a batch of bread"}},
        ],
    )
    recall = {"must": [{"match_text": {"key": "title", "text": "recall battery"}}]}
    assert [h.id for h in client.search("titled", "anything", filter=recall)] == ["a"]
    assert client.count("titled", filter=recall) == 1
    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post(
            "/api/v1/collections/titled/search", json={"text": "anything", "filter": recall}
        )
        assert [h["id"] for h in reply.json()["results"]] == ["a"]
        unindexed = {"must": [{"match_text": {"key": "topic", "text": "recall"}}]}
        refused = http.post(
            "/api/v1/collections/titled/search", json={"text": "anything", "filter": unindexed}
        )
        assert refused.status_code == 400 and "text payload index" in refused.text
    with pytest.raises(grpc.RpcError) as refused_grpc:
        client.search("titled", "anything", filter={"must": [{"match_text": {"key": "title"}}]})
    assert refused_grpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at least one word" in refused_grpc.value.details()


def test_keywords_in_the_collection_language(both: Any, client: Any) -> None:
    client.create_collection("de", bm25=True, bm25_language="german")
    client.upsert("de", [{"id": "h", "text": "Die alten Häuser am Fluss"}])
    # German stems both "Häuser" and "Hauses" to "haus"; "die" is a German stop word.
    assert [h.id for h in client.search("de", "des Hauses", mode="keyword")] == ["h"]
    assert client.search("de", "die", mode="keyword") == []
    with httpx.Client(base_url=both.url, timeout=60) as http:
        info = http.get("/api/v1/collections/de").json()["collection"]["config"]
        assert (info["bm25"], info["bm25_language"]) == (True, "german")
        refused = http.post(
            "/api/v1/collections",
            json={"name": "xx", "config": {"bm25": True, "bm25_language": "klingon"}},
        )
        assert refused.status_code == 400 and "unknown bm25_language" in refused.text


def test_search_batch_equals_one_search_each(both: Any, client: Any) -> None:
    queries = ["laptop battery", "bread dough", "galaxies"]
    # A limit past the collection's size: no cut between equal fused scores.
    batch = client.search_batch("kb", queries, limit=10, exact=True, mode="hybrid")
    for query, hits in zip(queries, batch, strict=True):
        alone = client.search("kb", query, limit=10, exact=True, mode="hybrid")
        assert ranked((h.id, h.score) for h in hits) == ranked((h.id, h.score) for h in alone)
    vector = client.embed("telescope", task="query")[0]
    assert client.search_batch("kb", [vector], limit=1)[0][0].id == "stars"
    with pytest.raises(grpc.RpcError) as refused:
        client.search_batch("kb", ["bread", vector], mode="keyword")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("searches[1]: a keyword search needs a text")
    with grpc.insecure_channel(both.target) as channel:
        stub = vector_pb2_grpc.VectorServiceStub(channel)
        other = vector_pb2.SearchRequest(collection="plain", text="bread")
        with pytest.raises(grpc.RpcError) as elsewhere_grpc:
            stub.SearchBatch(vector_pb2.SearchBatchRequest(collection="kb", searches=[other]))
    assert elsewhere_grpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert elsewhere_grpc.value.details() == (
        "searches[0]: collection is 'plain'; a batch searches 'kb'"
    )
    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post(
            "/api/v1/collections/kb/search-batch",
            json={"searches": [{"text": q, "mode": "keyword"} for q in queries]},
        ).json()
        keyword = [client.search("kb", q, mode="keyword") for q in queries]
        got = [[r["id"] for r in one["results"]] for one in reply["responses"]]
        assert got == [[h.id for h in hits] for hits in keyword]
        elsewhere = http.post(
            "/api/v1/collections/kb/search-batch",
            json={"searches": [{"text": "x", "filter": {"must": [{"nope": {}}]}}]},
        )
        assert elsewhere.status_code == 400 and "searches[0]: filter" in elsewhere.text
