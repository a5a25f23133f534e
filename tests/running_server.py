"""An embedserve server on a loopback port, driven by its own event loop thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class RunningServer:
    """An EmbedServer on a loopback port, driven by its own event loop thread."""

    def __init__(self, settings: Any, model: Any = None) -> None:
        from embedserve.server.app import EmbedServer

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

        async def start() -> EmbedServer:
            server = EmbedServer(settings, model)
            await server.start()
            return server

        try:
            self.server = self.run(start())
        except BaseException:  # it cleaned up after itself: its loop goes too
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            raise
        self.port = self.server.port
        self.target = f"127.0.0.1:{self.port}"

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def wait_ready(self) -> RunningServer:
        self.run(self.server.wait_ready())
        return self

    def stop(self) -> None:
        self.run(self.server.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def free_port() -> int:
    """A loopback port free now (for a server's HTTP or metrics listener)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True
