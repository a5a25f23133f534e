"""The bounded, ordered stream every streaming handler runs on.

A reader task takes messages from the caller (until it ends or the server drains) and
starts each one's work at once, but holds at most ``max_inflight`` unreleased messages:
past that it stops reading, and HTTP/2 flow control holds the producer back. The handler
takes the started messages in arrival order, releases each slot when the message is
answered, and calls :meth:`OrderedStream.finish` after the last one: that surfaces a
reader error (a bad message, the drain) only after every good message was answered.
Leaving the ``async with`` block cancels whatever was still running.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from embedserve.server.drain import Drain, ServerDraining
from embedserve.server.tasks import discard

M = TypeVar("M")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Started(Generic[M, R]):
    message: M
    work: asyncio.Task[R]

    @property
    def result(self) -> R:
        return self.work.result()


class OrderedStream(Generic[M, R]):
    def __init__(
        self,
        messages: AsyncIterator[M],
        start: Callable[[M], Awaitable[R]],
        max_inflight: int,
        drain: Drain,
    ) -> None:
        self._messages = messages
        self._start = start
        self._slots = asyncio.Semaphore(max_inflight)
        self._drain = drain
        self._pending: collections.deque[Started[M, R]] = collections.deque()
        self._arrived = asyncio.Event()
        self._reading = True
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OrderedStream[M, R]:
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            discard(self._reader)
        while self._pending:
            discard(self._pending.popleft().work)

    async def _read(self) -> None:
        try:
            async for message in self._drain.messages(self._messages):
                await self._slots.acquire()  # bounded in-flight: backpressure to the producer
                work = asyncio.ensure_future(self._start(message))
                self._pending.append(Started(message, work))
                self._arrived.set()
        finally:
            self._reading = False
            self._arrived.set()

    async def next(self) -> Started[M, R] | None:
        """The oldest message not yet taken, once its work is done; None after the last.

        A failed work raises here, ending the stream with that message's error."""
        while not self._pending and self._reading:
            self._arrived.clear()
            await self._arrived.wait()
        if not self._pending:
            return None
        started = self._pending.popleft()
        await started.work
        return started

    def next_ready(self, accept: Callable[[Started[M, R]], bool]) -> Started[M, R] | None:
        """The oldest message not yet taken if its work already succeeded and ``accept``
        takes it; otherwise None, without waiting (to join finished messages into one write)."""
        if not self._pending:
            return None
        started = self._pending[0]
        work = started.work
        if not work.done() or work.cancelled() or work.exception() is not None:
            return None
        if not accept(started):
            return None
        return self._pending.popleft()

    def release(self) -> None:
        """One message was answered: the reader may take another."""
        self._slots.release()

    async def finish(self, progress: Callable[[], str]) -> None:
        """After the last message: raise the reader's error, if any. A drain's message
        gets ``progress()`` (what this stream got done) so the producer knows what to resend."""
        assert self._reader is not None, "use OrderedStream in an async with block"
        try:
            await self._reader
        except ServerDraining as exc:
            exc.message += f"; {progress()}"
            raise


async def answers_in_order(
    messages: AsyncIterator[M],
    start: Callable[[M], Awaitable[R]],
    max_inflight: int,
    drain: Drain,
) -> AsyncIterator[R]:
    """Each message's answer, in arrival order, one at a time (an embed stream, over gRPC or
    HTTP); a drain's error says how many were answered, so the producer resends the rest."""
    answered = 0

    def progress() -> str:
        return f"{answered} requests of this stream were answered, send the rest again"

    async with OrderedStream(messages, start, max_inflight, drain) as stream:
        while (started := await stream.next()) is not None:
            stream.release()
            answered += 1
            yield started.result
        await stream.finish(progress)
