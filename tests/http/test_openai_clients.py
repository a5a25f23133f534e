"""Clients nobody here wrote (openai, LangChain, LlamaIndex) against a live server: their
vectors equal gRPC's for the same texts."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from embedserve.client import EmbedClient

TEXTS = [
    "The rocket reached orbit.",
    "Bake the bread for 40 minutes.",
    "A much longer sentence about planets, probes, and the people who build them " * 3,
]
TOLERANCE = 1e-6


def grpc_vectors(target: str, texts: list[str], **options: Any) -> np.ndarray[Any, Any]:
    with EmbedClient(target) as client:
        return np.asarray(client.embed(texts, **options), dtype=np.float64)


def served_model(url: str) -> str:
    models = httpx.get(f"{url}/v1/models").json()
    assert models["object"] == "list"
    model_id: str = models["data"][0]["id"]
    return model_id


@pytest.fixture
def client(both: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{both.url}/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_openai_client_matches_grpc(both: Any, client: openai.OpenAI, encoding: str) -> None:
    model = served_model(both.url)
    reply = client.embeddings.create(model=model, input=TEXTS, encoding_format=encoding)  # type: ignore[arg-type]
    # None is sent as null (as LiteLLM sends it when its caller sets none): floats.
    if encoding == "base64":  # asked for explicitly, the client hands the text back as is
        rows = [np.frombuffer(base64.b64decode(item.embedding), "<f4") for item in reply.data]  # type: ignore[arg-type]
    else:
        rows = [np.array(item.embedding) for item in reply.data]
    got = np.array(rows, dtype=np.float64)
    assert [item.index for item in reply.data] == [0, 1, 2]
    assert np.abs(got - grpc_vectors(both.target, TEXTS)).max() <= TOLERANCE
    assert reply.model == model
    assert reply.usage.prompt_tokens == reply.usage.total_tokens > len(TEXTS) * 3


def test_openai_client_default_encoding_and_dimensions(both: Any, client: openai.OpenAI) -> None:
    """The client asks for base64 by default and decodes it itself."""
    reply = client.embeddings.create(model=served_model(both.url), input="one", dimensions=64)
    got = np.array(reply.data[0].embedding)
    expected = grpc_vectors(both.target, ["one"], dimensions=64)[0]
    assert got.shape == (64,)
    assert np.abs(got - expected).max() <= TOLERANCE
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=served_model(both.url), input="one", dimensions=999)
    # The field as this request names it (top-level), not the REST mirror's options.
    message = refused.value.body["message"]
    assert message.startswith("dimensions must be between 1 and 384"), message


def test_token_ids_are_refused_by_default_naming_the_fix(both: Any) -> None:
    """LangChain's OpenAIEmbeddings sends its texts as ids of OpenAI's tokenizer by default
    (this body is what it sends for two words); embedded as MiniLM's own ids, they gave a
    vector of two unrelated word pieces, with no error."""
    langchain_default = {"input": [[15339, 1917]], "model": "minilm", "encoding_format": "base64"}
    for body in (langchain_default, {"input": [15339, 1917]}):
        reply = httpx.post(f"{both.url}/v1/embeddings", json=body)
        assert reply.status_code == 400
        message = reply.json()["error"]["message"]
        assert message.startswith("input holds token ids. OpenAI's clients make these with")
        assert "OpenAIEmbeddings(check_embedding_ctx_length=False)" in message
        assert "--openai-token-ids model" in message


def test_token_id_inputs_equal_text_inputs(start_http_server: Any, minilm_model: Any) -> None:
    both = start_http_server(loaded=minilm_model, openai_token_ids="model")
    client = openai.OpenAI(base_url=f"{both.url}/v1", api_key="unused", max_retries=0)
    with EmbedClient(both.target) as grpc_client:
        ids = [list(r.ids)[1:-1] for r in grpc_client.tokenize(TEXTS[:2]).results]  # no specials
    model = served_model(both.url)
    as_ids = client.embeddings.create(model=model, input=ids, encoding_format="float")
    as_one = client.embeddings.create(model=model, input=ids[0], encoding_format="float")
    expected = grpc_vectors(both.target, TEXTS[:2])
    assert np.abs(np.array([d.embedding for d in as_ids.data]) - expected).max() <= TOLERANCE
    assert np.abs(np.array(as_one.data[0].embedding) - expected[0]).max() <= TOLERANCE
    assert as_one.usage.total_tokens == len(ids[0]) + 2
    # An id outside the vocabulary is named by its place: in one list, input[k].
    for ids_sent, place in (([5, 99999999], "input[1]"), ([[5], [5, 99999999]], "input[1][1]")):
        with pytest.raises(openai.BadRequestError) as refused:
            client.embeddings.create(model=model, input=ids_sent)
        assert refused.value.body["message"].startswith(f"{place} is token id 99999999")


def test_embedserve_options_as_extra_body(both: Any, client: openai.OpenAI) -> None:
    reply = client.embeddings.create(
        model=served_model(both.url),
        input=["word " * 600],
        encoding_format="float",
        extra_body={"overflow": "chunk", "task": "document", "normalize": False},
    )
    expected = grpc_vectors(
        both.target, ["word " * 600], overflow="chunk", task="document", normalize=False
    )
    assert np.abs(np.array(reply.data[0].embedding) - expected[0]).max() <= TOLERANCE
    assert abs(np.linalg.norm(expected[0]) - 1.0) > 1e-3  # really not normalised


def test_openai_errors_have_openai_shape(both: Any, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert "is not served here" in missing.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model=served_model(both.url), input=["ok", ""])
    assert bad.value.status_code == 400
    assert bad.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert "input[1] is empty" in bad.value.message
    reply = httpx.post(f"{both.url}/v1/embeddings", json={"input": "x", "dimension": 3})
    assert reply.status_code == 400
    assert reply.json()["error"]["message"].startswith("dimension:")
    # One error naming the first wrong item, not one per shape `input` may take.
    for wrong, problem in (
        (["ok", None], "input[1] is null, unlike input[0] (a string); input takes a text"),
        ([[101, 102], [101, "x"]], "input[1][1] is a string, not a token id;"),
        ({"text": "x"}, "input is an object;"),
    ):
        reply = httpx.post(f"{both.url}/v1/embeddings", json={"input": wrong})
        assert reply.status_code == 400
        assert reply.json()["error"]["message"].startswith(problem), reply.json()


def test_langchain_embeddings_match_grpc(both: Any) -> None:
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(
        model=served_model(both.url),
        base_url=f"{both.url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        check_embedding_ctx_length=False,  # tiktoken would need downloads
        max_retries=0,
    )
    documents = np.array(embeddings.embed_documents(TEXTS))
    query = np.array(embeddings.embed_query("where do rockets go?"))
    assert np.abs(documents - grpc_vectors(both.target, TEXTS)).max() <= TOLERANCE
    expected_query = grpc_vectors(both.target, ["where do rockets go?"])[0]
    assert np.abs(query - expected_query).max() <= TOLERANCE


def test_llamaindex_embeddings_match_grpc(both: Any) -> None:
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    embedding = OpenAILikeEmbedding(
        model_name=served_model(both.url),
        api_base=f"{both.url}/v1",
        api_key="unused",
        embed_batch_size=2,
    )
    texts = np.array(embedding.get_text_embedding_batch(TEXTS))
    one = np.array(embedding.get_text_embedding(TEXTS[0]))
    query = np.array(embedding.get_query_embedding("where do rockets go?"))
    expected = grpc_vectors(both.target, TEXTS)
    assert np.abs(texts - expected).max() <= TOLERANCE
    assert np.abs(one - expected[0]).max() <= TOLERANCE
    expected_query = grpc_vectors(both.target, ["where do rockets go?"])[0]
    assert np.abs(query - expected_query).max() <= TOLERANCE


def test_openai_routes_also_answer_at_infinitys_paths(both: Any) -> None:
    """Infinity serves /embeddings and /models without /v1, and its clients post there."""
    at_root = openai.OpenAI(base_url=both.url, api_key="unused", max_retries=0)
    model = served_model(both.url)
    reply = at_root.embeddings.create(model=model, input=TEXTS, encoding_format="float")
    got = np.array([item.embedding for item in reply.data], dtype=np.float64)
    assert np.abs(got - grpc_vectors(both.target, TEXTS)).max() <= TOLERANCE
    assert [m.id for m in at_root.models.list()] == [model]
    with pytest.raises(openai.BadRequestError) as refused:  # OpenAI's error shape there too
        at_root.embeddings.create(model=model, input="one", dimensions=999)
    assert refused.value.body["message"].startswith("dimensions must be between 1 and 384")


def test_openai_models_retrieve_names_the_served_model_only(both: Any, client: Any) -> None:
    model = served_model(both.url)
    assert client.models.retrieve(model).id == model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other-model")
    # An empty id names no model: it was answered as the served one.
    reply = httpx.get(f"{both.url}/v1/models/")
    assert reply.status_code == 404, reply.text
    assert reply.json()["error"]["message"] == "a model id must follow /v1/models/"
