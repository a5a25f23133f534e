"""How the clients' calls end, alike in both: a health check within the client's timeout
and waiting for SERVING within its own, closing the client (calls in flight end CANCELLED,
later ones are refused with one error), and a stream whose caller's iterable raises an
exception that is no Exception. A server that never answers is faked: the real one
cannot be made to hang."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from embedserve.client import AsyncEmbedClient, EmbedClient
from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc

MARGIN_S = 1.5  # past a timeout, for a loaded 2-core machine


class Unanswered(health_pb2_grpc.HealthServicer, pb_grpc.EmbeddingServiceServicer):
    """Answers neither health checks nor embeddings: each waits until it is cancelled
    (as a server does that is stopped, SIGSTOP, with its port still open)."""

    def __init__(self) -> None:
        self.waiting = threading.Semaphore(0)

    def _wait(self, context: grpc.ServicerContext) -> None:
        self.waiting.release()
        while context.is_active():
            time.sleep(0.01)

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._wait(context)
        return health_pb2.HealthCheckResponse()

    def Embed(self, request: pb.EmbedRequest, context: grpc.ServicerContext) -> pb.EmbedResponse:
        self._wait(context)
        return pb.EmbedResponse()


@contextlib.contextmanager
def unanswering_server() -> Iterator[tuple[str, Unanswered]]:
    servicer = Unanswered()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    pb_grpc.add_EmbeddingServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(0)


def took(call: Callable[[], Any]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        call()
    except BaseException as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def test_health_and_waiting_end_within_their_timeouts() -> None:
    """health() took its own 10 s over the client's timeout; wait_until_serving(timeout=1)
    took 10 s too, its health check being allowed that long."""
    with unanswering_server() as (target, _):
        with EmbedClient(target, timeout=1) as client:
            seconds, error = took(client.health)
            assert isinstance(error, grpc.RpcError)
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert seconds < 1 + MARGIN_S
        with EmbedClient(target, timeout=None) as client:
            seconds, error = took(lambda: client.wait_until_serving(timeout=1))
            assert isinstance(error, TimeoutError) and seconds < 1 + MARGIN_S

        async def run(timeout: float | None, call: str, *args: Any) -> None:
            async with AsyncEmbedClient(target, timeout=timeout) as client:
                await getattr(client, call)(*args)

        seconds, error = took(lambda: asyncio.run(run(1, "health")))
        assert isinstance(error, grpc.RpcError)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert seconds < 1 + MARGIN_S
        seconds, error = took(lambda: asyncio.run(run(None, "wait_until_serving", 1)))
        assert isinstance(error, TimeoutError) and seconds < 1 + MARGIN_S


def close_once_waiting(client: EmbedClient, waiting: threading.Semaphore) -> None:
    waiting.acquire(timeout=10)  # the server has the call
    client.close()


def closed_while_waiting(target: str, waiting: threading.Semaphore) -> BaseException:
    """What an async embed in flight raises when another task closes the client."""

    async def run() -> BaseException:
        client = AsyncEmbedClient(target)
        call = asyncio.create_task(client.embed(["a text"]))
        await asyncio.to_thread(waiting.acquire, timeout=10)  # the server has it
        await client.close()
        try:
            await call
        except BaseException as exc:
            return exc
        raise AssertionError("the call was answered")

    return asyncio.run(run())


def test_closing_the_async_client_ends_its_calls_cancelled_as_the_blocking_one(
    minilm_server,
) -> None:
    """grpc.aio raised asyncio.CancelledError in the task awaiting the call, which nobody
    had cancelled; the blocking client's call ends CANCELLED."""
    with unanswering_server() as (target, servicer):
        client = EmbedClient(target)
        threading.Thread(target=close_once_waiting, args=(client, servicer.waiting)).start()
        with pytest.raises(grpc.RpcError) as info:
            client.embed(["a text"])
        assert info.value.code() == grpc.StatusCode.CANCELLED
        error = closed_while_waiting(target, servicer.waiting)
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.CANCELLED
    assert error.details() == "the client was closed"

    async def stream() -> BaseException:
        client = AsyncEmbedClient(minilm_server.target)
        closing: list[asyncio.Task[None]] = []
        try:
            async for _ in client.embed_iter(endless_texts(), batch_size=4):
                if not closing:  # by another task, while this one reads on
                    closing.append(asyncio.create_task(client.close()))
        except BaseException as exc:
            return exc
        raise AssertionError("the stream ended")

    error = asyncio.run(stream())
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.CANCELLED


def test_a_cancelled_task_stays_cancelled_though_the_client_closes() -> None:
    async def run(target: str, waiting: threading.Semaphore) -> None:
        client = AsyncEmbedClient(target)
        call = asyncio.create_task(client.embed(["a text"]))
        await asyncio.to_thread(waiting.acquire, timeout=10)
        call.cancel()
        await client.close()
        await call

    with unanswering_server() as (target, servicer), pytest.raises(asyncio.CancelledError):
        asyncio.run(run(target, servicer.waiting))


def endless_texts() -> Iterator[str]:
    n = 0
    while True:
        yield f"text {n}"
        n += 1


CLOSED = "the client is closed"
AFTER_CLOSE: list[tuple[str, Callable[[Any], Any]]] = [
    ("embed", lambda c: c.embed(["a"])),
    ("embed many", lambda c: c.embed(["a"] * 600)),
    ("health", lambda c: c.health()),
    ("model_info", lambda c: c.model_info()),
    ("wait_until_serving", lambda c: c.wait_until_serving(timeout=2)),
    ("ingest", lambda c: c.ingest("notes", [{"id": "1", "text": "a"}])),
]


def test_a_closed_client_refuses_every_call_with_one_error(minilm_server) -> None:
    """The blocking client raised ValueError in two wordings of grpc's, the asyncio one
    grpc.aio.UsageError, which is no ValueError."""
    with EmbedClient(minilm_server.target) as client:
        client.embed(["a"])
    for name, call in [*AFTER_CLOSE, ("embed_iter", lambda c: list(c.embed_iter(["a"])))]:
        assert refusal(call, client) == CLOSED, name

    async def run() -> dict[str, str]:
        async with AsyncEmbedClient(minilm_server.target) as aclient:
            await aclient.embed(["a"])
        streamed = ("embed_iter", lambda c: consumed(c.embed_iter(["a"])))
        return {name: await async_refusal(call, aclient) for name, call in [*AFTER_CLOSE, streamed]}

    assert asyncio.run(run()) == dict.fromkeys([*dict(AFTER_CLOSE), "embed_iter"], CLOSED)


def refusal(call: Callable[[Any], Any], client: EmbedClient) -> str:
    """The message of the ValueError ``call`` raises (of that type exactly)."""
    with pytest.raises(ValueError) as info:
        call(client)
    assert type(info.value) is ValueError
    return str(info.value)


async def async_refusal(call: Callable[[Any], Any], client: AsyncEmbedClient) -> str:
    try:
        await asyncio.wait_for(call(client), 10)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}" if type(exc) is not ValueError else str(exc)
    return "no error"


async def consumed(outputs: AsyncIterator[Any]) -> None:
    async for _ in outputs:
        pass


class Stop(BaseException):
    """What the caller's iterable raises: no Exception, as SystemExit and
    KeyboardInterrupt are not."""


def texts_then_stop(count: int) -> Iterator[str]:
    yield from (f"text {n}" for n in range(count))
    raise Stop(f"stopped after {count} texts")


def test_an_iterable_ending_in_a_base_exception_is_answered_then_raises_it(
    minilm_server,
) -> None:
    """The blocking client's call never ended (grpc's sending thread died of it); the
    asyncio one ended cancelled, its answers lost."""
    got: dict[str, Any] = {}

    def consume() -> None:
        answered = 0
        try:
            with EmbedClient(minilm_server.target) as client:
                for _ in client.embed_iter(texts_then_stop(20), batch_size=8):
                    answered += 1
        except BaseException as exc:
            got["error"] = exc
        got["answered"] = answered

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), "the stream never ended"
    assert isinstance(got["error"], Stop) and got["answered"] == 20

    async def texts() -> AsyncIterator[str]:
        for text in texts_then_stop(20):
            yield text

    async def run(make: Callable[[], Any]) -> tuple[BaseException, int]:
        answered = 0
        async with AsyncEmbedClient(minilm_server.target) as client:
            try:
                async for _ in client.embed_iter(make(), batch_size=8):
                    answered += 1
            except BaseException as exc:
                return exc, answered
        raise AssertionError("no error")

    for make in (texts, lambda: texts_then_stop(20)):
        error, answered = asyncio.run(asyncio.wait_for(run(make), 30))
        assert isinstance(error, Stop) and answered == 20
