"""A bound on concurrent calls (HTTP/2 streams) per client connection, with a clear error.

HTTP/2's own SETTINGS_MAX_CONCURRENT_STREAMS makes a client queue its extra calls
silently; counting here instead tells the caller what happened and which setting to
raise. A connection is the peer address (host and port): each channel has its own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import grpc

from embedserve.server.call_hooks import CallHooks, Context, HookInterceptor


class _Count(CallHooks):
    def __init__(self, open_calls: dict[str, int], limit: int) -> None:
        self._open = open_calls
        self._limit = limit

    async def begin(self, context: Context) -> Any:
        peer = context.peer()
        if self._open.get(peer, 0) >= self._limit:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this connection already has {self._limit} calls open "
                "(max_streams_per_connection); finish some first, or spread them over "
                "connections (a process's gRPC channels to one target share one unless "
                "made with the option grpc.use_local_subchannel_pool)",
            )
        self._open[peer] = self._open.get(peer, 0) + 1
        return peer

    def end(self, state: Any, context: Context, error: BaseException | None) -> None:
        remaining = self._open[state] - 1
        if remaining:
            self._open[state] = remaining
        else:
            del self._open[state]  # no entry per connection ever seen: bounded memory


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """The per-connection section of the settings."""

    max_streams_per_connection: int = 256  # concurrent calls on one client connection


class ConnectionLimitInterceptor(HookInterceptor):
    """All access is on the event loop thread: no lock needed."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self._limit = limits.max_streams_per_connection
        self._open: dict[str, int] = {}

    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        if method.startswith("/grpc.health.v1.Health/"):
            return None  # a probe must get through a busy connection
        return _Count(self._open, self._limit)
