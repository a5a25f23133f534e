"""What a server says before it is warm, and which hosts it takes for this machine only."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from embedserve.server.app import _is_loopback_address
from embedserve.server.drain import Drain
from embedserve.server.embedding_service import EmbeddingService, EmbedStreamLimits
from embedserve.v1 import embedding_pb2 as pb


class Aborted(Exception):
    pass


class Context:
    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)

    def time_remaining(self) -> float | None:
        return None


def test_rerank_before_the_model_is_warm_is_unavailable_not_no_reranker() -> None:
    """It said "this server runs no reranker" (FAILED_PRECONDITION, which clients do not
    retry) while the reranker it was started with was loading."""
    service = EmbeddingService(EmbedStreamLimits(), Drain())
    request = pb.RerankRequest(query="q", documents=["a"])
    with pytest.raises(Aborted) as aborted:
        asyncio.run(service.Rerank(request, Context()))  # type: ignore[arg-type]
    code, details = aborted.value.args
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "still loading" in details


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # an IPv4 address written as IPv6
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:10.0.0.1", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses(host: str, loopback: Any) -> None:
    assert _is_loopback_address(host) is loopback
