"""An ingestion refused for one message names that message: by its batch_id, else by its
place in the stream (Ingest's messages have no batch_id)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from embedserve.client import EmbedClient
from embedserve.v1 import vector_pb2 as vpb
from embedserve.v1 import vector_pb2_grpc as vpb_grpc

GOOD = vpb.Document(id="a", text="a text")
NO_ID = vpb.Document(id="", text="another")


def refusal(call: Any, requests: list[Any]) -> str:
    with pytest.raises(grpc.RpcError) as refused:
        response = call(iter(requests), timeout=60)
        if not isinstance(response, vpb.IngestResponse):  # IngestStream's acknowledgements
            list(response)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return str(refused.value.details())


def test_ingest_and_stream_errors_name_the_message(minilm_server: Any) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("docs")
    with grpc.insecure_channel(minilm_server.target) as channel:
        stub = vpb_grpc.VectorServiceStub(channel)
        # Ingest's messages have no batch_id field: they were named "batch_id '2'".
        unary = [
            vpb.IngestRequest(collection="docs", documents=[GOOD]),
            vpb.IngestRequest(documents=[GOOD, NO_ID]),
        ]
        assert refusal(stub.Ingest, unary).startswith("message 2: documents[1].id")
        assert refusal(stub.Ingest, [vpb.IngestRequest(documents=[GOOD])]) == (
            "message 1: collection must be set on the first message"
        )
        # A stream message without a batch_id was not named at all.
        stream = [
            vpb.IngestStreamRequest(batch_id="b1", collection="docs", documents=[GOOD]),
            vpb.IngestStreamRequest(documents=[NO_ID]),
        ]
        assert refusal(stub.IngestStream, stream).startswith("message 2: documents[0].id")
        named = [vpb.IngestStreamRequest(batch_id="b7", collection="docs", documents=[NO_ID])]
        assert refusal(stub.IngestStream, named).startswith("batch_id 'b7': documents[0].id")
