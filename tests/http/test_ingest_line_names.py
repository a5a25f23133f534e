"""An ingestion line without a batch_id over HTTP: its acknowledgement echoes the batch_id
as sent (empty), as IngestStream's does, and an error names the line by its number, as
the errors of a line that is not JSON do (it was "batch_id '4'", a batch_id never sent)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx

from embedserve.v1 import vector_pb2 as vpb
from embedserve.v1 import vector_pb2_grpc as vpb_grpc


def test_a_line_without_batch_id_is_acknowledged_and_named_as_sent(both: Any) -> None:
    good = {"documents": [{"id": "a", "text": "a text"}]}
    body = "\n".join(
        [
            json.dumps({"batch_id": "b1", **good}),
            json.dumps(good),
            "",  # blank: counted, as the body's lines are
            json.dumps({"documents": [{"id": "x"}]}),
        ]
    )
    with httpx.Client(base_url=both.url, timeout=60) as http:
        http.post("/api/v1/collections", json={"name": "lines"}).raise_for_status()
        reply = http.post("/api/v1/collections/lines/ingest", content=body + "\n")
    first, second, error = (json.loads(line) for line in reply.text.splitlines())
    assert first["batch_id"] == "b1"
    assert second["batch_id"] == "" and second["ids"] == ["a"], second
    message = error["error"]["message"]
    assert message == "line 4: documents[0] needs exactly one of text or vector", message
    # gRPC echoes what was sent too.
    with grpc.insecure_channel(both.target) as channel:
        stub = vpb_grpc.VectorServiceStub(channel)
        request = vpb.IngestStreamRequest(
            collection="lines", documents=[vpb.Document(id="g", text="a text")]
        )
        (ack,) = stub.IngestStream(iter([request]), timeout=60)
    assert ack.batch_id == ""
