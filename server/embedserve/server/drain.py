"""Graceful drain: on shutdown, streams stop taking messages and end after what they hold.

A stream that is cut mid-way by the transport would leave its producer unsure of what
was done. Instead, once the drain starts, each streaming handler stops reading, answers
(or writes and acknowledges) every message it already accepted, then ends with
UNAVAILABLE; the producer knows exactly which messages to send again elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from embedserve.server.errors import NotReady
from embedserve.server.tasks import discard

T = TypeVar("T")


class ServerDraining(NotReady):
    """The server is shutting down: this call or stream takes no more messages."""


class Drain:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def started(self) -> bool:
        return self._event.is_set()

    def start(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    async def messages(self, source: AsyncIterator[T]) -> AsyncIterator[T]:
        """Yield from ``source`` until it ends or the drain starts (then ServerDraining)."""
        iterator = source.__aiter__()
        drained = asyncio.ensure_future(self._event.wait())
        following: asyncio.Future[T] | None = None
        try:
            while True:
                if self.started:
                    raise ServerDraining("the server is shutting down")
                following = asyncio.ensure_future(anext(iterator))
                await asyncio.wait({following, drained}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    following.cancel()
                    raise ServerDraining("the server is shutting down")
                try:
                    item = following.result()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            drained.cancel()
            if following is not None:
                discard(following)  # the stream was closed while a read was pending
