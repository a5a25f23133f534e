"""A real server with both transports on loopback ports, and helpers to call its HTTP side."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from running_server import free_port


def http_url(running: Any) -> str:
    assert running.server.http is not None, "started without http_port"
    return f"http://127.0.0.1:{running.server.http.port}"


@pytest.fixture
def start_http_server(start_server: Callable[..., Any]) -> Callable[..., Any]:
    """Like start_server, with the HTTP port on; the result gains ``url``."""

    def start(**overrides: Any) -> Any:
        if "http_port" in overrides:
            running = start_server(**overrides)
        else:
            running = _on_a_free_port(start_server, overrides)
        running.url = http_url(running)
        return running

    return start


def _on_a_free_port(start_server: Callable[..., Any], overrides: dict[str, Any]) -> Any:
    """A server on a port free a moment ago: another connection may take it in between
    (an outgoing one is given a port of the same range), then the next one is tried."""
    from embedserve.server.listening import CannotListen

    for _ in range(2):
        with contextlib.suppress(CannotListen):
            return start_server(**overrides, http_port=free_port())
    return start_server(**overrides, http_port=free_port())


@pytest.fixture
def both(start_http_server: Callable[..., Any], minilm_model: Any) -> Any:
    """MiniLM served over gRPC (``target``) and HTTP (``url``) by one process."""
    return start_http_server(loaded=minilm_model)
