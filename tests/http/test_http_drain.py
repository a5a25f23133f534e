"""The drain over HTTP: refusals keep the listener open while callers keep coming, as
gRPC's do, so that they get a 503 in the route's shape and not a refused connection; and
no connection is kept alive for another request."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest


def test_http_refusals_hold_the_transports_until_callers_stop(
    start_http_server: Any, minilm_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only gRPC's refusals counted: the listeners stopped 0.1 s into the drain while
    HTTP callers still came, and they met refused connections."""
    from embedserve.server import app

    monkeypatch.setattr(app, "DRAIN_CALM_S", 1.0)
    monkeypatch.setattr(app, "DRAIN_CALM_LIMIT_S", 10.0)
    running = start_http_server(loaded=minilm_model)
    with httpx.Client(base_url=running.url, timeout=10) as http:
        stopping = asyncio.run_coroutine_threadsafe(running.server.stop(30), running.loop)
        while http.get("/health").status_code == 200:
            pass  # until the drain starts
        time.sleep(0.6)  # most of a calm second without a call
        for _ in range(3):
            refused = http.post("/api/v1/embed", json={"inputs": ["a"]})
            assert refused.status_code == 503
            assert refused.json()["error"]["message"].startswith("the server is shutting down")
            # Not kept alive: a request sent on a kept connection as the listener stops
            # met a reset, with no telling whether it ran.
            assert refused.headers["connection"] == "close"
        last_refused = time.monotonic()
        assert not stopping.done()
        stopping.result(15)
    assert time.monotonic() - last_refused >= 0.9
