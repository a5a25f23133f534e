"""SIGTERM drains the server: streams end cleanly with UNAVAILABLE, nothing answered is wrong,
nothing acknowledged is lost, and the process exits within its grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from test_cli import CLI, cli_env, free_port

from embedserve.client import EmbedClient
from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import embedding_pb2_grpc as epb_grpc

TEXTS = 10_000
PER_REQUEST = 16
GRACE_S = 10.0
CALL_DEADLINE_S = 120.0  # a hang shows up as DEADLINE_EXCEEDED, failing the test


def start(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = cli_env() | {"EMBEDSERVE_DATA_DIR": str(data_dir)}
    args = ["serve", "--model", "minilm", "--port", str(port), "--grace-period-s", str(GRACE_S)]
    process = subprocess.Popen([*CLI, *args], env=env)
    target = f"127.0.0.1:{port}"
    with EmbedClient(target) as client:
        client.wait_until_serving(timeout=120)
    return process, target


def terminate_and_time(process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    os.kill(process.pid, signal.SIGTERM)
    return started


def text(i: int) -> str:
    return f"sentence {i} talks about topic {i % 41} in {3 + i % 7} words or so"


def test_sigterm_during_a_10k_text_stream(tmp_path: Path, sentence_transformer: Any) -> None:
    process, target = start(tmp_path)
    received: list[epb.EmbedStreamResponse] = []
    sigterm_at = 0.0

    def requests() -> Iterator[epb.EmbedStreamRequest]:
        for first in range(0, TEXTS, PER_REQUEST):
            inputs = [text(i) for i in range(first, first + PER_REQUEST)]
            yield epb.EmbedStreamRequest(request_id=str(first // PER_REQUEST), inputs=inputs)

    try:
        with grpc.insecure_channel(target) as channel:
            stream = epb_grpc.EmbeddingServiceStub(channel).EmbedStream(
                requests(), timeout=CALL_DEADLINE_S
            )
            with pytest.raises(grpc.RpcError) as error:
                for response in stream:
                    received.append(response)
                    if len(received) == 20:
                        sigterm_at = terminate_and_time(process)
            code, details = error.value.code(), error.value.details()
        assert process.wait(GRACE_S + 20) == 0
        exited_after = time.monotonic() - sigterm_at
    finally:
        process.kill()
        process.wait(30)

    assert code == grpc.StatusCode.UNAVAILABLE, details
    assert "shutting down" in details
    assert exited_after < GRACE_S + 5
    answered = len(received)
    assert 20 <= answered < TEXTS // PER_REQUEST
    assert f"{answered} requests of this stream were answered" in details
    # Every response that arrived is complete, in order and correct.
    assert [r.request_id for r in received] == [str(i) for i in range(answered)]
    vectors = np.array([e.values for r in received for e in r.embeddings], dtype=np.float32)
    expected = sentence_transformer.encode(
        [text(i) for i in range(answered * PER_REQUEST)], normalize_embeddings=True
    )
    assert vectors.shape == expected.shape
    cosines = np.sum(vectors * expected, axis=1) / np.linalg.norm(vectors, axis=1)
    assert cosines.min() > 0.9999


# A known transport race, not the server's answer: the producer's next message can meet the
# socket the exiting server closed before the client read the trailers that carry the status.
TRANSPORT_RACE = "Stream removed"


def sigterm_during_ingestion(data_dir: Path) -> tuple[list[str], grpc.RpcError]:
    process, target = start(data_dir)
    acknowledged: list[str] = []
    documents = ({"id": f"doc-{i}", "text": text(i)} for i in range(TEXTS))
    try:
        with EmbedClient(target) as client:
            client.create_collection("docs")
            with pytest.raises(grpc.RpcError) as error:
                for ack in client.ingest_iter("docs", documents, batch_size=25, max_in_flight=8):
                    acknowledged.extend(ack.ids)
                    if len(acknowledged) == 500:
                        sigterm_at = terminate_and_time(process)
        assert process.wait(GRACE_S + 20) == 0
        assert time.monotonic() - sigterm_at < GRACE_S + 5
    finally:
        process.kill()
        process.wait(30)
    return acknowledged, error.value


def test_sigterm_during_ingestion_acknowledges_only_what_is_durable(tmp_path: Path) -> None:
    for attempt in range(3):  # a fresh server and store each time the race hides the status
        acknowledged, error = sigterm_during_ingestion(tmp_path / f"run-{attempt}")
        if TRANSPORT_RACE not in (error.details() or ""):
            break
    code, details = error.code(), error.details()
    assert code == grpc.StatusCode.UNAVAILABLE, details
    assert "shutting down" in details
    # The server names the last document it acknowledged: the producer resumes after it.
    assert f"last acknowledged document: {acknowledged[-1]!r}" in details
    assert f"({len(acknowledged)} acknowledged on this stream)" in details

    data_dir = tmp_path / f"run-{attempt}"
    process, target = start(data_dir)  # the same data directory
    try:
        with EmbedClient(target) as client:
            assert {d.id for d in client.get("docs", acknowledged)} == set(acknowledged)
            assert client.count("docs") == len(acknowledged)
    finally:
        process.terminate()
        assert process.wait(30) == 0


def importing_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def test_ctrl_c_while_starting_ends_the_process_at_once(tmp_path: Path) -> None:
    """Before the server listens there is nothing to drain: Ctrl-C then ends the process as
    SIGTERM does, with no traceback and no grpc error line."""
    env = cli_env() | {"EMBEDSERVE_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [*CLI, "serve", "--model", "minilm", "--port", str(free_port())],
        env=env,
        stderr=subprocess.PIPE,
        # As from a terminal: a child of a background job would inherit SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while not importing_torch(process.pid):  # serve has begun loading the server
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait(30)
    assert process.returncode == -signal.SIGINT, stderr.decode()
    assert b"Traceback" not in stderr and b"invalid state" not in stderr
