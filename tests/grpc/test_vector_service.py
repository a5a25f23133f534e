"""VectorService end to end over gRPC with the packaged MiniLM, on every store backend."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from labelled_corpus import QUERIES, documents

from embedserve.client import EmbedClient

BACKENDS = {"embedded": "", "qdrant-client": ":memory:", "qdrant-server": None}


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def server(request, start_server, minilm_model):
    url = BACKENDS[request.param]
    if url is None:  # a real Qdrant server, reached over gRPC with an API key
        return start_server(
            loaded=minilm_model, **request.getfixturevalue("qdrant_server").settings()
        )
    return start_server(loaded=minilm_model, qdrant_url=url)


@pytest.fixture
def corpus_client(server):
    with EmbedClient(server.target) as client:
        # A 1 KB full-scan threshold sends searches through the HNSW index, even at this size,
        # so the recall below measures the index and not an exact scan.
        client.create_collection(
            "docs", payload_indexes={"topic": "keyword", "n": "integer"}, full_scan_threshold_kb=1
        )
        acks = list(client.ingest_iter("docs", documents(), batch_size=20, store_text=True))
        assert [a.batch_id for a in acks] == [str(i) for i in range(len(acks))]
        assert acks[-1].total_acknowledged == 225
        yield client


def topic_of(doc_id: str) -> str:
    return doc_id.rsplit("-", 1)[0]


def test_text_queries_find_the_right_topic(corpus_client) -> None:
    right = sum(
        topic_of(corpus_client.search("docs", query, limit=1)[0].id) == topic
        for query, topic in QUERIES
    )
    assert right / len(QUERIES) >= 0.9


def test_exact_search_equals_brute_force_and_default_recall(corpus_client) -> None:
    ids = [d["id"] for d in documents()]
    stored = corpus_client.get("docs", ids, with_vectors=True)
    assert [s.id for s in stored] == ids
    matrix = np.stack([s.vector for s in stored])
    recalls = []
    for query, _ in QUERIES:
        vector = corpus_client.embed(query, task="query")[0]
        expected = [ids[i] for i in np.argsort(-(matrix @ vector))[:10]]
        exact = corpus_client.search("docs", vector=vector, limit=10, exact=True)
        assert [h.id for h in exact] == expected
        assert np.allclose([h.score for h in exact], np.sort(matrix @ vector)[::-1][:10], atol=1e-5)
        approximate = corpus_client.search("docs", vector=vector, limit=10)
        recalls.append(len({h.id for h in approximate} & set(expected)) / 10)
    assert np.mean(recalls) >= 0.95


def test_search_payload_text_filters_and_paging(corpus_client) -> None:
    (hit,) = corpus_client.search("docs", "telescope photos", limit=1)
    assert hit.payload["topic"] == "astronomy" and "text" in hit.payload
    only_cooking = {"must": [{"match": {"key": "topic", "text": "cooking"}}]}
    filtered = corpus_client.search("docs", "telescope photos", limit=5, filter=only_cooking)
    assert len(filtered) == 5 and {h.payload["topic"] for h in filtered} == {"cooking"}
    page = corpus_client.search("docs", "telescope photos", limit=3, offset=3, exact=True)
    first_six = corpus_client.search("docs", "telescope photos", limit=6, exact=True)
    assert [h.id for h in page] == [h.id for h in first_six[3:]]
    bare = corpus_client.search("docs", "telescope", limit=2, with_payload=False)
    assert all(h.payload == {} for h in bare)


def test_recommend_by_ids_excludes_examples_and_follows_topics(corpus_client) -> None:
    positive, negative = ["football-0", "football-1"], ["finance-0"]
    hits = corpus_client.recommend("docs", positive, negative, limit=20)
    returned = [h.id for h in hits]
    assert not set(returned) & {*positive, *negative}
    football = [i for i, h in enumerate(returned) if topic_of(h) == "football"]
    finance = [i for i, h in enumerate(returned) if topic_of(h) == "finance"]
    assert football and football[0] == 0
    assert not finance or min(finance) > max(football[:5])
    for strategy in ("best_score", "sum_scores"):
        ranked = corpus_client.recommend("docs", positive, negative, strategy=strategy, limit=5)
        assert [topic_of(h.id) for h in ranked] == ["football"] * 5
        assert not {h.id for h in ranked} & {*positive, *negative}
    by_text = corpus_client.recommend("docs", [{"text": "a goal in the match"}], limit=3)
    assert {topic_of(h.id) for h in by_text} == {"football"}


def test_reingest_counts_filters_get_and_delete(corpus_client) -> None:
    assert corpus_client.count("docs") == 225
    corpus_client.ingest("docs", documents()[:50], batch_size=16)
    assert corpus_client.count("docs") == 225  # same ids overwrite
    topic = {"must": [{"match": {"key": "topic", "text": "finance"}}]}
    assert corpus_client.count("docs", filter=topic) == 45
    low = {"must": [{"range": {"key": "n", "lt": 10}}]}
    assert corpus_client.count("docs", filter=low) == 50
    either = {
        "should": [{"match_any": {"key": "topic", "texts": ["cooking", "football"]}}],
        "must_not": [{"has_id": {"ids": ["cooking-0"]}}],
    }
    assert corpus_client.count("docs", filter=either) == 89
    got = corpus_client.get("docs", ["finance-3", "missing", "cooking-1"])
    assert [g.id for g in got] == ["finance-3", "cooking-1"]
    assert got[0].payload["n"] == 3 and got[0].vector is None
    corpus_client.delete("docs", filter=topic)
    corpus_client.delete("docs", ["cooking-1"])
    assert corpus_client.count("docs") == 225 - 45 - 1
    assert corpus_client.get("docs", ["finance-3"]) == []


def test_collections_lifecycle_and_errors(server) -> None:
    with EmbedClient(server.target) as client:
        info = client.create_collection(
            "small", dimensions=64, distance="dot", full_scan_threshold_kb=5000
        )
        assert info.config.dimensions == 64 and info.points_count == 0
        assert info.config.full_scan_threshold_kb == 5000
        client.upsert(
            "small", [{"id": "a", "text": "hello there"}, {"id": "b", "vector": [0.1] * 64}]
        )
        (stored,) = client.get("small", ["a"], with_vectors=True)
        assert stored.vector.shape == (64,)
        assert abs(float(np.linalg.norm(stored.vector)) - 1.0) < 1e-5  # Matryoshka, re-normalised
        assert client.list_collections() == ["small"]
        assert client.get_collection("small").points_count == 2
        cases = [
            (
                lambda: client.create_collection("big", dimensions=768),
                grpc.StatusCode.FAILED_PRECONDITION,
                "768",
            ),
            (lambda: client.create_collection("small"), grpc.StatusCode.ALREADY_EXISTS, "small"),
            (lambda: client.search("nope", "x"), grpc.StatusCode.NOT_FOUND, "nope"),
            (
                lambda: client.upsert("small", [{"id": "c", "vector": [0.1] * 3}]),
                grpc.StatusCode.INVALID_ARGUMENT,
                "documents[0].vector has 3 dimensions",
            ),
            (lambda: client.delete("small"), grpc.StatusCode.INVALID_ARGUMENT, "give ids"),
            (
                lambda: client.search("small", "x", filter={"must": [{}]}),
                grpc.StatusCode.INVALID_ARGUMENT,
                "filter.must[0]",
            ),
            (
                lambda: client.search("small", "x", limit=0),
                grpc.StatusCode.INVALID_ARGUMENT,
                "limit",
            ),
        ]
        for call, code, named in cases:
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == code, error.value.details()
            assert named in error.value.details()
        assert "768" in error_details(lambda: client.create_collection("big", dimensions=768))
        assert "384" in error_details(lambda: client.create_collection("big", dimensions=768))
        client.delete_collection("small")
        assert client.list_collections() == []


def error_details(call) -> str:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return str(error.value.details())
