"""Per-key token-bucket rate limit against a real server; the bucket with a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from embedserve.client import EmbedClient
from embedserve.server.ratelimit import RateLimiter, RateLimitSettings
from embedserve.server.status import RETRY_AFTER_KEY


def test_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimitSettings(2.0, 3), clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # its own bucket
    now[0] = 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert (
        RateLimiter(RateLimitSettings(0.5, 0)).burst == 1
    )  # default burst: ceil(rate), at least 1


def retry_after_ms(exc: grpc.RpcError) -> int:
    trailers = dict(exc.trailing_metadata())  # type: ignore[attr-defined]
    return int(trailers[RETRY_AFTER_KEY])


def test_per_key_limit(start_server: Callable[..., Any], minilm_model: Any) -> None:
    running = start_server(
        loaded=minilm_model,
        api_keys="alice write;bob read",
        # Slow refill, so a loaded machine cannot refill the bucket between calls; the
        # refill itself is tested with a fake clock above.
        rate_limit_rps=0.1,
        rate_limit_burst=2,
    )
    with EmbedClient(running.target, api_key="alice") as alice:
        alice.embed(["1"])
        alice.model_info()
        with pytest.raises(grpc.RpcError) as info:
            alice.model_info()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        wait_ms = retry_after_ms(info.value)
        assert 0 < wait_ms <= 10_000
        assert "rate limit" in info.value.details()
        with EmbedClient(running.target, api_key="bob") as bob:
            bob.embed(["bob has his own bucket"])
        assert alice.health() == "SERVING"  # probes are never limited


def test_limit_without_auth_is_per_peer(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    running = start_server(loaded=minilm_model, rate_limit_rps=0.1, rate_limit_burst=1)
    with EmbedClient(running.target) as client:
        client.model_info()
        with pytest.raises(grpc.RpcError) as info:
            client.model_info()
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_after_ms(info.value) > 0
