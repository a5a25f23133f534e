"""What both clients set up alike: target, channel options, credentials, stubs."""

from __future__ import annotations

from collections.abc import Sequence
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


def channel_args(
    target: str | Sequence[str], server_name: str | None = None
) -> tuple[str, list[tuple[str, Any]]]:
    """The address and options of a channel; several addresses or a dns:/// target get
    round_robin and retries of idempotent calls (_balancing.py). ``server_name``: the
    name the server's TLS certificate must carry, where the target's host is another
    (localhost in a pod, an IP address)."""
    options = CHANNEL_OPTIONS + balancing_options(target)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return channel_target(target), options


def metadata(api_key: str | None) -> Metadata:
    if not api_key:
        return None
    _check_api_key(api_key)
    return (("authorization", f"Bearer {api_key}"),)


def _check_api_key(api_key: str) -> None:
    """A key a header can carry: printable ASCII. grpc would fail each call with INTERNAL
    "Invalid metadata" (grpc.aio: an ExecuteBatchError) instead, for a key read from a
    file with its line break, say. The key itself is not repeated: it is a secret."""
    for position, char in enumerate(api_key):
        if not " " <= char <= "~":
            kind = "non-ASCII character" if char > "\x7f" else "control character (a line break?)"
            raise ValueError(
                f"api_key has a {kind} at position {position}; a key is printable ASCII"
            )


def stubs(channel: Any) -> dict[str, Any]:
    """The stubs a plan's steps name (``Unary.service``), on a grpc or grpc.aio channel."""
    return {
        "embedding": embedding_pb2_grpc.EmbeddingServiceStub(channel),
        "vectors": vector_pb2_grpc.VectorServiceStub(channel),
        "health": health_pb2_grpc.HealthStub(channel),
    }
