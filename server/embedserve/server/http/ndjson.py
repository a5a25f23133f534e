"""NDJSON streams over HTTP: a body read line by line as it arrives, and answers streamed
while it is still being read (ingestion, embed streams).

The status line (200) goes out before the first answer, so a failure later in a stream
arrives as its last line, ``{"error": {...}}``.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from embedserve.server.errors import Cancelled, EmbedServeError, InvalidArgument
from embedserve.server.http.backend import backend_of
from embedserve.server.http.guard import held_to_reloads
from embedserve.server.http.responses import CODE_KEY, error_body
from embedserve.server.status import status_of

NDJSON = "application/x-ndjson"


class DuplexStreamingResponse(StreamingResponse):
    """Streams while the request body is still being read.

    Starlette's StreamingResponse would also wait on ``receive()`` for a disconnect, taking
    the body's chunks away from the handler; here the body reader sees the disconnect, and
    so does the server's report of the lost connection while the stream works on lines it
    holds (``slow_clients.Connection``, through ObserveMiddleware).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream_response(send)


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        # The client left before its body's end (a timeout, Ctrl-C): the stream ends as
        # CANCELLED, as gRPC's do, not as a fault of the server's.
        raise Cancelled("the client closed the connection before the end of its body") from None


def body_lines(request: Request) -> AsyncIterator[tuple[int, bytes]]:
    """Non-blank lines of the body with their 1-based numbers, as they arrive, each at most
    max_message_bytes; each let through only while the caller's key still admits the call
    (a stream outlives key reloads: guard.held_to_reloads)."""
    limit = backend_of(request).settings.max_message_bytes
    return held_to_reloads(request, lines_of(_chunks(request), limit))


async def lines_of(
    chunks: AsyncIterator[bytes], max_line_bytes: int
) -> AsyncIterator[tuple[int, bytes]]:
    """The non-blank lines of a body arriving as ``chunks``, with their 1-based numbers,
    each at most ``max_line_bytes``. A byte order mark before the first line is dropped, as
    JSON bodies' is (Windows tools write one), however the body's first bytes arrive.

    Each chunk is searched once: the unfinished line is kept as its pieces, joined when its
    end arrives (adding each chunk to it and splitting it again read a 60 MB line over and
    over, for seconds, on the event loop)."""
    pending: list[bytes] = []  # the unfinished line's pieces
    pending_bytes = 0
    number = 0
    head = b""  # the body's first bytes, while they may yet be a byte order mark
    started = False
    async for chunk in chunks:
        if not started:
            head += chunk
            if len(head) < len(codecs.BOM_UTF8) and codecs.BOM_UTF8.startswith(head):
                continue  # may yet be a byte order mark
            chunk, head, started = head.removeprefix(codecs.BOM_UTF8), b"", True
        *ends, rest = chunk.split(b"\n")
        for end in ends:
            number += 1
            _check_length(pending_bytes + len(end), number, max_line_bytes)
            line = b"".join([*pending, end]) if pending else end
            pending.clear()
            pending_bytes = 0
            if line.strip():
                yield number, line
        if rest:
            pending.append(rest)
            pending_bytes += len(rest)
            _check_length(pending_bytes, number + 1, max_line_bytes)
    last = b"".join(pending) if started else head
    if last.strip():
        yield number + 1, last


def _check_length(size: int, number: int, max_line_bytes: int) -> None:
    if size > max_line_bytes:
        raise InvalidArgument(f"line {number} is over {max_line_bytes} bytes (max_message_bytes)")


def json_line(value: Any) -> bytes:
    return json.dumps(value).encode() + b"\n"


def error_line(request: Request, exc: EmbedServeError) -> bytes:
    """A stream's last line for ``exc``; the call's metrics count its status."""
    code = status_of(exc)
    request.scope[CODE_KEY] = code.name
    return json_line(error_body(request.url.path, code, exc.message))


def line_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI schema of one body line; its parts are components of the document."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def answer_line_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI schema of one line of a stream's answer: one of ``model``, or the error
    line that ends a failed stream (embedserve's Error, a component of the document)."""
    return {
        "description": "a line: an answer, or an error line, which is last",
        "oneOf": [line_schema(model), {"$ref": "#/components/schemas/Error"}],
    }
