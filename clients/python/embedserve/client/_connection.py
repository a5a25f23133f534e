"""What both clients set up alike: target, channel options, credentials, stubs."""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2_grpc

from embedserve.client._balancing import balancing_options, channel_target
from embedserve.v1 import embedding_pb2_grpc, vector_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
_MAX_MESSAGE = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
]
Metadata = tuple[tuple[str, str], ...] | None


def channel_args(target: str, server_name: str | None = None) -> tuple[str, list[tuple[str, Any]]]:
    """The address and options of a channel; several addresses or a dns:/// target get
    round_robin and retries of idempotent calls (_balancing.py). ``server_name``: the
    name the server's TLS certificate must carry, where the target's host is another
    (localhost in a pod, an IP address)."""
    options = CHANNEL_OPTIONS + balancing_options(target)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return channel_target(target), options


def metadata(api_key: str | None) -> Metadata:
    return (("authorization", f"Bearer {api_key}"),) if api_key else None


def stubs(channel: Any) -> dict[str, Any]:
    """The stubs a plan's steps name (``Unary.service``), on a grpc or grpc.aio channel."""
    return {
        "embedding": embedding_pb2_grpc.EmbeddingServiceStub(channel),
        "vectors": vector_pb2_grpc.VectorServiceStub(channel),
        "health": health_pb2_grpc.HealthStub(channel),
    }
