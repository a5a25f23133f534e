"""The batcher against the real MiniLM: batch cutting, ordering, failures, deadlines, limits."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embedserve.server.batcher import Batcher, BatchLimits
from embedserve.server.errors import DeadlineExpired, InferenceFailed, Overloaded
from embedserve.server.metrics import Metrics
from embedserve.server.windows import Window


def windows_of(model, texts):
    return [Window(t.windows[0]) for t in model.tokenizer.encode(texts, "", _truncate())]


def _truncate():
    from embedserve.server.tokenization import Overflow

    return Overflow.TRUNCATE_RIGHT


async def run_with(compute, limits, body):
    executor = ThreadPoolExecutor(1)
    metrics = Metrics()
    # The token budget the server picks on a CPU, unless the test sets its own.
    batcher = Batcher(compute, limits.for_device("cpu"), executor, metrics)
    batcher.start()
    try:
        return await body(batcher), metrics
    finally:
        await batcher.stop()
        executor.shutdown()


def test_large_request_is_split_and_reassembled_in_order(minilm_model) -> None:
    texts = [f"sentence {i} " + "word " * (i % 40) for i in range(100)]
    windows = windows_of(minilm_model, texts)
    sizes: list[int] = []

    def compute(batch):
        sizes.append(len(batch))
        return minilm_model.compute(batch)

    async def body(batcher):
        return await asyncio.gather(*batcher.submit(windows))

    results, _ = asyncio.run(run_with(compute, BatchLimits(max_batch_size=8), body))
    assert len(sizes) >= 100 // 8 and max(sizes) <= 8
    expected = minilm_model.compute(windows)
    for got, want in zip(results, expected, strict=True):
        assert np.abs(got.vector - want).max() < 1e-4


def test_batches_group_similar_lengths_to_cut_padding(minilm_model) -> None:
    rng = np.random.default_rng(0)
    texts = ["word " * int(n) for n in rng.integers(3, 200, size=200)]
    windows = windows_of(minilm_model, texts)

    async def body(batcher):
        return await asyncio.gather(*batcher.submit(windows))

    _, metrics = asyncio.run(run_with(minilm_model.compute, BatchLimits(), body))
    assert metrics.padding_share() <= 0.10


def test_failing_batch_fails_only_its_own_requests(minilm_model) -> None:
    def compute(batch):
        if any(w.ids[1] == poison for w in batch):  # injected fault: e.g. out of memory
            raise RuntimeError("CUDA out of memory")
        return minilm_model.compute(batch)

    poison = windows_of(minilm_model, ["poison"])[0].ids[1]

    async def body(batcher):
        bad = batcher.submit(windows_of(minilm_model, ["poison"]))
        await asyncio.sleep(0.2)  # let the failing batch run alone
        good = batcher.submit(windows_of(minilm_model, ["healthy text"]))
        return await asyncio.gather(*bad, return_exceptions=True), await asyncio.gather(*good)

    (bad, good), _ = asyncio.run(run_with(compute, BatchLimits(max_wait_ms=0), body))
    assert isinstance(bad[0], InferenceFailed) and "out of memory" in str(bad[0])
    assert good[0].vector.shape == (384,)


def test_expired_and_cancelled_requests_are_dropped_before_compute(minilm_model) -> None:
    seen: list[int] = []

    def compute(batch):
        seen.extend(w.ids[1] for w in batch)
        time.sleep(0.3)
        return minilm_model.compute(batch)

    first, expired, cancelled = windows_of(minilm_model, ["first", "expired", "cancelled"])

    async def body(batcher):
        running = batcher.submit([first])
        await asyncio.sleep(0.05)  # the model is now busy with "first"
        late = batcher.submit([expired], deadline=time.monotonic() + 0.1)
        gone = batcher.submit([cancelled])
        gone[0].cancel()
        await asyncio.gather(*running)
        with pytest.raises(DeadlineExpired):
            await late[0]
        return None

    asyncio.run(run_with(compute, BatchLimits(max_wait_ms=0), body))
    assert seen == [first.ids[1]]


def test_full_queue_rejects_unary_and_makes_streams_wait(minilm_model) -> None:
    def compute(batch):
        time.sleep(0.2)
        return minilm_model.compute(batch)

    windows = windows_of(minilm_model, ["a", "b", "c", "d"])

    async def body(batcher):
        held = batcher.submit(windows[:2])
        await asyncio.sleep(0.01)
        held += batcher.submit(windows[2:3])
        with pytest.raises(Overloaded, match="queue is full"):
            batcher.submit(windows[3:] * 3)
        waited = asyncio.ensure_future(batcher.submit_when_room(windows[3:] * 3))
        await asyncio.sleep(0.05)
        assert not waited.done()  # backpressure: waits for room instead of failing
        later = await waited
        return await asyncio.gather(*held, *later)

    results, _ = asyncio.run(
        run_with(compute, BatchLimits(max_queue_items=3, max_batch_size=1, max_wait_ms=0), body)
    )
    assert len(results) == 6
