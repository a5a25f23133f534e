"""Connections that never finish sending a request's head, closed.

uvicorn bounds only the wait between requests (its keep-alive timeout): a connection that
sends nothing, or part of a request's head, was held for as long as its client liked, an
open file each, with no key needed, until the process ran out of them and neither
transport could accept a call. TCP keepalive finds the clients that vanished.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

# How long a connection may take to send a request's method, path and headers.
HEAD_TIMEOUT_S = 30.0


class TimelyH11Protocol(H11Protocol):
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
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

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

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
            self.transport.close()
