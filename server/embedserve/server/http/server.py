"""Runs the HTTP app with uvicorn on the event loop that already runs grpc.aio.

One loop, one batcher: HTTP handlers await the same core as the gRPC servicers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from embedserve.server.http.observe import CUT_ANSWER_S
from embedserve.server.http.slow_clients import timely_protocol
from embedserve.server.tls import TlsSettings


class _HostedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The hosting process owns SIGTERM/SIGINT and drains both transports itself.
        yield


def _bind_all(host: str, port: int) -> list[socket.socket]:
    """A socket for each address ``host`` names (localhost: 127.0.0.1 and ::1), all on one
    port, as gRPC binds them: a client that tries ::1 alone (Node's fetch) finds it too.
    Addresses that cannot be bound (no IPv6 here) are left out while one can."""
    resolved = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses: list[tuple[socket.AddressFamily, str]] = [
        (family, str(address[0])) for family, *_, address in resolved
    ]
    if host.lower() == "localhost":  # gRPC takes both loopbacks, whatever /etc/hosts says
        loopbacks: list[tuple[socket.AddressFamily, str]] = [
            (socket.AF_INET, "127.0.0.1"),
            (socket.AF_INET6, "::1"),
        ]
        addresses += [pair for pair in loopbacks if pair not in addresses]
    sockets: list[socket.socket] = []
    failure: OSError | None = None
    for family, address in addresses:
        if sockets:  # port 0: the others take the port the first was given
            port = sockets[0].getsockname()[1]
        try:
            sockets.append(_bind(family, address, port))
        except OSError as exc:
            failure = failure or exc
    if not sockets:
        raise failure or OSError(f"{host} names no address")
    return sockets


def _bind(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    # IPPROTO_TCP named, not left 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only
    # on sockets that say they are TCP, and accepted sockets take this one's protocol.
    # With Nagle on, a response's body waited for the ACK of its headers: about 40 ms
    # per request on a kept-alive connection.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and host != "::":  # "::" alone also takes IPv4, as before
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class HttpServer:
    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        tls: TlsSettings,
        grace_period_s: float,
        body_idle_s: float = 0.0,
    ) -> None:
        ssl_options: dict[str, object] = {}
        if tls.tls_cert:
            ssl_options = {"ssl_certfile": tls.tls_cert, "ssl_keyfile": tls.tls_key}
        if tls.tls_client_ca:
            ssl_options |= {"ssl_ca_certs": tls.tls_client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        config = uvicorn.Config(
            app,
            log_config=None,  # the server's own logging setup applies
            access_log=False,  # ObserveMiddleware writes the access lines
            lifespan="off",
            http=timely_protocol(body_idle_s),
            timeout_graceful_shutdown=math.ceil(grace_period_s),
            **ssl_options,  # type: ignore[arg-type]
        )
        self.app = app
        self._server = _HostedServer(config)
        self._sockets = _bind_all(host, port)
        self.port: int = self._sockets[0].getsockname()[1]
        self._task: asyncio.Task[None] | None = None

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The listener's TLS context, once started (Certificates.serve_http hands each
        handshake to the pair in force)."""
        return self._server.config.ssl

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=self._sockets)
        )
        while not self._server.started:
            if self._task.done():
                await self._task  # surfaces a failed start (e.g. a bad certificate)
                raise OSError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self, grace: float) -> None:
        """Stop accepting; requests in flight get ``grace`` seconds to finish."""
        if self._task is None:
            return
        # Whole seconds, at least one: idle keep-alive connections close within it.
        self._server.config.timeout_graceful_shutdown = max(1, math.ceil(grace))
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        # Calls still running when the grace period was over were cancelled by uvicorn, which
        # does not wait for them: each answers 503 (ObserveMiddleware) within CUT_ANSWER_S.
        if cut := list(self._server.server_state.tasks):
            await asyncio.wait(cut, timeout=2 * CUT_ANSWER_S)
        for sock in self._sockets:
            sock.close()
