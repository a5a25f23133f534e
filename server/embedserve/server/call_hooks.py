"""Wrap any grpc.aio method handler with hooks around the call and each request message.

grpc.aio interceptors only see the method name and metadata; to time a call, read its
final status code or check each streamed request, the handler's behaviour itself has
to be wrapped. This does it once for the four handler kinds, so each interceptor only
writes ``begin`` / ``on_request`` / ``end``; a ``HookChain`` runs several such
interceptors with one wrapper per call, which costs less than one wrapper each. Every
hook begins (in chain order) before any reads a request, unary or streamed.

A hook refuses a request message by raising an ``EmbedServeError`` from ``on_request``,
never by aborting the call there: a stream's messages are checked as its handler reads
them, and the ordered streams (``ordered.py``) read ahead of their answers. Raised, the
refusal reaches the handler as the request iterator's error, which ends the stream after
every message accepted before it was answered, with the refusal's status; an abort would
end the call at once, dropping those answers. A unary request's refusal, or one that a
handler lets through, ends the call with its status here.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from embedserve.server.errors import EmbedServeError
from embedserve.server.status import abort_with

Context = grpc.aio.ServicerContext[Any, Any]

# Measured on a loaded 2-core machine: 0 s (one turn of the loop) was too short a third
# of the time, 2 ms never.
CANCEL_LANDS_S = 0.005

# Whether the server running the call is past its shutdown grace (the transport then cancels
# the calls left, and their callers get UNAVAILABLE); set for each call by the drain's
# interceptor (drain.RefuseWhileDraining): one process may run several servers.
past_grace: ContextVar[Callable[[], bool]] = ContextVar("past_grace", default=lambda: False)


class CallHooks:
    """Override what you need. ``begin`` may abort the call; ``on_request`` refuses a message
    by raising an ``EmbedServeError`` (see the module docstring); ``end`` always runs after
    ``begin``."""

    async def begin(self, context: Context) -> Any:
        return None

    async def on_request(self, request: Any, context: Context) -> None:
        return None

    def on_response(self, response: Any) -> Any:
        """May replace a response message (e.g. to hide what the caller may not see)."""
        return response

    def end(self, state: Any, context: Context, error: BaseException | None) -> None:
        return None


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


if TYPE_CHECKING:  # generic only in the stubs
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler


def wrap_handler(handler: Handler, chain: Sequence[CallHooks]) -> Handler:
    """``handler`` with ``chain``'s hooks around it, the first outermost."""
    if handler.request_streaming and handler.response_streaming:
        inner: Any = handler.stream_stream
        factory: Any = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        inner = handler.stream_unary
        factory = grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        inner = handler.unary_stream
        factory = grpc.unary_stream_rpc_method_handler
    else:
        inner = handler.unary_unary
        factory = grpc.unary_unary_rpc_method_handler
    behaviour = _wrap(inner, tuple(chain), handler.request_streaming)
    return factory(  # type: ignore[no-any-return]
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


# The hooks whose ``begin`` ran, with what it returned: they, and only they, get ``end``.
_Begun = list[tuple[CallHooks, Any]]


def _wrap(inner: Any, chain: tuple[CallHooks, ...], request_streaming: bool) -> Any:
    """One wrapper for the whole chain, in the order nested wrappers would keep: each
    hook's ``begin`` then (unary request) ``on_request`` in order, so a hook refusing the
    call stops the ones after it; responses through ``on_response``, last hook first; then
    every begun hook's ``end``, last first."""
    reversed_chain = chain[::-1]

    def requests_of(request: Any, context: Context) -> Any:
        if not request_streaming:
            return request

        async def checked() -> AsyncIterator[Any]:
            async for message in request:
                for hooks in chain:
                    await hooks.on_request(message, context)
                yield message
            # A caller's cancel also ends the requests, as their last message does; grpc
            # cancels the handler a moment later, once it has read the cancel (and never
            # says so otherwise: grpc/grpc#36193). A pause lets it land before the handler
            # returns, so that the call is recorded CANCELLED, not OK.
            await asyncio.sleep(CANCEL_LANDS_S)

        return checked()

    async def begin(request: Any, context: Context, begun: _Begun) -> None:
        # Every hook begins before any reads the message, as for a stream's: a caller
        # without a key hears UNAUTHENTICATED, not how its bytes failed to parse.
        for hooks in chain:
            begun.append((hooks, await hooks.begin(context)))
        if not request_streaming:
            for hooks in chain:
                await hooks.on_request(request, context)

    def end(begun: _Begun, context: Context, error: BaseException | None) -> None:
        for hooks, state in reversed(begun):
            hooks.end(state, context, error)

    if inspect.isasyncgenfunction(inner):

        async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
            begun: _Begun = []
            try:
                try:
                    await begin(request, context, begun)
                    async for item in inner(requests_of(request, context), context):
                        for hooks in reversed_chain:
                            item = hooks.on_response(item)
                        yield item
                except EmbedServeError as exc:
                    await _refuse(context, exc)
            except BaseException as exc:
                end(begun, context, exc)
                raise
            end(begun, context, None)

        return streaming

    async def single(request: Any, context: Context) -> Any:
        begun: _Begun = []
        try:
            try:
                await begin(request, context, begun)
                result = await _maybe_await(inner(requests_of(request, context), context))
            except EmbedServeError as exc:
                await _refuse(context, exc)
            if result is not None:
                for hooks in reversed_chain:
                    result = hooks.on_response(result)
        except BaseException as exc:
            end(begun, context, exc)
            raise
        end(begun, context, None)
        return result

    return single


async def _refuse(context: Context, error: EmbedServeError) -> NoReturn:
    """End the call with ``error``'s status: a hook refused the (unary) request, or the
    handler let a stream message's refusal through untranslated."""
    await abort_with(context, error)


# The caller's deadline started before the server's (which runs from the call's arrival),
# so the caller's cancel at its deadline arrives with a little of the server's left.
DEADLINE_SLACK_S = 0.1


def code_name(context: Context, error: BaseException | None) -> str:
    """The call's final status code name, as the caller sees it."""
    # The client went away (the task is cancelled, the response generator closed, or a
    # stream's requests just ended with the call cancelled), or the server's shutdown cut
    # the call at its grace's end ("Cancelling all calls").
    gone = error is None and context.cancelled()
    if gone or isinstance(error, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        if remaining is not None and remaining <= DEADLINE_SLACK_S:
            return grpc.StatusCode.DEADLINE_EXCEEDED.name
        if past_grace.get()():
            return grpc.StatusCode.UNAVAILABLE.name
        return grpc.StatusCode.CANCELLED.name
    if error is None and context.time_remaining() == 0:
        # The handler returned after the deadline: the caller heard DEADLINE_EXCEEDED.
        return grpc.StatusCode.DEADLINE_EXCEEDED.name
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # grpc.aio reports the raw value on some paths
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "OK" if error is None else "UNKNOWN"


class Metadata(dict[str, str]):
    """A call's text metadata by lowercased key, holding a repeated key's last value;
    ``every`` gives all of a key's values, for the keys (``authorization``) where taking
    one of several would decide the call: HTTP's headers hand their first instead."""

    def __init__(self, pairs: Iterable[tuple[Any, Any]] = ()) -> None:
        super().__init__()
        self._every: dict[str, tuple[str, ...]] = {}
        for key, value in pairs:
            if isinstance(value, str):
                name = str(key).lower()
                self[name] = value
                self._every[name] = (*self._every.get(name, ()), value)

    def every(self, key: str) -> tuple[str, ...]:
        """Each value of ``key`` (lowercase), in the order sent."""
        return self._every.get(key, ())


def _metadata(details: grpc.HandlerCallDetails) -> Metadata:
    return Metadata(details.invocation_metadata or ())


class HookInterceptor(grpc.aio.ServerInterceptor):
    """An interceptor that wraps every handler with hooks made per call by ``hooks_for``.

    Several of them run cheaper as one ``HookChain``: one wrapper per call instead of one
    each."""

    def hooks_for(self, method: str, metadata: Metadata) -> CallHooks | None:
        raise NotImplementedError

    def adapt(self, handler: Handler) -> Handler:
        """The handler to wrap, changed if need be (e.g. its deserializer)."""
        return handler

    def unhandled(self, method: str, metadata: Metadata) -> None:
        """A call to a method this server does not have (answered UNIMPLEMENTED)."""
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        return await HookChain([self]).intercept_service(continuation, handler_call_details)


class HookChain(grpc.aio.ServerInterceptor):
    """Hook interceptors applied in order, the first outermost, with one handler wrapper."""

    def __init__(self, members: Sequence[HookInterceptor]) -> None:
        self._members = tuple(members)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = str(handler_call_details.method)
        metadata = _metadata(handler_call_details)
        if handler is None:
            for member in self._members:
                member.unhandled(method, metadata)
            return handler
        chain = []
        for member in self._members:
            hooks = member.hooks_for(method, metadata)  # called once per call: fresh hooks
            if hooks is not None:
                chain.append(hooks)
            handler = member.adapt(handler)
        return wrap_handler(handler, chain) if chain else handler
