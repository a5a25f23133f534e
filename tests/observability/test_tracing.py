"""OpenTelemetry: one server span per RPC, in the caller's trace, with the gRPC attributes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import embedding_pb2_grpc as epb_grpc

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process; the application's own wins.
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    yield memory


def finished_spans(exporter: InMemorySpanExporter, name: str, count: int) -> list[Any]:
    # A span ends just after the status goes out, so the caller may see the status first.
    deadline = time.monotonic() + 10
    while True:
        spans = [s for s in exporter.get_finished_spans() if name in s.name]
        if len(spans) >= count or time.monotonic() > deadline:
            assert len(spans) == count
            return spans
        time.sleep(0.05)


def test_each_rpc_is_a_server_span_in_the_callers_trace(
    exporter: InMemorySpanExporter, start_server: Callable[..., Any], minilm_model: Any
) -> None:
    server = start_server(loaded=minilm_model, otel_tracing=True)
    exporter.clear()
    metadata = (
        ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),
        ("x-request-id", "trace-me"),
    )
    with grpc.insecure_channel(server.target) as channel:
        stub = epb_grpc.EmbeddingServiceStub(channel)
        stub.Embed(epb.EmbedRequest(inputs=["hello"]), metadata=metadata, timeout=30)
        with pytest.raises(grpc.RpcError):
            stub.Embed(epb.EmbedRequest(inputs=[]), timeout=30)

    spans = finished_spans(exporter, "EmbeddingService/Embed", 2)
    ok, bad = sorted(spans, key=lambda s: s.start_time or 0)
    assert ok.name == "embedserve.v1.EmbeddingService/Embed"
    assert ok.kind == trace.SpanKind.SERVER
    assert ok.context is not None and ok.parent is not None
    assert format(ok.context.trace_id, "032x") == TRACE_ID  # continues the caller's trace
    assert format(ok.parent.span_id, "016x") == PARENT_ID
    assert ok.attributes is not None and bad.attributes is not None
    assert ok.attributes["rpc.system"] == "grpc"
    assert ok.attributes["rpc.method"] == "Embed"
    assert ok.attributes["rpc.grpc.status_code"] == 0
    assert ok.attributes["embedserve.request_id"] == "trace-me"
    # A caller's mistake is recorded by its code, not as a server error.
    assert bad.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert bad.status.status_code == trace.StatusCode.UNSET
    assert bad.parent is None  # no traceparent: a new trace
