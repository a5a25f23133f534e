"""A gRPC call with the request's bytes as given, past client-side serialisation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


def raw_call(
    channel: grpc.Channel,
    method: Any,
    body: bytes,
    timeout: float = 60,
    metadata: tuple[tuple[str, str], ...] = (),
) -> grpc.RpcError | None:
    """Send ``body`` as the one request message of ``method`` (a MethodDescriptor); the
    call's error, or None when it succeeded."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    kwargs: dict[str, Callable[[bytes], bytes]] = {
        "request_serializer": bytes,
        "response_deserializer": bytes,
    }
    try:
        if method.client_streaming and method.server_streaming:
            list(
                channel.stream_stream(path, **kwargs)(
                    iter([body]), timeout=timeout, metadata=metadata
                )
            )
        elif method.client_streaming:
            channel.stream_unary(path, **kwargs)(iter([body]), timeout=timeout, metadata=metadata)
        elif method.server_streaming:
            list(channel.unary_stream(path, **kwargs)(body, timeout=timeout, metadata=metadata))
        else:
            channel.unary_unary(path, **kwargs)(body, timeout=timeout, metadata=metadata)
    except grpc.RpcError as exc:
        return exc
    return None
