"""The embedder over the fake encoder: prompts, overflow policies, chunk assembly, Matryoshka."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from fakes import CLS, SEP, FakeEncoder, ids_of
from harness import running_embedder

from embedserve.server.embedder import Embedder, EmbedParams, EmbedResult, Task
from embedserve.server.errors import InvalidArgument
from embedserve.server.model_spec import PoolingMode
from embedserve.server.tokenization import Overflow
from embedserve.server.windows import Window

LONG = " ".join(f"w{i}" for i in range(70))  # 70 words: over the fake's 32-token maximum


def embed(encoder: FakeEncoder, texts: list[str], **params: Any) -> EmbedResult:
    async def body() -> EmbedResult:
        async with running_embedder(encoder) as embedder:
            return await embedder.embed(texts, EmbedParams(**params))

    return asyncio.run(body())


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_vectors_are_the_models_pooled_and_normalised_windows() -> None:
    encoder = FakeEncoder()
    result = embed(encoder, ["a b c", "d e"], task=Task.NONE)
    for row, text in enumerate(["a b c", "d e"]):
        want = encoder.window_vector(Window((CLS, *ids_of(encoder, text), SEP)))
        np.testing.assert_allclose(result.vectors[row], unit(want), atol=1e-6)
    assert result.token_counts == [5, 4]


def test_task_prompts_and_explicit_prompts() -> None:
    encoder = FakeEncoder()
    query = embed(encoder, ["cats"], task=Task.QUERY).vectors
    spelled = embed(encoder, ["query: cats"], task=Task.NONE).vectors
    explicit = embed(encoder, ["cats"], prompt="query: ").vectors
    document = embed(encoder, ["cats"], task=Task.DOCUMENT).vectors
    np.testing.assert_allclose(query, spelled, atol=1e-6)
    np.testing.assert_allclose(query, explicit, atol=1e-6)
    assert np.abs(query - document).max() > 1e-3


def test_without_include_prompt_pooling_starts_after_the_prompt() -> None:
    encoder = FakeEncoder(include_prompt=False)
    got = embed(encoder, ["cats sleep"], task=Task.QUERY).vectors[0]
    ids = (CLS, *ids_of(encoder, "query: cats sleep"), SEP)
    head = 1 + len(ids_of(encoder, "query: "))
    np.testing.assert_allclose(got, unit(encoder.window_vector(Window(ids, head))), atol=1e-6)


def test_truncation_keeps_the_head_or_the_tail() -> None:
    encoder = FakeEncoder(max_tokens=32)
    words = ids_of(encoder, LONG)
    right = embed(encoder, [LONG], task=Task.NONE)
    left = embed(encoder, [LONG], task=Task.NONE, overflow=Overflow.TRUNCATE_LEFT)
    np.testing.assert_allclose(
        right.vectors[0], unit(encoder.window_vector(Window((CLS, *words[:30], SEP)))), atol=1e-6
    )
    np.testing.assert_allclose(
        left.vectors[0], unit(encoder.window_vector(Window((CLS, *words[-30:], SEP)))), atol=1e-6
    )
    assert right.truncated == [True] and right.token_counts == [32]  # what the model saw


def test_error_policy_names_the_input_and_the_limit() -> None:
    encoder = FakeEncoder(max_tokens=32)
    with pytest.raises(InvalidArgument, match=r"inputs\[1\] has 72 tokens.*maximum of 32"):
        embed(encoder, ["short", LONG], overflow=Overflow.ERROR)
    assert encoder.calls == 0  # refused before any model time


def test_chunks_overlap_and_pool_weighted_by_their_token_counts() -> None:
    encoder = FakeEncoder(max_tokens=32, chunk_overlap_tokens=4)
    words = ids_of(encoder, LONG)
    result = embed(encoder, [LONG], task=Task.NONE, overflow=Overflow.CHUNK)
    room, step = 30, 26  # 32 minus CLS and SEP; overlap 4
    starts = range(0, len(words) - room + step, step)
    windows = [Window((CLS, *words[s : s + room], SEP)) for s in starts]
    assert [len(w.ids) for w in windows] == [32, 32, 20]
    weights = np.array([len(w.ids) for w in windows], dtype=np.float32)
    stacked = np.stack([encoder.window_vector(w) for w in windows])
    want = unit((weights[:, None] * stacked).sum(axis=0) / weights.sum())
    np.testing.assert_allclose(result.vectors[0], want, atol=1e-6)
    assert result.chunk_counts == [3] and result.truncated == [False]
    received = sorted(w.ids for batch in encoder.batches for w in batch)
    assert received == sorted(w.ids for w in windows)


def test_matryoshka_truncates_then_normalises() -> None:
    encoder = FakeEncoder(dimensions=16)
    full = embed(encoder, ["a b c"], task=Task.NONE, normalize=False).vectors[0]
    small = embed(encoder, ["a b c"], task=Task.NONE, dimensions=4).vectors[0]
    raw_small = embed(encoder, ["a b c"], task=Task.NONE, dimensions=4, normalize=False).vectors
    assert small.shape == (4,)
    np.testing.assert_allclose(small, unit(full[:4]), atol=1e-6)
    np.testing.assert_allclose(raw_small[0], full[:4], atol=1e-6)


def test_pooling_override_and_the_models_own_pooling() -> None:
    text = ["a b c d"]
    ids = Window((CLS, *ids_of(FakeEncoder(), "a b c d"), SEP)).ids
    own_cls = FakeEncoder(pooling=PoolingMode.CLS)
    got = embed(own_cls, text, task=Task.NONE).vectors[0]
    np.testing.assert_allclose(got, unit(own_cls.token_vector(ids[0])), atol=1e-6)
    last = embed(own_cls, text, task=Task.NONE, pooling=PoolingMode.LAST_TOKEN).vectors[0]
    np.testing.assert_allclose(last, unit(own_cls.token_vector(ids[-1])), atol=1e-6)


@pytest.mark.parametrize(
    ("texts", "params", "message"),
    [
        ([], {}, "inputs must not be empty"),
        (["ok", ""], {}, r"inputs\[1\] is empty"),
        (["x" * 10_001], {}, r"inputs\[0\] has 10001 characters.*\(max_input_chars\)"),
        (["ok"] * 65, {}, r"65 items; the limit is 64 per request \(max_inputs_per_request\)"),
        (["ok"], {"dimensions": 17}, "between 1 and 16"),
        (["ok"], {"prompt": "p" * 10_001}, r"options.prompt has 10001 characters.*max_input_chars"),
    ],
)
def test_bad_requests_fail_before_any_model_call(
    texts: list[str], params: dict[str, Any], message: str
) -> None:
    encoder = FakeEncoder()
    with pytest.raises(InvalidArgument, match=message):
        embed(encoder, texts, **params)
    assert encoder.calls == 0


def test_a_prompt_before_every_input_counts_as_often_as_it_is_tokenized() -> None:
    """A 10,000-character prompt before each of 64 inputs: 640,000 characters of work from
    a request of 10 kB; it took 30 s of every caller's tokenizing at 1 MB."""

    prompt = "p" * 10_000
    calls: list[tuple[str, Callable[[Embedder, list[str]], Awaitable[Any]]]] = [
        ("options.prompt", lambda e, texts: e.embed(texts, EmbedParams(prompt=prompt))),
        ("options.prompt", lambda e, texts: e.embed_tokens(texts, EmbedParams(prompt=prompt))),
        ("prompt", lambda e, texts: e.tokenize(texts, Task.DEFAULT, prompt)),
    ]

    async def body() -> None:
        async with running_embedder(FakeEncoder(), max_message_bytes=600_000) as embedder:
            for where, call in calls:
                await call(embedder, ["ok"] * 59)  # 590,118 characters: taken
                with pytest.raises(InvalidArgument) as refused:
                    await call(embedder, ["ok"] * 60)
                assert str(refused.value) == (
                    f"{where} before each of the 60 inputs makes 600120 characters to "
                    "tokenize, more than one request may carry (600000, max_message_bytes): "
                    "send fewer inputs per request or a shorter prompt"
                )

    asyncio.run(body())


def test_a_prompt_with_token_ids_is_held_to_max_input_chars() -> None:
    async def body() -> None:
        async with running_embedder(FakeEncoder()) as embedder:
            with pytest.raises(InvalidArgument) as refused:
                await embedder.embed_token_ids([[5, 6]], EmbedParams(prompt="p" * 10_001))
            assert str(refused.value) == (
                "options.prompt has 10001 characters; the limit is 10000 (max_input_chars)"
            )

    asyncio.run(body())


def test_identical_inputs_of_one_request_get_identical_vectors() -> None:
    encoder = FakeEncoder()
    vectors = embed(encoder, ["same text", "other", "same text"], task=Task.NONE).vectors
    np.testing.assert_array_equal(vectors[0], vectors[2])
