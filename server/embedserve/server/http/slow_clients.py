"""Connections that never finish sending a request's head, or stop sending its body,
closed; and a call told at once when its client's connection is lost.

uvicorn bounds only the wait between requests (its keep-alive timeout): a connection that
sends nothing, part of a request's head, or part of its body, was held for as long as its
client liked, an open file each, with no key needed (a body is read before its key is
checked), until the process ran out of them and neither transport could accept a call.
TCP keepalive finds the clients that vanished.

uvicorn tells a call that its client left only through ``receive()``, which a call does
not make while it works on body it has already read: an NDJSON stream holding lines that
arrived together, its body not yet ended, went on answering them for no one (uvicorn drops
what is sent once the client is gone). Each call's scope holds its connection
(``scope["extensions"][CONNECTION]``), which says when it is lost.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import h11
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

# Where a call's scope holds its Connection, under "extensions" (absent on other servers
# and on in-process test transports: nothing then tells a call early).
CONNECTION = "embedserve.connection"


class Connection:
    """A client's connection, as the calls made on it see it."""

    def __init__(self) -> None:
        self.lost = False
        self._listeners: list[Callable[[], None]] = []

    def when_lost(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` once the connection is lost (soon, if it already is), from
        the event loop, outside any task; returns what stops listening (at the call's end)."""
        if self.lost:
            handle = asyncio.get_running_loop().call_soon(listener)
            return handle.cancel
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def lose(self) -> None:
        self.lost = True
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener()


def _with_connection(app: ASGIApp, connection: Connection) -> ASGIApp:
    async def app_told(scope: Scope, receive: Receive, send: Send) -> None:
        scope["extensions"] = {**(scope.get("extensions") or {}), CONNECTION: connection}
        await app(scope, receive, send)

    return app_told


# How long a connection may take to send a request's method, path and headers.
HEAD_TIMEOUT_S = 30.0


class TimelyH11Protocol(H11Protocol):
    _head_deadline: asyncio.TimerHandle | None = None
    _body_deadline: asyncio.TimerHandle | None = None
    body_idle_s = 0.0  # HttpSettings.http_body_idle_s, set by ``timely_protocol``; 0: untimed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.for_calls = Connection()
        self.app = _with_connection(self.app, self.for_calls)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._between_requests():
            self._await_head()  # a request begun: its head must follow in time
        else:
            self._cancel_deadline()
            self._await_body()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request, read from the buffer with no new data: its body is timed too.
        if not self._between_requests():
            self._await_body()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._cancel_body_deadline()
        super().connection_lost(exc)
        self.for_calls.lose()

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _await_head(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)

    def _cancel_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.abort()  # close() would wait for TLS's closing handshake

    def _awaiting_body(self) -> bool:
        """Whether the rest of a request's body is awaited before its answer begins. A
        stream's answer (NDJSON) begins at once, its key checked: its body may then idle
        between lines, as its client (maybe waiting for acknowledgements) likes."""
        started = self.cycle is not None and self.cycle.response_started
        return self.conn.their_state is h11.SEND_BODY and not started

    def _await_body(self) -> None:
        """Time the wait for the rest of a request's body (again from each piece)."""
        self._cancel_body_deadline()
        if self.body_idle_s > 0 and self._awaiting_body():
            self._body_deadline = self.loop.call_later(self.body_idle_s, self._body_too_slow)

    def _cancel_body_deadline(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _body_too_slow(self) -> None:
        self._body_deadline = None
        if not self._awaiting_body() or self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server's wait (backpressure), not the client's
            self._await_body()
            return
        self.transport.abort()


def timely_protocol(body_idle_s: float) -> type[TimelyH11Protocol]:
    """The protocol class of a server whose bodies may idle ``body_idle_s`` (0: any time)."""
    return type("TimelyH11Protocol", (TimelyH11Protocol,), {"body_idle_s": body_idle_s})
