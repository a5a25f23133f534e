"""Tokenising of concurrent requests in one trip to the tokenizer thread.

A job per request costs a hand-off to the thread and a wake-up of the event loop on the
way back, which for one short text is more work than the tokenising itself. Here the
requests that arrive while the thread is busy wait together and go over as one job, run
in arrival order, each with its own result or error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

# One request's work and the future its caller awaits.
_Job = tuple[Callable[[], Any], "asyncio.Future[Any]"]
# What a job came to: (True, result) or (False, the exception it raised).
_Outcome = tuple[bool, Any]


def _run_all(jobs: list[_Job]) -> list[_Outcome]:
    outcomes: list[_Outcome] = []
    for work, _ in jobs:
        try:
            outcomes.append((True, work()))
        except Exception as exc:  # this request's error (e.g. an input over the limit) only
            outcomes.append((False, exc))
    return outcomes


class TokenizeQueue:
    """Runs work on ``executor`` (one thread), the calls made meanwhile as one job."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._waiting: list[_Job] = []
        self._busy = False

    async def run(self, work: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((work, future))
        if not self._busy:
            self._start(loop)
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs, self._waiting = self._waiting, []
        try:
            done = loop.run_in_executor(self._executor, _run_all, jobs)
        except BaseException as exc:  # e.g. the executor was shut down
            _settle(jobs, [(False, exc)] * len(jobs))
            return
        self._busy = True
        done.add_done_callback(lambda finished: self._finish(loop, jobs, finished))

    def _finish(
        self, loop: asyncio.AbstractEventLoop, jobs: list[_Job], finished: asyncio.Future[Any]
    ) -> None:
        self._busy = False
        if finished.cancelled():
            outcomes: list[_Outcome] = [(False, asyncio.CancelledError())] * len(jobs)
        elif finished.exception() is not None:
            outcomes = [(False, finished.exception())] * len(jobs)
        else:
            outcomes = finished.result()
        _settle(jobs, outcomes)
        if self._waiting:
            self._start(loop)


def _settle(jobs: list[_Job], outcomes: list[_Outcome]) -> None:
    for (_, future), (ok, value) in zip(jobs, outcomes, strict=True):
        if future.done():  # its caller went away
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
