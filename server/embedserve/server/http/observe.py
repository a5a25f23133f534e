"""Per-request observability and size limit for HTTP, as one pure ASGI middleware.

Request id (``x-request-id`` in, echoed back, stamped on log lines), latency and count
metrics labelled with the RPC a route mirrors and ``transport="http"``, one access log
line per request (naming the key_id of the key it was made with, if any), the
``max_message_bytes`` limit on bodies (declared or counted as they arrive; not on an
ingestion stream, whose lines have their own), the 500 answer to an unexpected exception,
and CANCELLED (499) for a call whose client left before its answer's end: its work is then
cancelled, as gRPC cancels a call whose client left (the server reports the connection
lost even while the call reads no body: ``slow_clients.Connection``). A call the shutdown
cancels (still running when the drain's grace period is over) ends UNAVAILABLE (503), as
new calls refused during the drain do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Sequence

import grpc
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedserve.server import callctx
from embedserve.server.auth import ROUTE_METHODS
from embedserve.server.drain import Drain
from embedserve.server.http.ndjson import NDJSON, json_line
from embedserve.server.http.responses import CODE_KEY, error_body, http_status, json_response
from embedserve.server.http.slow_clients import CONNECTION
from embedserve.server.metrics import Metrics
from embedserve.server.status import HTTP_STATUS_OF

log = logging.getLogger("embedserve.access")
log_faults = logging.getLogger("embedserve.server.http")

_MAX_REQUEST_ID = 128  # a client's id is echoed into logs: bound it
UNMATCHED = "unmatched"
# A body left unread when the answer ends (a refusal, a 404, an ingest stream stopped by
# a bad line) is read, up to twice the limit and at least this much, for at most
# _DRAIN_SECONDS, before the answer's last message goes out: else the server neither
# reads nor closes, and a client still writing the body waits for ever; or closing with
# unread bytes sends a TCP reset that can reach the client before the answer. Reading
# it costs no more than two accepted bodies; the time bound keeps a slow producer from
# holding the connection.
_DRAIN_BYTES = 1 << 20
_DRAIN_SECONDS = 5.0
# The routes whose body is a stream of any length, each line held to the limit: NDJSON
# ingestion and embedding.
_STREAMED_BODY = re.compile(r"/api/v1/(collections/[^/]+/ingest|embed-stream)")
# How long an answer to a call cut by the shutdown may take to go out (server.py waits a
# little longer for these calls to end).
CUT_ANSWER_S = 0.5
_CUT_BY_SHUTDOWN = (
    "the server shut down before this call finished (grace_period_s); send it elsewhere"
)


def _code_name(scope: Scope, status: int) -> str:
    code = scope.get(CODE_KEY)
    if isinstance(code, str):
        return code
    return "OK" if status < 400 else "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"


def _method_label(scope: Scope, arrived: Scope, routes: Sequence[BaseRoute]) -> str:
    """The RPC a route mirrors; the route itself for the others; ``unmatched`` for a path
    or a verb no route takes (the client names those: label values must stay bounded).
    ``arrived``: the scope as the call came, before a mount (the docs' files) rewrote it."""
    route = scope.get("route") or _route_of(arrived, routes)
    verb = "GET" if scope["method"] == "HEAD" else scope["method"]  # HEAD runs the GET
    # A mount (the docs' static files) declares no verbs and takes GET.
    if route is None or verb not in (getattr(route, "methods", None) or {"GET"}):
        return UNMATCHED
    key = f"{verb} {getattr(route, 'path_format', '')}"
    return ROUTE_METHODS.get(key, key)


def _route_of(scope: Scope, routes: Sequence[BaseRoute]) -> BaseRoute | None:
    """The route taking this path and verb, for a call answered before routing (a body
    over the limit) or by a route that does not note itself (``/openapi.json``)."""
    return next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)


TWO_FRAMINGS = "a request gives Content-Length or Transfer-Encoding, not both"


def _refusing(message: str) -> ASGIApp:
    """An app answering every call INVALID_ARGUMENT with ``message``, in its path's shape."""

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        code = grpc.StatusCode.INVALID_ARGUMENT
        scope[CODE_KEY] = code.name
        body = error_body(scope["path"], code, message)
        await json_response(body, http_status(scope["path"], code))(scope, receive, send)

    return refuse


class ObserveMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_body_bytes: int,
        drain: Drain,
        routes: Sequence[BaseRoute],
    ) -> None:
        """``routes``: the app's, to label calls that no route noted in their scope."""
        self._app = app
        self._routes = routes
        self._metrics = metrics
        self._drain = drain
        self._max_body = max_body_bytes
        self._size_message = f"the request body is over {max_body_bytes} bytes (max_message_bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        arrived = dict(scope)
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
        client_left = False  # the client was found gone before that
        # The task running the call: cancelled when its client leaves (see below).
        handler = asyncio.current_task()
        running = True  # the app has not returned yet
        cut_off = False  # the call was cancelled here because its client left
        # Once the body is read, a side task waits for what the server says next: that the
        # client left (or, after the answer, that the exchange is over).
        watcher: asyncio.Task[Message] | None = None
        # A stream's body has no total limit (each line has its own); any other
        # body is counted as it arrives, for one sent in chunks declares no length.
        limited = not _STREAMED_BODY.fullmatch(scope["path"])
        # Refused at the route's first read (not before routing: the call counts under it).
        declared_over = limited and self._too_large(headers)
        # Both framings: a proxy in front may have read the body by the other one, so what
        # follows on the connection is not what it sent. Refused, and the connection closed.
        two_framings = b"transfer-encoding" in headers and b"content-length" in headers
        # Answered here, before any route: a stream's route answers before its body's first
        # read, where a refusal would come after the status line.
        app = _refusing(TWO_FRAMINGS) if two_framings else self._app
        received = 0
        # A client that asked to be told to continue (curl does past 1 MB) sends its body
        # only once told, which the server does at the call's first read: answered before
        # that, it sends none, and waiting to drain one held the answer for _DRAIN_SECONDS.
        holds_body = headers.get(b"expect", b"").lower() == b"100-continue"
        declares_body = (
            b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0"
        )
        asked = False  # the call has read from the server (which told it to continue)

        def client_gone() -> None:
            """The client left before the answer's end: nobody will read it, so the work
            stops, as gRPC's does. The handler task itself, reading its body, learns it from
            receive(); the server's report of the lost connection, a stream's reader task or
            the watcher cancels it (and with it the work the stream has in flight)."""
            nonlocal client_left, cut_off
            client_left = True
            here = asyncio.current_task()
            if running and not cut_off and handler is not None and here is not handler:
                cut_off = True
                handler.cancel()

        def connection_lost() -> None:
            # Told by the server (uvicorn run with slow_clients.TimelyH11Protocol) even
            # while the call reads no body: a stream working on lines that arrived
            # together, whose answers uvicorn drops once the client is gone, ran to its end.
            if not answered:
                client_gone()

        connection = (scope.get("extensions") or {}).get(CONNECTION)
        stop_listening = connection.when_lost(connection_lost) if connection else None

        async def watch() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and not answered:
                client_gone()
            return message

        async def receive_tracked() -> Message:
            nonlocal body_read, asked
            asked = True
            message = await receive()
            body_read = body_read or not message.get("more_body", False)
            return message

        async def receive_counted() -> Message:
            nonlocal received, watcher
            if watcher is not None:
                # The watcher holds the message after the body's end: handed on to whoever
                # asks (a response listening for a disconnect), not waited for twice.
                message = await asyncio.shield(watcher)
            else:
                message = {"type": "http.request"} if declared_over else await receive_tracked()
                received += len(message.get("body", b""))
                if declared_over or (limited and received > self._max_body):
                    raise HTTPException(400, self._size_message)  # answered as INVALID_ARGUMENT
                if body_read and running and message["type"] == "http.request":
                    watcher = asyncio.ensure_future(watch())
            # Once answered, the server reports a disconnect to whoever still listens for
            # one (Starlette's FileResponse does): only one before means the client left.
            if message["type"] == "http.disconnect" and not answered:
                client_gone()
            return message

        response_started = False
        shut_down = False  # the server's shutdown cancelled the call
        streamed_lines = False  # the answer is NDJSON: a failure ends it with an error line

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started, answered, streamed_lines
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
                streamed_lines = any(
                    name.lower() == b"content-type" and value.startswith(NDJSON.encode())
                    for name, value in message["headers"]
                )
                # Answered before the body of a client waiting to be told to continue (a
                # refusal by the guard, a 404): it may send the body yet or never, so the
                # connection's next bytes are no request to read. (A stream's answer
                # starts before its route reads the body, and reads it.)
                withheld = holds_body and not asked and not streamed_lines and declares_body
                # While the server drains, no connection is kept for another request: one
                # sent on it as the listener stops met a reset, and the client could not
                # tell whether it ran.
                if two_framings or withheld or self._drain.started:
                    message["headers"].append((b"connection", b"close"))
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True  # its last message
                # With the request body not read to its end; not when the server is going
                # away (it closes the connection anyway).
                if not body_read and not shut_down and (asked or not holds_body):
                    limit = max(2 * self._max_body, _DRAIN_BYTES)
                    await _drain(receive_tracked, limit, self._drain_seconds())
            await send(message)

        try:
            try:
                await app(scope, receive_counted, send_with_id)
            finally:
                running = False  # a disconnect cancels nothing from now on
                if watcher is not None:
                    watcher.cancel()
                if stop_listening is not None:
                    stop_listening()
        except asyncio.CancelledError as error:
            if handler is None or not (cut_off or handler.cancelling()):
                # Not this call cancelled, but something it awaited: a fault.
                await self._fault(scope, error, response_started, receive_tracked, send_with_id)
            else:
                handler.uncancel()  # handled here: the task goes on to answer or return
                if not cut_off and not answered:
                    # The server cancelled it: uvicorn does, for the calls still running
                    # when the drain's grace period is over. The answer gets a moment to go
                    # out (not for ever: a stream's client may not be reading).
                    shut_down = True
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(CUT_ANSWER_S):
                            await self._cut_by_shutdown(
                                scope,
                                response_started,
                                streamed_lines,
                                receive_tracked,
                                send_with_id,
                            )
        except Exception as error:
            await self._fault(scope, error, response_started, receive_tracked, send_with_id)
        finally:
            if client_left:  # whatever was answered, nobody read it: the client cancelled
                scope[CODE_KEY] = grpc.StatusCode.CANCELLED.name
            self._record(scope, arrived, status, time.perf_counter() - started, call.key_id)
            callctx.reset(callctx.call, call_token)
            callctx.reset(callctx.request_id, token)

    def _drain_seconds(self) -> float:
        """How long an unread body may be read before the answer's last message. While the
        server drains, briefly, and within the transports' grace when they stop: the
        message must go out before they cancel the call (the connection closes anyway)."""
        if not self._drain.started:
            return _DRAIN_SECONDS
        left = self._drain.grace_left()
        return CUT_ANSWER_S if left is None else max(0.0, min(CUT_ANSWER_S, left - CUT_ANSWER_S))

    async def _fault(
        self,
        scope: Scope,
        error: BaseException,
        response_started: bool,
        receive: Receive,
        send: Send,
    ) -> None:
        """A bug, not a caller's mistake. Answered here, not re-raised: past this middleware
        Starlette re-raises after its own 500 and uvicorn then drops the connection, so the
        client got a reset instead of the answer. Mid-response (a stream), only dropping the
        connection tells the client it is cut short."""
        log_faults.error(
            "unexpected error on %s %s", scope["method"], scope["path"], exc_info=error
        )
        if response_started:
            raise error
        scope[CODE_KEY] = grpc.StatusCode.INTERNAL.name
        body = error_body(scope["path"], grpc.StatusCode.INTERNAL, "internal error")
        await json_response(body, 500)(scope, receive, send)

    async def _cut_by_shutdown(
        self,
        scope: Scope,
        response_started: bool,
        streamed_lines: bool,
        receive: Receive,
        send: Send,
    ) -> None:
        """A call the shutdown cancelled ends as a new call refused during the drain does:
        UNAVAILABLE, a 503 in the route's error shape; an NDJSON stream already answering
        ends with that error as its last line, as a drained stream does."""
        code = grpc.StatusCode.UNAVAILABLE
        scope[CODE_KEY] = code.name
        message = _CUT_BY_SHUTDOWN
        if not response_started:
            body = error_body(scope["path"], code, message)
            response = json_response(body, http_status(scope["path"], code))
            await response(scope, receive, send)
        elif streamed_lines:
            line = json_line(error_body(scope["path"], code, message))
            await send({"type": "http.response.body", "body": line, "more_body": False})
        # Any other answer cut short is left unfinished: uvicorn closes the connection, so
        # that the client cannot take it for whole.

    def _too_large(self, headers: dict[bytes, bytes]) -> bool:
        length = headers.get(b"content-length", b"")
        return length.isdigit() and int(length) > self._max_body

    def _record(
        self, scope: Scope, arrived: Scope, status: int, seconds: float, key_id: str
    ) -> None:
        method = _method_label(scope, arrived, self._routes)
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


async def _drain(receive: Receive, limit: int, seconds: float) -> None:
    """Read and drop the request body: until its end, ``limit`` bytes or ``seconds``."""
    read = 0
    try:
        async with asyncio.timeout(seconds):
            while read <= limit:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return
                read += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return
