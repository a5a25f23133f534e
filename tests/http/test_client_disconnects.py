"""A client that goes away before its body's end (a timeout, Ctrl-C, a crashed producer)
cancelled its call: recorded as CANCELLED (499 in the access line), as gRPC records it,
with no ERROR and no traceback in the server's log."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

import httpx
import pytest
from server_records import access_lines

from embedserve.server.auth import ROUTE_METHODS


def _answered_then_gone(port: int, path: str, line: bytes) -> bytes:
    """Send one NDJSON line of a chunked body, read its answer line, then close with the
    body still open."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-ndjson\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(line), line))
        answer = b""
        while b"}\n" not in answer:  # a hang raises TimeoutError
            more = sock.recv(65536)
            assert more, answer
            answer += more
    return answer


def _gone_mid_body(port: int, path: str) -> None:
    """Declare a body, send part of it, then close."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + b'{"input": ')
        time.sleep(0.2)  # the server is reading the body when the client goes


def _access_line(caplog: pytest.LogCaptureFixture, path: str) -> str:
    """The access line of the call on ``path``, once the server wrote it."""
    (line, *_) = access_lines(caplog, f" {path} ") or ["no access line"]
    return line


def _count(running: Any, route: str, code: str) -> float | None:
    labels = {"method": ROUTE_METHODS[route], "code": code, "transport": "http"}
    return running.server.metrics.registry.get_sample_value("embedserve_rpc_total", labels)


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("route", "path", "line"),
    [
        ("POST /api/v1/embed-stream", "/api/v1/embed-stream", {"inputs": ["a"]}),
        (
            "POST /api/v1/collections/{name}/ingest",
            "/api/v1/collections/feed/ingest",
            {"documents": [{"id": "d1", "text": "one"}]},
        ),
    ],
)
def test_a_stream_left_mid_body_is_cancelled_without_an_error(
    both: Any, caplog: pytest.LogCaptureFixture, route: str, path: str, line: dict[str, Any]
) -> None:
    with httpx.Client(base_url=both.url, timeout=60) as http:
        http.post("/api/v1/collections", json={"name": "feed"}).raise_for_status()
    caplog.set_level(logging.INFO)
    port = both.server.http.port
    answer = _answered_then_gone(port, path, json.dumps(line).encode() + b"\n")
    assert answer.startswith(b"HTTP/1.1 200 OK") and b'"error"' not in answer
    access = _access_line(caplog, path)  # it was OK 200, after two ERROR tracebacks
    assert access.startswith(f"HTTP POST {path} CANCELLED 499 "), access
    assert _count(both, route, "CANCELLED") == 1 and _count(both, route, "OK") is None
    time.sleep(0.2)  # uvicorn logged its traceback after the access line
    assert _errors(caplog) == []


def test_a_call_left_mid_body_is_cancelled_not_a_bad_request(
    both: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _gone_mid_body(both.server.http.port, "/v1/embeddings")
    # It was INVALID_ARGUMENT 400: FastAPI answers a body it could not read so.
    line = _access_line(caplog, "/v1/embeddings")
    assert line.startswith("HTTP POST /v1/embeddings CANCELLED 499 "), line
    assert _count(both, "POST /v1/embeddings", "CANCELLED") == 1
    assert _errors(caplog) == []


def test_a_call_answered_in_full_is_not_cancelled(
    both: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A file's answer listens for a disconnect, which the server reports once it is sent.
    caplog.set_level(logging.INFO)
    path = "/docs-assets/swagger-ui.css"
    with httpx.Client(base_url=both.url, timeout=60) as http:
        assert http.get(path).status_code == 200
    line = _access_line(caplog, path)
    assert line.startswith(f"HTTP GET {path} OK 200 "), line


def test_a_head_of_a_file_whose_client_leaves_after_the_head_is_not_cancelled(
    both: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """curl -I has its whole answer with the head and closes: the file streamed on after
    it, and the call was logged CANCELLED 499, and counted with the paths no route takes."""
    caplog.set_level(logging.INFO)
    path = "/docs-assets/swagger-ui.css"
    registry = both.server.metrics.registry

    def unmatched() -> float:
        labels = {"method": "unmatched", "transport": "http"}
        return sum(
            registry.get_sample_value("embedserve_rpc_total", {**labels, "code": code}) or 0
            for code in ("OK", "CANCELLED")
        )

    before = unmatched()
    with socket.create_connection(("127.0.0.1", both.server.http.port), timeout=20) as sock:
        sock.sendall(b"HEAD %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 10
    while not access_lines(caplog, f" {path} "):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    line = _access_line(caplog, path)
    assert line.startswith(f"HTTP HEAD {path} OK 200 "), line
    with httpx.Client(base_url=both.url, timeout=60) as http:
        assert http.get(path).status_code == 200
    time.sleep(0.2)  # counted once the answer has gone
    assert unmatched() == before
