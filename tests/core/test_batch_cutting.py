"""Batch cutting, checked against the batches the model function actually received."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np
import pytest
from fakes import RecordingModel, index_of, numbered_windows
from harness import limits, running_batcher

from embedserve.server.batch_cost import PassCost
from embedserve.server.errors import DeadlineExpired
from embedserve.server.windows import Window


def padded_cost(batch: Sequence[Window]) -> int:
    return len(batch) * max(len(w.ids) for w in batch)


async def run_all(
    model: RecordingModel, windows: list[Window], cost: PassCost | None = None, **overrides: object
) -> object:
    """Queue every window while the model holds a first batch, then let everything run."""
    async with running_batcher(model, limits(**overrides), cost) as (batcher, metrics):
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


def batch_lengths(model: RecordingModel) -> list[list[int]]:
    """The lengths in each batch after the blocker, sorted within the batch."""
    return [sorted(len(w.ids) for w in batch) for batch in model.batches[1:]]


def test_no_batch_exceeds_max_batch_size() -> None:
    model = RecordingModel(hold_first=True)
    asyncio.run(run_all(model, numbered_windows([5] * 10), max_batch_size=3))
    assert [len(b) for b in model.batches[1:]] == [3, 3, 3, 1]


def test_a_batch_grows_both_ways_from_the_oldest_in_the_middle_of_the_order() -> None:
    model = RecordingModel(hold_first=True)
    lengths = [20, 10, 10, 10, 30, 30, 30]
    asyncio.run(run_all(model, numbered_windows(lengths), max_batch_size=3, max_padding_share=1))
    assert batch_lengths(model)[0] == [10, 10, 20]  # a 10 adds less padding than a 30


@pytest.mark.parametrize("lengths", [[20, 10, 30], [20, 5, 10, 30]])
def test_the_neighbour_that_adds_the_least_padding_joins(lengths: list[int]) -> None:
    # Below the oldest (20) a 10 wastes 10 tokens; above it a 30 pads the 20 by 10 too: the
    # tie goes to the shorter one. The 5 is not a neighbour of the 20.
    model = RecordingModel(hold_first=True)
    asyncio.run(run_all(model, numbered_windows(lengths), max_batch_size=2, max_padding_share=1))
    assert batch_lengths(model)[0] == [10, 20]


def test_a_batch_may_fill_the_token_budget_exactly() -> None:
    model = RecordingModel(hold_first=True)
    asyncio.run(run_all(model, numbered_windows([10] * 6), max_batch_tokens=30))
    assert batch_lengths(model) == [[10, 10, 10], [10, 10, 10]]


def test_padding_of_exactly_the_allowed_share_is_accepted() -> None:
    # [4, 4, 1] pads the 1 by 3 tokens: 3 of 12, exactly a share of 0.25.
    model = RecordingModel(hold_first=True)
    asyncio.run(run_all(model, numbered_windows([4, 4, 1]), max_padding_share=0.25))
    assert batch_lengths(model) == [[1, 4, 4]]


def test_with_a_pass_cost_the_best_rate_wins_and_ties_go_to_the_larger_batch() -> None:
    # Cost per padded token only: three 10s run at the rate of one (a tie, so all three);
    # the 100 would pad them to 400 tokens for 130 real ones, so it runs alone.
    model = RecordingModel(hold_first=True)
    per_token = PassCost(fixed_s=0.0, per_token_s=1.0)
    asyncio.run(run_all(model, numbered_windows([10, 10, 100, 10]), per_token))
    assert batch_lengths(model) == [[10, 10, 10], [100]]


def test_with_a_large_fixed_cost_padding_is_traded_for_company() -> None:
    # Without a cost this queue would split at 10% padding; a pass costing a second
    # before its first token makes one padded batch the fastest.
    model = RecordingModel(hold_first=True)
    fixed = PassCost(fixed_s=1.0, per_token_s=1e-6)
    asyncio.run(run_all(model, numbered_windows([10] * 5 + [100] * 5), fixed))
    assert batch_lengths(model) == [[10] * 5 + [100] * 5]
