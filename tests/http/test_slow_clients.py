"""A connection that does not finish sending a request's head in time, or stops sending its
body for http_body_idle_s, is closed: one that sent nothing, part of a head or part of a
body was held as long as its client liked (an open file each, no key needed), until the
process had none left for either transport."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from typing import Any

import pytest

from embedserve.server.http import observe, slow_clients

HEAD = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.fixture
def quick_deadline(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(slow_clients, "HEAD_TIMEOUT_S", 1.0)
    return 1.0


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closed ``sock`` (what it sent before is read and dropped)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:  # closed at once (aborted), not politely
        return True
    return True


def answer(sock: socket.socket) -> bytes:
    """One whole response: its head, then as much body as its content-length says (which
    may come in a later packet, where it was read as the start of the next answer)."""
    got = b""
    while b"\r\n\r\n" not in got:
        more = sock.recv(65536)
        assert more, got
        got += more
    head, _, body = got.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    while length and len(body) < int(length[1]):
        more = sock.recv(65536)
        assert more, got
        body += more
    return got[: len(head) + 4] + body


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: te"])
def test_a_connection_that_sends_no_whole_head_is_closed(
    both: Any, quick_deadline: float, sent: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", both.server.http.port)) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        assert closed_within(sock, 20)
        assert time.monotonic() - started >= quick_deadline * 0.5


def test_a_head_sent_in_pieces_in_time_is_answered_and_so_is_the_next(
    both: Any, quick_deadline: float
) -> None:
    with socket.create_connection(("127.0.0.1", both.server.http.port), timeout=20) as sock:
        sock.sendall(HEAD[:10])
        time.sleep(quick_deadline / 2)
        sock.sendall(HEAD[10:])
        assert answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(quick_deadline * 1.5)  # longer than the deadline, between requests
        sock.sendall(HEAD)
        assert answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(HEAD[:10])  # the next request's head, begun and never finished
        assert closed_within(sock, 20)


def embed_request(body: bytes) -> bytes:
    return (
        b"POST /api/v1/embed HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    )


BODY = b'{"inputs": ["a body sent in pieces"]}'


@pytest.mark.parametrize("idle_s", [1.0, 0.0])
def test_a_body_that_stops_coming_is_dropped_after_the_idle_time(
    start_http_server: Any, minilm_model: Any, idle_s: float
) -> None:
    running = start_http_server(loaded=minilm_model, http_body_idle_s=idle_s)
    with socket.create_connection(("127.0.0.1", running.server.http.port)) as sock:
        sock.sendall(embed_request(BODY) + BODY[:12])
        started = time.monotonic()
        if idle_s:
            assert closed_within(sock, 20)
            assert time.monotonic() - started >= idle_s * 0.5
        else:  # 0: never timed
            assert not closed_within(sock, 3)


def test_a_body_sent_in_pieces_each_in_time_is_answered(
    start_http_server: Any, minilm_model: Any
) -> None:
    running = start_http_server(loaded=minilm_model, http_body_idle_s=1.0)
    with socket.create_connection(("127.0.0.1", running.server.http.port), timeout=20) as sock:
        sock.sendall(embed_request(BODY))
        for start in range(0, len(BODY), 8):  # 3 s in all, every piece within the second
            time.sleep(0.6)
            sock.sendall(BODY[start : start + 8])
        assert answer(sock).startswith(b"HTTP/1.1 200")


def test_a_stream_may_idle_between_lines_once_its_answer_began(
    start_http_server: Any, minilm_model: Any
) -> None:
    """Its client may wait for each answer line before sending the next."""
    running = start_http_server(loaded=minilm_model, http_body_idle_s=1.0)
    head = (
        b"POST /api/v1/embed-stream HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    line = b'{"inputs": ["a line"]}\n'
    chunk = b"%x\r\n%s\r\n" % (len(line), line)
    with socket.create_connection(("127.0.0.1", running.server.http.port), timeout=20) as sock:
        sock.sendall(head + chunk)
        got = b""
        while got.count(b"}\n") < 1:
            got += sock.recv(65536)
        time.sleep(3)  # three idle times
        sock.sendall(chunk + b"0\r\n\r\n")
        while not got.endswith(b"0\r\n\r\n"):  # the chunked answer's end
            more = sock.recv(65536)
            assert more, got
            got += more
    assert got.startswith(b"HTTP/1.1 200")
    assert got.count(b'"embeddings"') == 2 and b'"error"' not in got


def test_a_pipelined_request_whose_body_stops_is_dropped_too(
    start_http_server: Any, minilm_model: Any
) -> None:
    """The second request, sent with the first, is read from the buffer when the first's
    answer is complete, with no new data arriving: its body was never timed."""
    running = start_http_server(loaded=minilm_model, http_body_idle_s=1.0)
    with socket.create_connection(("127.0.0.1", running.server.http.port), timeout=20) as sock:
        sock.sendall(embed_request(BODY) + BODY + embed_request(BODY) + BODY[:5])
        assert answer(sock).startswith(b"HTTP/1.1 200")
        assert closed_within(sock, 20)


@pytest.mark.parametrize(
    ("path", "status"), [(b"/api/v1/nowhere", b"404"), (b"/api/v1/embed", b"400")]
)
def test_an_answer_before_the_body_goes_out_at_once_to_a_client_waiting_to_continue(
    both: Any, monkeypatch: pytest.MonkeyPatch, path: bytes, status: bytes
) -> None:
    """A client sending Expect: 100-continue (curl, past 1 MB) holds its body until told to
    continue; an answer given before the body was read (a 404, a body declared too large)
    waited for the body to drain, which never came: 5 s on every such answer. Then the
    connection stayed open, and the client's next request on it was read as that body."""
    monkeypatch.setattr(observe, "_DRAIN_SECONDS", 60.0)
    head = (
        b"POST %s HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
        b"expect: 100-continue\r\ncontent-length: 200000000\r\n\r\n" % path
    )
    with socket.create_connection(("127.0.0.1", both.server.http.port), timeout=20) as sock:
        sock.sendall(head)
        got = answer(sock)
        assert got.startswith(b"HTTP/1.1 " + status)
        assert got.rstrip().endswith(b"}")  # the whole JSON error, not only the head
        assert re.search(rb"(?i)\r\nconnection: close\r\n", got), got
        rest = b""
        with contextlib.suppress(ConnectionError):  # closed, or reset for what it did not read
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            rest = sock.recv(65536)
        assert rest == b""  # nothing after the answer is read as the body


def test_a_guard_refusal_before_a_withheld_body_closes_the_connection(
    start_http_server: Any, minilm_model: Any
) -> None:
    """The key is checked before the body is read, so a client waiting to be told to
    continue is refused with its body unsent; its next request was taken as the body (20
    bytes of it: the good request was answered 400; or all of it, never answered)."""
    running = start_http_server(loaded=minilm_model, api_keys="k-read read")
    head = (
        b"POST /v1/embeddings HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
        b"expect: 100-continue\r\ncontent-length: 20\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", running.server.http.port), timeout=20) as sock:
        sock.sendall(head)
        got = answer(sock)
        assert got.startswith(b"HTTP/1.1 401") and b"100 Continue" not in got
        assert re.search(rb"(?i)\r\nconnection: close\r\n", got), got


@pytest.mark.parametrize("path", [b"/api/v1/embed", b"/api/v1/embed-stream"])
def test_a_request_framed_both_ways_is_refused_and_its_connection_closed(
    both: Any, path: bytes
) -> None:
    """Content-Length and chunked framing together were served on a kept-alive connection:
    a proxy in front that read the body by its length would have sent the rest of the
    chunks as a request of its own. A stream's route answers before reading its body: its
    refusal came after a 200 (and a traceback)."""
    smuggled = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    head = (
        b"POST %s HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\ntransfer-encoding: chunked\r\n\r\n" % (path, len(chunk))
    )
    with socket.create_connection(("127.0.0.1", both.server.http.port), timeout=20) as sock:
        sock.sendall(head + chunk + smuggled)
        got = b""
        while more := sock.recv(65536):  # to the connection's end
            got += more
    assert got.startswith(b"HTTP/1.1 400"), got
    assert b"a request gives Content-Length or Transfer-Encoding, not both" in got
    assert re.search(rb"(?i)\r\nconnection: close\r\n", got)
    assert got.count(b"HTTP/1.1 ") == 1  # the request after it is not answered
