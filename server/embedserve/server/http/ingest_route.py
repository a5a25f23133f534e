"""Streaming ingestion over HTTP: an NDJSON body in, one NDJSON acknowledgement per batch out.

Each body line is a batch (``IngestLine``); each acknowledgement is written only once its
batch is durable, as the gRPC IngestStream does. The status line (200) goes out before
the first acknowledgement, so a failure later in the stream arrives as a last line
``{"error": {...}}`` that names the last acknowledged document.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from embedserve.server.auth import ApiKey
from embedserve.server.errors import EmbedServeError, InvalidArgument
from embedserve.server.http.backend import backend_of
from embedserve.server.http.guard import guard
from embedserve.server.http.handlers import validation_message
from embedserve.server.http.responses import CODE_KEY, error_body
from embedserve.server.http.rest_vectors import documents_in, write_settings
from embedserve.server.http.schemas import CollectionName, IngestLine
from embedserve.server.ingestion import IngestMessage, IngestPipeline, IngestSettings
from embedserve.server.status import status_of

router = APIRouter(prefix="/api/v1/collections", tags=["Vector store"])


class DuplexStreamingResponse(StreamingResponse):
    """Streams while the request body is still being read.

    Starlette's StreamingResponse would also wait on ``receive()`` for a disconnect, taking
    the body's chunks away from the handler; here the body reader sees the disconnect.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream_response(send)


Caller = Annotated[ApiKey | None, Depends(guard)]
NDJSON = "application/x-ndjson"


async def body_lines(request: Request, max_line_bytes: int) -> AsyncIterator[tuple[int, bytes]]:
    """Non-blank lines of the body with their 1-based numbers, as they arrive."""
    pending = b""
    number = 0
    async for chunk in request.stream():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            number += 1
            if line.strip():
                yield number, line
        if len(pending) > max_line_bytes:
            raise InvalidArgument(
                f"line {number + 1} is over {max_line_bytes} bytes (max_message_bytes)"
            )
    if pending.strip():
        yield number + 1, pending


async def ingest_messages(
    lines: AsyncIterator[tuple[int, bytes]], collection: str
) -> AsyncIterator[IngestMessage]:
    async for number, line in lines:
        try:
            batch = IngestLine.model_validate_json(line)
        except ValidationError as exc:
            raise InvalidArgument(f"line {number}: {validation_message(exc.errors())}") from exc
        yield IngestMessage(
            batch.batch_id or str(number),
            collection,
            documents_in(batch.documents),
            write_settings(batch.options),
        )


INGEST_LINE_SCHEMA = IngestLine.model_json_schema(ref_template="#/components/schemas/{model}")
INGEST_LINE_SCHEMA.pop("$defs", None)


@router.post(
    "/{name}/ingest",
    summary="Stream documents in as NDJSON; one acknowledgement per batch once durable (write)",
    response_class=DuplexStreamingResponse,
    openapi_extra={
        "requestBody": {
            "required": False,  # an empty stream acknowledges nothing
            # Its parts (Document, WriteOptions...) are components of the document
            # already, through the routes that take them.
            "content": {NDJSON: {"schema": INGEST_LINE_SCHEMA}},
        }
    },
)
async def ingest(name: CollectionName, request: Request, caller: Caller) -> DuplexStreamingResponse:
    backend = backend_of(request)
    core = backend.vectors
    await core.vector_size(name)  # a missing collection is a plain 404, before the stream
    settings = backend.settings
    pipeline = IngestPipeline(core, settings.section(IngestSettings), backend.drain)
    lines = body_lines(request, settings.max_message_bytes)

    async def acknowledgements() -> AsyncIterator[bytes]:
        try:
            async for ack in pipeline.run(ingest_messages(lines, name)):
                line = {
                    "batch_id": ack.batch_id,
                    "ids": ack.ids,
                    "total_acknowledged": ack.total_acknowledged,
                }
                yield json.dumps(line).encode() + b"\n"
        except EmbedServeError as exc:
            code = status_of(exc)
            request.scope[CODE_KEY] = code.name
            yield json.dumps(error_body(request.url.path, code, exc.message)).encode() + b"\n"

    return DuplexStreamingResponse(acknowledgements(), media_type=NDJSON)
