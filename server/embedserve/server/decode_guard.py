"""Request bytes the server does not take: INVALID_ARGUMENT, not UNKNOWN, before parsing.

A request message over ``max_message_bytes`` (every method, every message of a stream;
the transport's own ceiling sits at twice that, so the caller gets this error, which
names the setting) is refused without being parsed. Bytes that are not the method's
protobuf message would make grpc.aio report the deserializer's exception as UNKNOWN and
log a traceback per call, so a client sending garbage would look like a server fault.
Here the deserializer never raises: it hands on a marker, and the call (or stream, at
that message, after the messages before it were answered) is refused with
INVALID_ARGUMENT before any later hook or the handler sees it, once every hook has begun
(a caller without a key is refused as such first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from embedserve.server.call_hooks import CallHooks, Context, Handler, HookInterceptor
from embedserve.server.errors import InvalidArgument

NESTING_LIMITS = (
    "filters go at most 48 deep within one another, 32 through nested or min_should; "
    "payloads 32 objects or arrays deep"
)


class _Refused:
    """What the deserializer hands on instead of a message it did not take."""

    def __init__(self, oversized: int = 0, error: Exception | None = None) -> None:
        self.oversized = oversized  # the message's size, when over the limit
        self.error = error  # why it did not parse


def _unparsed(data: bytes) -> bytes:
    return data


def _guarded(deserialize: Callable[[bytes], Any], max_bytes: int) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        if len(data) > max_bytes:
            return _Refused(oversized=len(data))
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError, UnicodeDecodeError, ...
            return _Refused(error=exc)

    return parse


class _Refuse(CallHooks):
    def __init__(self, method: str, max_bytes: int) -> None:
        self._method = method
        self._max_bytes = max_bytes

    async def on_request(self, request: Any, context: Context) -> None:
        if not isinstance(request, _Refused):
            return
        if request.oversized:
            raise InvalidArgument(
                f"the request is {request.oversized} bytes; "
                f"the limit is {self._max_bytes} (max_message_bytes)"
            )
        if "MaxDepth" in str(request.error):  # protobuf's words name no limit
            raise InvalidArgument(
                f"the request is not a valid message for {self._method}: it nests messages "
                f"deeper than protobuf reads (100 levels; {NESTING_LIMITS})"
            )
        raise InvalidArgument(
            f"the request is not a valid message for {self._method}: {request.error}"
        )


class DecodeGuardInterceptor(HookInterceptor):
    def __init__(self, max_message_bytes: int) -> None:
        self._max_bytes = max_message_bytes

    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        return _Refuse(method, self._max_bytes)

    def adapt(self, handler: Handler) -> Handler:
        deserialize = handler.request_deserializer or _unparsed
        guarded: Handler = handler._replace(  # type: ignore[attr-defined]
            request_deserializer=_guarded(deserialize, self._max_bytes)
        )
        return guarded
