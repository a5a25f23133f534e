"""A request stream its caller cancels is counted and logged CANCELLED, as the caller saw it.
grpc ends the server's requests on a cancel just as on the caller's last message, and says
so (cancelling the handler) only a moment later: a handler with nothing left to answer had
returned by then, and such calls were recorded OK."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from test_cli import cli_server, free_port

from embedserve.client import EmbedClient
from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import embedding_pb2_grpc as epb_grpc
from embedserve.v1 import vector_pb2 as vpb
from embedserve.v1 import vector_pb2_grpc as vpb_grpc

TRIALS = 4  # each used to be recorded OK about half the time


def every_150_ms(message: Any, released: threading.Event) -> Iterator[Any]:
    while not released.wait(0.15):
        yield message


def rpc_counts(metrics_port: int, method: str) -> dict[str, float]:
    """embedserve_rpc_total by code, for ``method``'s gRPC calls."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
    counts = {}
    for labels, value in re.findall(r"^embedserve_rpc_total\{(.*)\} (\S+)$", text, re.M):
        named = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if named["method"] == method and named["transport"] == "grpc":
            counts[named["code"]] = float(value)
    return counts


def settled(metrics_port: int, method: str, expected: dict[str, float]) -> dict[str, float]:
    deadline = time.monotonic() + 10
    while True:
        counts = rpc_counts(metrics_port, method)
        if counts == expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """In a process of its own: in the test's, the cancel's timing differs."""
    metrics_port = free_port()
    args = ["--metrics-port", str(metrics_port)]
    with cli_server(tmp_path_factory.mktemp("data"), args=args) as target:
        with EmbedClient(target) as client:
            client.create_collection("news")
        yield target, metrics_port


@pytest.mark.parametrize("method", ["EmbedStream", "IngestStream", "Ingest"])
def test_a_cancelled_request_stream_is_recorded_cancelled(
    server: tuple[str, int], method: str
) -> None:
    target, metrics_port = server
    document = vpb.Document(id="a", text="the rocket reached orbit")
    with grpc.insecure_channel(target) as channel:
        embedding = epb_grpc.EmbeddingServiceStub(channel)
        vectors = vpb_grpc.VectorServiceStub(channel)
        for trial in range(TRIALS):
            released = threading.Event()
            if method == "EmbedStream":
                request: Any = epb.EmbedStreamRequest(request_id="1", inputs=["a text"])
                call = embedding.EmbedStream(every_150_ms(request, released))
                next(call)
            elif method == "IngestStream":
                request = vpb.IngestStreamRequest(batch_id="1", collection="news")
                request.documents.append(document)
                call = vectors.IngestStream(every_150_ms(request, released))
                next(call)
            else:
                request = vpb.IngestRequest(collection="news", documents=[document])
                call = vectors.Ingest.future(every_150_ms(request, released))
            time.sleep(0.4 + 0.05 * trial)
            call.cancel()
            released.set()
        service = "EmbeddingService" if method == "EmbedStream" else "VectorService"
        full = f"/embedserve.v1.{service}/{method}"
        assert settled(metrics_port, full, {"CANCELLED": TRIALS}) == {"CANCELLED": TRIALS}
