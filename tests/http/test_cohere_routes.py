"""Cohere's embed and rerank APIs, called with Cohere's own SDK (v1 and v2 clients), and
embedserve's /api/v1/embed in fewer bits: the vectors gRPC gives, in Cohere's shapes."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import cohere
import httpx
import numpy as np
import pytest
from sentence_transformers.util.quantization import quantize_embeddings

from embedserve.client import EmbedClient

TEXTS = ["how do rockets reach orbit", "bake the bread for forty minutes", "satellites circle"]
PROMPTS = {"query": "search_query: ", "document": "search_document: ", "clustering": "cluster: "}


@pytest.fixture
def served(start_http_server: Any, build_tiny_model: Any, tiny_reranker_path: Path) -> Any:
    model = build_tiny_model(prompts=PROMPTS)
    return start_http_server(model=str(model), reranker=str(tiny_reranker_path))


@pytest.fixture
def grpc_client(served: Any) -> Any:
    with EmbedClient(served.target) as client:
        yield client


def test_v2_embed_answers_every_type_and_maps_input_types(served: Any, grpc_client: Any) -> None:
    co = cohere.ClientV2(api_key="unused", base_url=served.url)
    model = str(served.server.settings.model)
    answer = co.embed(
        texts=TEXTS,
        model=model,
        input_type="search_query",
        embedding_types=["float", "int8", "uint8", "binary", "ubinary", "base64"],
    )
    query = grpc_client.embed(TEXTS, task="query")
    floats = np.array(answer.embeddings.float_, dtype=np.float32)
    np.testing.assert_allclose(floats, query, atol=1e-6)
    # Without the query prompt the vectors differ: the input type was read.
    assert np.abs(grpc_client.embed(TEXTS, task="none") - query).max() > 1e-3
    np.testing.assert_array_equal(
        answer.embeddings.int8, grpc_client.embed_quantized(TEXTS, "int8", task="query")
    )
    np.testing.assert_array_equal(np.array(answer.embeddings.uint8) - 128, answer.embeddings.int8)
    np.testing.assert_array_equal(answer.embeddings.binary, quantize_embeddings(query, "binary"))
    np.testing.assert_array_equal(answer.embeddings.ubinary, quantize_embeddings(query, "ubinary"))
    decoded = [np.frombuffer(base64.b64decode(b), dtype="<f4") for b in answer.embeddings.base64]
    np.testing.assert_array_equal(np.stack(decoded), floats)
    assert answer.texts == TEXTS
    assert answer.meta.billed_units.input_tokens > len(TEXTS)

    documents = co.embed(
        texts=TEXTS, model=model, input_type="search_document", embedding_types=["float"]
    )
    np.testing.assert_allclose(
        documents.embeddings.float_, grpc_client.embed(TEXTS, task="document"), atol=1e-6
    )
    # classification has no prompt of its own here: the model's default (none).
    plain = co.embed(
        texts=TEXTS, model=model, input_type="classification", embedding_types=["float"]
    )
    np.testing.assert_allclose(plain.embeddings.float_, grpc_client.embed(TEXTS), atol=1e-6)
    clustered = co.embed(
        texts=TEXTS,
        model=model,
        input_type="clustering",
        embedding_types=["float"],
        output_dimension=32,
    )
    expected = grpc_client.embed(TEXTS, prompt="cluster: ", dimensions=32)
    np.testing.assert_allclose(clustered.embeddings.float_, expected, atol=1e-6)


def test_v2_embed_takes_inputs_of_one_text_part(served: Any, grpc_client: Any) -> None:
    co = cohere.ClientV2(api_key="unused", base_url=served.url)
    inputs = [cohere.EmbedInput(content=[cohere.TextEmbedContent(text=text)]) for text in TEXTS]
    answer = co.embed(
        inputs=inputs,
        model=str(served.server.settings.model),
        input_type="search_document",
        embedding_types=["float", "int8"],
    )
    np.testing.assert_allclose(
        answer.embeddings.float_, grpc_client.embed(TEXTS, task="document"), atol=1e-6
    )
    np.testing.assert_array_equal(
        answer.embeddings.int8, grpc_client.embed_quantized(TEXTS, "int8", task="document")
    )
    assert answer.texts == TEXTS


def test_v1_embed_answers_floats_or_by_type(served: Any, grpc_client: Any) -> None:
    co = cohere.Client(api_key="unused", base_url=served.url)
    plain = co.embed(texts=TEXTS, input_type="search_document")
    assert plain.response_type == "embeddings_floats"
    documents = grpc_client.embed(TEXTS, task="document")
    np.testing.assert_allclose(plain.embeddings, documents, atol=1e-6)
    typed = co.embed(texts=TEXTS, input_type="search_document", embedding_types=["ubinary"])
    assert typed.response_type == "embeddings_by_type"
    np.testing.assert_array_equal(
        typed.embeddings.ubinary, quantize_embeddings(documents, "ubinary")
    )


def test_langchain_cohere_embeddings(served: Any, grpc_client: Any) -> None:
    from langchain_cohere import CohereEmbeddings

    embeddings = CohereEmbeddings(
        model=str(served.server.settings.model), base_url=served.url, cohere_api_key="unused"
    )
    query = embeddings.embed_query(TEXTS[0])
    np.testing.assert_allclose(query, grpc_client.embed(TEXTS[0], task="query")[0], atol=1e-6)
    documents = asyncio.run(embeddings.aembed_documents(TEXTS))
    np.testing.assert_allclose(documents, grpc_client.embed(TEXTS, task="document"), atol=1e-6)


def test_v2_rerank_scores_as_grpc_does(served: Any, grpc_client: Any) -> None:
    co = cohere.ClientV2(api_key="unused", base_url=served.url)
    answer = co.rerank(model="", query=TEXTS[0], documents=TEXTS, top_n=2)
    expected = grpc_client.rerank(TEXTS[0], TEXTS, top_n=2)
    assert [r.index for r in answer.results] == [r.index for r in expected]
    assert [r.relevance_score for r in answer.results] == pytest.approx(
        [r.score for r in expected], abs=1e-6
    )
    with pytest.raises(cohere.errors.BadRequestError) as refused:
        co.rerank(model="", query=TEXTS[0], documents=TEXTS, max_tokens_per_doc=16)
    assert "max_tokens_per_doc 16 is below the reranker's maximum" in refused.value.body["message"]


def test_v1_rerank_ranks_document_objects_by_their_text(served: Any, grpc_client: Any) -> None:
    co = cohere.Client(api_key="unused", base_url=served.url)
    documents = [{"title": f"title {n}", "text": text} for n, text in enumerate(TEXTS)]
    answer = co.rerank(query=TEXTS[0], documents=documents, top_n=2, return_documents=True)
    expected = grpc_client.rerank(TEXTS[0], TEXTS, top_n=2)
    assert [r.index for r in answer.results] == [r.index for r in expected]
    assert [r.relevance_score for r in answer.results] == pytest.approx(
        [r.score for r in expected], abs=1e-6
    )
    assert [r.document and r.document.text for r in answer.results] == [
        TEXTS[r.index] for r in expected
    ]
    # /v1/rerank is Jina's and Infinity's too: its errors speak Cohere and OpenAI at once.
    with pytest.raises(cohere.errors.NotFoundError) as refused:
        co.rerank(model="rerank-v3.5", query=TEXTS[0], documents=TEXTS)
    body = refused.value.body
    assert "not served here" in body["message"]
    assert body["error"] == {
        "message": body["message"],
        "type": "not_found_error",
        "param": None,
        "code": None,
    }


_TEXT_PART = {"type": "text", "text": "a"}
_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}


def _text_input(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}]}


def test_cohere_refusals_speak_cohere(served: Any) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as http:
        cases = [
            ({"texts": TEXTS, "images": ["data:image/png;base64,AA=="]}, 400, "only texts"),
            ({"texts": TEXTS, "input_type": "image"}, 400, "only texts"),
            ({"texts": TEXTS, "max_tokens": 8}, 400, "max_tokens 8 is below"),
            ({"texts": TEXTS, "embedding_types": ["float16"]}, 400, "embedding_types"),
            (
                {"texts": TEXTS, "output_dimension": 385},
                400,
                "output_dimension must be between 1 and 64 (the model's width); got 385",
            ),
            ({"texts": ["x " * 600], "truncate": "NONE"}, 400, "texts[0] has"),
            ({"texts": TEXTS, "model": "other"}, 404, "not served here"),
            ({"texts": []}, 400, "texts"),
            ({}, 400, "give texts or inputs"),
            ({"texts": TEXTS, "inputs": [_text_input("a")]}, 400, "give texts or inputs"),
            (
                {"inputs": [_text_input("a"), {"content": [_IMAGE]}]},
                400,
                "inputs[1] holds an image",
            ),
            (
                {"inputs": [{"content": [_TEXT_PART, _TEXT_PART]}]},
                400,
                "inputs[0] holds 2 text parts",
            ),
            ({"inputs": [_text_input("x " * 600)], "truncate": "NONE"}, 400, "inputs[0] has"),
        ]
        for body, status, words in cases:
            for path in ("/v2/embed", "/v1/embed"):
                reply = http.post(path, json=body)
                assert reply.status_code == status, (path, body, reply.text)
                assert words in reply.json()["message"], (path, body, reply.text)
        # END (the default) and START cut a long text where gRPC cuts it.
        long = "one two three " * 300
        for truncate, overflow in (("END", "truncate_right"), ("START", "truncate_left")):
            reply = http.post("/v2/embed", json={"texts": [long], "truncate": truncate})
            assert reply.status_code == 200, reply.text
            with EmbedClient(served.target) as client:
                expected = client.embed([long], overflow=overflow)
            got = np.array(reply.json()["embeddings"]["float"], dtype=np.float32)
            np.testing.assert_allclose(got, expected, atol=1e-6)


def test_rest_embed_in_fewer_bits(served: Any, grpc_client: Any) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as http:
        reply = http.post(
            "/api/v1/embed",
            json={"inputs": TEXTS, "precision": "binary", "options": {"dimensions": 20}},
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["dimensions"] == 20
        rows = [item["quantized"] for item in body["embeddings"]]
        assert all("values" not in item for item in body["embeddings"])
        expected = grpc_client.embed_quantized(TEXTS, "binary", dimensions=20)
        np.testing.assert_array_equal(rows, expected)
        assert expected.shape == (len(TEXTS), 3)
        refused = http.post("/api/v1/embed-tokens", json={"inputs": TEXTS, "precision": "int8"})
        assert refused.status_code == 400 and "precision" in refused.json()["error"]["message"]
