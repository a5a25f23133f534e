"""Malformed bytes on the wire must not take the server down or stop it serving others.

Each scenario talks to one real server subprocess below the gRPC client library: raw TCP
sockets, hand-made HTTP/2 frames, and the ``h2`` package for well-formed HTTP/2 carrying
broken gRPC framing. After every scenario the server must still be alive, report SERVING
and embed correctly. Where a gRPC status comes back it is recorded (shown by the last
test) and must never be UNKNOWN: that would be an exception escaping a handler.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass
from raw_grpc import raw_call
from test_fuzz import METHODS, Served, running_server

from embedserve.v1 import embedding_pb2 as epb

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMBED = "/embedserve.v1.EmbeddingService/Embed"
EMBED_STREAM = "/embedserve.v1.EmbeddingService/EmbedStream"
IO_TIMEOUT_S = 1.0
CALL_TIMEOUT_S = 5.0
STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
# Status codes seen per scenario, shown by the last test for the report.
SEEN: dict[str, str] = {}

# HTTP/2 frame types (RFC 9113, section 6).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS = 0x1, 0x4
FRAME_NAMES = {
    DATA: "DATA",
    HEADERS: "HEADERS",
    RST_STREAM: "RST_STREAM",
    SETTINGS: "SETTINGS",
    PING: "PING",
    GOAWAY: "GOAWAY",
    WINDOW_UPDATE: "WINDOW_UPDATE",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with running_server(tmp_path_factory.mktemp("wire")) as served:
        yield served


@pytest.fixture(autouse=True)
def still_serving(served: Served) -> Iterator[None]:
    """Every scenario ends with the server alive, SERVING and embedding correctly."""
    yield
    served.assert_serving()


# -- raw sockets and frames ----------------------------------------------------------------


def frame(kind: int, flags: int, stream: int, payload: bytes, length: int | None = None) -> bytes:
    """One HTTP/2 frame; ``length`` may lie about the payload size."""
    size = len(payload) if length is None else length
    return size.to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def connect(served: Served) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=IO_TIMEOUT_S)
    sock.settimeout(IO_TIMEOUT_S)
    return sock


def drain(sock: socket.socket) -> tuple[bytes, bool]:
    """Read what the server sends until it closes (True) or goes quiet (False)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return received, False
    except OSError:  # reset by the server
        pass
    return received, True


def send_and_close(served: Served, data: bytes) -> str:
    """Send ``data``, half-close (the server sees EOF mid-frame), describe what came back.

    The server must hang up: a connection it cannot use must not stay open."""
    with connect(served) as sock:
        with contextlib.suppress(OSError):  # the server may hang up half-way
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        received, closed = drain(sock)
    assert closed, f"connection still open {IO_TIMEOUT_S} s after EOF"
    runs = [(name, len(list(group))) for name, group in itertools.groupby(frame_names(received))]
    return " ".join(name if n == 1 else f"{name}x{n}" for name, n in runs) + " | closed"


def abort(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER 0): the rudest way to leave."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def frame_names(received: bytes) -> list[str]:
    """The types of the HTTP/2 frames in what the server sent, in order."""
    names, offset = [], 0
    while offset + 9 <= len(received):
        kind = received[offset + 3]
        names.append(FRAME_NAMES.get(kind, str(kind)))
        offset += 9 + int.from_bytes(received[offset : offset + 3], "big")
    return names


# -- gRPC over h2 --------------------------------------------------------------------------


def grpc_message(payload: bytes, flag: int = 0, length: int | None = None) -> bytes:
    """The gRPC length-prefixed message: flag byte, 4-byte big-endian length, payload."""
    size = len(payload) if length is None else length
    return bytes((flag,)) + size.to_bytes(4, "big") + payload


@dataclass
class Response:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    reset: bool = False
    closed: bool = False
    complete: bool = False

    @property
    def status(self) -> str:
        code = self.headers.get("grpc-status")
        return STATUS_NAMES.get(int(code), code) if code is not None else "none"


def grpc_over_h2(
    served: Served,
    path: str,
    body: bytes,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """One gRPC call written by hand: HEADERS, one DATA frame, then the response is read."""
    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config)
    response = Response()
    with connect(served) as sock:
        conn.initiate_connection()
        conn.send_headers(1, call_headers(path, f"127.0.0.1:{served.port}", *extra_headers))
        conn.send_data(1, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        end = time.monotonic() + CALL_TIMEOUT_S
        while not response.complete and time.monotonic() < end:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                response.closed = True
                break
            if not chunk:
                response.closed = True
                break
            try:
                events = conn.receive_data(chunk)
            except h2.exceptions.ProtocolError:
                response.closed = True
                break
            for event in events:
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    response.headers.update(dict(event.headers))  # type: ignore[arg-type]
                elif isinstance(event, h2.events.DataReceived):
                    response.data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamEnded):
                    response.complete = True
                elif isinstance(event, h2.events.StreamReset):
                    response.reset = response.complete = True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    response.closed = response.complete = True
            sock.sendall(conn.data_to_send())
    return response


def start_call(path: str, message: bytes, end_stream: bool) -> bytes:
    """The client's first bytes of a call: preface, SETTINGS, HEADERS and one message."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, call_headers(path, "x"))
    conn.send_data(1, grpc_message(message), end_stream=end_stream)
    return conn.data_to_send()


def call_headers(path: str, authority: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *extra,
    ]


def embed_request_bytes() -> bytes:
    return epb.EmbedRequest(inputs=["raw h2 works"]).SerializeToString()


def embed_stream_request_bytes() -> bytes:
    return epb.EmbedStreamRequest(request_id="r1", inputs=["raw h2 works"]).SerializeToString()


def test_hand_made_grpc_call_works(served: Served) -> None:
    """The h2 helper itself is right: a well-formed call gets OK and a 384-d vector."""
    response = grpc_over_h2(served, EMBED, grpc_message(embed_request_bytes()))
    assert response.status == "OK", response
    reply = epb.EmbedResponse.FromString(response.data[5:])
    assert len(reply.embeddings[0].values) == 384


# -- scenarios -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 9, 24, 100, 4096, 70_000])
def test_random_bytes(served: Served, size: int) -> None:
    SEEN[f"raw/random-{size}"] = send_and_close(served, random.Random(size).randbytes(size))


PREFACE_GARBAGE: dict[str, bytes] = {
    "random": random.Random(1).randbytes(512),
    "http1": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "half-preface": PREFACE[:10],
    "settings-then-random": frame(SETTINGS, 0, 0, b"") + random.Random(2).randbytes(2048),
    "bad-settings-payload": frame(SETTINGS, 0, 0, b"\x00\x04\xff\xff"),  # not 6-byte entries
    "hpack-garbage": frame(SETTINGS, 0, 0, b"")
    + frame(HEADERS, END_HEADERS | END_STREAM, 1, random.Random(3).randbytes(64)),
    "window-update-overflow": frame(SETTINGS, 0, 0, b"")
    + frame(WINDOW_UPDATE, 0, 0, (2**31 - 1).to_bytes(4, "big")) * 2,
    "ping-flood": frame(SETTINGS, 0, 0, b"") + frame(PING, 0, 0, b"\x00" * 8) * 500,
    "rst-idle-stream": frame(SETTINGS, 0, 0, b"") + frame(RST_STREAM, 0, 7, b"\x00\x00\x00\x08"),
    "even-stream-id": frame(SETTINGS, 0, 0, b"")
    + frame(HEADERS, END_HEADERS, 2, random.Random(4).randbytes(16)),
}


@pytest.mark.parametrize("name", PREFACE_GARBAGE)
def test_preface_then_garbage(served: Served, name: str) -> None:
    SEEN[f"raw/preface+{name}"] = send_and_close(served, PREFACE + PREFACE_GARBAGE[name])


TRUNCATED: dict[str, bytes] = {
    # A frame header claiming more payload than follows before the connection closes.
    "headers-claims-1000": frame(HEADERS, END_HEADERS, 1, b"\x82\x86", length=1000),
    "data-claims-16384": frame(DATA, 0, 1, b"abc", length=16_384),
    "settings-claims-60": frame(SETTINGS, 0, 0, b"\x00\x01", length=60),
    "half-frame-header": frame(SETTINGS, 0, 0, b"")[:5],
    # Over any max frame size: the server must answer FRAME_SIZE_ERROR, not wait for it.
    "claims-16MiB": frame(DATA, 0, 1, b"x" * 100, length=2**24 - 1),
}


@pytest.mark.parametrize("name", TRUNCATED)
def test_truncated_http2_frames(served: Served, name: str) -> None:
    data = PREFACE + frame(SETTINGS, 0, 0, b"") + TRUNCATED[name]
    SEEN[f"raw/truncated-{name}"] = send_and_close(served, data)


# A half-closed call whose message never completes. grpc.aio's server (not embedserve code:
# no handler runs before a whole message is in) waits for the rest until the call's deadline
# or the connection closes, so these calls carry a deadline, and the server must keep
# serving everyone else meanwhile (checked after every scenario).
INCOMPLETE: dict[str, bytes] = {
    # The message prefix claims 1000 bytes; 10 arrive, then END_STREAM.
    "length-claims-more": grpc_message(b"\x0a\x08partial!", length=1000),
    "prefix-only": grpc_message(b"", length=50),
    "half-prefix": b"\x00\x00\x00",
    "no-message": b"",
}


@pytest.mark.parametrize("name", INCOMPLETE)
def test_incomplete_grpc_message(served: Served, name: str) -> None:
    response = grpc_over_h2(served, EMBED, INCOMPLETE[name], (("grpc-timeout", "1S"),))
    SEEN[f"framing/{name}"] = response.status if response.complete else "no answer"
    assert response.complete or response.closed, f"no answer within {CALL_TIMEOUT_S} s"
    assert response.status in {"DEADLINE_EXCEEDED", "INVALID_ARGUMENT", "INTERNAL"}, response


GRPC_FRAMING: dict[str, tuple[bytes, tuple[tuple[str, str], ...]]] = {
    "length-4GiB": (grpc_message(b"\x0a\x01x", length=2**32 - 1), ()),
    "flag-2": (grpc_message(embed_request_bytes(), flag=2), ()),
    "flag-0xff": (grpc_message(embed_request_bytes(), flag=0xFF), ()),
    "compressed-without-encoding": (grpc_message(embed_request_bytes(), flag=1), ()),
    "compressed-not-gzip": (
        grpc_message(embed_request_bytes(), flag=1),
        (("grpc-encoding", "gzip"),),
    ),
    "unknown-encoding": (
        grpc_message(embed_request_bytes(), flag=1),
        (("grpc-encoding", "zstd-9000"),),
    ),
    "two-messages-for-unary": (grpc_message(embed_request_bytes()) * 2, ()),
}


# A unary call carrying two messages breaks the gRPC spec, but taking the first is harmless.
MAY_SUCCEED = ("two-messages-for-unary",)


@pytest.mark.parametrize("name", GRPC_FRAMING)
def test_broken_grpc_framing(served: Served, name: str) -> None:
    """The call must end promptly (a status, a reset or a closed connection), never UNKNOWN."""
    body, headers = GRPC_FRAMING[name]
    response = grpc_over_h2(served, EMBED, body, headers)
    SEEN[f"framing/{name}"] = response.status if response.complete else "no answer"
    assert response.complete or response.closed, f"no answer within {CALL_TIMEOUT_S} s"
    assert response.status != "UNKNOWN", response
    if name not in MAY_SUCCEED:
        assert response.status != "OK", response


BODIES: dict[str, bytes] = {
    # Not protobuf at all.
    "invalid-tag-0": b"\x00\x01",
    "varint-never-ends": b"\x08" + b"\xff" * 11,
    "length-past-end": b"\x0a\x20abc",
    "wire-type-7": b"\x0f\x00",
    "end-group-unopened": b"\x0c",
    "random": random.Random(5).randbytes(64),
    "invalid-utf8-string": b"\x0a\x02\xff\xfe",  # field 1 is a string in most requests
    # Well-formed: unknown fields (a known number with the wrong wire type counts as one).
    "unknown-field-99": b"\x98\x06\x01",
    "field-1-as-varint": b"\x08\x05",
    "big-unknown-field": b"\xfa\x3f\xe0\xa7\x12" + b"x" * 300_000,  # field 1023, 300 kB
}


def parses(method: MethodDescriptor, body: bytes) -> bool:
    """Whether the protobuf library itself accepts ``body`` as the method's request."""
    try:
        GetMessageClass(method.input_type).FromString(body)
    except DecodeError:
        return False
    return True


def call_code(channel: grpc.Channel, method: MethodDescriptor, body: bytes) -> grpc.StatusCode:
    error = raw_call(channel, method, body, CALL_TIMEOUT_S)
    return grpc.StatusCode.OK if error is None else error.code()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_body_is_not_protobuf(served: Served, method: MethodDescriptor) -> None:
    """Bytes that do not parse as the request: an error, INTERNAL at worst, never UNKNOWN.
    Bytes that do parse get the answer any request with those fields would get."""
    failures = []
    for name, body in BODIES.items():
        code = call_code(served.channel, method, body)
        valid = parses(method, body)
        SEEN[f"body/{method.name}/{name}{'' if valid else ' (unparseable)'}"] = code.name
        if valid:
            bad = code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
        else:
            bad = code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK)
        if bad or code == grpc.StatusCode.DEADLINE_EXCEEDED:
            failures.append(f"{name} ({'parses' if valid else 'unparseable'}): {code.name}")
    assert not failures, failures


def test_half_open_connections_do_not_block_others(served: Served) -> None:
    """Connections that never finish (or never start) the handshake, and a call whose body
    never comes, must not hold up anyone else."""
    idle = [connect(served) for _ in range(20)]
    partial = [connect(served) for _ in range(10)]
    for sock in partial:
        sock.sendall(PREFACE[:12])
    stalled = connect(served)
    stalled.sendall(start_call(EMBED, embed_request_bytes(), end_stream=False)[:-3])
    try:
        for _ in range(3):
            started = time.monotonic()
            served.assert_serving()
            assert time.monotonic() - started < 5
    finally:
        for sock in [*idle, *partial, stalled]:
            sock.close()


def open_at_stage(served: Served, stage: int) -> socket.socket:
    """A connection left at ``stage``: 0 silent, 1 after the preface and SETTINGS, 2 inside
    a complete unary Embed call, 3 inside an EmbedStream call that is still open."""
    sock = connect(served)
    with contextlib.suppress(OSError):
        if stage == 1:
            sock.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
        elif stage == 2:
            sock.sendall(start_call(EMBED, embed_request_bytes(), end_stream=True))
        elif stage == 3:
            sock.sendall(start_call(EMBED_STREAM, embed_stream_request_bytes(), end_stream=False))
    return sock


def test_many_connections_dropped_abruptly(served: Served) -> None:
    """Hundreds of connections reset (RST, not FIN) at every stage: one at a time, and in
    batches of 100 open at once, while the server is still working on their calls."""
    rng = random.Random(6)
    for i in range(200):
        sock = open_at_stage(served, i % 4)
        if rng.random() < 0.5:
            time.sleep(0.002)
        abort(sock)
    for _ in range(3):
        batch = [open_at_stage(served, rng.randrange(4)) for _ in range(100)]
        time.sleep(0.05)
        for sock in batch:
            abort(sock)


def test_dropped_streams_leave_nothing_unhandled(served: Served) -> None:
    """A client that vanishes in the middle of a stream is ordinary; the server must clean
    up after it without exceptions escaping into its log ("Task exception was never
    retrieved", tracebacks)."""
    offset = served.log_size()
    for i in range(20):
        sock = connect(served)
        sock.sendall(start_call(EMBED_STREAM, embed_stream_request_bytes(), end_stream=False))
        time.sleep(0.05 * (i % 3))  # before, while and after the message is answered
        abort(sock)
    time.sleep(0.5)
    served.assert_serving()
    output = served.log_from(offset)
    assert "Traceback" not in output and "never retrieved" not in output, output[-4000:]


def test_server_survived_all_of_it(served: Served) -> None:
    """Runs last: shows the statuses recorded above (pytest -s) for the report."""
    served.assert_serving()
    print("\n".join(f"{name}: {code}" for name, code in sorted(SEEN.items())))
