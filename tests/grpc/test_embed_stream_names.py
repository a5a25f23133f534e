"""An EmbedStream refused for one request names that request: by its request_id, else by
its place in the stream, as IngestStream names a message without a batch_id."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc


def _refusal(stub: pb_grpc.EmbeddingServiceStub, requests: list[pb.EmbedStreamRequest]) -> str:
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.EmbedStream(iter(requests), timeout=60))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return str(refused.value.details())


def test_a_refused_request_is_named_by_its_request_id_else_its_place(minilm_server: Any) -> None:
    with grpc.insecure_channel(minilm_server.target) as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)
        good = pb.EmbedStreamRequest(inputs=["a text"])
        # It was named "request_id '': inputs must not be empty".
        unnamed = [good, good, pb.EmbedStreamRequest()]
        assert _refusal(stub, unnamed) == "message 3: inputs must not be empty"
        named = [good, pb.EmbedStreamRequest(request_id="r2")]
        assert _refusal(stub, named) == "request_id 'r2': inputs must not be empty"
