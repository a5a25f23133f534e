"""One wrapper for every interceptor's hooks: the order of begin, requests, responses and end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pytest

from embedserve.server.call_hooks import (
    CallHooks,
    Context,
    HookChain,
    HookInterceptor,
    code_name,
)
from embedserve.server.errors import PermissionDenied

T = TypeVar("T")
UNARY = "/test.Echo/Unary"
STREAM = "/test.Echo/Stream"


class Recorder(CallHooks):
    def __init__(self, name: str, events: list[str], refuse: str) -> None:
        self.name, self.events, self.refuse = name, events, refuse

    async def begin(self, context: Context) -> Any:
        self.events.append(f"{self.name}.begin")
        if self.refuse == "begin":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{self.name} refused")
        return self.name

    async def on_request(self, request: Any, context: Context) -> None:
        self.events.append(f"{self.name}.request {request.decode()}")
        if self.refuse == request.decode():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{self.name} refused")

    def on_response(self, response: Any) -> Any:
        self.events.append(f"{self.name}.response")
        return response + self.name.encode()

    def end(self, state: Any, context: Context, error: BaseException | None) -> None:
        assert state == self.name
        self.events.append(f"{self.name}.end {code_name(context, error)}")


class Member(HookInterceptor):
    def __init__(self, name: str, events: list[str], refuse: str = "") -> None:
        self.name, self.events, self.refuse = name, events, refuse

    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        return Recorder(self.name, self.events, self.refuse)


def serve_and_call(
    members: list[HookInterceptor], events: list[str], call: Callable[[Any], Awaitable[T]]
) -> T:
    """Serve an echo service behind ``HookChain(members)`` and make ``call`` on a channel."""

    async def unary(request: bytes, context: Context) -> bytes:
        events.append("handler")
        return request

    async def stream(requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[bytes]:
        async for request in requests:
            events.append(f"handler {request.decode()}")
            yield request

    handlers = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.stream_stream_rpc_method_handler(stream),
        },
    )

    async def main() -> T:
        server = grpc.aio.server(interceptors=[HookChain(members)])
        server.add_generic_rpc_handlers((handlers,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                result = await call(channel)
        finally:
            # A grace: the caller may hear a status before the handler has ended, and a stop
            # without one cancelled the call in its end (recorded CANCELLED).
            await server.stop(5)
        return result

    return asyncio.run(main())


def test_unary_hooks_run_in_chain_order_with_one_wrapper() -> None:
    events: list[str] = []
    reply = serve_and_call(
        [Member("a", events), Member("b", events)],
        events,
        lambda channel: channel.unary_unary(UNARY)(b"x", timeout=10),
    )
    assert reply == b"xba"  # the last hook sees the response first
    # Every hook begins before any reads the request, as for a stream's messages.
    assert events == [
        "a.begin",
        "b.begin",
        "a.request x",
        "b.request x",
        "handler",
        "b.response",
        "a.response",
        "b.end OK",
        "a.end OK",
    ]


def test_a_refusing_hook_stops_the_ones_after_it_and_the_begun_ones_end() -> None:
    events: list[str] = []
    members: list[HookInterceptor] = [
        Member("a", events),
        Member("b", events, refuse="begin"),
        Member("c", events),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        serve_and_call(
            members, events, lambda channel: channel.unary_unary(UNARY)(b"x", timeout=10)
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == "b refused"
    # b's begin did not finish: it gets no end; c never starts; the handler never runs.
    assert events == ["a.begin", "b.begin", "a.end PERMISSION_DENIED"]


def test_each_streamed_message_passes_every_hook_in_order() -> None:
    events: list[str] = []

    async def call(channel: Any) -> list[bytes]:
        replies = channel.stream_stream(STREAM)(iter([b"1", b"2", b"3"]), timeout=10)
        return [reply async for reply in replies]

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        serve_and_call([Member("a", events), Member("b", events, refuse="3")], events, call)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert events[:2] == ["a.begin", "b.begin"]
    assert events[2:6] == ["a.request 1", "b.request 1", "handler 1", "b.response"]
    assert "a.request 3" in events and "b.request 3" in events and "handler 3" not in events
    assert events[-2:] == ["b.end INVALID_ARGUMENT", "a.end INVALID_ARGUMENT"]


class Raiser(Recorder):
    """Refuses the request ``refuse`` the way the server's hooks do: by raising."""

    async def on_request(self, request: Any, context: Context) -> None:
        self.events.append(f"{self.name}.request {request.decode()}")
        if self.refuse == request.decode():
            raise PermissionDenied(f"{self.name} refused {request.decode()}")


class Raising(Member):
    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        return Raiser(self.name, self.events, self.refuse)


def test_a_refusal_raised_by_a_hook_ends_the_call_with_its_status() -> None:
    """A unary request refused by raising ends the call before the handler; a stream's
    message refused so reaches the handler as its requests' error, and one the handler
    lets through ends the stream, after the answers before it, with the refusal's status."""
    events: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        serve_and_call(
            [Raising("a", events, refuse="x")],
            events,
            lambda channel: channel.unary_unary(UNARY)(b"x", timeout=10),
        )
    assert unary.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert unary.value.details() == "a refused x"
    assert events == ["a.begin", "a.request x", "a.end PERMISSION_DENIED"]

    events.clear()
    answers: list[bytes] = []

    async def call(channel: Any) -> None:
        replies = channel.stream_stream(STREAM)(iter([b"1", b"2", b"3"]), timeout=10)
        async for reply in replies:
            answers.append(reply)

    with pytest.raises(grpc.aio.AioRpcError) as stream:
        serve_and_call([Raising("a", events, refuse="2")], events, call)
    assert stream.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert stream.value.details() == "a refused 2"
    assert answers == [b"1a"]
    assert "handler 2" not in events and "a.request 3" not in events
    assert events[-1] == "a.end PERMISSION_DENIED"
