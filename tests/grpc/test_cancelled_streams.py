"""A stream its client cancels is recorded CANCELLED, as the client sees it: when the
cancel ended the request stream quietly and the handler returned, it was recorded OK."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from embedserve.client import EmbedClient
from embedserve.v1 import vector_pb2 as vpb
from embedserve.v1 import vector_pb2_grpc as vpb_grpc

_METHOD = "/embedserve.v1.VectorService/IngestStream"
ROUNDS = 6


def _count(running: Any, code: str) -> float:
    labels = {"method": _METHOD, "code": code, "transport": "grpc"}
    value = running.server.metrics.registry.get_sample_value("embedserve_rpc_total", labels)
    return 0.0 if value is None else float(value)


def test_an_ingest_stream_cancelled_by_its_client_is_recorded_cancelled(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    running = start_server(loaded=minilm_model)
    with EmbedClient(running.target) as client:
        client.create_collection("feed")

    def messages(round_: int) -> Iterator[vpb.IngestStreamRequest]:
        for batch in range(1_000):
            documents = [vpb.Document(id=f"r{round_}-{batch}", text=f"text {batch}")]
            yield vpb.IngestStreamRequest(
                batch_id=str(batch), collection="feed", documents=documents
            )
            time.sleep(0.01)

    with grpc.insecure_channel(running.target) as channel:
        stream = vpb_grpc.VectorServiceStub(channel).IngestStream
        for round_ in range(ROUNDS):
            call = stream(messages(round_))
            for acks, _ in enumerate(call, 1):
                if acks == 3:
                    call.cancel()
                    break
    deadline = time.monotonic() + 30
    while _count(running, "CANCELLED") + _count(running, "OK") < ROUNDS:
        assert time.monotonic() < deadline, "the streams were never recorded"
        time.sleep(0.05)
    assert (_count(running, "CANCELLED"), _count(running, "OK")) == (ROUNDS, 0)
