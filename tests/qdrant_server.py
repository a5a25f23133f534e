"""Real Qdrant servers for tests: one node or a cluster on loopback, from ``QDRANT_BIN``.

``QDRANT_URL`` (with ``QDRANT_GRPC_PORT`` and ``QDRANT_API_KEY``) names an already running
server instead; the tests delete its collections, so give them a throwaway one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

SKIP_REASON = (
    "no Qdrant server: set QDRANT_BIN to a Qdrant 1.18+ server binary "
    "(or QDRANT_URL to a running throwaway server) to run the real-server tests"
)


# Ports handed out in this session: a node's ports are picked before it starts, and a
# restarted node binds the same ones again, so none may go to two nodes.
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port free now and not handed out before, below the kernel's ephemeral
    range: the picks are made before Qdrant binds them, and a port in that range can be
    taken meanwhile as the local end of any outgoing connection (the readiness probes'
    included), which leaves Qdrant running without its REST server."""
    picker = random.Random()
    high = _ephemeral_low()
    while True:
        port = picker.randrange(max(1024, high - 12000), high)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


@dataclasses.dataclass(frozen=True)
class QdrantEndpoint:
    """How a client reaches one server: REST url, gRPC port and API key."""

    url: str
    grpc_port: int
    api_key: str | None

    def settings(self) -> dict[str, Any]:
        """The embedserve Settings fields that point a server at this Qdrant."""
        return {
            "qdrant_url": self.url,
            "qdrant_grpc_port": self.grpc_port,
            "qdrant_api_key": self.api_key or "",
        }

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        """One REST call; returns the parsed ``result``."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("api-key", self.api_key)
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read())["result"]

    def delete_all_collections(self) -> None:
        for c in self.request("GET", "/collections")["collections"]:
            self.request("DELETE", f"/collections/{c['name']}")


def endpoint_from_env() -> QdrantEndpoint | None:
    url = os.environ.get("QDRANT_URL")
    if not url:
        return None
    return QdrantEndpoint(
        url.rstrip("/"),
        int(os.environ.get("QDRANT_GRPC_PORT", "6334")),
        os.environ.get("QDRANT_API_KEY") or None,
    )


BINARY_SKIP_REASON = (
    "no Qdrant binary: set QDRANT_BIN to a Qdrant 1.18+ server binary to run the tests "
    "that start (and kill) their own Qdrant servers"
)


def qdrant_binary(reason: str = BINARY_SKIP_REASON) -> str:
    """The binary from QDRANT_BIN, or skip the calling test naming the variable."""
    binary = os.environ.get("QDRANT_BIN", "")
    if not binary:
        pytest.skip(reason)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"QDRANT_BIN={binary!r} is not an executable file")
    return binary


class QdrantNode:
    """One Qdrant process on free loopback ports with its own storage and working folder."""

    def __init__(
        self,
        binary: str,
        root: Path,
        *,
        api_key: str | None = None,
        cluster_args: list[str] | None = None,
        p2p_port: int | None = None,
    ) -> None:
        self.binary = binary
        self.root = root
        self.api_key = api_key
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.p2p_port = p2p_port
        self.cluster_args = cluster_args or []
        self.process: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def endpoint(self) -> QdrantEndpoint:
        return QdrantEndpoint(f"http://127.0.0.1:{self.http_port}", self.grpc_port, self.api_key)

    def start(self) -> QdrantNode:
        """Start (or restart, on the same storage and ports) and wait until it is ready."""
        env = os.environ | {
            "QDRANT__TELEMETRY_DISABLED": "true",
            "QDRANT__STORAGE__STORAGE_PATH": str(self.root / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(self.root / "snapshots"),
            "QDRANT__SERVICE__HOST": "127.0.0.1",
            "QDRANT__SERVICE__HTTP_PORT": str(self.http_port),
            "QDRANT__SERVICE__GRPC_PORT": str(self.grpc_port),
            "QDRANT__LOG_LEVEL": "WARN",
        }
        if self.api_key:
            env["QDRANT__SERVICE__API_KEY"] = self.api_key
        if self.p2p_port is not None:
            env["QDRANT__CLUSTER__ENABLED"] = "true"
            env["QDRANT__CLUSTER__P2P__PORT"] = str(self.p2p_port)
        log = open(self.root / "qdrant.log", "ab")  # noqa: SIM115 - the process owns it
        # Its own working folder: Qdrant reads ./config/config.yaml when there is one.
        self.process = subprocess.Popen(
            [self.binary, *self.cluster_args],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = (self.root / "qdrant.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"qdrant exited with {self.process.returncode}:\n{tail}")
            if self._ready() and self._grpc_listening():
                return
            time.sleep(0.1)
        raise RuntimeError(f"qdrant on port {self.http_port} not ready after {timeout} s")

    def _ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.http_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _grpc_listening(self) -> bool:
        """Qdrant opens its gRPC port a moment after REST reports ready."""
        try:
            with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=2):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye to the cluster."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_single(binary: str, root: Path, *, api_key: bool = True) -> QdrantNode:
    return QdrantNode(binary, root, api_key=secrets.token_hex(16) if api_key else None).start()


class QdrantCluster:
    """Nodes in distributed mode on loopback; the first one bootstraps the others."""

    def __init__(self, binary: str, root: Path, size: int = 3) -> None:
        first_p2p = free_port()
        first = QdrantNode(
            binary,
            root / "node-0",
            p2p_port=first_p2p,
            cluster_args=["--uri", f"http://127.0.0.1:{first_p2p}"],
        )
        self.nodes = [first]
        for i in range(1, size):
            p2p = free_port()
            self.nodes.append(
                QdrantNode(
                    binary,
                    root / f"node-{i}",
                    p2p_port=p2p,
                    cluster_args=[
                        "--bootstrap",
                        f"http://127.0.0.1:{first_p2p}",
                        "--uri",
                        f"http://127.0.0.1:{p2p}",
                    ],
                )
            )

    def start(self, timeout: float = 60) -> QdrantCluster:
        self.nodes[0].start()
        for node in self.nodes[1:]:
            node.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            peers = self.nodes[0].endpoint.request("GET", "/cluster").get("peers", {})
            if len(peers) == len(self.nodes):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"cluster did not reach {len(self.nodes)} peers in {timeout} s")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
