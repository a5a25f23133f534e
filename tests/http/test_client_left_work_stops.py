"""A client that leaves while its call is being worked on cancels the work, as a gRPC
client's cancel does: the model stops well before the whole request is embedded, and the
call is recorded as CANCELLED (499 in the access line), with no ERROR in the log.

Each call here is far larger than what the server computes in the moments it takes to
notice the client left; the checks compare with half of the call's tokens (or lines).
"""

from __future__ import annotations

import json
import logging
import random
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_records import access_lines, rpc_count, sample

from embedserve.server.auth import ROUTE_METHODS

_GREEK = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
)
_WORDS = _GREEK.split()


def _texts(count: int, seed: int) -> list[str]:
    chosen = random.Random(seed)
    return [" ".join(chosen.choice(_WORDS) for _ in range(150)) for _ in range(count)]


def _tokens(minilm_path: Path, texts: list[str]) -> int:
    """The tokens the model computes for ``texts`` (each under its 256-token limit)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path))
    return sum(len(ids) for ids in tokenizer(texts)["input_ids"])


def _sample(running: Any, name: str, **labels: str) -> float:
    return sample(running, name, **labels)


def _computed(running: Any) -> float:
    return _sample(running, "embedserve_tokens_total")


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _settled(running: Any) -> float:
    """The tokens computed once the model is idle: no window queued and the count still
    for a while (a pass under way when the call was cancelled ends first)."""
    last, still_since = _computed(running), time.monotonic()
    deadline = still_since + 60
    while time.monotonic() - still_since < 0.5 or _sample(running, "embedserve_queue_depth"):
        assert time.monotonic() < deadline, "the model did not go idle"
        time.sleep(0.05)
        now = _computed(running)
        if now != last:
            last, still_since = now, time.monotonic()
    return last


def _access_line(caplog: pytest.LogCaptureFixture, path: str) -> str:
    (line, *_) = access_lines(caplog, f" {path} ", wait_s=60) or ["no access line"]
    return line


def _count(running: Any, route: str, code: str) -> float:
    return rpc_count(running, ROUTE_METHODS[route], code, "http")


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
def served(start_http_server: Callable[..., Any], minilm_model: Any) -> Any:
    return start_http_server(loaded=minilm_model)


def _check_cut_short(
    served: Any, caplog: pytest.LogCaptureFixture, path: str, before: float, whole: int
) -> None:
    """The stream on ``path`` was logged and counted CANCELLED, having computed less than
    half its ``whole`` tokens."""
    line = _access_line(caplog, path)
    assert line.startswith(f"HTTP POST {path} CANCELLED 499 "), line
    spent = _settled(served) - before
    assert spent < whole / 2, f"{spent:.0f} of the stream's {whole} tokens computed"
    assert _count(served, f"POST {path}", "CANCELLED") == 1
    assert _errors(caplog) == []


def _head(path: str, content_type: str, framing: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("path", ["/api/v1/embed", "/v1/embeddings"])
def test_a_call_whose_client_left_stops_computing(
    served: Any, caplog: pytest.LogCaptureFixture, minilm_path: Path, path: str
) -> None:
    texts = _texts(600, seed=1)
    whole = _tokens(minilm_path, texts)
    field = "inputs" if path.startswith("/api/") else "input"
    body = json.dumps({field: texts}).encode()
    caplog.set_level(logging.INFO)
    before = _computed(served)
    head = _head(path, "application/json", f"Content-Length: {len(body)}")
    with socket.create_connection(("127.0.0.1", served.server.http.port), timeout=60) as sock:
        sock.sendall(head + body)  # the whole body: the call runs
        _wait_for(lambda: _computed(served) > before, "the call's first batch")
    # The client is gone. The call went on to embed every text and was logged OK 200.
    line = _access_line(caplog, path)
    assert line.startswith(f"HTTP POST {path} CANCELLED 499 "), line
    spent = _settled(served) - before
    assert spent < whole / 2, f"{spent:.0f} of the call's {whole} tokens computed"
    route = f"POST {path}"
    assert _count(served, route, "CANCELLED") == 1 and _count(served, route, "OK") == 0
    assert _errors(caplog) == []


def test_a_stream_whose_client_left_mid_body_stops_its_work_in_flight(
    served: Any, caplog: pytest.LogCaptureFixture, minilm_path: Path
) -> None:
    requests = [_texts(150, seed=10 + i) for i in range(4)]  # all in flight at once
    whole = sum(_tokens(minilm_path, texts) for texts in requests)
    lines = [json.dumps({"inputs": texts}).encode() + b"\n" for texts in requests]
    path = "/api/v1/embed-stream"
    caplog.set_level(logging.INFO)
    before = _computed(served)
    head = _head(path, "application/x-ndjson", "Transfer-Encoding: chunked")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in lines)
    with socket.create_connection(("127.0.0.1", served.server.http.port), timeout=60) as sock:
        sock.sendall(head + chunks)  # and the body goes on: no last chunk
        _wait_for(lambda: _computed(served) > before, "the stream's first batch")
    # The body's reader saw the client leave, but every request in flight was still
    # embedded (and the stream logged CANCELLED only after them).
    _check_cut_short(served, caplog, path, before, whole)


def test_a_call_answered_in_full_is_still_ok(served: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Once the answer is out the server reports the exchange over: no cancel then.
    caplog.set_level(logging.INFO)
    with httpx.Client(base_url=served.url, timeout=60) as http:
        for _ in range(2):  # the same connection, kept alive
            reply = http.post("/api/v1/embed", json={"inputs": _texts(3, seed=20)})
            assert reply.status_code == 200, reply.text
    line = _access_line(caplog, "/api/v1/embed")
    assert line.startswith("HTTP POST /api/v1/embed OK 200 "), line
    time.sleep(0.2)
    assert _count(served, "POST /api/v1/embed", "OK") == 2
    assert _count(served, "POST /api/v1/embed", "CANCELLED") == 0


def _reset(sock: socket.socket) -> None:
    """Leave as a client killed does: the connection reset (RST), not closed in order."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _stored(http: httpx.Client, collection: str) -> int:
    reply = http.post(f"/api/v1/collections/{collection}/count", json={})
    reply.raise_for_status()
    return int(reply.json()["count"])


def _lines_at_once(path: str, lines: list[bytes]) -> bytes:
    """A stream's head and lines, in one chunk of a body not yet ended (its producer goes on
    writing), that reaches the server in one read before its call begins: under 64 KiB,
    which uvicorn buffers without pausing. The call then holds every line and asks for no
    more until it has answered them; only the report of the lost connection can tell it
    that the client left (the server watches for it once a body has ended)."""
    head = _head(path, "application/x-ndjson", "Transfer-Encoding: chunked")
    body = b"".join(lines)
    request = head + b"%x\r\n%s\r\n" % (len(body), body)  # and no last chunk
    assert len(request) < 60_000, len(request)
    return request


def test_an_ingest_stream_sent_at_once_stops_writing_when_its_client_resets(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The stream went on writing every batch after its client reset the connection
    (34 stored at the reset, 187 of 200 once it stopped), as gRPC's does not."""
    lines = 300
    path = "/api/v1/collections/cut/ingest"
    body = [
        json.dumps(
            {"documents": [{"id": f"d{k}", "text": f"note {k} on rockets, bread and the sea"}]}
        ).encode()
        + b"\n"
        for k in range(lines)
    ]
    caplog.set_level(logging.INFO)
    with httpx.Client(base_url=served.url, timeout=60) as http:
        http.post("/api/v1/collections", json={"name": "cut"}).raise_for_status()
        sock = socket.create_connection(("127.0.0.1", served.server.http.port), timeout=60)
        try:
            sock.sendall(_lines_at_once(path, body))
            _wait_for(lambda: _stored(http, "cut") > 0, "the stream's first write")
        finally:
            _reset(sock)
        at_reset = _stored(http, "cut")
        line = _access_line(caplog, path)  # written once the stream has ended
        assert line.startswith(f"HTTP POST {path} CANCELLED 499 "), line
        stored = _stored(http, "cut")
        time.sleep(0.5)
        assert _stored(http, "cut") == stored, "still writing after the call ended"
    assert stored < lines / 2, f"{stored} of {lines} lines stored ({at_reset} at the reset)"
    assert _count(served, "POST /api/v1/collections/{name}/ingest", "CANCELLED") == 1
    assert _errors(caplog) == []


def test_an_embed_stream_sent_at_once_stops_embedding_when_its_client_resets(
    served: Any, caplog: pytest.LogCaptureFixture, minilm_path: Path
) -> None:
    """As above for embed-stream: its answers went nowhere (uvicorn drops what is sent
    once the client is gone) while it embedded every line."""
    marks = random.Random(7)
    # Punctuation is a token a character: many tokens in a body read at once.
    requests = [["".join(marks.choice("!?.,;:") for _ in range(240))] for _ in range(220)]
    whole = sum(_tokens(minilm_path, texts) for texts in requests)
    body = [json.dumps({"inputs": texts}).encode() + b"\n" for texts in requests]
    path = "/api/v1/embed-stream"
    caplog.set_level(logging.INFO)
    before = _computed(served)
    sock = socket.create_connection(("127.0.0.1", served.server.http.port), timeout=60)
    try:
        sock.sendall(_lines_at_once(path, body))
        _wait_for(lambda: _computed(served) > before, "the stream's first batch")
    finally:
        _reset(sock)
    _check_cut_short(served, caplog, path, before, whole)
