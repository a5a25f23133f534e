"""A real server with both transports on loopback ports, and helpers to call its HTTP side."""

from __future__ import annotations

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
        overrides.setdefault("http_port", free_port())
        running = start_server(**overrides)
        running.url = http_url(running)
        return running

    return start


@pytest.fixture
def both(start_http_server: Callable[..., Any], minilm_model: Any) -> Any:
    """MiniLM served over gRPC (``target``) and HTTP (``url``) by one process."""
    return start_http_server(loaded=minilm_model)
