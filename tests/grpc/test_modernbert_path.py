"""A tiny random ModernBERT through the same loading path: pooling, prompts, overflow policies."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from embedserve.client import EmbedClient
from embedserve.client._options import build_options
from embedserve.v1 import embedding_pb2 as pb

MAX_TOKENS = 24
OVERLAP = 4
LONG_TEXT = " ".join(f"word{i % 17} token{i % 5}" for i in range(40))


@pytest.fixture(scope="module")
def reference(tiny_modernbert_path: Path):
    model = AutoModel.from_pretrained(tiny_modernbert_path, attn_implementation="sdpa").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_modernbert_path)
    return model, tokenizer


def hidden_states(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).last_hidden_state[0].float()


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@pytest.fixture
def tiny_server(start_server, tiny_modernbert_path):
    return start_server(
        model=str(tiny_modernbert_path), max_tokens=MAX_TOKENS, chunk_overlap_tokens=OVERLAP
    )


def test_model_info_reads_sentence_transformers_files(tiny_server) -> None:
    with EmbedClient(tiny_server.target) as client:
        info = client.model_info()
    assert info.model_type == "modernbert"
    assert info.dimensions == 64
    assert info.max_tokens == MAX_TOKENS
    assert info.normalize is True
    assert dict(info.prompts) == {"query": "search_query: ", "document": "search_document: "}
    assert info.device == "cpu"
    assert info.batching.max_batch_tokens == 2048  # the CPU default


def test_cls_and_mean_pooling_match_hand_computation(tiny_server, reference) -> None:
    model, tokenizer = reference
    texts = ["short one", "a rather longer input sentence with more words in it"]
    with EmbedClient(tiny_server.target) as client:
        mean = client.embed(texts, pooling="mean", task="none")
        cls = client.embed(texts, pooling="cls", task="none")
        last = client.embed(texts, pooling="last_token", task="none")
    for row, text in enumerate(texts):
        hidden = hidden_states(model, tokenizer(text)["input_ids"]).numpy()
        assert np.abs(mean[row] - unit(hidden.mean(axis=0))).max() < 1e-5
        assert np.abs(cls[row] - unit(hidden[0])).max() < 1e-5
        assert np.abs(last[row] - unit(hidden[-1])).max() < 1e-5
    assert np.abs(mean - cls).max() > 1e-2  # the modes really differ


def test_task_prompts_prepend_the_models_prompts(tiny_server) -> None:
    with EmbedClient(tiny_server.target) as client:
        as_query = client.embed(["what is a vector"], task="query")
        by_hand = client.embed(["search_query: what is a vector"], task="none")
        as_document = client.embed(["what is a vector"], task="document")
        plain = client.embed(["what is a vector"])
        tokens = client.tokenize(["what is a vector"], task="query").results[0].tokens
    assert np.abs(as_query - by_hand).max() < 1e-6
    assert np.abs(as_query - as_document).max() > 1e-3
    assert np.abs(as_query - plain).max() > 1e-3
    assert list(tokens[:5]) == ["[CLS]", "search", "_", "query", ":"]


def body_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_truncate_right_and_left(tiny_server, reference) -> None:
    model, tokenizer = reference
    body = body_ids(tokenizer, LONG_TEXT)
    room = MAX_TOKENS - 2
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    with EmbedClient(tiny_server.target) as client:
        # Token counts and flags are on the raw response.
        response = client._stub.Embed(pb.EmbedRequest(inputs=[LONG_TEXT]))
        right = client.embed([LONG_TEXT], overflow="truncate_right", task="none")[0]
        left = client.embed([LONG_TEXT], overflow="truncate_left", task="none")[0]
    assert response.embeddings[0].truncated is True
    assert response.embeddings[0].token_count == MAX_TOKENS
    expected_right = hidden_states(model, [cls, *body[:room], sep]).numpy().mean(axis=0)
    expected_left = hidden_states(model, [cls, *body[-room:], sep]).numpy().mean(axis=0)
    assert np.abs(right - unit(expected_right)).max() < 1e-5
    assert np.abs(left - unit(expected_left)).max() < 1e-5


def test_error_policy_states_token_count_and_limit(tiny_server, reference) -> None:
    _, tokenizer = reference
    count = len(tokenizer(LONG_TEXT)["input_ids"])
    with EmbedClient(tiny_server.target) as client:
        with pytest.raises(grpc.RpcError) as error:
            client.embed(["fine", LONG_TEXT], overflow="error")
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"inputs[1] has {count} tokens" in error.value.details()
        assert f"maximum of {MAX_TOKENS}" in error.value.details()
        assert client.health() == "SERVING"


def test_chunk_pools_overlapping_windows_by_token_count(tiny_server, reference) -> None:
    model, tokenizer = reference
    body = body_ids(tokenizer, LONG_TEXT)
    room = MAX_TOKENS - 2
    step = room - OVERLAP
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    windows = [[cls, *body[s : s + room], sep] for s in range(0, len(body) - room + step, step)]
    assert len(windows) >= 3 and windows[-1][-2] == body[-1]
    pooled = [hidden_states(model, w).numpy().mean(axis=0) for w in windows]
    weights = np.array([len(w) for w in windows], dtype=np.float32)
    expected = unit((weights[:, None] * np.stack(pooled)).sum(axis=0) / weights.sum())
    with EmbedClient(tiny_server.target) as client:
        chunked = client.embed([LONG_TEXT, "short"], overflow="chunk", task="none")
        response = client._stub.Embed(
            pb.EmbedRequest(inputs=[LONG_TEXT], options=build_options(overflow="chunk"))
        )
    assert np.abs(chunked[0] - expected).max() < 1e-5
    assert response.embeddings[0].chunk_count == len(windows)
    assert response.embeddings[0].token_count == sum(len(w) for w in windows)
    assert response.embeddings[0].truncated is False
