"""Rerank over HTTP: embedserve's /api/v1/rerank, TEI's /rerank and the /v1/rerank of
Cohere's, Jina's and Infinity's APIs give the scores gRPC gives, each in its own shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from embedserve.client import EmbedClient

QUERY = "how do rockets reach orbit"
DOCUMENTS = [
    "A rocket burns its fuel to climb out of the atmosphere and reach orbit.",
    "Bake the bread for forty minutes.",
    "Satellites circle the planet.",
    "orbit " * 700,
]


def same_ranking(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> bool:
    """The same documents in the same order, with the same scores (float32 both ways)."""
    return [i for i, _ in got] == [i for i, _ in expected] and [s for _, s in got] == (
        pytest.approx([s for _, s in expected], abs=1e-6)
    )


@pytest.fixture
def served(start_http_server: Any, minilm_model: Any, tiny_reranker_path: Path) -> Any:
    return start_http_server(loaded=minilm_model, reranker=str(tiny_reranker_path))


@pytest.fixture
def http(served: Any) -> Any:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        yield client


@pytest.fixture
def grpc_ranking(served: Any) -> list[tuple[int, float]]:
    with EmbedClient(served.target) as client:
        return [(r.index, r.score) for r in client.rerank(QUERY, DOCUMENTS)]


def test_rest_route_mirrors_grpc(
    http: httpx.Client, grpc_ranking: list[tuple[int, float]], tiny_reranker_path: Path
) -> None:
    reply = http.post(
        "/api/v1/rerank",
        json={"query": QUERY, "documents": DOCUMENTS, "top_n": 3, "return_documents": True},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert same_ranking([(r["index"], r["score"]) for r in body["results"]], grpc_ranking[:3])
    assert [r["document"] for r in body["results"]] == [
        DOCUMENTS[r["index"]] for r in body["results"]
    ]
    assert body["usage"]["total_tokens"] > 512 and body["model"] == str(tiny_reranker_path)
    assert {"queue_ms", "tokenize_ms", "inference_ms", "total_ms"} <= set(body["timings"])
    refused = http.post(
        "/api/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS, "overflow": "error"}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "documents[3]" in refused.json()["error"]["message"]
    model = http.get("/api/v1/model").json()
    assert model["reranker"]["model_id"] == str(tiny_reranker_path)
    assert model["reranker"]["activation"] == "sigmoid"


def test_tei_rerank(http: httpx.Client, grpc_ranking: list[tuple[int, float]]) -> None:
    reply = http.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "return_text": True})
    assert reply.status_code == 200, reply.text
    ranked = reply.json()
    assert same_ranking([(r["index"], r["score"]) for r in ranked], grpc_ranking)
    assert [r["text"] for r in ranked] == [DOCUMENTS[r["index"]] for r in ranked]
    raw = http.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "raw_scores": True})
    assert any(not 0 <= r["score"] <= 1 for r in raw.json())
    assert "text" not in raw.json()[0]
    # TEI's statuses and error shape: 413 for a request refused, 422 for a body not its own.
    too_long = http.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "truncate": False})
    assert too_long.status_code == 413
    assert too_long.json()["error_type"] == "Validation"
    assert "texts[3]" in too_long.json()["error"]
    empty = http.post("/rerank", json={"query": QUERY, "texts": []})
    assert empty.status_code == 422 and "error_type" in empty.json()
    # Fields TEI does not know (LiteLLM sends top_n) are ignored, as TEI does.
    extra = http.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "top_n": 1})
    assert extra.status_code == 200, extra.text
    assert same_ranking([(r["index"], r["score"]) for r in extra.json()], grpc_ranking)


def test_cohere_jina_infinity_rerank(
    http: httpx.Client, grpc_ranking: list[tuple[int, float]], tiny_reranker_path: Path
) -> None:
    documents: list[Any] = [DOCUMENTS[0], {"text": DOCUMENTS[1]}, *DOCUMENTS[2:]]
    reply = http.post(
        "/v1/rerank",
        json={
            "model": str(tiny_reranker_path),
            "query": QUERY,
            "documents": documents,
            "top_n": 2,
            "return_documents": True,
        },
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "rerank" and body["model"] == str(tiny_reranker_path)
    got = [(r["index"], r["relevance_score"]) for r in body["results"]]
    assert same_ranking(got, grpc_ranking[:2])
    assert [r["document"]["text"] for r in body["results"]] == [
        DOCUMENTS[r["index"]] for r in body["results"]
    ]
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] > 512
    plain = http.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS}).json()
    assert len(plain["results"]) == len(DOCUMENTS) and "document" not in plain["results"][0]
    other = http.post(
        "/v1/rerank", json={"model": "bge-reranker", "query": QUERY, "documents": ["a"]}
    )
    assert other.status_code == 404
    assert "not served here" in other.json()["error"]["message"]  # OpenAI's error shape


def test_document_objects_are_ranked_by_their_text(
    http: httpx.Client, grpc_ranking: list[tuple[int, float]]
) -> None:
    """Cohere's document objects may carry fields besides the text: it is ranked, they are
    ignored (they were a 400 naming pydantic's constrained-str)."""
    documents = [
        {"id": n, "title": f"document {n}", "text": text, "meta": {"lang": "en"}}
        for n, text in enumerate(DOCUMENTS)
    ]
    for path, returned in (
        ("/v1/rerank", lambda text: {"text": text}),
        ("/v2/rerank", lambda text: {"text": text}),
        ("/rerank", lambda text: text),  # Infinity's shape: the text itself
    ):
        body = {"query": QUERY, "documents": documents, "return_documents": True}
        reply = http.post(path, json=body)
        assert reply.status_code == 200, (path, reply.text)
        results = reply.json()["results"]
        assert same_ranking([(r["index"], r["relevance_score"]) for r in results], grpc_ranking)
        assert [r["document"] for r in results] == [
            returned(DOCUMENTS[r["index"]]) for r in results
        ]
    untitled = http.post("/v1/rerank", json={"query": QUERY, "documents": [{"title": "t"}]})
    assert untitled.status_code == 400
    message = untitled.json()["error"]["message"]
    assert message == "documents[0].text: Field required (an object with a text)"
    number = http.post("/v2/rerank", json={"query": QUERY, "documents": [7]})
    assert number.json() == {"message": "documents[0]: Input should be a valid string (a text)"}


def test_without_a_reranker(both: Any) -> None:
    with httpx.Client(base_url=both.url, timeout=60) as http:
        for path, body in [
            ("/api/v1/rerank", {"query": "q", "documents": ["a"]}),
            ("/rerank", {"query": "q", "texts": ["a"]}),
            ("/v1/rerank", {"query": "q", "documents": ["a"]}),
        ]:
            reply = http.post(path, json=body)
            assert reply.status_code in {400, 413}, (path, reply.text)
            assert "--reranker" in reply.text
        assert http.get("/api/v1/model").json()["reranker"] is None


def test_infinity_clients_body_at_rerank(
    http: httpx.Client, grpc_ranking: list[tuple[int, float]], tiny_reranker_path: Path
) -> None:
    """Infinity serves its rerank at /rerank, with /v1/rerank's body; its clients (LiteLLM's
    infinity provider, LangChain's InfinityRerank) post there."""
    body = {"query": QUERY, "documents": DOCUMENTS, "return_documents": True, "top_n": 3}
    reply = http.post("/rerank", json={"model": str(tiny_reranker_path), **body})
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["object"] == "rerank" and isinstance(answer["created"], int)
    got = [(r["index"], r["relevance_score"]) for r in answer["results"]]
    assert same_ranking(got, grpc_ranking[:3])
    # Infinity's document is the text itself; Cohere's and Jina's an object.
    assert [r["document"] for r in answer["results"]] == [DOCUMENTS[i] for i, _ in got]
    # A mistake in either shape is named in that shape's terms.
    wrong = http.post("/rerank", json={"query": QUERY, "documents": [], "top_n": 1})
    assert wrong.status_code == 422 and "documents" in wrong.json()["error"]
    tei = http.post("/rerank", json={"query": QUERY, "texts": [""]})
    assert tei.status_code == 422 and "texts" in tei.json()["error"]
