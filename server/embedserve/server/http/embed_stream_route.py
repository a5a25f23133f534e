"""Embedding as a stream over HTTP (gRPC EmbedStream's mirror): NDJSON requests in, one
NDJSON answer per request out, in order, while the body is still being sent.

At most ``stream_inflight`` requests are embedded at once (past that the body is not read,
and TCP holds the producer back); the texts wait in the batcher's bulk lane unless a
request's options say otherwise. A bad line, a refused request or the drain ends the
stream after the answers before it, with a last line ``{"error": {...}}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from embedserve.server.auth import ApiKey
from embedserve.server.batcher import Priority
from embedserve.server.errors import EmbedServeError, InvalidArgument
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
from embedserve.server.http.response_schemas import EmbedStreamResponse
from embedserve.server.http.rest_embed import embed_json
from embedserve.server.http.schemas import EmbedStreamLine
from embedserve.server.http.strict_json import StrictJsonRoute
from embedserve.server.ordered import answers_in_order
from embedserve.server.precision import Precision

# StrictJsonRoute: a compressed body is refused before the stream starts, as elsewhere.
router = APIRouter(prefix="/api/v1", tags=["Embeddings"], route_class=StrictJsonRoute)
Caller = Annotated[ApiKey | None, Depends(guard)]

_Numbered = tuple[int, EmbedStreamLine]


async def _requests(lines: AsyncIterator[tuple[int, bytes]]) -> AsyncIterator[_Numbered]:
    async for number, line in lines:
        try:
            yield number, EmbedStreamLine.model_validate_json(line)
        except ValidationError as exc:
            raise InvalidArgument(f"line {number}: {validation_message(exc.errors())}") from exc


@router.post(
    "/embed-stream",
    summary="Embed NDJSON requests as they arrive; one answer per line, in order (EmbedStream)",
    response_class=DuplexStreamingResponse,
    openapi_extra={
        "requestBody": {
            "required": False,  # an empty stream answers nothing
            "content": {NDJSON: {"schema": line_schema(EmbedStreamLine)}},
        }
    },
    responses={200: {"content": {NDJSON: {"schema": answer_line_schema(EmbedStreamResponse)}}}},
)
async def embed_stream(request: Request, caller: Caller) -> DuplexStreamingResponse:
    backend = backend_of(request)
    embedder = backend.embedder
    settings = backend.settings
    lines = body_lines(request)

    async def answer(numbered: _Numbered) -> dict[str, Any]:
        number, line = numbered
        result = await embedder.embed(
            line.inputs,
            line.options.params(),
            wait_for_room=True,
            field=f"line {number}: inputs",
            options_field=f"line {number}: options",
            priority=Priority.BULK,
        )
        body = embed_json(result, Precision(line.precision), embedder.model.spec.model_id)
        return {"request_id": line.request_id or str(number)} | body

    async def answers() -> AsyncIterator[bytes]:
        try:
            async for body in answers_in_order(
                _requests(lines), answer, settings.stream_inflight, backend.drain
            ):
                yield json_line(body)
        except EmbedServeError as exc:
            yield error_line(request, exc)

    return DuplexStreamingResponse(answers(), media_type=NDJSON)
