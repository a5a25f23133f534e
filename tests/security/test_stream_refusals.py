"""A request stream refused at a later message (a key that does not cover it, a key
reloaded meanwhile, bytes that are not a message, a message over ``max_message_bytes``)
first acknowledges or answers every message accepted before it, then ends with the
refusal's own status, which the access log and the metrics record as such."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from embedserve.client import EmbedClient
from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import vector_pb2 as vpb

INGEST_STREAM = "/embedserve.v1.VectorService/IngestStream"
EMBED_STREAM = "/embedserve.v1.EmbeddingService/EmbedStream"
ADMIN, WRITE_A = "adm-secret-1", "wa-secret-2"  # admin; write role on collection "a" only
MAX_MESSAGE_BYTES = 20_000


class GatedStore:
    """The server's store, whose writes wait until ``opened``: the first message's
    acknowledgement is still owed when the later message is refused."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.opened = threading.Event()

    def upsert(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.opened.wait(60), "the gate was never opened"
        return self.inner.upsert(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text(f"{ADMIN} admin\n{WRITE_A} write a\n")
    return path


@pytest.fixture
def server(start_server: Callable[..., Any], minilm_model: Any, keys: Path) -> Any:
    running = start_server(
        loaded=minilm_model, api_keys_file=str(keys), max_message_bytes=MAX_MESSAGE_BYTES
    )
    with EmbedClient(running.target, api_key=ADMIN) as admin:
        for name in ("a", "b"):
            admin.create_collection(name)
    return running


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="embedserve.access")
    return caplog


def metadata(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def batch(number: int, collection: str = "", text: str = "the rocket reached orbit") -> bytes:
    documents = [vpb.Document(id=f"d{number}", text=text)]
    request = vpb.IngestStreamRequest(
        batch_id=str(number), collection=collection, documents=documents
    )
    return request.SerializeToString()


def undecodable(number: int) -> bytes:
    """An IngestStreamRequest whose one document's text is not UTF-8."""

    def field(tag: int, value: bytes) -> bytes:
        return bytes([(tag << 3) | 2, len(value)]) + value

    document = field(1, b"bad") + field(2, b"bad \xff\xfe")
    return field(1, str(number).encode()) + field(3, document)


def ingest_refused_later(
    running: Any,
    key: str,
    first: bytes,
    later: bytes,
    meanwhile: Callable[[], None] | None = None,
) -> tuple[list[str], grpc.RpcError]:
    """Stream ``first``, then (once it is read and being written, after ``meanwhile``)
    ``later``, which is refused: the acknowledgements received, and the error."""
    core = running.server.vector_service._core
    gate = GatedStore(core.store)
    core.store = gate
    sent: queue.Queue[bytes | None] = queue.Queue()
    acks: list[str] = []
    try:
        with grpc.insecure_channel(running.target) as channel:
            call = channel.stream_stream(
                INGEST_STREAM,
                request_serializer=bytes,
                response_deserializer=vpb.IngestStreamResponse.FromString,
            )(iter(sent.get, None), metadata=metadata(key), timeout=60)
            sent.put(first)
            assert gate.entered.wait(60), "the first message was not written"
            if meanwhile is not None:
                meanwhile()
            sent.put(later)
            sent.put(None)
            time.sleep(0.5)  # the server reads and refuses ``later`` while the write waits
            gate.opened.set()
            with pytest.raises(grpc.RpcError) as ended:
                for ack in call:
                    acks.append(ack.batch_id)
    finally:
        gate.opened.set()
        core.store = gate.inner
    return acks, ended.value


def recorded_as(running: Any, log: pytest.LogCaptureFixture, method: str, code: str) -> None:
    """The call is counted and logged once, with ``code``, and never as CANCELLED."""
    registry = running.server.metrics.registry

    def count(status: str) -> float | None:
        labels = {"method": method, "code": status, "transport": "grpc"}
        return registry.get_sample_value("embedserve_rpc_total", labels)

    def logged() -> list[str]:
        return [
            r.getMessage().split(" ")[1]
            for r in log.records
            if r.name == "embedserve.access" and r.getMessage().startswith(method + " ")
        ]

    deadline = time.monotonic() + 10
    while count(code) != 1 or logged() != [code]:
        assert time.monotonic() < deadline, (count(code), logged())
        time.sleep(0.05)
    assert count("CANCELLED") is None


def stored(running: Any, collection: str, ids: list[str]) -> list[str]:
    with EmbedClient(running.target, api_key=ADMIN) as admin:
        return sorted(d.id for d in admin.get(collection, ids))


def test_a_message_for_a_collection_the_key_does_not_cover_ends_after_the_earlier_acks(
    server: Any, access_log: pytest.LogCaptureFixture
) -> None:
    acks, error = ingest_refused_later(server, WRITE_A, batch(1, "a"), batch(2, "b"))
    assert acks == ["1"]
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'b'" in (error.details() or "")
    assert stored(server, "a", ["d1"]) == ["d1"]
    assert stored(server, "b", ["d2"]) == []
    recorded_as(server, access_log, INGEST_STREAM, "PERMISSION_DENIED")


@pytest.mark.parametrize(
    ("new_line", "code"),
    [
        (f"{WRITE_A} write b", grpc.StatusCode.PERMISSION_DENIED),  # narrowed to another
        ("", grpc.StatusCode.UNAUTHENTICATED),  # revoked
    ],
    ids=["narrowed", "revoked"],
)
def test_a_key_reloaded_mid_stream_ends_it_after_the_earlier_acks(
    server: Any,
    keys: Path,
    access_log: pytest.LogCaptureFixture,
    new_line: str,
    code: grpc.StatusCode,
) -> None:
    def reload() -> None:
        keys.write_text(f"{ADMIN} admin\n{new_line}\n")

        async def sighup() -> None:
            server.server.reload()

        server.run(sighup())

    acks, error = ingest_refused_later(server, WRITE_A, batch(1, "a"), batch(2), reload)
    assert acks == ["1"]
    assert error.code() == code
    assert "the API keys were reloaded during this call" in (error.details() or "")
    assert stored(server, "a", ["d1", "d2"]) == ["d1"]
    recorded_as(server, access_log, INGEST_STREAM, code.name)


def test_an_undecodable_message_ends_the_stream_after_the_earlier_acks(
    server: Any, access_log: pytest.LogCaptureFixture
) -> None:
    acks, error = ingest_refused_later(server, ADMIN, batch(1, "a"), undecodable(2))
    assert acks == ["1"]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message for " + INGEST_STREAM in (error.details() or "")
    assert stored(server, "a", ["d1", "bad"]) == ["d1"]
    recorded_as(server, access_log, INGEST_STREAM, "INVALID_ARGUMENT")


def test_a_message_over_max_message_bytes_ends_the_stream_after_the_earlier_acks(
    server: Any, access_log: pytest.LogCaptureFixture
) -> None:
    """Over the limit but under the transport's ceiling (twice the limit)."""
    big = batch(2, text="z " * 12_000)
    assert MAX_MESSAGE_BYTES < len(big) < 2 * MAX_MESSAGE_BYTES
    acks, error = ingest_refused_later(server, ADMIN, batch(1, "a"), big)
    assert acks == ["1"]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"the limit is {MAX_MESSAGE_BYTES} (max_message_bytes)" in (error.details() or "")
    assert stored(server, "a", ["d1", "d2"]) == ["d1"]
    recorded_as(server, access_log, INGEST_STREAM, "INVALID_ARGUMENT")


def embed_requests(bad: bytes) -> Iterator[bytes]:
    for i in range(8):
        text = f"some text to embed, number {i} " * 3
        yield epb.EmbedStreamRequest(request_id=f"r{i}", inputs=[text]).SerializeToString()
    yield bad


@pytest.mark.parametrize("bad", ["undecodable", "oversized"])
def test_an_embed_stream_answers_every_request_before_an_invalid_one(
    server: Any, access_log: pytest.LogCaptureFixture, bad: str
) -> None:
    if bad == "undecodable":
        last = b"\x0a\x03bad\x12\x02x\xff"  # request_id "bad", inputs ["x\xff"]: not UTF-8
        named = "not a valid message for " + EMBED_STREAM
    else:
        last = epb.EmbedStreamRequest(request_id="big", inputs=["z" * 30_000]).SerializeToString()
        named = f"the limit is {MAX_MESSAGE_BYTES} (max_message_bytes)"
    answered: list[str] = []
    with grpc.insecure_channel(server.target) as channel:
        call = channel.stream_stream(
            EMBED_STREAM,
            request_serializer=bytes,
            response_deserializer=epb.EmbedStreamResponse.FromString,
        )(embed_requests(last), metadata=metadata(ADMIN), timeout=60)
        with pytest.raises(grpc.RpcError) as ended:
            for answer in call:
                answered.append(answer.request_id)
    assert answered == [f"r{i}" for i in range(8)]
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in (ended.value.details() or "")
    recorded_as(server, access_log, EMBED_STREAM, "INVALID_ARGUMENT")
