"""Streaming ingestion over HTTP: an NDJSON body in, one NDJSON acknowledgement per batch out.

Each body line is a batch (``IngestLine``); each acknowledgement is written only once its
batch is durable, as the gRPC IngestStream does. A failure later in the stream arrives as
a last line ``{"error": {...}}`` that names the last acknowledged document (``ndjson.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from embedserve.server.auth import ApiKey
from embedserve.server.errors import EmbedServeError, InvalidArgument, named
from embedserve.server.http.backend import backend_of
from embedserve.server.http.guard import guard
from embedserve.server.http.handlers import validation_message
from embedserve.server.http.ndjson import (
    NDJSON,
    DuplexStreamingResponse,
    answer_line_schema,
    body_lines,
    error_line,
    json_line,
    line_schema,
)
from embedserve.server.http.response_schemas import IngestStreamResponse
from embedserve.server.http.rest_vectors import documents_in, write_settings
from embedserve.server.http.schemas import CollectionName, IngestLine
from embedserve.server.http.strict_json import StrictJsonRoute
from embedserve.server.ingestion import (
    IngestMessage,
    IngestPipeline,
    IngestSettings,
    message_name,
)

# StrictJsonRoute: a compressed body is refused before the stream starts, as elsewhere.
router = APIRouter(prefix="/api/v1/collections", tags=["Vector store"], route_class=StrictJsonRoute)
Caller = Annotated[ApiKey | None, Depends(guard)]


async def ingest_messages(
    lines: AsyncIterator[tuple[int, bytes]], collection: str
) -> AsyncIterator[IngestMessage]:
    """Each line's batch; one without a batch_id is named by its line number ("line 3: ...",
    as gRPC names it by its place, "message 3"), and its acknowledgement echoes its batch_id
    as sent (empty), as gRPC's does."""
    async for number, line in lines:
        try:
            batch = IngestLine.model_validate_json(line)
        except ValidationError as exc:
            raise InvalidArgument(f"line {number}: {validation_message(exc.errors())}") from exc
        with named(message_name(batch.batch_id, number, "line")):
            documents = documents_in(batch.documents)
            settings = write_settings(batch.options)
        yield IngestMessage(batch.batch_id, collection, documents, settings, number, "line")


@router.post(
    "/{name}/ingest",
    summary="Stream documents in as NDJSON; one acknowledgement per batch once durable (write)",
    response_class=DuplexStreamingResponse,
    openapi_extra={
        "requestBody": {
            "required": False,  # an empty stream acknowledges nothing
            # Its parts (Document, WriteOptions...) are components of the document
            # already, through the routes that take them.
            "content": {NDJSON: {"schema": line_schema(IngestLine)}},
        }
    },
    responses={200: {"content": {NDJSON: {"schema": answer_line_schema(IngestStreamResponse)}}}},
)
async def ingest(name: CollectionName, request: Request, caller: Caller) -> DuplexStreamingResponse:
    backend = backend_of(request)
    core = backend.vectors
    await core.vector_size(name)  # a missing collection is a plain 404, before the stream
    settings = backend.settings
    pipeline = IngestPipeline(core, settings.section(IngestSettings), backend.drain)
    lines = body_lines(request)

    async def acknowledgements() -> AsyncIterator[bytes]:
        try:
            async for ack in pipeline.run(ingest_messages(lines, name)):
                line = {
                    "batch_id": ack.batch_id,
                    "ids": ack.ids,
                    "total_acknowledged": ack.total_acknowledged,
                }
                yield json_line(line)
        except EmbedServeError as exc:
            yield error_line(request, exc)

    return DuplexStreamingResponse(acknowledgements(), media_type=NDJSON)
