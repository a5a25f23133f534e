"""A Qdrant cluster of real server processes on loopback, for tests of the server backend.

The Qdrant binary comes from QDRANT_BIN; tests that need it skip, naming the
variable, when it is not set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from running_server import free_port

BIN_VARIABLE = "QDRANT_BIN"


def qdrant_binary() -> str:
    path = os.environ.get(BIN_VARIABLE, "")
    if not path or not os.access(path, os.X_OK):
        pytest.skip(f"no Qdrant server binary: set {BIN_VARIABLE} to one")
    return path


@dataclass
class Node:
    http: int
    grpc: int
    p2p: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())["result"]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


class Cluster:
    """``size`` peers in distributed mode: the first starts the cluster, the others join it."""

    def __init__(self, root: Path, size: int = 3) -> None:
        binary = qdrant_binary()
        self.nodes: list[Node] = []
        for i in range(size):
            node_dir = root / f"node-{i}"
            node_dir.mkdir(parents=True)  # its own working folder: Qdrant reads ./config
            http, grpc, p2p = free_port(), free_port(), free_port()
            env = dict(
                os.environ,
                QDRANT__TELEMETRY_DISABLED="true",
                QDRANT__STORAGE__STORAGE_PATH=str(node_dir / "storage"),
                QDRANT__STORAGE__SNAPSHOTS_PATH=str(node_dir / "snapshots"),
                QDRANT__SERVICE__HOST="127.0.0.1",
                QDRANT__SERVICE__HTTP_PORT=str(http),
                QDRANT__SERVICE__GRPC_PORT=str(grpc),
                QDRANT__CLUSTER__ENABLED="true",
                QDRANT__CLUSTER__P2P__PORT=str(p2p),
                QDRANT__LOG_LEVEL="WARN",
            )
            args = [binary, "--uri", f"http://127.0.0.1:{p2p}"]
            if self.nodes:
                args += ["--bootstrap", f"http://127.0.0.1:{self.nodes[0].p2p}"]
            log = open(node_dir / "qdrant.log", "wb")  # noqa: SIM115 - closed with the process
            process = subprocess.Popen(args, cwd=node_dir, env=env, stdout=log, stderr=log)
            self.nodes.append(Node(http, grpc, p2p, process))
            self._wait(lambda node=self.nodes[-1]: self._ready(node), f"node {i} ready")
        self._wait(lambda: len(self.nodes[0].get("/cluster")["peers"]) == size, "peers joined")

    @staticmethod
    def _ready(node: Node) -> bool:
        try:
            with urllib.request.urlopen(node.url + "/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    @staticmethod
    def _wait(condition: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Qdrant cluster: {what} not after {timeout} s")
            time.sleep(0.2)

    def collection(self, name: str) -> Any:
        return self.nodes[0].get(f"/collections/{name}")

    def close(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            try:
                node.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
