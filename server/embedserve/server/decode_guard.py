"""Request bytes that are not the method's protobuf message: INVALID_ARGUMENT, not UNKNOWN.

grpc.aio reports a deserializer's exception as UNKNOWN and logs a traceback per call,
so a client sending garbage would look like a server fault. Here the deserializer never
raises: it hands on a marker, and the call (or stream, at that message) is refused with
INVALID_ARGUMENT before any other hook or handler sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from embedserve.server.call_hooks import CallHooks, Context, Handler, HookInterceptor


class _Undecodable:
    def __init__(self, error: Exception) -> None:
        self.error = error


def _never_raising(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError, UnicodeDecodeError, ...
            return _Undecodable(exc)

    return parse


class _Refuse(CallHooks):
    def __init__(self, method: str) -> None:
        self._method = method

    async def on_request(self, request: Any, context: Context) -> None:
        if isinstance(request, _Undecodable):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid message for {self._method}: {request.error}",
            )


class DecodeGuardInterceptor(HookInterceptor):
    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        return _Refuse(method)

    def adapt(self, handler: Handler) -> Handler:
        if handler.request_deserializer is None:
            return handler
        guarded: Handler = handler._replace(  # type: ignore[attr-defined]
            request_deserializer=_never_raising(handler.request_deserializer)
        )
        return guarded
