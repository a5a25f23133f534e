"""What the clients make of their arguments and how a method call ends: a string is no
list of ids, integer ids are their decimal strings, a bound of 0, an unknown keyword or a
key no header can carry is refused, signatures are the methods' own, waiting for a server
that refuses the call ends at once, the timeout bounds the whole call and a failed request
ends the others. Where only a server's timing can show it, a fake server is used: the
real one answers too fast to watch a call being cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import pydoc
import threading
import time
import typing
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest

from embedserve.client import AsyncEmbedClient, EmbedClient
from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc

UNUSED = "127.0.0.1:1"  # for calls refused before anything is sent


def raises_in_both(error: type[Exception], match: str, call: Callable[[Any], Any]) -> None:
    with EmbedClient(UNUSED) as client, pytest.raises(error, match=match):
        call(client)

    async def run() -> None:
        async with AsyncEmbedClient(UNUSED) as client:
            result = call(client)
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, 10)

    with pytest.raises(error, match=match):
        asyncio.run(run())


def test_a_single_string_is_refused_where_a_list_belongs(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("letters")
        client.upsert("letters", [{"id": i, "text": i} for i in ("a", "b", "c", "abc")])
        with pytest.raises(TypeError, match=r"^ids takes a list of ids, not a single string"):
            client.delete("letters", "abc")
        assert client.count("letters") == 4  # not "a", "b" and "c" deleted
    calls: list[tuple[str, Callable[[Any], Any]]] = [
        ("ids", lambda c: c.get("c", "abc")),
        ("ids", lambda c: c.update_payload("c", "abc", payload={"a": 1})),
        ("delete", lambda c: c.update_aliases(delete="abc")),
        ("positive", lambda c: c.recommend("c", positive="abc")),
        ("negative", lambda c: c.recommend_groups("c", ["a"], "bc", group_by="k")),
        ("drop_payload_indexes", lambda c: c.update_collection("c", drop_payload_indexes="ab")),
        ("texts", lambda c: c.cluster(texts="abcd")),
        ("texts", lambda c: c.find_duplicates(texts="aab")),
        ("candidates", lambda c: c.similarity("a", "abc")),
        ("delete_keys", lambda c: c.update_payload("c", ["a"], delete_keys="k")),
        ("payload_keys", lambda c: c.search("c", "a", payload_keys="k")),
    ]
    for name, call in calls:
        raises_in_both(TypeError, f"^{name} takes a list of .*, not a single string", call)
    raises_in_both(TypeError, "^texts takes an iterable", lambda c: c.embed_iter("abc"))


def test_integer_ids_name_the_documents_upsert_wrote(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("numbered")
        client.upsert("numbered", [{"id": n, "text": f"note {n}"} for n in (1, 2, 3)])
        assert [d.id for d in client.get("numbered", [1, np.int64(2)])] == ["1", "2"]
        client.update_payload("numbered", [3], payload={"seen": True})
        assert client.get("numbered", ["3"])[0].payload == {"seen": True}
        assert {h.id for h in client.recommend("numbered", [1])} == {"2", "3"}
        client.delete("numbered", [1])
        assert client.count("numbered") == 2
    # As in documents, a bool is no id.
    for call in (lambda c: c.get("n", [True]), lambda c: c.delete("n", ["a", False])):
        raises_in_both(ValueError, r"^ids\[\d\]: id must be a string or an integer, not bool", call)
    raises_in_both(ValueError, "^example: id must be", lambda c: c.recommend("n", [True]))


@pytest.mark.parametrize("max_in_flight", [0, -1])
def test_max_in_flight_below_one_is_refused(max_in_flight: int) -> None:
    message = "^max_in_flight must be at least 1$"
    for call in (
        lambda c: c.embed(["x"], max_in_flight=max_in_flight),
        lambda c: c.embed_quantized(["x"], "int8", max_in_flight=max_in_flight),
    ):
        raises_in_both(ValueError, message, call)


@pytest.mark.parametrize("client_type", [EmbedClient, AsyncEmbedClient])
def test_a_timeout_of_zero_is_none_and_below_zero_is_refused(
    minilm_server, client_type: type
) -> None:
    """As in the Go and Java clients, 0 sets no default deadline (as one it failed every
    call at once, DEADLINE_EXCEEDED), nor does infinity."""
    for refused in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="timeout must be positive seconds"):
            client_type(minilm_server.target, timeout=refused)
    if client_type is EmbedClient:
        for none in (0, float("inf"), 1e12):  # grpc's deadline overflowed past about 1e10 s
            with EmbedClient(minilm_server.target, timeout=none) as client:
                assert len(client.embed(["a text"])[0]) == 384
        return

    async def embed() -> int:
        async with AsyncEmbedClient(minilm_server.target, timeout=0) as client:
            return len((await client.embed(["a text"]))[0])

    assert asyncio.run(embed()) == 384


def test_an_unknown_keyword_is_named_with_the_method() -> None:
    for name, call in (
        ("embed", lambda c: c.embed("x", timeout=5)),
        ("search", lambda c: c.search("c", "x", limt=3)),
        ("ingest", lambda c: c.ingest("c", [], dimension=3)),
        ("embed_iter", lambda c: c.embed_iter(["x"], timeout=5)),
    ):
        raises_in_both(TypeError, rf"^{name}\(\) got an unexpected keyword argument", call)


@pytest.mark.parametrize("key", ["secret-key\n", "secret-kéy", "secret\tkey"])
def test_an_api_key_no_header_can_carry_is_refused_unrepeated(key: str) -> None:
    with pytest.raises(ValueError, match=r"^api_key has a (control|non-ASCII) character") as info:
        EmbedClient(UNUSED, api_key=key)
    assert "secret" not in str(info.value)

    async def make() -> None:
        AsyncEmbedClient(UNUSED, api_key=key)

    with pytest.raises(ValueError, match=r"^api_key has a"):
        asyncio.run(make())


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("127.0.0.1:118976", "port 118976 of '127.0.0.1:118976' is not from 1 to 65535"),
        ("dns:///localhost:70000", "port 70000 of 'localhost:70000' is not from 1 to 65535"),
        ("ipv4:127.0.0.1:5,127.0.0.1:65536", "port 65536 of '127.0.0.1:65536' is not from"),
        ("", "empty; give host:port"),
        (["127.0.0.1:5", "127.0.0.1:118976"], "port 118976 of '127.0.0.1:118976' is not from"),
    ],
)
def test_a_target_port_out_of_range_is_refused(target: str | list[str], message: str) -> None:
    """gRPC takes a port modulo 65536: :118976 reached a server on :53440."""
    for client in (EmbedClient, AsyncEmbedClient):
        with pytest.raises(ValueError, match=f"^target: {message}"):
            client(target)


def test_signatures_are_the_methods_own() -> None:
    with EmbedClient(UNUSED) as client:
        embed = inspect.signature(client.embed)
        shown = pydoc.render_doc(client.embed, renderer=pydoc.plaintext)
    assert list(embed.parameters)[:2] == ["texts", "batch_size"]  # texts was lost as "self"
    assert "embed(texts: " in shown
    assert typing.get_origin(embed.return_annotation) is np.ndarray  # not Plan[...]
    get = inspect.signature(AsyncEmbedClient.get)
    assert list(get.parameters) == ["self", "collection", "ids", "with_vectors", "exact_payloads"]
    assert typing.get_origin(get.return_annotation) is list
    stream = inspect.signature(EmbedClient.embed_iter).return_annotation
    assert typing.get_origin(stream) is Iterator
    # The blocking client's streams take no async iterables; the asyncio one's do.
    for name, parameter in (("embed_iter", "texts"), ("ingest", "documents")):
        blocking = typing.get_type_hints(getattr(EmbedClient, name))[parameter]
        asynchronous = typing.get_type_hints(getattr(AsyncEmbedClient, name))[parameter]
        assert typing.get_origin(blocking) is Iterable
        assert AsyncIterable in {typing.get_origin(a) for a in typing.get_args(asynchronous)}
    # Several addresses are a target (docs/deploy.md).
    for cls in (EmbedClient, AsyncEmbedClient):
        target = typing.get_type_hints(cls.__init__)["target"]
        assert Sequence[str] in typing.get_args(target)


def test_waiting_for_a_server_that_refuses_the_call_fails_at_once(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    running = start_server(loaded=minilm_model, api_keys="a-read-key read", auth_health=True)
    started = time.monotonic()
    with EmbedClient(running.target) as client, pytest.raises(grpc.RpcError) as info:
        client.wait_until_serving(timeout=20)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert time.monotonic() - started < 10  # not a TimeoutError once the 20 s are over

    async def run() -> None:
        async with AsyncEmbedClient(running.target) as client:
            await client.wait_until_serving(timeout=20)

    with pytest.raises(grpc.RpcError) as info:
        asyncio.run(run())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert time.monotonic() - started < 20


class FailsFirst(pb_grpc.EmbeddingServiceServicer):
    """Refuses the empty text once ``others`` requests are in flight; those wait until
    cancelled. Counts what was started and what was cancelled."""

    def __init__(self, others: int) -> None:
        self._others = others
        self._lock = threading.Lock()
        self.all_in_flight = threading.Event()
        self.started = self.cancelled = 0

    def Embed(self, request: pb.EmbedRequest, context: grpc.ServicerContext) -> pb.EmbedResponse:
        if request.inputs[0] == "":
            self.all_in_flight.wait(10)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "inputs[0] is empty")
        with self._lock:
            self.started += 1
            if self.started == self._others:
                self.all_in_flight.set()
        while context.is_active():
            time.sleep(0.01)
        with self._lock:
            self.cancelled += 1
        return pb.EmbedResponse()


class Slow(pb_grpc.EmbeddingServiceServicer):
    """Answers each request after ``SLOW_S``, with a 1-dimensional vector per text."""

    def Embed(self, request: pb.EmbedRequest, context: grpc.ServicerContext) -> pb.EmbedResponse:
        time.sleep(SLOW_S)
        embeddings = [pb.Embedding(values=[1.0]) for _ in request.inputs]
        return pb.EmbedResponse(embeddings=embeddings, dimensions=1)


SLOW_S = 0.3


@contextlib.contextmanager
def fake_server(servicer: pb_grpc.EmbeddingServiceServicer) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    pb_grpc.add_EmbeddingServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def eventually(condition: Callable[[], bool], wait_s: float = 10) -> bool:
    deadline = time.monotonic() + wait_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def call_open(asynchronous: bool, target: str, call: Callable[[Any], Any], check: Any) -> None:
    """``call`` on a client, then ``check`` while it is still open (closing it would
    cancel its calls)."""
    if not asynchronous:
        with EmbedClient(target) as client:
            try:
                call(client)
            finally:
                check()
        return

    async def run() -> None:
        async with AsyncEmbedClient(target) as client:
            try:
                await call(client)
            finally:
                await asyncio.to_thread(check)  # the loop runs on meanwhile

    asyncio.run(run())


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_failed_request_cancels_the_others_and_sends_no_more(asynchronous: bool) -> None:
    in_flight = 4
    servicer = FailsFirst(others=in_flight - 1)
    texts = ["", *(f"text {n}" for n in range(3 * in_flight))]

    def all_cancelled() -> None:
        assert eventually(lambda: servicer.cancelled == in_flight - 1)

    with fake_server(servicer) as target, pytest.raises(grpc.RpcError) as info:
        call_open(
            asynchronous,
            target,
            lambda c: c.embed(texts, batch_size=1, max_in_flight=in_flight),
            all_cancelled,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert servicer.started == in_flight - 1  # nothing sent after the failure


def test_the_timeout_bounds_the_whole_method_call() -> None:
    timeout = 4 * SLOW_S  # each request's time, many times over; all of them, not
    texts = [f"text {n}" for n in range(12)]
    with fake_server(Slow()) as target:
        started = time.monotonic()
        with EmbedClient(target, timeout=timeout) as client, pytest.raises(grpc.RpcError) as info:
            client.embed(texts, batch_size=1, max_in_flight=1)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < timeout + 2 * SLOW_S

        async def run() -> None:
            async with AsyncEmbedClient(target, timeout=timeout) as client:
                await client.embed(texts, batch_size=1, max_in_flight=1)

        with pytest.raises(grpc.RpcError) as info:
            asyncio.run(run())
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # Within it, a call of several requests is answered.
        with EmbedClient(target, timeout=timeout) as client:
            assert client.embed(texts[:2], batch_size=1).shape == (2, 1)
