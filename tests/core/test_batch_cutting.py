"""Batch cutting, checked against the batches the model function actually received."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest
from harness import limits, running_batcher

from embedserve.server.errors import DeadlineExpired
from embedserve.server.windows import FloatArray, Window


class RecordingModel:
    """Records each batch; can hold the first batch until released, so a queue builds up."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[Window]] = []
        self.first_started = threading.Event()
        self._release = threading.Event()
        if not hold_first:
            self._release.set()

    def release(self) -> None:
        self._release.set()

    def __call__(self, windows: Sequence[Window]) -> list[FloatArray]:
        self.batches.append(list(windows))
        self.first_started.set()
        self._release.wait(10)
        return [np.full(2, len(w.ids), dtype=np.float32) for w in windows]


def numbered_windows(lengths: Sequence[int]) -> list[Window]:
    """Window i starts with token id i, so a batch tells which inputs it holds."""
    return [Window((i, *range(1000, 1000 + n - 1))) for i, n in enumerate(lengths)]


def index_of(window: Window) -> int:
    return window.ids[0]


def padded_cost(batch: Sequence[Window]) -> int:
    return len(batch) * max(len(w.ids) for w in batch)


async def run_all(model: RecordingModel, windows: list[Window], **overrides: object) -> object:
    """Queue every window while the model holds a first batch, then let everything run."""
    async with running_batcher(model, limits(**overrides)) as (batcher, metrics):
        blocker = batcher.submit([Window((9999, 9998))])
        await asyncio.get_running_loop().run_in_executor(None, model.first_started.wait, 10)
        futures = batcher.submit(windows)
        model.release()
        results = await asyncio.gather(*blocker, *futures)
        for window, result in zip(windows, results[1:], strict=True):
            assert result.vector[0] == len(window.ids)  # each caller got its own window's result
        return metrics


LENGTHS = np.random.default_rng(7).integers(2, 300, size=400).tolist()


def test_every_batch_stays_within_the_token_budget() -> None:
    model = RecordingModel(hold_first=True)
    # Padding and size caps out of the way: only the token budget can stop a batch.
    asyncio.run(
        run_all(
            model,
            numbered_windows(LENGTHS),
            max_batch_tokens=1000,
            max_padding_share=1.0,
            max_batch_size=10_000,
        )
    )
    costs = [padded_cost(batch) for batch in model.batches[1:]]
    assert max(costs) <= 1000
    assert max(costs) > 800  # batches do fill up to the budget
    assert sorted(index_of(w) for b in model.batches[1:] for w in b) == list(range(len(LENGTHS)))


def test_each_batch_holds_the_oldest_waiting_window() -> None:
    # The oldest inputs are the longest: a cut that started from the shortest would skip them.
    lengths = [250, 240, 230, *([5] * 200)]
    model = RecordingModel(hold_first=True)
    asyncio.run(run_all(model, numbered_windows(lengths), max_batch_tokens=600))
    done: set[int] = set()
    for batch in model.batches[1:]:
        oldest_waiting = min(set(range(len(lengths))) - done)
        indices = {index_of(w) for w in batch}
        assert oldest_waiting in indices
        done |= indices
    assert done == set(range(len(lengths)))


def test_only_the_sort_window_is_considered_for_a_batch() -> None:
    # Alternating lengths: with a wide view every batch would be all-short or all-long.
    lengths = [10 if i % 2 else 100 for i in range(120)]
    model = RecordingModel(hold_first=True)
    asyncio.run(run_all(model, numbered_windows(lengths), sort_window=8, max_batch_tokens=100_000))
    done: set[int] = set()
    for batch in model.batches[1:]:
        waiting = sorted(set(range(len(lengths))) - done)
        indices = {index_of(w) for w in batch}
        assert indices <= set(waiting[:8])
        done |= indices
    assert done == set(range(len(lengths)))


def test_a_wide_sort_window_groups_similar_lengths() -> None:
    lengths = [10 if i % 2 else 100 for i in range(120)]
    model = RecordingModel(hold_first=True)
    asyncio.run(run_all(model, numbered_windows(lengths), max_batch_tokens=100_000))
    # Two batches: all long inputs together (with a few short ones, within the padding
    # share), then the other short ones; no long input waits for a later batch.
    assert len(model.batches) == 3
    assert {i for i, n in enumerate(lengths) if n == 100} <= {index_of(w) for w in model.batches[1]}


def test_padding_share_caps_each_batch() -> None:
    model = RecordingModel(hold_first=True)
    asyncio.run(run_all(model, numbered_windows(LENGTHS), max_padding_share=0.10))
    for batch in model.batches[1:]:
        if len(batch) > 2:  # a batch of two may carry more: the rule starts from the third
            real = sum(len(w.ids) for w in batch)
            assert padded_cost(batch) - real <= 0.10 * padded_cost(batch)


def test_token_and_padding_counters_equal_the_sums_over_received_batches() -> None:
    model = RecordingModel(hold_first=True)
    metrics = asyncio.run(
        run_all(model, numbered_windows(LENGTHS), max_batch_tokens=4000, max_padding_share=0.5)
    )
    real = sum(len(w.ids) for batch in model.batches for w in batch)
    padded = sum(padded_cost(batch) for batch in model.batches)
    assert padded > real  # the case has padding to count
    registry = metrics.registry
    assert registry.get_sample_value("embedserve_tokens_total") == real
    assert registry.get_sample_value("embedserve_padded_tokens_total") == padded
    assert registry.get_sample_value("embedserve_batch_size_count") == len(model.batches)
    assert metrics.padding_share() == pytest.approx(1 - real / padded)


def test_expired_and_cancelled_windows_never_reach_the_model() -> None:
    model = RecordingModel(hold_first=True)

    async def body() -> None:
        async with running_batcher(model, limits(max_wait_ms=0)) as (batcher, _):
            first = batcher.submit([Window((1, 2))])
            await asyncio.get_running_loop().run_in_executor(None, model.first_started.wait, 10)
            expired = batcher.submit([Window((3, 4))], deadline=time.monotonic() + 0.01)
            cancelled = batcher.submit([Window((5, 6))])
            cancelled[0].cancel()
            kept = batcher.submit([Window((7, 8))])
            await asyncio.sleep(0.05)
            model.release()
            await asyncio.gather(*first, *kept)
            with pytest.raises(DeadlineExpired):
                await expired[0]

    asyncio.run(body())
    computed = [w.ids[0] for batch in model.batches for w in batch]
    assert computed == [1, 7]


def test_waiting_callers_join_one_batch_when_the_model_is_idle() -> None:
    model = RecordingModel()

    async def body() -> None:
        async with running_batcher(model, limits(max_wait_ms=200)) as (batcher, _):
            futures = batcher.submit([Window((1, 2))])
            await asyncio.sleep(0.01)
            futures += batcher.submit([Window((3, 4))])
            await asyncio.gather(*futures)

    asyncio.run(body())
    assert [len(b) for b in model.batches] == [2]
