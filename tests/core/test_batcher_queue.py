"""The batcher's queue and its failures: room for unary calls and streams, when a batch is
full enough not to wait, skipped windows, and model errors reaching every caller."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from fakes import RecordingModel
from harness import MODEL_THREADS, exactly, limits, running_batcher

from embedserve.server.batch_cost import PassCost
from embedserve.server.batcher import Batcher, Priority, WindowResult
from embedserve.server.errors import (
    DeadlineExpired,
    InferenceFailed,
    InvalidArgument,
    Overloaded,
)
from embedserve.server.metrics import Metrics
from embedserve.server.windows import FloatArray, Window

T = TypeVar("T")
# A batch that is not full waits this long for company: in these tests, for ever.
FOREVER_MS = 1e9
# A bound on calls that must not wait at all, so that a batcher that waits fails the test.
SETTLE_S = 30.0


def windows(*lengths: int) -> list[Window]:
    return [Window(tuple(range(1, n + 1))) for n in lengths]


async def settle(call: Awaitable[T]) -> T:
    return await asyncio.wait_for(call, SETTLE_S)


async def hold_model(batcher: Batcher, model: RecordingModel) -> list[asyncio.Future[WindowResult]]:
    """Start a first batch that the model holds until released, so later windows queue."""
    blocker = batcher.submit(windows(2))
    await asyncio.get_running_loop().run_in_executor(None, model.first_started.wait, 10)
    return blocker


def test_a_full_queue_refuses_unary_windows_and_says_how_full() -> None:
    model = RecordingModel(hold_first=True)

    async def body() -> None:
        async with running_batcher(model, limits(max_queue_items=2)) as (batcher, _):
            blocker = await hold_model(batcher, model)
            queued = batcher.submit(windows(3, 3))  # exactly the limit
            with pytest.raises(Overloaded) as refused:
                batcher.submit(windows(3))
            # The wait in the message too, for clients that read no trailing metadata.
            assert refused.value.message == (
                "the server's queue is full (2 inputs waiting; max_queue_items is 2); "
                f"retry in {refused.value.retry_after_ms} ms"
            )
            with pytest.raises(Overloaded, match=r"\(2 inputs waiting; max_queue_items is 2\)"):
                batcher.submit(windows(1, 1, 1))
            model.release()
            await settle(asyncio.gather(*blocker, *queued))
            # More windows than the queue holds go into an empty queue, as a stream's do:
            # refused for ever, they would never have been served.
            larger = batcher.submit(windows(1, 1, 1))
            assert len(await settle(asyncio.gather(*larger))) == 3

    asyncio.run(body())


def test_windows_given_up_take_no_room_while_a_pass_runs() -> None:
    """Cancelled and expired windows stayed in the lane until the next cut, which waits
    for the pass running: live calls were refused for a queue of dead windows."""
    model = RecordingModel(hold_first=True)

    async def body() -> None:
        async with running_batcher(model, limits(max_queue_items=2)) as (batcher, _):
            blocker = await hold_model(batcher, model)
            cancelled = batcher.submit(windows(3))
            expired = batcher.submit(windows(3), deadline=time.monotonic() + 0.01)
            cancelled[0].cancel()
            await asyncio.sleep(0.05)
            live = batcher.submit(windows(3, 3))  # the whole queue, while the pass still runs
            assert batcher.queued == 2
            with pytest.raises(DeadlineExpired):
                await expired[0]
            streamed = asyncio.ensure_future(batcher.submit_when_room(windows(4)))
            await asyncio.sleep(0.05)
            assert not streamed.done()  # live windows still fill it
            live[0].cancel()
            live[1].cancel()
            model.release()
            later = await settle(streamed)
            await settle(asyncio.gather(*blocker, *later))

    asyncio.run(body())


def test_streams_wait_for_room_then_queue() -> None:
    model = RecordingModel()

    async def body() -> None:
        async with running_batcher(model, limits(max_queue_items=2)) as (batcher, _):
            # An empty queue takes as many windows as it holds at once.
            first = await settle(batcher.submit_when_room(windows(3, 3)))
            await settle(asyncio.gather(*first))
            model.hold_next()
            blocker = await hold_model(batcher, model)
            full = batcher.submit(windows(4, 4))
            waiting = asyncio.ensure_future(batcher.submit_when_room(windows(5)))
            await asyncio.sleep(0.05)
            assert not waiting.done() and batcher.queued == 2  # no room yet
            model.release()
            later = await settle(waiting)
            await settle(asyncio.gather(*blocker, *full, *later))

    asyncio.run(body())


def test_a_stopped_batcher_takes_nothing() -> None:
    model = RecordingModel()

    async def body() -> None:
        executor = ThreadPoolExecutor(1)
        batcher = Batcher(model, limits(), executor, Metrics())
        with pytest.raises(RuntimeError, match=exactly("the batcher is not running")):
            batcher.submit(windows(2))
        batcher.start()
        await settle(asyncio.gather(*batcher.submit(windows(2))))
        await batcher.stop()
        with pytest.raises(RuntimeError, match=exactly("the batcher is not running")):
            batcher.submit(windows(2))
        executor.shutdown()

    asyncio.run(body())


@pytest.mark.parametrize(
    ("lengths", "overrides", "cost"),
    [
        ((50, 50), {"max_batch_tokens": 100}, None),  # the token budget, met exactly
        ((2, 2, 2), {"max_batch_size": 3}, None),  # the size cap, met exactly
        # With a pass cost, 900 padded tokens make the fixed part a tenth: efficient.
        ((450, 450), {"max_batch_tokens": 10_000}, PassCost(fixed_s=1e-3, per_token_s=1e-5)),
    ],
)
def test_a_full_batch_runs_without_waiting_for_company(
    lengths: Sequence[int], overrides: dict[str, int], cost: PassCost | None
) -> None:
    model = RecordingModel()

    async def body() -> None:
        batch_limits = limits(max_wait_ms=FOREVER_MS, **overrides)
        async with running_batcher(model, batch_limits, cost) as (batcher, _):
            await settle(asyncio.gather(*batcher.submit(windows(*lengths))))

    asyncio.run(body())
    assert [len(b) for b in model.batches] == [len(lengths)]


def test_what_a_cut_leaves_waits_for_company() -> None:
    # Five 20s fill the budget of 100; the 50 left behind waits (for ever, here) until
    # another 50 arrives and the two fill the budget together.
    model = RecordingModel()

    async def body() -> None:
        batch_limits = limits(max_wait_ms=FOREVER_MS, max_batch_tokens=100)
        async with running_batcher(model, batch_limits) as (batcher, _):
            first = batcher.submit(windows(20, 20, 20, 20, 20, 50))
            await settle(asyncio.gather(*first[:5]))
            second = batcher.submit(windows(50))
            await settle(asyncio.gather(first[5], *second))

    asyncio.run(body())
    assert [sorted(len(w.ids) for w in b) for b in model.batches] == [[20] * 5, [50, 50]]


def test_windows_beyond_the_sort_window_keep_counting_towards_a_full_batch() -> None:
    # The view holds two windows: the third stays queued through the first cut, and with
    # one more it fills the budget again.
    model = RecordingModel()

    async def body() -> None:
        batch_limits = limits(max_wait_ms=FOREVER_MS, max_batch_tokens=100, sort_window=2)
        async with running_batcher(model, batch_limits) as (batcher, _):
            first = batcher.submit(windows(50, 50, 50))
            await settle(asyncio.gather(*first[:2]))
            second = batcher.submit(windows(50))
            await settle(asyncio.gather(first[2], *second))

    asyncio.run(body())
    assert [len(b) for b in model.batches] == [2, 2]


def test_skipped_windows_do_not_split_the_batch_around_them() -> None:
    model = RecordingModel(hold_first=True)

    async def body() -> None:
        async with running_batcher(model, limits(max_wait_ms=0)) as (batcher, _):
            blocker = await hold_model(batcher, model)
            kept = batcher.submit([Window((11, 12))])
            expired = batcher.submit([Window((13, 14))], deadline=time.monotonic() - 1)
            cancelled = batcher.submit([Window((15, 16))])
            cancelled[0].cancel()
            kept += batcher.submit([Window((17, 18))])
            model.release()
            await settle(asyncio.gather(*blocker, *kept))
            with pytest.raises(DeadlineExpired, match=exactly("deadline expired while queued")):
                await expired[0]

    asyncio.run(body())
    assert [[w.ids[0] for w in b] for b in model.batches[1:]] == [[11, 17]]


def test_the_queue_gauges_fall_to_zero_once_skipped_windows_leave() -> None:
    """Cancelled and expired windows are dropped by the next cut; with no live window
    left, no batch follows, and the gauges must not keep counting them."""
    model = RecordingModel(hold_first=True)

    def depth(metrics: Metrics, name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    async def body() -> Metrics:
        async with running_batcher(model, limits(max_wait_ms=0)) as (batcher, metrics):
            blocker = await hold_model(batcher, model)
            expired = batcher.submit(windows(3, 4), deadline=time.monotonic() + 0.05)
            cancelled = batcher.submit(windows(5, 6, 7), priority=Priority.BULK)
            for future in cancelled:
                future.cancel()
            assert depth(metrics, "embedserve_queue_depth") == 5
            await asyncio.sleep(0.1)  # the deadline passes while the model is held
            model.release()
            await settle(asyncio.gather(*blocker))
            with pytest.raises(DeadlineExpired):
                await settle(asyncio.gather(*expired))
            for _ in range(100):  # the loop cuts once more, finding nothing live
                if depth(metrics, "embedserve_queue_depth") == 0:
                    break
                await asyncio.sleep(0.01)
            return metrics

    metrics = asyncio.run(body())
    assert depth(metrics, "embedserve_queue_depth") == 0
    for lane in ("interactive", "bulk"):
        assert depth(metrics, "embedserve_lane_queue_depth", lane=lane) == 0
    assert len(model.batches) == 1  # only the held one ran


def test_the_model_runs_on_the_batchers_executor() -> None:
    model = RecordingModel()

    async def body() -> None:
        async with running_batcher(model, limits()) as (batcher, _):
            await settle(asyncio.gather(*batcher.submit(windows(2, 3))))

    asyncio.run(body())
    assert model.threads and all(t.startswith(MODEL_THREADS) for t in model.threads)


class FailingModel:
    """Fails its first batch with ``error``, then computes as RecordingModel does."""

    def __init__(self, error: Exception) -> None:
        self.error: Exception | None = error
        self.model = RecordingModel()

    def __call__(self, batch: Sequence[Window]) -> list[FloatArray]:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.model(batch)


def run_failing(model: FailingModel) -> list[BaseException | WindowResult]:
    """Two windows in the failing batch, then one more that must still be served."""

    async def body() -> list[BaseException | WindowResult]:
        async with running_batcher(model, limits(max_wait_ms=50)) as (batcher, _):
            failed = batcher.submit(windows(2, 3))
            outcomes = await settle(asyncio.gather(*failed, return_exceptions=True))
            after = await settle(asyncio.gather(*batcher.submit(windows(4))))
            assert after[0].vector[0] == 4  # the batcher lives on
            return list(outcomes)

    return asyncio.run(body())


def test_a_service_error_from_the_model_reaches_every_caller_unchanged() -> None:
    error = InvalidArgument("the batch holds an unknown token")
    assert run_failing(FailingModel(error)) == [error, error]


def test_any_other_model_error_becomes_inference_failed_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="embedserve.server.batcher")
    outcomes = run_failing(FailingModel(RuntimeError("out of memory")))
    assert len(outcomes) == 2 and outcomes[0] is outcomes[1]
    assert isinstance(outcomes[0], InferenceFailed)
    assert outcomes[0].message == "the model failed on this batch: out of memory"
    assert [r.getMessage() for r in caplog.records] == ["model failure on a batch of 2"]


class ShortModel(FailingModel):
    """Returns one vector too few for its first batch, then computes as RecordingModel does."""

    def __call__(self, batch: Sequence[Window]) -> list[FloatArray]:
        if self.error is not None:
            self.error = None
            return self.model(batch)[:-1]
        return self.model(batch)


def test_a_model_that_returns_too_few_vectors_fails_the_whole_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="embedserve.server.batcher")
    outcomes = run_failing(ShortModel(RuntimeError("unused")))
    assert len(outcomes) == 2 and all(isinstance(o, InferenceFailed) for o in outcomes)
    assert str(outcomes[0].message) == "the model returned 1 vectors for 2 inputs"
    assert [r.getMessage() for r in caplog.records] == [
        "the model returned 1 vectors for a batch of 2"
    ]


def test_reported_times_lie_within_the_call() -> None:
    model = RecordingModel()

    async def body() -> tuple[list[WindowResult], float]:
        async with running_batcher(model, limits()) as (batcher, metrics):
            started = time.monotonic()
            results = await settle(asyncio.gather(*batcher.submit(windows(2, 3))))
            wall_s = time.monotonic() - started
            batch_s = metrics.registry.get_sample_value("embedserve_batch_seconds_sum")
            assert batch_s is not None and 0 <= batch_s <= wall_s
            return results, wall_s

    results, wall_s = asyncio.run(body())
    for result in results:
        assert 0 <= result.queue_s <= wall_s and 0 <= result.inference_s <= wall_s


def test_stop_finishes_what_is_queued_first() -> None:
    model = RecordingModel(hold_first=True)

    async def body() -> None:
        async with running_batcher(model, limits(max_wait_ms=0)) as (batcher, _):
            blocker = await hold_model(batcher, model)
            queued = batcher.submit(windows(3, 4))
            stopping = asyncio.ensure_future(batcher.stop())
            await asyncio.sleep(0.02)
            assert not stopping.done()  # the model still holds the first batch
            model.release()
            await settle(stopping)
            assert all(f.done() and not f.cancelled() for f in [*blocker, *queued])

    asyncio.run(body())


def test_stop_waits_for_the_batch_the_model_is_running() -> None:
    # Nothing is queued: only the running batch keeps stop() from cancelling the owner task,
    # which would leave that batch's callers waiting for ever.
    model = RecordingModel(hold_first=True)

    async def body() -> None:
        async with running_batcher(model, limits(max_wait_ms=0)) as (batcher, _):
            blocker = await hold_model(batcher, model)
            stopping = asyncio.ensure_future(batcher.stop())
            await asyncio.sleep(0.05)
            assert not stopping.done()
            model.release()
            await settle(stopping)
            assert [f.result().vector.tolist() for f in blocker] == [[2.0, 2.0]]

    asyncio.run(body())


def test_a_batcher_needs_a_token_budget_of_at_least_one() -> None:
    # 0 means "automatic" in the settings; the batcher must receive the resolved budget.
    model = RecordingModel()
    with ThreadPoolExecutor(1) as executor:
        with pytest.raises(
            ValueError,
            match=exactly(
                "max_batch_tokens must be at least 1, got 0 "
                "(0, the automatic budget, is resolved by BatchLimits.for_device)"
            ),
        ):
            Batcher(model, limits(max_batch_tokens=0), executor, Metrics())

        async def one_token_budget() -> list[list[int]]:
            async with running_batcher(model, limits(max_batch_tokens=1, max_wait_ms=0)) as (
                batcher,
                _,
            ):
                await settle(asyncio.gather(*batcher.submit(windows(1, 1))))
            return [[len(w.ids) for w in batch] for batch in model.batches]

        # A budget of one token still serves: one-token windows, one per batch.
        assert asyncio.run(one_token_budget()) == [[1], [1]]


def test_stop_drops_windows_whose_callers_gave_up_without_waiting_for_company() -> None:
    """A cancelled warm-up's windows stayed counted until the next cut, which waited up to
    max_wait_ms for company: with a long wait, SIGTERM did not stop the server."""
    model = RecordingModel()

    async def body() -> None:
        async with running_batcher(model, limits(max_wait_ms=FOREVER_MS)) as (batcher, _):
            given_up = batcher.submit(windows(3, 4))
            await asyncio.sleep(0.02)  # the owner now waits for company
            for future in given_up:
                future.cancel()
            await asyncio.wait_for(batcher.stop(), 2.0)
            assert batcher.queued == 0

    asyncio.run(body())
    assert model.batches == []  # dropped, never run


def test_stop_runs_what_is_queued_without_waiting_for_company() -> None:
    model = RecordingModel()

    async def body() -> None:
        async with running_batcher(model, limits(max_wait_ms=FOREVER_MS)) as (batcher, _):
            queued = batcher.submit(windows(3, 4))
            await asyncio.sleep(0.02)
            await asyncio.wait_for(batcher.stop(), 2.0)
            assert all(f.done() and not f.cancelled() for f in queued)

    asyncio.run(body())
