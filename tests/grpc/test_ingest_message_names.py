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


def test_a_value_float16_makes_infinity_is_named_and_the_batches_before_it_kept(
    minilm_server: Any,
) -> None:
    """Refused only at the store's write, it named no batch or document, and took the
    valid batch written with it down too (neither acknowledged nor stored)."""
    with EmbedClient(minilm_server.target) as client:
        client.create_collection(
            "halves", dimensions=3, distance="euclid", vector_datatype="float16"
        )

    def batch(batch_id: str, *vectors: list[float]) -> vpb.IngestStreamRequest:
        documents = [
            vpb.Document(id=f"{batch_id}-{i}", vector=vpb.Vector(values=v))
            for i, v in enumerate(vectors)
        ]
        return vpb.IngestStreamRequest(batch_id=batch_id, collection="halves", documents=documents)

    with grpc.insecure_channel(minilm_server.target) as channel:
        stub = vpb_grpc.VectorServiceStub(channel)
        acknowledged: list[str] = []
        requests = [
            batch("b1", [1.0, 2.0, 3.0]),
            batch("b2", [65519.0, 0.0, 0.0]),  # float16 rounds it to 65504: kept
            batch("b3", [1.0, 0.0, 0.0], [1e5, 0.0, 0.0]),
        ]
        with pytest.raises(grpc.RpcError) as refused:
            for ack in stub.IngestStream(iter(requests), timeout=60):
                acknowledged.append(ack.batch_id)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(refused.value.details()).startswith(
        "batch_id 'b3': documents[1]: collection 'halves' stores float16 vectors"
    )
    assert acknowledged == ["b1", "b2"]
    with EmbedClient(minilm_server.target) as client:
        stored = client.get("halves", ["b1-0", "b2-0", "b3-0"], with_vectors=True)
    assert [document.id for document in stored] == ["b1-0", "b2-0"]
    assert list(map(float, stored[1].vector)) == [65504.0, 0.0, 0.0]
