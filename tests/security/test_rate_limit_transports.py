"""With auth off, a client address has one rate-limit bucket for its gRPC and its HTTP
calls (the README: "each client address a token bucket"); it had one per transport, as
gRPC named it "ipv4:127.0.0.1" and HTTP "127.0.0.1"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from running_server import free_port

from embedserve.client import EmbedClient
from embedserve.server.ratelimit import _peer_host, client_address


def test_a_client_address_shares_one_bucket_over_grpc_and_http(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    # A slow refill: no token comes back during the test.
    running = start_server(
        loaded=minilm_model, http_port=free_port(), rate_limit_rps=0.01, rate_limit_burst=2
    )
    accepted = 0
    with EmbedClient(running.target) as client:
        for _ in range(3):
            try:
                client.model_info()
                accepted += 1
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
    http_url = f"http://127.0.0.1:{running.server.http.port}"
    for _ in range(3):
        reply = httpx.get(f"{http_url}/v1/models", timeout=30)
        assert reply.status_code in {200, 429}, reply.text
        accepted += reply.status_code == 200
    assert accepted == 2
    # Spent: a body that is no JSON is refused for the rate too, not parsed (it was 400).
    bad = httpx.post(f"{http_url}/api/v1/embed", content=b"{not json", timeout=30)
    assert bad.status_code == 429, bad.text


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:127.0.0.1:50512", "127.0.0.1"),
        ("ipv6:[::1]:50512", "::1"),
        ("ipv6:%5B::1%5D:50512", "::1"),  # gRPC may percent-encode the brackets
        ("ipv6:[2001:db8::7]:443", "2001:db8::7"),
        ("ipv6:[::ffff:10.0.0.7]:443", "10.0.0.7"),  # a dual-stack listener's IPv4 client
        ("unix:/run/embedserve.sock", "unix:/run/embedserve.sock"),
    ],
)
def test_a_grpc_peer_is_named_as_http_names_its_address(peer: str, host: str) -> None:
    assert _peer_host(peer) == host
    if not host.startswith("unix:"):
        # HTTP's request.client.host: the bare address, IPv4-mapped ones included.
        http_host = "::ffff:10.0.0.7" if host == "10.0.0.7" else host
        assert client_address(http_host) == host
