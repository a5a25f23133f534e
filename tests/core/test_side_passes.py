"""Side-by-side passes: a lone request runs wide, a backlog runs narrow passes two at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fakes import numbered_windows
from harness import limits

from embedserve.server.batcher import Batcher, SidePasses
from embedserve.server.errors import InferenceFailed
from embedserve.server.metrics import Metrics
from embedserve.server.windows import FloatArray, Window


class Passes:
    """Two model functions (wide, narrow) that record each pass and how many overlap."""

    def __init__(self, seconds: float = 0.05, poison: int | None = None) -> None:
        self.seconds = seconds
        self.poison = poison
        self.log: list[tuple[str, int]] = []  # (kind, batch size) in start order
        self.most_at_once = 0
        self.wide_beside_other = False
        self._lock = threading.Lock()
        self._running: list[str] = []

    def run(self, kind: str, windows: Sequence[Window]) -> list[FloatArray]:
        with self._lock:
            self._running.append(kind)
            self.log.append((kind, len(windows)))
            self.most_at_once = max(self.most_at_once, len(self._running))
            if len(self._running) > 1 and "wide" in self._running:
                self.wide_beside_other = True
        try:
            time.sleep(self.seconds)
            if self.poison is not None and any(w.ids[0] == self.poison for w in windows):
                raise RuntimeError("injected model fault")
            return [np.full(2, w.ids[0], dtype=np.float32) for w in windows]
        finally:
            with self._lock:
                self._running.remove(kind)

    def wide(self, windows: Sequence[Window]) -> list[FloatArray]:
        return self.run("wide", windows)

    def narrow(self, windows: Sequence[Window]) -> list[FloatArray]:
        return self.run("narrow", windows)


async def with_batcher(passes: Passes, side: int, body, **limit_overrides):  # type: ignore[no-untyped-def]
    wide = ThreadPoolExecutor(1)
    narrow = ThreadPoolExecutor(side)
    batcher = Batcher(
        passes.wide,
        limits(**limit_overrides),
        wide,
        Metrics(),
        side=SidePasses(passes.narrow, narrow, side),
    )
    batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()
        wide.shutdown()
        narrow.shutdown()


def test_a_lone_request_runs_wide() -> None:
    passes = Passes(seconds=0.01)

    async def body(batcher: Batcher) -> list[float]:
        results = []
        for window in numbered_windows([5, 5, 5]):  # one after another: never a backlog
            (result,) = await asyncio.gather(*batcher.submit([window]))
            results.append(float(result.vector[0]))
        return results

    assert asyncio.run(with_batcher(passes, 2, body)) == [0.0, 1.0, 2.0]
    assert [kind for kind, _ in passes.log] == ["wide", "wide", "wide"]


def test_a_backlog_runs_narrow_passes_side_by_side() -> None:
    passes = Passes()
    windows = numbered_windows([5] * 40)

    async def body(batcher: Batcher) -> list[float]:
        results = await asyncio.gather(*batcher.submit(windows))
        return [float(result.vector[0]) for result in results]

    # Eight windows per batch: the queue holds five batches at once.
    assert asyncio.run(with_batcher(passes, 2, body, max_batch_size=8)) == list(range(40))
    kinds = [kind for kind, _ in passes.log]
    assert kinds == ["narrow"] * 5
    assert passes.most_at_once == 2
    assert not passes.wide_beside_other


def test_never_more_passes_than_allowed_and_never_beside_a_wide_one() -> None:
    passes = Passes(seconds=0.02)

    async def body(batcher: Batcher) -> int:
        # A lone request first (wide), then a burst while it runs, then more waves.
        first = batcher.submit(numbered_windows([5]))
        await asyncio.sleep(0.005)
        answered = len(await asyncio.gather(*first))
        for wave in range(4):
            burst = numbered_windows([5] * 30)
            answered += len(await asyncio.gather(*batcher.submit(burst)))
            await asyncio.sleep(0.01 * wave)
        return answered

    assert asyncio.run(with_batcher(passes, 3, body, max_batch_size=4)) == 121
    assert passes.log[0] == ("wide", 1)
    assert passes.most_at_once == 3
    assert not passes.wide_beside_other


def test_a_failing_narrow_pass_fails_only_its_own_batch() -> None:
    passes = Passes(poison=3)
    windows = numbered_windows([5] * 16)

    async def body(batcher: Batcher) -> list[object]:
        return await asyncio.gather(*batcher.submit(windows), return_exceptions=True)

    results = asyncio.run(with_batcher(passes, 2, body, max_batch_size=4))
    failed = [i for i, result in enumerate(results) if isinstance(result, InferenceFailed)]
    assert failed == [0, 1, 2, 3]  # the batch that held window 3, and only it
    assert [float(r.vector[0]) for r in results[4:]] == list(range(4, 16))  # type: ignore[union-attr]


def test_stop_waits_for_every_running_pass() -> None:
    passes = Passes(seconds=0.1)
    windows = numbered_windows([5] * 8)

    async def body(batcher: Batcher) -> list[asyncio.Future]:  # type: ignore[type-arg]
        futures = batcher.submit(windows)
        await asyncio.sleep(0.02)  # both narrow passes started
        await batcher.stop()
        return futures

    futures = asyncio.run(with_batcher(passes, 2, body, max_batch_size=4))
    assert passes.most_at_once == 2
    assert all(future.done() and not future.exception() for future in futures)


@pytest.mark.parametrize("passes", [0, 1])
def test_one_pass_at_a_time_without_side_passes(passes: int) -> None:
    model = Passes(seconds=0.01)

    async def body() -> None:
        executor = ThreadPoolExecutor(2)
        side = SidePasses(model.narrow, executor, passes) if passes else None
        batcher = Batcher(model.wide, limits(max_batch_size=4), executor, Metrics(), side=side)
        batcher.start()
        await asyncio.gather(*batcher.submit(numbered_windows([5] * 20)))
        await batcher.stop()
        executor.shutdown()

    asyncio.run(body())
    assert model.most_at_once == 1
    assert {kind for kind, _ in model.log} == {"wide"}
