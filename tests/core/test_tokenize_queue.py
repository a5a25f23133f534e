"""Tokenising in bursts: calls made while the thread is busy go over as one job."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from embedserve.server.tokenize_queue import TokenizeQueue


class CountingExecutor(ThreadPoolExecutor):
    """One thread; counts the jobs handed to it and the thread each ran on."""

    def __init__(self) -> None:
        super().__init__(1, thread_name_prefix="tokenize-test")
        self.jobs = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


def test_calls_made_while_busy_run_as_one_job_each_with_its_own_outcome() -> None:
    gate = threading.Event()
    threads: set[str] = set()

    def work(value: int) -> Callable[[], int]:
        def run() -> int:
            threads.add(threading.current_thread().name)
            if value == 0:
                gate.wait(10)
            if value == 3:
                raise ValueError("input 3 is bad")
            return value * 10

        return run

    async def main(executor: CountingExecutor) -> list[Any]:
        queue = TokenizeQueue(executor)
        first = asyncio.ensure_future(queue.run(work(0)))
        await asyncio.sleep(0.05)  # the first job is running, held by the gate
        rest = [asyncio.ensure_future(queue.run(work(v))) for v in range(1, 6)]
        await asyncio.sleep(0.05)
        assert executor.jobs == 1  # the five wait together
        gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    with CountingExecutor() as executor:
        outcomes = asyncio.run(main(executor))
    assert executor.jobs == 2
    assert outcomes[:3] == [0, 10, 20] and outcomes[4:] == [40, 50]
    assert isinstance(outcomes[3], ValueError) and str(outcomes[3]) == "input 3 is bad"
    assert threads == {"tokenize-test_0"}


def test_a_caller_that_goes_away_leaves_the_others_their_results() -> None:
    gate = threading.Event()

    async def main(executor: CountingExecutor) -> tuple[list[int], bool]:
        queue = TokenizeQueue(executor)
        held = asyncio.ensure_future(queue.run(lambda: gate.wait(10) and 1))
        await asyncio.sleep(0.05)
        leaving = asyncio.ensure_future(queue.run(lambda: 2))
        staying = asyncio.ensure_future(queue.run(lambda: 3))
        await asyncio.sleep(0)
        leaving.cancel()
        gate.set()
        results = [await held, await staying]
        # The queue goes on working after the cancellation.
        results.append(await queue.run(lambda: 4))
        return results, leaving.cancelled()

    with CountingExecutor() as executor:
        assert asyncio.run(main(executor)) == ([1, 3, 4], True)


def test_a_shut_down_executor_fails_the_call_instead_of_hanging() -> None:
    executor = CountingExecutor()
    executor.shutdown()

    async def main() -> None:
        await asyncio.wait_for(TokenizeQueue(executor).run(lambda: 1), 5)

    with pytest.raises(RuntimeError, match="shutdown"):
        asyncio.run(main())
