"""Per-caller token-bucket rate limit on calls (a stream counts as one call).

The caller is the API key (its key_id) when auth is on, else the peer's address: its bare
IP, the same for a client's gRPC and HTTP calls (one bucket for both).
Over the limit: RESOURCE_EXHAUSTED with trailing metadata ``retry-after-ms`` (status.py).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from embedserve.server import callctx
from embedserve.server.call_hooks import CallHooks, Context, HookInterceptor
from embedserve.server.errors import RateLimited
from embedserve.server.status import abort_with


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = now

    def take(self, now: float) -> float:
        """Take one token; return 0 when taken, else the seconds until one is available."""
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self._rate


@dataclasses.dataclass(frozen=True)
class RateLimitSettings:
    """The rate-limit section of the settings; one limiter serves both transports."""

    rate_limit_rps: float = 0.0  # calls per second per key (or per peer without auth); 0: off
    rate_limit_burst: int = 0  # bucket size; 0: ceil(rate_limit_rps), at least 1


class RateLimiter:
    """Buckets by caller. All access is on the event loop thread: no lock needed."""

    MAX_CALLERS = 100_000  # forget idle callers past this, so peers cannot grow memory

    def __init__(
        self, settings: RateLimitSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = settings.rate_limit_rps
        burst = settings.rate_limit_burst
        self.burst = float(burst if burst > 0 else max(1, math.ceil(self.rate)))
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, caller: str) -> float:
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) >= self.MAX_CALLERS:
                self._buckets.clear()
            bucket = self._buckets[caller] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def check(self, caller: str) -> None:
        """Take one call from ``caller``'s bucket, or raise RateLimited with the wait."""
        wait_s = self.take(caller)
        if wait_s > 0:
            retry_ms = max(1, math.ceil(wait_s * 1000))
            raise RateLimited(
                f"rate limit of {self.rate:g} calls/s exceeded; retry in {retry_ms} ms", retry_ms
            )


class _Limit(CallHooks):
    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def begin(self, context: Context) -> Any:
        caller = callctx.caller.get() or _peer_host(context.peer())
        try:
            self._limiter.check(caller)
        except RateLimited as exc:
            await abort_with(context, exc)
        return None


def _peer_host(peer: str) -> str:
    """A gRPC peer's address as HTTP names it: "ipv4:127.0.0.1:5000" -> "127.0.0.1",
    "ipv6:[::1]:5000" -> "::1" (the port changes per connection)."""
    kind, _, address = peer.partition(":")
    if kind not in {"ipv4", "ipv6"}:
        return peer  # a Unix socket ("unix:/path"): no port to drop
    host = address.rsplit(":", 1)[0]
    return client_address(urllib.parse.unquote(host).removeprefix("[").removesuffix("]"))


def client_address(host: str) -> str:
    """The one name of a client address for both transports' buckets: without auth, a
    client's gRPC and HTTP calls share its one budget. An IPv4 address mapped into IPv6
    (a dual-stack listener's "::ffff:127.0.0.1") is the IPv4 address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class RateLimitInterceptor(HookInterceptor):
    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        if method.startswith("/grpc.health.v1.Health/"):
            return None  # probes must never be throttled into looking unhealthy
        return _Limit(self._limiter)
