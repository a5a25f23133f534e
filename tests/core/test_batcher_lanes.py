"""The batcher's two lanes: interactive work runs before queued bulk work, bulk work keeps
a share of the passes, and each lane has its own room."""

from __future__ import annotations

import asyncio

import pytest
from fakes import RecordingModel, index_of, numbered_windows
from harness import limits, running_batcher

from embedserve.server.batcher import INTERACTIVE_BATCHES_PER_BULK, Priority
from embedserve.server.errors import Overloaded
from embedserve.server.windows import Window

SETTLE_S = 30.0


async def _held(batcher, model: RecordingModel) -> list[asyncio.Future]:
    """A first batch the model holds until released, so that what follows queues."""
    blocker = batcher.submit([Window((999, 1))], priority=Priority.BULK)
    await asyncio.get_running_loop().run_in_executor(None, model.first_started.wait, 10)
    return blocker


def test_a_query_queued_behind_an_ingestion_runs_next() -> None:
    model = RecordingModel(hold_first=True)
    bulk = numbered_windows([5] * 40)
    query = Window((500, 7, 7))

    async def body() -> None:
        async with running_batcher(model, limits(max_batch_size=4)) as (batcher, _):
            blocker = await _held(batcher, model)
            ingesting = batcher.submit(bulk, priority=Priority.BULK)
            answered = batcher.submit([query])
            model.release()
            await asyncio.wait_for(asyncio.gather(*blocker, *ingesting, *answered), SETTLE_S)

    asyncio.run(body())
    # The held batch, then the query alone, then the ingestion in batches of 4.
    assert [index_of(w) for w in model.batches[1]] == [500]
    assert sorted(index_of(w) for b in model.batches[2:] for w in b) == list(range(40))


def test_bulk_work_keeps_one_batch_in_every_few_under_a_flow_of_queries() -> None:
    model = RecordingModel(hold_first=True)
    runs = INTERACTIVE_BATCHES_PER_BULK

    async def body() -> None:
        async with running_batcher(model, limits(max_batch_size=1)) as (batcher, _):
            blocker = await _held(batcher, model)
            ingesting = batcher.submit(numbered_windows([3] * 3), priority=Priority.BULK)
            queries = batcher.submit([Window((100 + i, 4)) for i in range(3 * runs)])
            model.release()
            await asyncio.wait_for(asyncio.gather(*blocker, *ingesting, *queries), SETTLE_S)

    asyncio.run(body())
    lanes = ["bulk" if index_of(b[0]) < 100 else "query" for b in model.batches[1:]]
    # While bulk work waits, it gets every (INTERACTIVE_BATCHES_PER_BULK + 1)-th batch.
    assert lanes == (["query"] * runs + ["bulk"]) * 3


def test_each_lane_has_its_own_room() -> None:
    model = RecordingModel(hold_first=True)

    async def body() -> None:
        async with running_batcher(model, limits(max_queue_items=2)) as (batcher, _):
            blocker = await _held(batcher, model)
            ingesting = batcher.submit(numbered_windows([3, 3]), priority=Priority.BULK)
            with pytest.raises(Overloaded, match=r"\(2 inputs waiting; max_queue_items is 2\)"):
                batcher.submit(numbered_windows([3]), priority=Priority.BULK)
            # A full bulk lane does not refuse a query, nor hold a stream of queries.
            query = batcher.submit([Window((50, 2))])
            streamed = await asyncio.wait_for(batcher.submit_when_room([Window((51, 2))]), SETTLE_S)
            waiting = asyncio.ensure_future(
                batcher.submit_when_room(numbered_windows([4]), priority=Priority.BULK)
            )
            await asyncio.sleep(0.05)
            assert not waiting.done() and batcher.queued == 4
            model.release()
            later = await asyncio.wait_for(waiting, SETTLE_S)
            await asyncio.wait_for(
                asyncio.gather(*blocker, *ingesting, *query, *streamed, *later), SETTLE_S
            )

    asyncio.run(body())


def test_a_short_request_behind_a_large_one_takes_the_next_turn() -> None:
    """A request's windows were cut oldest first: one text sent just after a caller's
    400 waited for all 400 (25 s on a CPU for texts of 250 tokens)."""
    model = RecordingModel(hold_first=True)
    large = numbered_windows([5] * 40)
    short = Window((500, 7, 7, 7, 7))

    async def body() -> None:
        async with running_batcher(model, limits(max_batch_size=4)) as (batcher, _):
            blocker = await _held(batcher, model)
            embedding = batcher.submit(large)
            answered = batcher.submit([short])
            later = batcher.submit([Window((600 + i, 7, 7, 7, 7)) for i in range(4)])
            model.release()
            await asyncio.wait_for(
                asyncio.gather(*blocker, *embedding, *answered, *later), SETTLE_S
            )

    asyncio.run(body())
    batches = [[index_of(w) for w in batch] for batch in model.batches[1:]]
    # Turns: the large request (the oldest), the short one, the next, then the large again.
    assert batches[0] == [0, 1, 2, 3] and 500 in batches[1] and 600 in batches[2]
    every = sorted(index for batch in batches for index in batch)
    assert len(batches) == 12 and every == [*range(40), 500, *range(600, 604)]


def test_a_short_request_queued_past_the_sort_window_still_takes_its_turn() -> None:
    """Turns were taken among the windows in view only: behind more than sort_window
    windows (two large requests at the defaults), a short request waited for all of them."""
    model = RecordingModel(hold_first=True)
    large = numbered_windows([5] * 12)
    short = Window((500, 7, 7, 7, 7))

    async def body() -> None:
        batch_limits = limits(max_batch_size=2, sort_window=4)
        async with running_batcher(model, batch_limits) as (batcher, _):
            blocker = await _held(batcher, model)
            embedding = batcher.submit(large)
            answered = batcher.submit([short])
            model.release()
            await asyncio.wait_for(asyncio.gather(*blocker, *embedding, *answered), SETTLE_S)

    asyncio.run(body())
    batches = [[index_of(w) for w in batch] for batch in model.batches[1:]]
    assert batches[0] == [0, 1] and 500 in batches[1], batches
    assert sorted(index for batch in batches for index in batch) == [*range(12), 500]


def test_a_cancelled_request_past_the_sort_window_gives_its_turn_to_the_next() -> None:
    model = RecordingModel(hold_first=True)

    async def body() -> None:
        batch_limits = limits(max_batch_size=2, sort_window=4)
        async with running_batcher(model, batch_limits) as (batcher, metrics):
            blocker = await _held(batcher, model)
            embedding = batcher.submit(numbered_windows([5] * 12))
            cancelled = batcher.submit([Window((400, 7, 7, 7, 7))])
            cancelled[0].cancel()
            answered = batcher.submit([Window((500, 7, 7, 7, 7))])
            model.release()
            await asyncio.wait_for(asyncio.gather(*blocker, *embedding, *answered), SETTLE_S)
            assert metrics.registry.get_sample_value("embedserve_queue_depth") == 0

    asyncio.run(body())
    batches = [[index_of(w) for w in batch] for batch in model.batches[1:]]
    assert 500 in batches[1] and all(400 not in batch for batch in batches), batches


def test_a_request_of_no_windows_takes_no_turn() -> None:
    """Counted among the lane's requests, it was picked for a turn it had no window for."""
    model = RecordingModel()

    async def body() -> None:
        async with running_batcher(model, limits()) as (batcher, _):
            assert batcher.submit([]) == []
            answered = batcher.submit([Window((500, 7))])
            await asyncio.wait_for(asyncio.gather(*answered), SETTLE_S)

    asyncio.run(body())
    assert [[index_of(w) for w in batch] for batch in model.batches] == [[500]]
