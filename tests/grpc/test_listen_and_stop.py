"""Where the server listens and how it stops, as its settings say: an IPv6 host, bare or in
brackets, on every listener (gRPC, HTTP, metrics), and a shutdown during the warm-up within
its grace period whatever ``max_wait_ms``."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from running_server import ipv6_loopback

from embedserve.client import EmbedClient


def free_ipv6_port() -> int:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize(("host", "exposed"), [("::1", False), ("[::1]", False), ("::", True)])
def test_an_ipv6_host_serves_grpc_http_and_metrics(
    start_server: Callable[..., Any],
    minilm_model: Any,
    caplog: pytest.LogCaptureFixture,
    host: str,
    exposed: bool,
) -> None:
    """``::1`` and ``::`` failed to bind gRPC ("Misformatted domain name", reported as a port
    in use); ``[::1]`` bound gRPC, not HTTP or metrics, and counted as exposed."""
    http_port, metrics_port = free_ipv6_port(), free_ipv6_port()
    with caplog.at_level(logging.INFO, logger="embedserve.server.app"):
        running = start_server(
            loaded=minilm_model, host=host, http_port=http_port, metrics_port=metrics_port
        )
    assert running.server.settings.host == host.strip("[]")
    with EmbedClient(f"ipv6:[::1]:{running.port}") as client:
        assert client.embed(["over IPv6"]).shape == (1, 384)
    assert httpx.get(f"http://[::1]:{http_port}/health").json() == {"status": "SERVING"}
    assert httpx.get(f"http://[::1]:{metrics_port}/metrics").status_code == 200
    bare = host.strip("[]")
    assert f"listening on [{bare}]:{running.port} (plaintext" in caplog.text
    assert f"HTTP API on [{bare}]:{http_port}" in caplog.text
    warned = "without API keys" in caplog.text, "in plaintext; set --tls-cert" in caplog.text
    assert warned == (exposed, exposed)


def test_a_shutdown_during_the_warm_up_keeps_to_its_grace_period(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    """The warm-up's windows, cancelled, stayed queued while the batcher waited up to
    max_wait_ms for company, and the batcher's stop waited for them: with 1e300 ms,
    SIGTERM never stopped the server."""
    running = start_server(
        loaded=minilm_model, max_wait_ms=10_000, calibrate_batches=False, wait=False
    )
    deadline = time.monotonic() + 60
    while (batcher := running.server._batcher) is None or not batcher.queued:
        assert time.monotonic() < deadline, "the warm-up never queued its windows"
        time.sleep(0.01)
    started = time.monotonic()
    running.run(running.server.stop(1.0))
    assert time.monotonic() - started < 5.0
    assert not running.server.ready.is_set()
