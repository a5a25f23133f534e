"""API keys change while the server runs: on SIGHUP and when the keys file changes, over
gRPC and HTTP; a file that cannot be used leaves the keys in force."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from running_server import free_port
from test_cli_security import CLI

from embedserve.client import EmbedClient

OLD, NEW = "old-secret-1", "new-secret-2"


def works(target: str, http_url: str, key: str) -> tuple[bool, bool]:
    """Whether ``key`` may embed, over gRPC and over HTTP."""
    with EmbedClient(target, api_key=key) as client:
        try:
            client.embed(["hello"])
            over_grpc = True
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc
            over_grpc = False
    reply = httpx.post(
        f"{http_url}/v1/embeddings",
        json={"input": "hello"},
        headers={"authorization": f"Bearer {key}"},
    )
    assert reply.status_code in {200, 401}, reply.text
    return over_grpc, reply.status_code == 200


def test_keys_are_reloaded_and_an_unusable_file_keeps_them(
    start_server: Callable[..., Any],
    minilm_model: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{OLD} write\n")
    running = start_server(loaded=minilm_model, api_keys_file=str(keys), http_port=free_port())
    http_url = f"http://127.0.0.1:{running.server.http.port}"

    async def sighup() -> None:
        running.server.reload()

    assert works(running.target, http_url, OLD) == (True, True)
    assert works(running.target, http_url, NEW) == (False, False)
    keys.write_text(f"{NEW} read\n")  # OLD revoked, NEW added
    running.run(sighup())
    assert works(running.target, http_url, OLD) == (False, False)
    assert works(running.target, http_url, NEW) == (True, True)

    caplog.set_level(logging.ERROR, logger="embedserve.server.key_reload")
    for unusable, why in (
        (f"{OLD} reader\n", "unknown role 'reader'"),
        ("# every key removed\n", "would turn auth off"),
    ):
        keys.write_text(unusable)
        running.run(sighup())
        assert why in caplog.text
        assert works(running.target, http_url, NEW) == (True, True)
        assert works(running.target, http_url, OLD) == (False, False)
    keys.unlink()
    running.run(sighup())
    assert "cannot read api keys file" in caplog.text
    assert works(running.target, http_url, NEW) == (True, True)

    # Written in place (as a Kubernetes Secret is): in force within the watch's interval.
    keys.write_text(f"{OLD} read\n")
    deadline = time.monotonic() + 15
    while works(running.target, http_url, OLD) != (True, True):
        assert time.monotonic() < deadline, "the changed file was not reloaded"
        time.sleep(0.2)
    assert works(running.target, http_url, NEW) == (False, False)
    # Each outcome is counted, so a refused reload can raise an alert.
    registry = running.server.metrics.registry

    def reloads(result: str) -> float | None:
        labels = {"file": "api_keys", "result": result}
        return registry.get_sample_value("embedserve_reloads_total", labels)

    # (At least: the file watch may also have seen a change before its SIGHUP.)
    assert (reloads("applied") or 0) >= 2 and (reloads("refused") or 0) >= 3


def test_sighup_reloads_the_keys_of_embedserve_serve(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{OLD} read\n")
    log = tmp_path / "serve.log"
    port = free_port()
    repo = Path(__file__).resolve().parents[2]
    paths = os.pathsep.join(str(repo / root) for root in ("server", "connectors", "clients/python"))
    env = dict(os.environ, PYTHONPATH=paths, EMBEDSERVE_MODEL="minilm")
    command = [*CLI, "serve", "--port", str(port), "--http-port", "0", "--metrics-port", "0"]
    command += ["--api-keys-file", str(keys), "--data-dir", str(tmp_path / "data")]
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stderr=output, stdout=output)
    try:
        with EmbedClient(f"127.0.0.1:{port}", api_key=OLD) as client:
            client.wait_until_serving(timeout=300)
            # Unchanged, so the file watch does nothing; only the signal reloads it.
            process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "API keys reloaded: 1 in force" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.1)
            assert client.embed(["still served"]).shape == (1, 384)
    finally:
        process.terminate()
        assert process.wait(60) == 0, log.read_text()[-2000:]


def test_a_stream_opened_before_a_reload_is_held_to_the_new_keys(
    start_server: Callable[..., Any], minilm_model: Any, tmp_path: Path
) -> None:
    """A key revoked, lowered or narrowed to other collections while a stream of it is open
    gets no further message through; a key the reload left as it was streams on."""
    import queue

    from embedserve.v1 import embedding_pb2 as epb
    from embedserve.v1 import embedding_pb2_grpc as epb_grpc
    from embedserve.v1 import vector_pb2 as vpb
    from embedserve.v1 import vector_pb2_grpc as vpb_grpc

    keys = tmp_path / "keys.txt"
    lines = {
        "revoked": "revoked-key write",
        "lowered": "lowered-key write",
        "narrowed": "narrowed-key write news",
        "kept": "kept-key write news",
        "admin": "admin-key admin",
    }
    keys.write_text("\n".join(lines.values()) + "\n")
    running = start_server(loaded=minilm_model, api_keys_file=str(keys))
    with EmbedClient(running.target, api_key="admin-key") as admin:
        admin.create_collection("news")

    def open_stream(channel: grpc.Channel, key: str) -> tuple[Any, Any]:
        """An ingestion stream of ``key`` whose messages are put on the returned queue."""
        sent: queue.Queue[Any] = queue.Queue()
        call = vpb_grpc.VectorServiceStub(channel).IngestStream(
            iter(sent.get, None), metadata=[("authorization", f"Bearer {key}")]
        )
        return sent, call

    def batch(number: int) -> Any:
        """The first message names the collection; later ones leave it out, as they may."""
        documents = [vpb.Document(id=f"d{number}", text="the rocket reached orbit")]
        collection = "news" if number == 1 else ""
        return vpb.IngestStreamRequest(
            batch_id=str(number), collection=collection, documents=documents
        )

    with grpc.insecure_channel(running.target) as channel:
        streams = {name: open_stream(channel, f"{name}-key") for name in lines if name != "admin"}
        for sent, call in streams.values():
            sent.put(batch(1))
            assert next(call).batch_id == "1"
        embed_queue: queue.Queue[Any] = queue.Queue()
        embeds = epb_grpc.EmbeddingServiceStub(channel).EmbedStream(
            iter(embed_queue.get, None), metadata=[("authorization", "Bearer revoked-key")]
        )
        embed_queue.put(epb.EmbedStreamRequest(request_id="1", inputs=["hello"]))
        assert next(embeds).request_id == "1"

        lines.pop("revoked")
        lines["lowered"] = "lowered-key read"
        lines["narrowed"] = "narrowed-key write archive"
        keys.write_text("\n".join(lines.values()) + "\n")

        async def sighup() -> None:
            running.server.reload()

        running.run(sighup())
        expected = {
            "revoked": grpc.StatusCode.UNAUTHENTICATED,
            "lowered": grpc.StatusCode.PERMISSION_DENIED,
            "narrowed": grpc.StatusCode.PERMISSION_DENIED,
        }
        for name, (sent, call) in streams.items():
            sent.put(batch(2))
            if name == "kept":
                assert next(call).batch_id == "2"
                sent.put(None)
                continue
            with pytest.raises(grpc.RpcError) as ended:
                next(call)
            assert ended.value.code() == expected[name], name
            assert "the API keys were reloaded during this call" in (ended.value.details() or "")
        embed_queue.put(epb.EmbedStreamRequest(request_id="2", inputs=["hello"]))
        with pytest.raises(grpc.RpcError) as ended:
            next(embeds)
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with EmbedClient(running.target, api_key="admin-key") as admin:
        assert sorted(d.id for d in admin.get("news", ["d1", "d2"])) == ["d1", "d2"]


def test_an_http_stream_opened_before_a_reload_is_held_to_the_new_keys(
    start_server: Callable[..., Any], minilm_model: Any, tmp_path: Path
) -> None:
    """The NDJSON streams as the gRPC ones: a line sent after the key was revoked or
    narrowed ends the stream with an error line; a key left as it was streams on."""
    import socket

    keys = tmp_path / "keys.txt"
    keys.write_text("revoked-key write\nnarrowed-key write news\nkept-key write\nadmin admin\n")
    running = start_server(loaded=minilm_model, api_keys_file=str(keys), http_port=free_port())
    port = running.server.http.port
    with EmbedClient(running.target, api_key="admin") as admin:
        admin.create_collection("news")

    def open_stream(path: str, key: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        return sock

    def send_line(sock: socket.socket, line: dict[str, Any], answers: int) -> str:
        """Send one line; the body read so far once it holds ``answers`` answer lines."""
        body = json.dumps(line).encode() + b"\n"
        sock.sendall(b"%x\r\n%s\r\n" % (len(body), body))
        read = b""
        while read.count(b"}\n") < answers:
            more = sock.recv(65536)
            assert more, read
            read += more
        return read.decode()

    ingest = "/api/v1/collections/news/ingest"
    streams = {
        "revoked": open_stream(ingest, "revoked-key"),
        "narrowed": open_stream(ingest, "narrowed-key"),
        "kept": open_stream(ingest, "kept-key"),
        "embeds": open_stream("/api/v1/embed-stream", "revoked-key"),
    }
    first = {"documents": [{"id": "d1", "text": "the rocket reached orbit"}]}
    try:
        for name, sock in streams.items():
            line = {"inputs": ["hello"]} if name == "embeds" else first
            assert '"total_acknowledged"' in send_line(sock, line, 1) or name == "embeds"
        keys.write_text("narrowed-key write archive\nkept-key write\nadmin admin\n")

        async def sighup() -> None:
            running.server.reload()

        running.run(sighup())
        second = {"documents": [{"id": "d2", "text": "bake the bread"}]}
        answers = {
            name: send_line(sock, {"inputs": ["hi"]} if name == "embeds" else second, 1)
            for name, sock in streams.items()
        }
    finally:
        for sock in streams.values():
            sock.close()
    assert '"total_acknowledged": 2' in answers["kept"], answers["kept"]
    for name, status in (
        ("revoked", "UNAUTHENTICATED"),
        ("narrowed", "PERMISSION_DENIED"),
        ("embeds", "UNAUTHENTICATED"),
    ):
        assert status in answers[name], (name, answers[name])
        assert "the API keys were reloaded during this call" in answers[name]
