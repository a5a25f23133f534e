"""A client that keeps its connection alive with pings keeps its idle streams."""

from __future__ import annotations

import queue
import time
from typing import Any

import grpc

from embedserve.server.app import KEEPALIVE_MIN_PING_MS
from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc

# Three pings at the interval the server takes: past gRPC's default policy (one per 5
# minutes, two strikes), the third ended the stream with UNAVAILABLE "Too many pings".
IDLE_S = 3.2 * KEEPALIVE_MIN_PING_MS / 1000


def test_an_idle_stream_of_a_pinging_client_stays_open(minilm_server: Any) -> None:
    options = [
        ("grpc.keepalive_time_ms", KEEPALIVE_MIN_PING_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    requests: queue.Queue[pb.EmbedStreamRequest | None] = queue.Queue()
    with grpc.insecure_channel(minilm_server.target, options=options) as channel:
        answers = pb_grpc.EmbeddingServiceStub(channel).EmbedStream(iter(requests.get, None))
        requests.put(pb.EmbedStreamRequest(request_id="1", inputs=["before the pause"]))
        assert next(answers).request_id == "1"
        time.sleep(IDLE_S)
        requests.put(pb.EmbedStreamRequest(request_id="2", inputs=["after the pause"]))
        assert next(answers).request_id == "2"
        requests.put(None)
        assert list(answers) == []
