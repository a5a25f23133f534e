"""Graceful drain: on shutdown, streams stop taking messages and end after what they hold.

A stream that is cut mid-way by the transport would leave its producer unsure of what
was done. Instead, once the drain starts, each streaming handler stops reading, answers
(or writes and acknowledges) every message it already accepted, then ends with
UNAVAILABLE; the producer knows exactly which messages to send again elsewhere.

New calls are refused with UNAVAILABLE by ``RefuseWhileDraining`` until callers stop
sending them, and only then does the transport shut down: gRPC's own shutdown ends the
calls that reached the server but no handler yet with CANCELLED, which no retry policy
retries (grpc/grpc#41785). The calls still running when the grace period is over are
cancelled by the transport, their callers told UNAVAILABLE: ``Drain.past_grace`` lets them
be recorded so, not as cancelled by their callers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import grpc

from embedserve.server.call_hooks import CallHooks, Context, HookInterceptor, past_grace
from embedserve.server.errors import NotReady
from embedserve.server.tasks import discard

T = TypeVar("T")


class ServerDraining(NotReady):
    """The server is shutting down: this call or stream takes no more messages."""


class Drain:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._last_refused = 0.0
        self._grace_ends: float | None = None

    @property
    def started(self) -> bool:
        return self._event.is_set()

    def start(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    def transports_stop(self, grace_s: float) -> None:
        """The transports stop now: the calls still running ``grace_s`` from now are
        cancelled by the server (gRPC's callers get UNAVAILABLE)."""
        self._grace_ends = time.monotonic() + grace_s

    def grace_left(self) -> float | None:
        """Seconds until the transports cancel what still runs; None before they stop."""
        return None if self._grace_ends is None else self._grace_ends - time.monotonic()

    def past_grace(self) -> bool:
        """Whether the transports' grace is over: a call cancelled now was cut by them."""
        return self._grace_ends is not None and time.monotonic() >= self._grace_ends

    def refused(self) -> None:
        """A new call was refused because of the drain."""
        self._last_refused = time.monotonic()

    async def quiet(self, gap_s: float, limit_s: float) -> None:
        """Return once no call was refused for ``gap_s`` (counted from now at the earliest),
        or after ``limit_s``: a caller that never stops calling must not hold the shutdown."""
        since = time.monotonic()
        give_up = since + limit_s
        while True:
            now = time.monotonic()
            calm_at = max(self._last_refused, since) + gap_s
            if calm_at <= now or now >= give_up:
                return
            await asyncio.sleep(min(calm_at, give_up) - now)

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


class _Refuse(CallHooks):
    async def begin(self, context: Context) -> Any:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")


class RefuseWhileDraining(HookInterceptor):
    """Once the drain started, new calls end UNAVAILABLE before any work; health checks
    still answer (NOT_SERVING), so that balancers take the server out."""

    def __init__(self, drain: Drain) -> None:
        self._drain = drain

    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        # Called in the call's own task: its final status is read against this server's drain.
        past_grace.set(self._drain.past_grace)
        if not self._drain.started or method.startswith("/grpc.health.v1.Health/"):
            return None
        self._drain.refused()
        return _Refuse()
