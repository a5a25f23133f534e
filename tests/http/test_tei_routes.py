"""text-embeddings-inference's routes answer its clients as TEI would: huggingface_hub's
InferenceClient and LlamaIndex's TextEmbeddingsInference, pointed at this server, get the
vectors and scores gRPC gives, and TEI's error shape and statuses."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from embedserve.client import EmbedClient
from embedserve.server.http import tei_schemas

TEXTS = ["what is a vector database", "cats sleep for most of the day, often in the sun"]
QUERY = "where do vectors live?"
LONG_TEXT = " ".join(f"word{i % 50}" for i in range(2000))  # past every test model's maximum


@pytest.fixture
def hub_client_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests run with the hub offline, which huggingface_hub's client takes to mean no
    request at all, even to this loopback server."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.mark.usefixtures("hub_client_on_loopback")
def test_tei_clients_get_the_vectors_grpc_gives(both: Any) -> None:
    from huggingface_hub import InferenceClient
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    endpoint = InferenceClient(model=both.url)  # an endpoint's feature extraction: POST /
    plain = endpoint.feature_extraction(TEXTS)
    short = endpoint.feature_extraction(TEXTS, normalize=False, dimensions=64)
    llama = TextEmbeddingsInference(model_name="minilm", base_url=both.url)
    batch = np.asarray(llama.get_text_embedding_batch(TEXTS))
    with EmbedClient(both.target) as client:
        want = client.embed(TEXTS, normalize=True)
        want_short = client.embed(TEXTS, normalize=False, dimensions=64)
    assert plain.shape == batch.shape == (2, 384)
    assert np.abs(plain - want).max() <= 1e-6
    assert np.abs(batch - want).max() <= 1e-6
    assert short.shape == (2, 64)
    assert np.abs(short - want_short).max() <= 1e-6
    assert abs(float(np.linalg.norm(short[0])) - 1.0) > 1e-3  # not normalised, as asked


@pytest.mark.usefixtures("hub_client_on_loopback")
def test_similarity_embed_all_and_info(both: Any) -> None:
    from huggingface_hub import InferenceClient

    # InferenceClient posts sentence similarity to the model's URL itself.
    scores = InferenceClient(model=f"{both.url}/similarity").sentence_similarity(QUERY, TEXTS)
    with httpx.Client(base_url=both.url, timeout=60) as http:
        per_token = http.post("/embed_all", json={"inputs": TEXTS[:1]}).json()
        raw = {"inputs": TEXTS[:1], "options": {"normalize": False}}
        mirrored = http.post("/api/v1/embed-tokens", json=raw).json()
        info = http.get("/info").json()
        health = http.get("/")  # TEI's health check, as load balancers probe it
    with EmbedClient(both.target) as client:
        want = client.similarity(QUERY, TEXTS, task="none")
        served = client.model_info()
    np.testing.assert_allclose(scores, want, atol=1e-6)
    tokens = mirrored["results"][0]["tokens"]
    assert np.asarray(per_token).shape == (1, len(tokens), 384)
    assert np.abs(np.asarray(per_token[0]) - [t["values"] for t in tokens]).max() <= 1e-6
    # The hidden states as they are, as TEI answers them: MiniLM normalises only its
    # pooled vector.
    assert np.linalg.norm(per_token[0], axis=1).min() > 2
    assert info["model_id"] == served.model_id
    assert info["max_input_length"] == served.max_tokens
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert (health.status_code, health.json()) == (200, {"status": "SERVING"})


def test_prompt_names_truncation_and_errors(
    start_http_server: Any, tiny_modernbert_path: Any
) -> None:
    running = start_http_server(model=str(tiny_modernbert_path))
    with httpx.Client(base_url=running.url, timeout=60) as http:
        query = http.post("/embed", json={"inputs": TEXTS, "prompt_name": "query"}).json()
        left = http.post(
            "/embed",
            json={"inputs": LONG_TEXT, "truncate": True, "truncation_direction": "Left"},
        ).json()
        scored = http.post(
            "/similarity",
            json={
                "inputs": {"source_sentence": QUERY, "sentences": TEXTS},
                "parameters": {"prompt_name": "document"},
            },
        ).json()
        unknown = http.post("/embed", json={"inputs": "hi", "prompt_name": "passage"})
        too_long = http.post("/embed", json={"inputs": LONG_TEXT, "truncate": False})
        empty = http.post("/embed", json={"inputs": []})
        misspelt = http.post("/embed", json={"inputs": "hi", "normalise": True})
        too_wide = http.post("/embed", json={"inputs": "hi", "dimensions": 999})
    with EmbedClient(running.target) as client:
        want_query = client.embed(TEXTS, task="query", normalize=True)
        want_left = client.embed(LONG_TEXT, overflow="truncate_left", normalize=True)
        documents = client.embed([QUERY, *TEXTS], task="document", normalize=True)
    assert np.abs(np.asarray(query) - want_query).max() <= 1e-6
    assert np.abs(np.asarray(left) - want_left).max() <= 1e-6
    # Both sides with the prompt asked for (TEI's rule), not query and document prompts.
    np.testing.assert_allclose(scored, documents[1:] @ documents[0], atol=1e-5)

    # TEI's statuses: 413 for a request refused, 422 for a body not of its schema.
    for answer, status, needle in [
        (unknown, 413, "prompt_name 'passage' is not one of the model's prompts (document, query)"),
        (too_long, 413, "tokens"),
        (empty, 422, "inputs is empty"),
        (too_wide, 413, "dimensions must be between 1 and 64"),
    ]:
        assert answer.status_code == status, answer.text
        body = answer.json()
        assert body["error_type"] == "Validation"
        assert needle in body["error"]
    assert too_wide.json()["error"].startswith("dimensions")  # named as the body names it
    # A field TEI does not know is ignored, as TEI does (its clients send some).
    assert misspelt.status_code == 200, misspelt.text
    with EmbedClient(running.target) as client:
        np.testing.assert_allclose(misspelt.json(), client.embed(["hi"], normalize=True), atol=1e-6)


def test_tokenize_gives_tei_tokens(start_http_server: Any, tiny_modernbert_path: Any) -> None:
    """Spans into the text, the text under them; the tokenizer's added tokens (and the
    prompt's) have none, and add_special_tokens false leaves the added ones out."""
    running = start_http_server(model=str(tiny_modernbert_path))
    text = "Hello vector world"
    with httpx.Client(base_url=running.url, timeout=60) as http:
        (plain,) = http.post("/tokenize", json={"inputs": text}).json()
        (bare,) = http.post(
            "/tokenize", json={"inputs": [text], "add_special_tokens": False}
        ).json()
        (prompted,) = http.post("/tokenize", json={"inputs": text, "prompt_name": "query"}).json()
        mirrored = http.post("/api/v1/tokenize", json={"inputs": [text]}).json()
    assert [t["id"] for t in plain] == mirrored["results"][0]["ids"]
    assert [t["special"] for t in plain] == [True, False, False, False, True]
    assert [(t["text"], t["start"], t["stop"]) for t in plain[1:-1]] == [
        ("Hello", 0, 5),
        ("vector", 6, 12),
        ("world", 13, 18),
    ]
    assert plain[0]["start"] is None and plain[0]["text"] == "[CLS]"
    assert bare == plain[1:-1]
    prompt_tokens = prompted[1 : len(prompted) - len(plain) + 1]  # "search_query: "
    assert prompt_tokens and all(t["start"] is None and not t["special"] for t in prompt_tokens)
    assert prompted[-4:-1] == plain[1:-1]  # the text's own spans, not shifted by the prompt
    # TEI's spans count UTF-8 bytes (its Rust tokenizer's), not characters: a TEI client
    # cutting the input's bytes by them got broken characters.
    wide = "é漢字 Hello"
    with httpx.Client(base_url=running.url, timeout=60) as http:
        (spans,) = http.post("/tokenize", json={"inputs": wide}).json()
    in_text = [t for t in spans if t["start"] is not None]
    assert in_text[-1]["stop"] == len(wide.encode())
    for token in in_text:
        assert wide.encode()[token["start"] : token["stop"]].decode() == token["text"]


def test_decode_gives_back_the_text(both: Any) -> None:
    with httpx.Client(base_url=both.url, timeout=60) as http:
        (tokens,) = http.post("/tokenize", json={"inputs": "Hello vector world"}).json()
        ids = [t["id"] for t in tokens]
        plain = http.post("/decode", json={"ids": ids}).json()
        with_added = http.post("/decode", json={"ids": [ids], "skip_special_tokens": False})
        bad = http.post("/decode", json={"ids": [ids, [5, 99999999]]})
        # One list is ids itself: its id 1 was named ids[0], the list's place in a list.
        bad_in_one = http.post("/decode", json={"ids": [101, 99999999]})
    assert plain == ["hello vector world"]  # MiniLM's tokenizer lowercases
    assert with_added.json() == ["[CLS] hello vector world [SEP]"]
    assert bad.status_code == bad_in_one.status_code == 413
    assert bad.json()["error"].startswith("ids[1][1] is token id 99999999")
    assert bad_in_one.json()["error"].startswith("ids[1] is token id 99999999")


@pytest.mark.parametrize(
    ("ids", "named"),
    [
        ([[1], "a"], "ids[1] is a string, unlike ids[0] (an array)"),
        ("x", "ids is a string"),
        ([], "ids is empty"),
        ([1, -2], "ids[1] is an integer, not a token id"),
        ([[1, 2], [3, True]], "ids[1][1] is a boolean"),
        ([[1], []], "ids[1] is empty"),
    ],
)
def test_decode_names_the_first_wrong_id(both: Any, ids: Any, named: str) -> None:
    """pydantic named a member of the union (and blamed ids[0] for ids[1]'s fault)."""
    with httpx.Client(base_url=both.url, timeout=60) as http:
        answer = http.post("/decode", json={"ids": ids})
    assert answer.status_code == 422
    assert answer.json()["error"] == f"{named}; {tei_schemas.IDS_SHAPE}"


def test_tei_error_shape_covers_exactly_the_tei_routes() -> None:
    from embedserve.server.http import tei_routes
    from embedserve.server.http.responses import TEI_PATHS

    assert {route.path for route in tei_routes.router.routes} == TEI_PATHS


@pytest.mark.parametrize("path", ["/embed", "/"])
def test_tei_routes_take_the_same_keys(
    start_http_server: Any, minilm_model: Any, path: str
) -> None:
    running = start_http_server(loaded=minilm_model, api_keys="k-read read")
    with httpx.Client(base_url=running.url, timeout=60) as http:
        keyless = http.post(path, json={"inputs": "hello"})
        keyed = http.post(
            path, json={"inputs": "hello"}, headers={"authorization": "Bearer k-read"}
        )
    assert keyless.status_code == 401
    assert set(keyless.json()) == {"error", "error_type"}
    assert keyed.status_code == 200
    assert np.asarray(keyed.json()).shape == (1, 384)
