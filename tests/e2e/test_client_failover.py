"""Client-side balancing: one client over two real servers spreads its calls over both, and
no idempotent call fails while one server drains on SIGTERM (and comes back) and the other
is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from test_cli import CLI, cli_env, free_port

from embedserve.client import EmbedClient

# Three model loads and three phases of calls: minutes when other jobs load the machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

COLLECTION = "failover"
DOCS = [
    {"id": "d0", "text": "The rocket reached orbit."},
    {"id": "d1", "text": "Bake the bread for forty minutes."},
    {"id": "d2", "text": "The probe landed on Mars."},
]
EMBED_METHOD = "/embedserve.v1.EmbeddingService/Embed"


@dataclass
class Server:
    port: int
    metrics_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            *("serve", "--model", "minilm", "--port", str(self.port)),
            *("--metrics-port", str(self.metrics_port), "--grace-period-s", "3"),
            *("--data-dir", str(self.data_dir), "--no-store-process"),
        ]
        self.process = subprocess.Popen([*CLI, *args], env=cli_env())

    def wait_serving(self) -> None:
        with EmbedClient(self.target) as client:
            client.wait_until_serving(timeout=420)  # minutes on a loaded 2-core machine

    def embed_calls(self) -> int:
        """OK Embed calls this server answered, from its own /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for line in text.splitlines():
            wanted = EMBED_METHOD in line and 'code="OK"' in line
            if line.startswith("embedserve_rpc_total{") and wanted:
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    def stop(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)
        self.process.wait(timeout=300)  # the drain, then model and store threads finish


@dataclass
class Load:
    """Idempotent calls in a loop on two threads; every outcome is recorded, none raised."""

    client: EmbedClient
    expected: np.ndarray
    calls: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        texts = [doc["text"] for doc in DOCS]
        steps: list[tuple[str, Callable[[], bool]]] = [
            ("embed", lambda: np.allclose(self.client.embed(texts), self.expected, atol=1e-4)),
            ("search", lambda: self.client.search(COLLECTION, "planets", limit=1)[0].id == "d2"),
            ("get", lambda: [d.id for d in self.client.get(COLLECTION, ["d1"])] == ["d1"]),
            ("count", lambda: self.client.count(COLLECTION) == len(DOCS)),
        ]
        while not self.stop.is_set():
            for name, call in steps:
                try:
                    ok = call()
                except Exception as exc:  # recorded: the test asserts there are none
                    self.failures.append(f"{name}: {exc!r}")
                    continue
                self.calls[name] += 1
                if not ok:
                    self.failures.append(f"{name}: wrong answer")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_round_robin_survives_sigterm_and_sigkill(tmp_path: Path) -> None:
    a = Server(free_port(), free_port(), tmp_path / "a")
    b = Server(free_port(), free_port(), tmp_path / "b")
    servers = [a, b]
    threads: list[threading.Thread] = []
    load: Load | None = None
    client: EmbedClient | None = None
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_serving()
            with EmbedClient(server.target) as direct:  # each server its own copy of the data
                direct.create_collection(COLLECTION)
                direct.upsert(COLLECTION, DOCS)
                expected = direct.embed([doc["text"] for doc in DOCS])

        client = EmbedClient([a.target, b.target], timeout=60)
        load = Load(client, expected)
        threads = [threading.Thread(target=load.run) for _ in range(2)]
        for thread in threads:
            thread.start()

        # Both servers take a share of the calls.
        wait_for(lambda: min(a.embed_calls(), b.embed_calls()) >= 6, 300, "load on both")
        share_a, share_b = a.embed_calls(), b.embed_calls()

        # SIGTERM: a drains and exits while the calls go on; then it comes back on its port.
        a.stop(signal.SIGTERM)
        assert a.process is not None and a.process.returncode == 0
        before = sum(load.calls.values())
        wait_for(lambda: sum(load.calls.values()) > before + 8, 300, "calls with a down")
        a.start()
        a.wait_serving()
        wait_for(lambda: a.embed_calls() >= 3, 300, "load back on the restarted server")

        # SIGKILL: b vanishes mid-call; its calls are retried on a.
        b.stop(signal.SIGKILL)
        before = sum(load.calls.values())
        wait_for(lambda: sum(load.calls.values()) > before + 12, 300, "calls with b killed")
    finally:
        if load is not None:
            load.stop.set()
        for thread in threads:
            thread.join(timeout=120)
        if client is not None:
            client.close()
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.process.kill()
                server.process.wait()

    assert load is not None
    assert load.failures == []
    assert all(load.calls[name] > 0 for name in ("embed", "search", "get", "count"))
    # Round robin over two servers: neither took less than a quarter of the Embed calls.
    assert min(share_a, share_b) / (share_a + share_b) >= 0.25, (share_a, share_b)
