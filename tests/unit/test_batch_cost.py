"""Batching by cost: the fitted pass-cost line, and batches cut to maximise tokens per second."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embedserve.server.batch_cost import (
    CalibrationStopped,
    PassCost,
    calibrate,
    calibrate_model,
    fit,
    shapes_for,
)
from embedserve.server.batcher import Batcher, BatchLimits
from embedserve.server.metrics import Metrics
from embedserve.server.windows import Window


def test_fit_recovers_a_line_and_keeps_both_terms_non_negative() -> None:
    exact = fit([(16, 0.010 + 16e-4), (256, 0.010 + 256e-4), (512, 0.010 + 512e-4)])
    assert exact.fixed_s == pytest.approx(0.010)
    assert exact.per_token_s == pytest.approx(1e-4)
    # Noise that tilts the line below zero at the origin gives a zero fixed part, not a
    # negative one; a falling line gives a zero per-token part.
    assert fit([(10, 0.001), (100, 0.1)]).fixed_s == 0.0
    assert fit([(10, 0.2), (100, 0.1)]).per_token_s == 0.0
    with pytest.raises(ValueError):
        fit([(64, 0.01), (64, 0.02)])


def test_efficient_size_is_where_the_fixed_part_is_a_tenth() -> None:
    cost = PassCost(fixed_s=0.013, per_token_s=0.00015)
    tokens = cost.efficient_tokens
    assert cost.fixed_s / cost.seconds(tokens) == pytest.approx(0.10, abs=0.001)


def test_calibrate_times_every_shape_on_distinct_rows() -> None:
    """A model whose passes take exactly 5 ms + 0.1 ms per padded token, on a stepped clock."""
    now = [0.0]
    seen: list[list[Window]] = []

    def compute(windows):
        seen.append(list(windows))
        now[0] += 0.005 + 1e-4 * len(windows) * max(len(w.ids) for w in windows)

    cost = calibrate(compute, list(range(1000, 1100)), max_length=64, clock=lambda: now[0])
    assert cost is not None
    assert cost.fixed_s == pytest.approx(0.005)
    assert cost.per_token_s == pytest.approx(1e-4)
    for windows in seen:
        assert len({w.ids for w in windows}) == len(windows)  # no row shared by two
        assert max(len(w.ids) for w in windows) <= 64


def test_calibrate_times_again_when_a_stall_tilts_the_line() -> None:
    """Every pass of the smallest shape stalls by 0.5 s in the first attempt only."""
    now = [0.0]
    small_passes = [0]

    def compute(windows):
        now[0] += 0.005 + 1e-4 * len(windows) * max(len(w.ids) for w in windows)
        if len(windows) == 1:
            small_passes[0] += 1
            if small_passes[0] <= 4:  # the untimed pass and the three timed ones
                now[0] += 0.5

    cost = calibrate(compute, list(range(1000, 1100)), max_length=512, clock=lambda: now[0])
    assert small_passes[0] == 7  # a second attempt was timed
    assert cost is not None
    assert cost.fixed_s == pytest.approx(0.005)
    assert cost.per_token_s == pytest.approx(1e-4)


def test_calibrate_gives_no_line_when_every_attempt_is_disturbed() -> None:
    """Passes that get cheaper as they grow fit no line with both terms positive."""
    now = [0.0]

    def compute(windows):
        now[0] += 0.1 / (len(windows) * max(len(w.ids) for w in windows))

    cost = calibrate(compute, list(range(1000, 1100)), max_length=512, clock=lambda: now[0])
    assert cost is None


def test_gpu_shapes_see_the_per_token_cost_of_a_launch_bound_pass() -> None:
    """A GPU pass: 16 ms of kernel launches until its work outgrows them (~6,000 tokens)."""
    now = [0.0]

    def compute(windows):
        padded = len(windows) * max(len(w.ids) for w in windows)
        now[0] += max(0.016, 2.7e-6 * padded)

    def calibrate_on(device: str):
        shapes = shapes_for(device)
        return calibrate(
            compute, list(range(1000, 1100)), 8192, clock=lambda: now[0], shapes=shapes
        )

    # flat over 16 to 512 tokens: at best a rounding error of a per-token cost
    small = calibrate_on("cpu")
    assert small is None or small.per_token_s < 1e-12
    cost = calibrate_on("cuda:0")
    assert cost is not None and cost.per_token_s > 1e-6
    # the fitted line still says: fill batches far past the small shapes
    assert cost.efficient_tokens > 4096


def test_a_calibration_runs_no_pass_once_the_server_shuts_down() -> None:
    """A shutdown during warm-up cancelled the warm-up task, but the calibration on the
    model thread ran its thirty-odd passes to the end, and the process waited for them."""
    stop = threading.Event()
    passes: list[int] = []

    def compute(windows):
        passes.append(len(windows))
        if len(passes) == 2:
            stop.set()  # as EmbedServer's shutdown sets it, from the event loop

    with pytest.raises(CalibrationStopped):
        calibrate(compute, list(range(1000, 1100)), max_length=64, stop=stop)
    assert len(passes) == 2


def test_calibrating_minilm_finds_both_costs_once_per_model(minilm_model) -> None:
    cost = calibrate_model(minilm_model)
    assert cost is not None
    assert cost.fixed_s > 0 and cost.per_token_s > 0
    assert calibrate_model(minilm_model) is cost


def windows_of(model, texts):
    from embedserve.server.tokenization import Overflow

    encoded = model.tokenizer.encode(texts, "", Overflow.TRUNCATE_RIGHT)
    return [Window(t.windows[0]) for t in encoded]


def run_batches(model, windows, limits, cost):
    """Submit all windows at once; return the lengths of each batch the model received."""
    batches: list[list[int]] = []

    def compute(batch):
        batches.append([len(w.ids) for w in batch])
        return model.compute(batch)

    async def body():
        executor = ThreadPoolExecutor(1)
        batcher = Batcher(compute, limits.for_device("cpu"), executor, Metrics(), cost)
        batcher.start()
        try:
            results = await asyncio.gather(*batcher.submit(windows))
        finally:
            await batcher.stop()
            executor.shutdown()
        return results

    results = asyncio.run(body())
    expected = model.compute(windows)
    for got, want in zip(results, expected, strict=True):
        assert np.abs(got.vector - want).max() < 1e-4
    return batches


def test_a_large_fixed_cost_joins_lengths_a_padding_cap_would_split(minilm_model) -> None:
    # Lengths 6 to 25 tokens: one batch carries ~35% padding, far over the 10% cap.
    texts = ["word " * n for n in range(4, 24)]
    windows = windows_of(minilm_model, texts)
    limits = BatchLimits(max_padding_share=0.10, max_wait_ms=0)
    capped = run_batches(minilm_model, windows, limits, cost=None)
    costed = run_batches(minilm_model, windows, limits, PassCost(0.05, 0.00015))
    assert len(capped) > 1
    assert len(costed) == 1 and len(costed[0]) == len(texts)


def test_a_long_input_is_not_padded_onto_short_ones(minilm_model) -> None:
    texts = [f"short text number {i}" for i in range(12)] + ["word " * 200]
    windows = windows_of(minilm_model, texts)
    limits = BatchLimits(max_wait_ms=0)
    batches = run_batches(minilm_model, windows, limits, PassCost(0.013, 0.00015))
    long_batch = next(b for b in batches if max(b) > 100)
    assert long_batch == [max(long_batch)]  # alone
    assert max(len(b) for b in batches) == 12  # the short ones together


def test_hard_caps_hold_under_the_cost_model(minilm_model) -> None:
    texts = [f"sentence {i} " + "word " * (i % 30) for i in range(60)]
    windows = windows_of(minilm_model, texts)
    limits = BatchLimits(max_batch_tokens=256, max_batch_size=8, max_wait_ms=0)
    # An enormous fixed cost would take everything at once without the caps.
    batches = run_batches(minilm_model, windows, limits, PassCost(10.0, 1e-6))
    assert sum(len(b) for b in batches) == 60
    assert all(len(b) <= 8 and len(b) * max(b) <= 256 for b in batches)
