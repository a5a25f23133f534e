"""Schemathesis hooks for test_openapi_contract.py: NDJSON bodies and the answers of the
NDJSON streams (ingestion, embed stream)."""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.core.parameters import ParameterLocation

ACK_FIELDS = {"batch_id", "ids", "total_acknowledged"}
EMBED_FIELDS = {"request_id", "embeddings", "usage", "timings", "model", "dimensions"}
# A stream's answer lines hold these fields.
STREAMS = {"/ingest": ACK_FIELDS, "/embed-stream": EMBED_FIELDS}


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    # The document describes one line; a generated body is sent as a one-line stream.
    return json.dumps(value).encode() + b"\n"


@schemathesis.check
def stream_lines(ctx: Any, response: Any, case: Any) -> None:
    """An NDJSON stream answers its lines (acknowledgements, embeddings), then at most one
    error line, last. The 200 goes out before the body is read, so a body the document
    forbids must end in an error line (the stream's form of negative_data_rejection)."""
    fields = next((f for end, f in STREAMS.items() if case.operation.path.endswith(end)), None)
    if fields is None or response.status_code != 200:
        return
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    errors = [index for index, line in enumerate(lines) if "error" in line]
    assert errors in ([], [len(lines) - 1]), f"error lines at {errors} of {len(lines)}"
    for line in lines[: len(lines) - len(errors)]:
        assert set(line) == fields, f"not an answer of this stream: {line}"
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY):
        assert errors, f"a body the document forbids was acknowledged: {case.body!r}"
