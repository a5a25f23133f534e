"""Per-connection call limit and the drain, against a real server on a loopback port."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from embedserve.server.listening import CannotListen
from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import embedding_pb2_grpc as epb_grpc

_END = None


class OpenStream:
    """An EmbedStream whose requests are sent one at a time, on demand."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._outbox: queue.Queue[epb.EmbedStreamRequest | None] = queue.Queue()
        self.responses = epb_grpc.EmbeddingServiceStub(channel).EmbedStream(
            self._requests(), timeout=60
        )

    def _requests(self) -> Iterator[epb.EmbedStreamRequest]:
        while (request := self._outbox.get()) is not _END:
            yield request

    def send(self, request_id: str) -> epb.EmbedStreamResponse:
        self._outbox.put(epb.EmbedStreamRequest(request_id=request_id, inputs=["a text"]))
        return next(self.responses)

    def close(self) -> None:
        self._outbox.put(_END)


def embed(channel: grpc.Channel) -> epb.EmbedResponse:
    stub = epb_grpc.EmbeddingServiceStub(channel)
    return stub.Embed(epb.EmbedRequest(inputs=["hello"]), timeout=30)  # type: ignore[no-any-return]


def test_calls_per_connection_are_limited_with_a_clear_error(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    server = start_server(loaded=minilm_model, max_streams_per_connection=2)
    with grpc.insecure_channel(server.target) as channel:
        streams = [OpenStream(channel), OpenStream(channel)]
        for i, stream in enumerate(streams):
            assert stream.send(str(i)).request_id == str(i)  # both are open now
        with pytest.raises(grpc.RpcError) as error:
            embed(channel)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_streams_per_connection" in error.value.details()
        # Channels of one process share connections unless told otherwise, as it says.
        assert "grpc.use_local_subchannel_pool" in error.value.details()
        separate = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(server.target, separate) as other:  # its own budget
            assert len(embed(other).embeddings) == 1
        streams[0].close()
        assert list(streams[0].responses) == []  # ended cleanly
        assert len(embed(channel).embeddings) == 1  # the slot is free again
        streams[1].close()
        assert list(streams[1].responses) == []


def test_drain_ends_an_open_stream_and_refuses_new_calls(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    server = start_server(loaded=minilm_model)
    with grpc.insecure_channel(server.target) as channel:
        stream = OpenStream(channel)
        assert stream.send("0").request_id == "0"
        stopping = asyncio.run_coroutine_threadsafe(server.server.stop(30), server.loop)
        # The stream was idle: it ends at once with UNAVAILABLE, not after the 30 s grace.
        with pytest.raises(grpc.RpcError) as error:
            next(stream.responses)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down; 1 requests of this stream were answered" in error.value.details()
        stream.close()
        stopping.result(10)
        with pytest.raises(grpc.RpcError) as refused:
            embed(channel)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_new_calls_are_refused_by_the_server_until_callers_stop_before_the_transport_stops(
    start_server: Callable[..., Any], minilm_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gRPC's own shutdown would end calls caught between arrival and handler with
    # CANCELLED, which retry policies do not retry; the drain refuses them first.
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from embedserve.server import app

    monkeypatch.setattr(app, "DRAIN_CALM_S", 1.0)
    server = start_server(loaded=minilm_model)
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        stopping = asyncio.run_coroutine_threadsafe(server.server.stop(30), server.loop)
        serving = health_pb2.HealthCheckResponse.SERVING
        while health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == serving:
            pass  # until the drain starts
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as refused:
                embed(channel)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert refused.value.details() == "the server is shutting down"
        last_refused = time.monotonic()
        assert not stopping.done()  # the transport waits for a calm second
        stopping.result(15)
        assert time.monotonic() - last_refused >= 0.9


def test_the_drain_waits_for_calm_at_most_its_limit() -> None:
    from embedserve.server.drain import Drain

    async def keep_calling(drain: Drain) -> float:
        async def caller() -> None:
            while True:
                drain.refused()
                await asyncio.sleep(0.01)

        calling = asyncio.ensure_future(caller())
        started = time.monotonic()
        await drain.quiet(gap_s=0.2, limit_s=0.5)
        calling.cancel()
        return time.monotonic() - started

    async def no_callers(drain: Drain) -> float:
        started = time.monotonic()
        await drain.quiet(gap_s=0.2, limit_s=5)
        return time.monotonic() - started

    assert 0.5 <= asyncio.run(keep_calling(Drain())) < 5  # callers never calm down
    assert 0.2 <= asyncio.run(no_callers(Drain())) < 5  # calm at once: one gap


def test_a_second_server_cannot_take_a_port_in_use(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    server = start_server(loaded=minilm_model)
    with pytest.raises(CannotListen, match=rf"127\.0\.0\.1:{server.port} \(--host, --port\)"):
        start_server(loaded=minilm_model, port=server.port)
