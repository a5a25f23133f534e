"""What a test server recorded: its metrics' samples and its access log lines."""

from __future__ import annotations

import time
from typing import Any

import pytest


def sample(running: Any, name: str, **labels: str) -> float:
    """A metric's value in the server's registry; 0 where it has none yet."""
    value = running.server.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


def rpc_count(running: Any, method: str, code: str, transport: str) -> float:
    return sample(running, "embedserve_rpc_total", method=method, code=code, transport=transport)


def access_lines(caplog: pytest.LogCaptureFixture, part: str, wait_s: float = 30) -> list[str]:
    """The access lines holding ``part``, once there is one (an HTTP call's is written
    just after its answer went out); none after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.name == "embedserve.access" and part in r.getMessage()
        ]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)
