"""Wrap any grpc.aio method handler with hooks around the call and each request message.

grpc.aio interceptors only see the method name and metadata; to time a call, read its
final status code or check each streamed request, the handler's behaviour itself has
to be wrapped. This does it once for the four handler kinds, so each interceptor only
writes ``begin`` / ``on_request`` / ``end``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

Context = grpc.aio.ServicerContext[Any, Any]


class CallHooks:
    """Override what you need. ``begin`` may abort the call; ``end`` always runs after it."""

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


def wrap_handler(handler: Handler, make_hooks: Callable[[], CallHooks]) -> Handler:
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
    behaviour = _wrap(inner, make_hooks, handler.request_streaming)
    return factory(  # type: ignore[no-any-return]
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _wrap(inner: Any, make_hooks: Callable[[], CallHooks], request_streaming: bool) -> Any:
    def requests_of(request: Any, hooks: CallHooks, context: Context) -> Any:
        if not request_streaming:
            return request

        async def checked() -> AsyncIterator[Any]:
            async for message in request:
                await hooks.on_request(message, context)
                yield message

        return checked()

    if inspect.isasyncgenfunction(inner):

        async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
            hooks = make_hooks()
            state = await hooks.begin(context)
            try:
                if not request_streaming:
                    await hooks.on_request(request, context)
                async for item in inner(requests_of(request, hooks, context), context):
                    yield hooks.on_response(item)
            except BaseException as exc:
                hooks.end(state, context, exc)
                raise
            hooks.end(state, context, None)

        return streaming

    async def single(request: Any, context: Context) -> Any:
        hooks = make_hooks()
        state = await hooks.begin(context)
        try:
            if not request_streaming:
                await hooks.on_request(request, context)
            result = await _maybe_await(inner(requests_of(request, hooks, context), context))
            if result is not None:
                result = hooks.on_response(result)
        except BaseException as exc:
            hooks.end(state, context, exc)
            raise
        hooks.end(state, context, None)
        return result

    return single


def code_name(context: Context, error: BaseException | None) -> str:
    """The call's final status code name, as the caller sees it."""
    # The client went away: the task is cancelled or the response generator closed.
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED.name
        return grpc.StatusCode.CANCELLED.name
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # grpc.aio reports the raw value on some paths
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "OK" if error is None else "UNKNOWN"


class HookInterceptor(grpc.aio.ServerInterceptor):
    """An interceptor that wraps every handler with hooks made per call by ``hooks_for``."""

    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = str(handler_call_details.method)
        metadata = {
            str(k).lower(): v
            for k, v in (handler_call_details.invocation_metadata or ())
            if isinstance(v, str)
        }
        hooks = self.hooks_for(method, metadata)  # called once per call: fresh hooks
        if hooks is None:
            return handler
        return wrap_handler(handler, lambda: hooks)
