"""``max_message_bytes`` holds for every request message of every RPC, VectorService's
included: over it (and under the transport's ceiling, twice the limit) the call is
INVALID_ARGUMENT naming the setting, and nothing of it is done."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from raw_grpc import raw_call

from embedserve.client import EmbedClient
from embedserve.v1 import embedding_pb2, vector_pb2
from embedserve.v1 import vector_pb2 as vpb
from embedserve.v1 import vector_pb2_grpc as vpb_grpc

LIMIT = 20_000
NAMED = f"the limit is {LIMIT} (max_message_bytes)"
METHODS = [
    method
    for module in (vector_pb2, embedding_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Field 1023, unknown to every request message: the bytes parse as any method's request.
OVERSIZED = b"\xfa\x3f" + varint(24_000) + b"x" * 24_000


@pytest.fixture
def server(start_server: Callable[..., Any], minilm_model: Any) -> Any:
    return start_server(loaded=minilm_model, max_message_bytes=LIMIT)


def test_every_rpc_refuses_a_request_over_the_limit_naming_it(server: Any) -> None:
    assert LIMIT < len(OVERSIZED) < 2 * LIMIT
    wrong = {}
    with grpc.insecure_channel(server.target) as channel:
        for method in METHODS:
            error = raw_call(channel, method, OVERSIZED)
            if (
                error is None
                or error.code() != grpc.StatusCode.INVALID_ARGUMENT
                or NAMED not in (error.details() or "")
            ):
                wrong[method.full_name] = "OK" if error is None else error.details()
    assert not wrong, wrong
    assert any(m.full_name == "embedserve.v1.VectorService.Upsert" for m in METHODS)


def test_vector_writes_over_the_limit_are_refused_and_nothing_is_written(server: Any) -> None:
    with EmbedClient(server.target) as client:
        client.create_collection("docs")
    fits = vpb.Document(id="fits", text="z " * 9_000)
    big = vpb.Document(id="big", text="z " * 12_000)
    with grpc.insecure_channel(server.target) as channel:
        stub = vpb_grpc.VectorServiceStub(channel)
        upserted = stub.Upsert(vpb.UpsertRequest(collection="docs", documents=[fits]), timeout=60)
        assert upserted.upserted == 1
        refused = []
        with pytest.raises(grpc.RpcError) as upsert:
            stub.Upsert(vpb.UpsertRequest(collection="docs", documents=[big]), timeout=60)
        refused.append(upsert.value)
        with pytest.raises(grpc.RpcError) as ingest:
            stub.Ingest(iter([vpb.IngestRequest(collection="docs", documents=[big])]), timeout=60)
        refused.append(ingest.value)
        with pytest.raises(grpc.RpcError) as ingest_stream:
            message = vpb.IngestStreamRequest(batch_id="1", collection="docs", documents=[big])
            list(stub.IngestStream(iter([message]), timeout=60))
        refused.append(ingest_stream.value)
        for error in refused:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert NAMED in (error.details() or "")
        found = stub.Get(vpb.GetRequest(collection="docs", ids=["fits", "big"]), timeout=60)
        assert [d.id for d in found.documents] == ["fits"]
    registry = server.server.metrics.registry
    for name in ("Upsert", "Ingest", "IngestStream"):
        labels = {"method": f"/embedserve.v1.VectorService/{name}", "transport": "grpc"}
        deadline = time.monotonic() + 10  # counted as the call ends, maybe after the reply
        while (
            registry.get_sample_value(
                "embedserve_rpc_total", {**labels, "code": "INVALID_ARGUMENT"}
            )
            != 1
        ):
            assert time.monotonic() < deadline, name
            time.sleep(0.05)


def test_an_answer_larger_than_the_limit_is_sent(server: Any) -> None:
    """The limit is on requests: an Embed answer over twice it (the transport's send cap,
    before) failed after the model's work with a bare RESOURCE_EXHAUSTED, logged as OK."""
    with EmbedClient(server.target) as client:
        vectors = client.embed([f"text {n}" for n in range(30)])  # 30 x 384 floats: 46 KB
    assert vectors.shape == (30, 384)
