"""Schemathesis hooks for test_openapi_contract.py: NDJSON bodies and ingestion answers."""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.core.parameters import ParameterLocation

ACK_FIELDS = {"batch_id", "ids", "total_acknowledged"}


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    # The document describes one line; a generated body is sent as a one-line stream.
    return json.dumps(value).encode() + b"\n"


@schemathesis.check
def ingest_lines(ctx: Any, response: Any, case: Any) -> None:
    """An ingestion stream answers acknowledgements, then at most one error line, last. The
    200 goes out before the body is read, so a body the document forbids must end in an
    error line (the stream's form of negative_data_rejection)."""
    if not case.operation.path.endswith("/ingest") or response.status_code != 200:
        return
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    errors = [index for index, line in enumerate(lines) if "error" in line]
    assert errors in ([], [len(lines) - 1]), f"error lines at {errors} of {len(lines)}"
    for line in lines[: len(lines) - len(errors)]:
        assert set(line) == ACK_FIELDS, f"not an acknowledgement: {line}"
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY):
        assert errors, f"a body the document forbids was acknowledged: {case.body!r}"
