"""Acknowledged documents survive a kill -9 of the server in the middle of a stream."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from test_cli import CLI, cli_env, free_port

from embedserve.client import EmbedClient

TOTAL = 3000


def corpus() -> Iterator[dict[str, object]]:
    for i in range(TOTAL):
        yield {
            "id": f"doc-{i}",
            "text": f"document number {i} about subject {i % 37}",
            "payload": {"i": i},
        }


def start(data_dir: Path, store_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = cli_env() | {"EMBEDSERVE_DATA_DIR": str(data_dir)} | store_env
    process = subprocess.Popen([*CLI, "serve", "--model", "minilm", "--port", str(port)], env=env)
    target = f"127.0.0.1:{port}"
    with EmbedClient(target) as client:
        client.wait_until_serving(timeout=120)
    return process, target


@pytest.fixture(params=["embedded", "qdrant-server"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The server's store: the embedded engine, or a real Qdrant server (named by env)."""
    if request.param == "embedded":
        return {}
    qdrant = request.getfixturevalue("qdrant_server")
    return {f"EMBEDSERVE_{k.upper()}": str(v) for k, v in qdrant.settings().items()}


def test_every_acknowledged_document_survives_kill_9(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    process, target = start(tmp_path, store_env)
    acknowledged: list[str] = []
    try:
        with EmbedClient(target) as client:
            client.create_collection("docs")
            with pytest.raises(grpc.RpcError) as error:
                for ack in client.ingest_iter("docs", corpus(), batch_size=25, max_in_flight=4):
                    acknowledged.extend(ack.ids)
                    if len(acknowledged) >= 500:
                        os.kill(process.pid, signal.SIGKILL)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        process.kill()
        process.wait(30)
    assert 500 <= len(acknowledged) < TOTAL

    process, target = start(tmp_path, store_env)  # the same data directory or server
    try:
        with EmbedClient(target) as client:
            found = {d.id for d in client.get("docs", acknowledged)}
            assert found == set(acknowledged)
            client.ingest("docs", corpus(), batch_size=100)  # re-send everything
            assert client.count("docs") == TOTAL  # complete, no duplicates
    finally:
        process.terminate()
        assert process.wait(30) == 0
