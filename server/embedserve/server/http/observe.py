"""Per-request observability and size limit for HTTP, as one pure ASGI middleware.

Request id (``x-request-id`` in, echoed back, stamped on log lines), latency and count
metrics labelled with the RPC a route mirrors and ``transport="http"``, one access log
line per request (naming the key_id of the key it was made with, if any), the
``max_message_bytes`` limit on bodies (declared or counted as they arrive; not on an
ingestion stream, whose lines have their own), the 500 answer to an unexpected exception,
and CANCELLED (499) for a call whose client left before its body's end.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

import grpc
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedserve.server import callctx
from embedserve.server.auth import ROUTE_METHODS
from embedserve.server.http.responses import CODE_KEY, error_body, http_status, json_response
from embedserve.server.metrics import Metrics
from embedserve.server.status import HTTP_STATUS_OF

log = logging.getLogger("embedserve.access")
log_faults = logging.getLogger("embedserve.server.http")

_MAX_REQUEST_ID = 128  # a client's id is echoed into logs: bound it
# A body left unread when the answer ends (a refusal, a 404, an ingest stream stopped by
# a bad line) is read, up to twice the limit and at least this much, for at most
# _DRAIN_SECONDS, before the answer's last message goes out: else the server neither
# reads nor closes, and a client still writing the body waits for ever; or closing with
# unread bytes sends a TCP reset that can reach the client before the answer. Reading
# it costs no more than two accepted bodies; the time bound keeps a slow producer from
# holding the connection.
_DRAIN_BYTES = 1 << 20
_DRAIN_SECONDS = 5.0
# The one route whose body is a stream of any length: NDJSON ingestion.
_STREAMED_BODY = re.compile(r"/api/v1/collections/[^/]+/ingest")


def _code_name(scope: Scope, status: int) -> str:
    code = scope.get(CODE_KEY)
    if isinstance(code, str):
        return code
    return "OK" if status < 400 else "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"


def _method_label(scope: Scope) -> str:
    """The RPC a route mirrors (bounded label values); the route itself for the others."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    verb = "GET" if scope["method"] == "HEAD" else scope["method"]  # HEAD runs the GET
    key = f"{verb} {getattr(route, 'path_format', '')}"
    return ROUTE_METHODS.get(key, key)


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self._app = app
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._size_message = f"the request body is over {max_body_bytes} bytes (max_message_bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")[:_MAX_REQUEST_ID]
        request_id = given or uuid.uuid4().hex
        token = callctx.request_id.set(request_id)
        call = callctx.Call()  # the guard notes the caller's key in it
        call_token = callctx.call.set(call)
        started = time.perf_counter()
        status = 500

        body_read = False  # the request body's last message has been received
        answered = False  # the answer's last message has gone out
        client_left = False  # the app found the client gone before that
        # An ingestion stream's body has no total limit (each line has its own); any other
        # body is counted as it arrives, for one sent in chunks declares no length.
        limited = not _STREAMED_BODY.fullmatch(scope["path"])
        received = 0

        async def receive_tracked() -> Message:
            nonlocal body_read
            message = await receive()
            body_read = body_read or not message.get("more_body", False)
            return message

        async def receive_counted() -> Message:
            nonlocal received, client_left
            message = await receive_tracked()
            # Once answered, the server reports a disconnect to whoever still listens for
            # one (Starlette's FileResponse does): only one before means the client left.
            client_left = client_left or (message["type"] == "http.disconnect" and not answered)
            received += len(message.get("body", b""))
            if limited and received > self._max_body:
                raise HTTPException(400, self._size_message)  # answered as INVALID_ARGUMENT
            return message

        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started, answered
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True  # its last message
                if not body_read:  # with the request body not read to its end
                    await _drain(receive_tracked, max(2 * self._max_body, _DRAIN_BYTES))
            await send(message)

        try:
            if limited and self._too_large(headers):
                await self._refuse_size(scope, receive_tracked, send_with_id)
            else:
                await self._app(scope, receive_counted, send_with_id)
        except Exception:
            # A bug, not a caller's mistake. Answered here, not re-raised: past this
            # middleware Starlette re-raises after its own 500 and uvicorn then drops the
            # connection, so the client got a reset instead of the answer. Mid-response
            # (a stream), only dropping the connection tells the client it is cut short.
            log_faults.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if response_started:
                raise
            scope[CODE_KEY] = grpc.StatusCode.INTERNAL.name
            body = error_body(scope["path"], grpc.StatusCode.INTERNAL, "internal error")
            await json_response(body, 500)(scope, receive_tracked, send_with_id)
        finally:
            if client_left:  # whatever was answered, nobody read it: the client cancelled
                scope[CODE_KEY] = grpc.StatusCode.CANCELLED.name
            self._record(scope, status, time.perf_counter() - started, call.key_id)
            callctx.reset(callctx.call, call_token)
            callctx.reset(callctx.request_id, token)

    def _too_large(self, headers: dict[bytes, bytes]) -> bool:
        length = headers.get(b"content-length", b"")
        return length.isdigit() and int(length) > self._max_body

    async def _refuse_size(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[CODE_KEY] = grpc.StatusCode.INVALID_ARGUMENT.name
        code = grpc.StatusCode.INVALID_ARGUMENT
        body: Any = error_body(scope["path"], code, self._size_message)
        status = http_status(scope["path"], code)
        await json_response(body, status, {"connection": "close"})(scope, receive, send)

    def _record(self, scope: Scope, status: int, seconds: float, key_id: str) -> None:
        method = _method_label(scope)
        code = _code_name(scope, status)
        if code == grpc.StatusCode.CANCELLED.name:
            status = HTTP_STATUS_OF[grpc.StatusCode.CANCELLED]  # 499, as nginx logs it
        self._metrics.rpc_seconds.labels(method, "http").observe(seconds)
        self._metrics.rpc_total.labels(method, code, "http").inc()
        level = logging.ERROR if code in {"UNKNOWN", "INTERNAL"} else logging.INFO
        # A request made with a key names it by its key_id, a short hash: never the key.
        log.log(
            level,
            "HTTP %s %s %s %d %.1f ms%s",
            scope["method"],
            scope["path"],
            code,
            status,
            seconds * 1000,
            f" {key_id}" if key_id else "",
        )


async def _drain(receive: Receive, limit: int) -> None:
    """Read and drop the request body: until its end, ``limit`` bytes or _DRAIN_SECONDS."""
    read = 0
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while read <= limit:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return
                read += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return
