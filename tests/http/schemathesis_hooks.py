"""Schemathesis hooks for test_openapi_contract.py: NDJSON bodies and the answers of the
NDJSON streams (ingestion, embed stream)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import schemathesis
from schemathesis.core.parameters import ParameterLocation

NDJSON = "application/x-ndjson"

ACK_FIELDS = {"batch_id", "ids", "total_acknowledged"}
EMBED_FIELDS = {"request_id", "embeddings", "usage", "timings", "model", "dimensions"}
# A stream's answer lines hold these fields.
STREAMS = {"/ingest": ACK_FIELDS, "/embed-stream": EMBED_FIELDS}


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    # The document describes one line; a generated body is sent as a one-line stream.
    return json.dumps(value).encode() + b"\n"


# Per operation: the run checks one document.
_VALIDATORS: dict[tuple[str, str], Any] = {}


def line_validator(case: Any) -> Any:
    """A validator of one answer line, by the schema the document gives the 200's NDJSON
    (its references into the document's components resolved)."""
    operation = case.operation
    key = (operation.path, operation.method.lower())
    if key not in _VALIDATORS:
        raw = operation.schema.raw_schema
        responses = raw["paths"][key[0]][key[1]]["responses"]
        schema = responses["200"]["content"][NDJSON]["schema"]
        _VALIDATORS[key] = jsonschema_rs.validator_for({**schema, "components": raw["components"]})
    return _VALIDATORS[key]


@schemathesis.check
def stream_lines(ctx: Any, response: Any, case: Any) -> None:
    """An NDJSON stream answers its lines (acknowledgements, embeddings), then at most one
    error line, last; each line of the schema the document gives the stream's lines. The
    200 goes out before the body is read, so a body the document forbids must end in an
    error line (the stream's form of negative_data_rejection)."""
    fields = next((f for end, f in STREAMS.items() if case.operation.path.endswith(end)), None)
    if fields is None or response.status_code != 200:
        return
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    errors = [index for index, line in enumerate(lines) if "error" in line]
    assert errors in ([], [len(lines) - 1]), f"error lines at {errors} of {len(lines)}"
    for line in lines[: len(lines) - len(errors)]:
        assert set(line) == fields, f"not an answer of this stream: {line}"
    validator = line_validator(case)
    for number, line in enumerate(lines, 1):
        problems = [error.message for error in validator.iter_errors(line)]
        assert not problems, f"line {number} is not of the documented schema: {problems}: {line}"
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY):
        assert errors, f"a body the document forbids was acknowledged: {case.body!r}"
