"""The one table from core errors to gRPC status codes (and HTTP statuses), and the handler
wrappers that apply it."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from embedserve.server.errors import EmbedServeError, ErrorKind, Overloaded

log = logging.getLogger(__name__)

STATUS_OF: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorKind.CANCELLED: grpc.StatusCode.CANCELLED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
}
# The same codes over HTTP (as grpc-gateway maps them), so both transports agree.
HTTP_STATUS_OF: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

Req = TypeVar("Req")
Resp = TypeVar("Resp")


# Trailing metadata of a refusal that may be retried: the wait, in milliseconds.
RETRY_AFTER_KEY = "retry-after-ms"


# The bytes of a status message kept: it travels as a header, percent-encoded (up to three
# times as long), and a client refuses headers past 8 to 16 KiB, answering its own
# RESOURCE_EXHAUSTED in place of the refusal (a 16,000-character name quoted in full).
MAX_DETAILS_BYTES = 1024


def status_of(error: EmbedServeError) -> grpc.StatusCode:
    return STATUS_OF[error.kind]


def details_of(error: EmbedServeError) -> str:
    """``error``'s message as a gRPC status message: past MAX_DETAILS_BYTES its middle
    (where a quoted value sits; the setting to change is named at the end) is left out."""
    data = error.message.encode()
    if len(data) <= MAX_DETAILS_BYTES:
        return error.message
    half = MAX_DETAILS_BYTES // 2
    head = data[:half].decode(errors="ignore")
    tail = data[-half:].decode(errors="ignore")
    left_out = len(error.message) - len(head) - len(tail)
    return f"{head} [... {left_out} characters left out ...] {tail}"


async def abort_with(
    context: grpc.aio.ServicerContext[Any, Any], error: EmbedServeError
) -> NoReturn:
    """End the call with ``error``'s status, and for a full queue or a rate limit the
    wait its caller should leave before trying again."""
    if isinstance(error, Overloaded):
        retry = ((RETRY_AFTER_KEY, str(error.retry_after_ms)),)
        await context.abort(status_of(error), details_of(error), trailing_metadata=retry)
    await context.abort(status_of(error), details_of(error))


def http_status_of(error: EmbedServeError) -> int:
    return HTTP_STATUS_OF[status_of(error)]


def unary(
    handler: Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]],
) -> Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """Translate core errors raised by a unary handler into status codes."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            return await handler(self, request, context)
        except EmbedServeError as exc:
            await abort_with(context, exc)
            raise  # unreachable: abort raises

    return wrapper


def streaming(
    handler: Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]],
) -> Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]]:
    """Translate core errors raised by a response-streaming handler into status codes."""

    @functools.wraps(handler)
    async def wrapper(
        self: Any, request: Req, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Resp]:
        try:
            async for item in handler(self, request, context):
                yield item
        except EmbedServeError as exc:
            await abort_with(context, exc)

    return wrapper
