"""The embedder's other doors (token vectors, token ids, tokenize) and its edges: limits met
exactly, deadlines, a full queue, default prompts, chunks pooled without normalisation."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import pytest
from fakes import CLS, SEP, FakeEncoder, ids_of
from harness import TOKENIZE_THREADS, exactly, limits, running_embedder

from embedserve.server.batcher import WindowResult
from embedserve.server.embedder import Embedder, EmbedParams, EmbedResult, Task, Timings
from embedserve.server.errors import DeadlineExpired, InvalidArgument
from embedserve.server.tokenization import Overflow
from embedserve.server.windows import Window

T = TypeVar("T")
LONG = " ".join(f"w{i}" for i in range(40))  # over the fake's 32 tokens: two chunks


def run(encoder: FakeEncoder, call: Callable[[Embedder], Awaitable[T]], **batch_limits: Any) -> T:
    async def body() -> T:
        async with running_embedder(encoder, limits(**batch_limits)) as embedder:
            return await call(embedder)

    return asyncio.run(body())


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


# -- token vectors ---------------------------------------------------------------


def test_token_vectors_are_the_models_rows_for_each_token() -> None:
    encoder = FakeEncoder()
    params = EmbedParams(task=Task.NONE)
    result = run(encoder, lambda e: e.embed_tokens(["a b c", "d"], params))
    for text, detail, matrix in zip(["a b c", "d"], result.details, result.vectors, strict=True):
        ids = [CLS, *ids_of(encoder, text), SEP]
        assert detail.ids == ids
        rows = np.stack([encoder.token_vector(i) for i in ids])
        assert matrix.dtype == np.float32
        np.testing.assert_allclose(matrix, unit_rows(rows), atol=1e-6)
    assert result.truncated == [False, False]
    assert result.timings.inference_ms > 0
    assert result.timings.total_ms >= result.timings.tokenize_ms > 0


@pytest.mark.parametrize("overflow", [Overflow.TRUNCATE_RIGHT, Overflow.TRUNCATE_LEFT])
def test_token_details_are_cut_to_the_window_the_model_saw(overflow: Overflow) -> None:
    encoder = FakeEncoder(max_tokens=32)
    params = EmbedParams(task=Task.QUERY, overflow=overflow)
    result = run(encoder, lambda e: e.embed_tokens([LONG], params))
    words = ids_of(encoder, LONG)
    kept = words[:29] if overflow is Overflow.TRUNCATE_RIGHT else words[-29:]
    prompt = ids_of(encoder, "query:")
    detail = result.details[0]
    assert detail.ids == [CLS, *prompt, *kept, SEP]
    names = LONG.split()
    shown = names[:29] if overflow is Overflow.TRUNCATE_RIGHT else names[-29:]
    assert detail.tokens == ["[CLS]", "query:", *shown, "[SEP]"]
    assert detail.offsets[:2] == [(0, 0), (0, 0)] and detail.offsets[-1] == (0, 0)
    first = LONG.index(shown[0])
    assert detail.offsets[2] == (first, first + len(shown[0]))
    assert result.vectors[0].shape == (32, 16) and result.truncated == [True]


def test_token_vectors_matryoshka_without_normalising() -> None:
    encoder = FakeEncoder()
    params = EmbedParams(task=Task.NONE, dimensions=4, normalize=False)
    result = run(encoder, lambda e: e.embed_tokens(["a b"], params))
    rows = np.stack([encoder.token_vector(i) for i in (CLS, *ids_of(encoder, "a b"), SEP)])
    np.testing.assert_allclose(result.vectors[0], rows[:, :4], atol=1e-6)


@pytest.mark.parametrize(
    ("inputs", "params", "message"),
    [
        (["a"], EmbedParams(overflow=Overflow.CHUNK), "options.overflow CHUNK is not available"),
        ([], EmbedParams(), "inputs must not be empty"),
        (["a"], EmbedParams(dimensions=17), "options.dimensions must be between 1 and 16"),
    ],
)
def test_token_vectors_refuse_bad_requests(
    inputs: list[str], params: EmbedParams, message: str
) -> None:
    encoder = FakeEncoder()
    with pytest.raises(InvalidArgument, match=f"^{re.escape(message)}"):
        run(encoder, lambda e: e.embed_tokens(inputs, params))
    assert encoder.calls == 0


def test_token_vectors_past_the_message_limit_are_refused_before_the_model_runs() -> None:
    encoder = FakeEncoder(dimensions=16)  # 16 floats and the framing: 96 bytes a token
    texts = ["a b c"] * 4  # five tokens each with [CLS] and [SEP]: 20 tokens, 1920 bytes

    async def within_and_past() -> None:
        async with running_embedder(encoder, max_message_bytes=1920) as embedder:
            within = await embedder.embed_tokens(texts, EmbedParams())
            assert [m.shape for m in within.vectors] == [(5, 16)] * 4
            calls = encoder.calls
            past = "23 token vectors of 16 dimensions, about 2208 bytes"
            with pytest.raises(InvalidArgument, match=past):
                await embedder.embed_tokens([*texts, "d"], EmbedParams())
            assert encoder.calls == calls
            smaller = await embedder.embed_tokens([*texts, "d"], EmbedParams(dimensions=8))
            assert smaller.vectors[-1].shape == (3, 8)  # 23 x (32 + 32) bytes fit

    asyncio.run(within_and_past())


# -- token ids and tokenize -------------------------------------------------------


def test_token_ids_embed_as_the_text_they_spell() -> None:
    encoder = FakeEncoder()
    params = EmbedParams(task=Task.QUERY)
    texts = run(encoder, lambda e: e.embed(["cats sleep", LONG], params))
    ids = [ids_of(encoder, "cats sleep"), ids_of(encoder, LONG)]
    from_ids = run(encoder, lambda e: e.embed_token_ids(ids, params))
    np.testing.assert_allclose(from_ids.vectors, texts.vectors, atol=1e-6)
    assert from_ids.token_counts == texts.token_counts and from_ids.truncated == [False, True]
    chunked = run(
        encoder, lambda e: e.embed_token_ids([ids[1]], EmbedParams(overflow=Overflow.CHUNK))
    )
    assert chunked.chunk_counts == [2]
    assert from_ids.timings.total_ms >= from_ids.timings.tokenize_ms > 0


@pytest.mark.parametrize(
    ("id_lists", "params", "message"),
    [
        ([], EmbedParams(), "data must not be empty"),
        (
            [[3]] * 65,
            EmbedParams(),
            "data has 65 items; the limit is 64 per request (max_inputs_per_request)",
        ),
        ([[3], []], EmbedParams(), "data[1] is empty"),
        (
            [[3]],
            EmbedParams(dimensions=0),
            "options.dimensions must be between 1 and 16 (the model's width); got 0",
        ),
        (
            [[3] * 40],
            EmbedParams(overflow=Overflow.ERROR),
            "data[0] has 42 tokens, more than the model's maximum of 32; "
            "shorten it, or let it be truncated or chunked (the TRUNCATE or CHUNK overflow policy)",
        ),
    ],
)
def test_token_ids_refuse_bad_requests(
    id_lists: list[list[int]], params: EmbedParams, message: str
) -> None:
    encoder = FakeEncoder()
    ids_of(encoder, "a")  # id 3 exists
    with pytest.raises(InvalidArgument, match=exactly(message)):
        run(encoder, lambda e: e.embed_token_ids(id_lists, params, field="data"))
    assert encoder.calls == 0


def test_token_ids_default_field_and_the_limit_met_exactly() -> None:
    encoder = FakeEncoder()
    ids_of(encoder, "a")
    with pytest.raises(InvalidArgument, match=exactly("input must not be empty")):
        run(encoder, lambda e: e.embed_token_ids([], EmbedParams()))
    result = run(encoder, lambda e: e.embed_token_ids([[3]] * 64, EmbedParams()))
    assert result.vectors.shape == (64, 16)


def test_tokenize_returns_each_inputs_tokens_with_the_tasks_prompt() -> None:
    encoder = FakeEncoder()
    details = run(encoder, lambda e: e.tokenize(["cats", "dogs bark"], Task.QUERY, None))
    assert [d.tokens for d in details] == [
        ["[CLS]", "query:", "cats", "[SEP]"],
        ["[CLS]", "query:", "dogs", "bark", "[SEP]"],
    ]
    assert details[1].offsets == [(0, 0), (0, 0), (0, 4), (5, 9), (0, 0)]
    explicit = run(encoder, lambda e: e.tokenize(["cats"], Task.QUERY, "find "))
    assert explicit[0].tokens == ["[CLS]", "find", "cats", "[SEP]"]
    with pytest.raises(InvalidArgument, match=exactly("inputs must not be empty")):
        run(encoder, lambda e: e.tokenize([], Task.NONE, None))
    assert encoder.calls == 0


def test_tokenising_runs_on_the_embedders_own_pool() -> None:
    encoder = FakeEncoder()
    word = encoder.tokenizer._tok
    word.threads.clear()

    async def every_door(embedder: Embedder) -> None:
        params = EmbedParams()
        await embedder.embed(["a b"], params)
        await embedder.embed_tokens(["a b"], params)
        await embedder.embed_token_ids([[3]], EmbedParams(task=Task.QUERY))  # prompt: tokenized
        await embedder.tokenize(["a b"], Task.NONE, None)

    run(encoder, every_door)
    assert word.threads and all(t.startswith(TOKENIZE_THREADS) for t in word.threads)


# -- limits, deadlines and the queue -------------------------------------------------


def test_limits_met_exactly_are_accepted() -> None:
    encoder = FakeEncoder(dimensions=16)
    many = run(encoder, lambda e: e.embed(["ok"] * 64, EmbedParams()))
    assert many.vectors.shape == (64, 16)
    longest = run(encoder, lambda e: e.embed(["x" * 10_000], EmbedParams()))
    assert longest.token_counts == [3]
    for width in (1, 16):
        result = run(encoder, lambda e, w=width: e.embed(["a b"], EmbedParams(dimensions=w)))
        assert result.vectors.shape == (1, width)


def test_errors_name_the_callers_field() -> None:
    encoder = FakeEncoder()
    with pytest.raises(InvalidArgument, match=exactly("texts[1] is empty")):
        run(encoder, lambda e: e.embed(["a", ""], EmbedParams(), field="texts"))
    with pytest.raises(
        InvalidArgument,
        match=exactly("options.dimensions must be between 1 and 16 (the model's width); got 17"),
    ):
        run(encoder, lambda e: e.embed(["a"], EmbedParams(dimensions=17)))


@pytest.mark.parametrize("wait_for_room", [False, True])
def test_an_expired_deadline_fails_the_call(wait_for_room: bool) -> None:
    encoder = FakeEncoder()
    past = time.monotonic() - 1.0
    with pytest.raises(DeadlineExpired):
        run(encoder, lambda e: e.embed(["a"], EmbedParams(), past, wait_for_room=wait_for_room))
    with pytest.raises(DeadlineExpired):
        run(encoder, lambda e: e.embed_token_ids([[1]], EmbedParams(), past))
    with pytest.raises(DeadlineExpired):
        run(encoder, lambda e: e.embed_tokens(["a"], EmbedParams(), past))
    assert encoder.calls == 0


def test_a_call_larger_than_the_queue_is_served_from_an_empty_queue() -> None:
    """Refused with "retry later" on an empty queue, a unary call of more inputs than the
    queue holds could never be served (clients retrying 429s looped)."""
    encoder = FakeEncoder()
    texts = ["a", "b", "c"]  # three windows, the queue holds two
    calls: list[Callable[[Embedder], Awaitable[Any]]] = [
        lambda e: e.embed(texts, EmbedParams()),
        lambda e: e.embed_tokens(texts, EmbedParams()),
        lambda e: e.embed_token_ids([[1], [1], [1]], EmbedParams()),
        lambda e: e.embed(texts, EmbedParams(), wait_for_room=True),
    ]
    for call in calls:
        assert len(run(encoder, call, max_queue_items=2).vectors) == 3


# -- prompts and pooling ------------------------------------------------------------


def test_the_models_default_prompt_and_tasks_it_has_no_prompt_for() -> None:
    encoder = FakeEncoder()

    def vector(**params: Any) -> np.ndarray:
        return run(encoder, lambda e: e.embed(["cats"], EmbedParams(**params))).vectors[0]

    none, query = vector(task=Task.NONE), vector(task=Task.QUERY)
    np.testing.assert_array_equal(vector(), none)  # no default prompt name: no prompt
    encoder.spec = dataclasses.replace(encoder.spec, default_prompt_name="query")
    np.testing.assert_allclose(vector(), query, atol=1e-6)
    encoder.spec = dataclasses.replace(encoder.spec, default_prompt_name="missing")
    np.testing.assert_allclose(vector(), none, atol=1e-6)
    encoder.spec = dataclasses.replace(encoder.spec, prompts={}, default_prompt_name=None)
    np.testing.assert_allclose(vector(task=Task.DOCUMENT), none, atol=1e-6)


def test_two_chunks_pool_weighted_without_normalising() -> None:
    encoder = FakeEncoder(max_tokens=32, chunk_overlap_tokens=4)
    params = EmbedParams(task=Task.NONE, overflow=Overflow.CHUNK, normalize=False)
    result = run(encoder, lambda e: e.embed([LONG], params))
    words = ids_of(encoder, LONG)
    windows = [Window((CLS, *words[s : s + 30], SEP)) for s in (0, 26)]
    weights = np.array([32.0, 16.0])
    want = (weights[:, None] * np.stack([encoder.window_vector(w) for w in windows])).sum(0) / 48
    assert result.chunk_counts == [2] and result.vectors.dtype == np.float32
    np.testing.assert_allclose(result.vectors[0], want, atol=1e-6)


# -- results and timings -----------------------------------------------------------


def test_timings_keep_the_largest_of_each_part() -> None:
    timings = Timings(queue_ms=1.0, tokenize_ms=5.0, inference_ms=3.0, total_ms=0.0)
    timings.merge(Timings(queue_ms=2.0, tokenize_ms=4.0, inference_ms=6.0, total_ms=7.0))
    assert dataclasses.astuple(timings) == (2.0, 5.0, 6.0, 7.0)
    vector = np.zeros(2, dtype=np.float32)
    timings.absorb([WindowResult(vector, 0.004, 0.001), WindowResult(vector, 0.003, 0.009)])
    assert dataclasses.astuple(timings) == pytest.approx((4.0, 5.0, 9.0, 7.0))


def test_timings_cover_the_time_tokenising_took() -> None:
    encoder = FakeEncoder()
    encoder.tokenizer._tok.delay_s = 0.02  # each tokenizer call takes 20 ms or more
    params = EmbedParams(task=Task.QUERY)  # token ids too go through the tokenizer, for the prompt
    calls: list[Callable[[Embedder], Awaitable[Any]]] = [
        lambda e: e.embed(["a"], params),
        lambda e: e.embed_token_ids([[1]], params),
        lambda e: e.embed_tokens(["a"], params),
    ]
    for call in calls:
        started = time.monotonic()
        result = run(encoder, call)
        wall_ms = (time.monotonic() - started) * 1000
        assert wall_ms >= result.timings.total_ms >= result.timings.tokenize_ms >= 20


def test_result_rows_refuse_columns_of_different_lengths() -> None:
    vectors = np.zeros((2, 3), dtype=np.float32)
    result = EmbedResult(vectors, [1], [False, False], [1, 1], Timings())
    with pytest.raises(ValueError):
        list(result.rows())


def test_explicit_prompts_reach_every_door() -> None:
    encoder = FakeEncoder()
    prompted = EmbedParams(prompt="find ")
    text = run(encoder, lambda e: e.embed(["cats"], prompted)).vectors
    plain = run(encoder, lambda e: e.embed(["cats"], EmbedParams(task=Task.NONE))).vectors
    ids = run(encoder, lambda e: e.embed_token_ids([ids_of(encoder, "cats")], prompted)).vectors
    np.testing.assert_allclose(ids, text, atol=1e-6)
    assert np.abs(text - plain).max() > 1e-3
    tokens = run(encoder, lambda e: e.embed_tokens(["cats"], prompted))
    assert tokens.details[0].tokens == ["[CLS]", "find", "cats", "[SEP]"]


def test_overflow_errors_name_the_callers_field() -> None:
    encoder = FakeEncoder()
    error = EmbedParams(overflow=Overflow.ERROR)
    tail = (
        "more than the model's maximum of 32; "
        "shorten it, or let it be truncated or chunked (the TRUNCATE or CHUNK overflow policy)"
    )
    with pytest.raises(InvalidArgument, match=exactly(f"texts[0] has 42 tokens, {tail}")):
        run(encoder, lambda e: e.embed([LONG], error, field="texts"))
    with pytest.raises(InvalidArgument, match=exactly(f"inputs[0] has 42 tokens, {tail}")):
        run(encoder, lambda e: e.embed_tokens([LONG], error))


def test_normalised_token_vectors_have_unit_length_even_from_short_rows() -> None:
    # One dimension: most rows are shorter than 1 before normalising.
    encoder = FakeEncoder()
    params = EmbedParams(task=Task.NONE, dimensions=1)
    result = run(encoder, lambda e: e.embed_tokens([" ".join(f"t{i}" for i in range(20))], params))
    np.testing.assert_allclose(np.abs(result.vectors[0]), 1.0, atol=1e-6)


def test_one_callers_normalised_token_vectors_leave_anothers_alone(minilm_model: Any) -> None:
    """Equal windows in one batch share the model's rows: normalising one caller's answer
    in place normalised the other's (its raw hidden states came back as unit rows)."""

    async def body() -> list[Any]:
        async with running_embedder(minilm_model) as embedder:
            return await asyncio.gather(
                embedder.embed_tokens(["hello world"], EmbedParams(normalize=True)),
                embedder.embed_tokens(["hello world"], EmbedParams(normalize=False)),
            )

    unit, raw = asyncio.run(body())
    np.testing.assert_allclose(np.linalg.norm(unit.vectors[0], axis=1), 1.0, rtol=1e-5)
    assert np.linalg.norm(raw.vectors[0], axis=1).min() > 2.0  # MiniLM's rows: about 8
