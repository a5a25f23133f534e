"""POST /api/v1/embed-stream: NDJSON requests in, their answers out in order, as gRPC's
EmbedStream gives them; a bad line ends the stream after the answers before it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np

from embedserve.client import EmbedClient

TEXTS = ["the cat sat on the mat", "a kitten rests on a rug", "quarterly revenue grew"]


def _lines(reply: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in reply.text.splitlines() if line.strip()]


def _ndjson(*lines: Any) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def test_answers_come_in_order_with_grpcs_vectors(both: Any) -> None:
    body = _ndjson(
        {"inputs": TEXTS[:2]},
        {"request_id": "second", "inputs": [TEXTS[2]], "options": {"dimensions": 64}},
        {"inputs": TEXTS, "precision": "int8"},
    )
    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post("/api/v1/embed-stream", content=body)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/x-ndjson"
    first, second, third = _lines(reply)
    assert [first["request_id"], second["request_id"], third["request_id"]] == ["1", "second", "3"]
    with EmbedClient(both.target) as client:
        np.testing.assert_allclose(
            [e["values"] for e in first["embeddings"]], client.embed(TEXTS[:2]), atol=1e-6
        )
        assert second["dimensions"] == 64 and len(second["embeddings"][0]["values"]) == 64
        np.testing.assert_array_equal(
            [e["quantized"] for e in third["embeddings"]], client.embed_quantized(TEXTS, "int8")
        )
    assert first["usage"]["total_tokens"] > 0 and "timings" in first


def test_a_body_sent_slowly_is_answered_line_by_line(both: Any) -> None:
    def slowly() -> Iterator[bytes]:
        for number in range(20):
            yield _ndjson({"inputs": [f"text number {number}"]}).encode()
            time.sleep(0.01)

    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post("/api/v1/embed-stream", content=slowly())
    answers = _lines(reply)
    assert [a["request_id"] for a in answers] == [str(n) for n in range(1, 21)]
    assert all(len(a["embeddings"]) == 1 for a in answers)


def test_a_bad_line_ends_the_stream_after_the_answers_before_it(both: Any) -> None:
    cases = [
        ("{not json", "line 2"),
        (json.dumps({"inputs": []}), "line 2: inputs must not be empty"),
        (json.dumps({"inputs": ["x"], "options": {"dimensions": 100000}}), "line 2: options"),
        (json.dumps({"inputs": ["x"], "colour": "red"}), "line 2"),
    ]
    with httpx.Client(base_url=both.url, timeout=60) as http:
        for bad, words in cases:
            body = _ndjson({"inputs": ["fine"]}, bad, {"inputs": ["never answered"]})
            reply = http.post("/api/v1/embed-stream", content=body)
            lines = _lines(reply)
            assert reply.status_code == 200
            assert len(lines) == 2 and lines[0]["request_id"] == "1", (bad, lines)
            assert words in lines[1]["error"]["message"], (bad, lines[1])
            assert lines[1]["error"]["code"] == 400
        empty = http.post("/api/v1/embed-stream", content=b"")
        assert empty.status_code == 200 and empty.text == ""


def test_a_byte_order_mark_before_the_first_line_is_dropped(both: Any) -> None:
    """As a JSON body's is; also when the mark arrives split across the first chunks."""

    def in_pieces() -> Iterator[bytes]:
        body = b"\xef\xbb\xbf" + _ndjson({"inputs": ["one"]}, {"inputs": ["two"]}).encode()
        yield body[:1]
        yield body[1:2]
        yield body[2:]

    with httpx.Client(base_url=both.url, timeout=60) as http:
        for content in (b"\xef\xbb\xbf" + _ndjson({"inputs": ["one"]}).encode(), in_pieces()):
            reply = http.post("/api/v1/embed-stream", content=content)
            answers = _lines(reply)
            assert answers[0]["request_id"] == "1" and "error" not in answers[-1], answers


def test_a_byte_order_mark_after_the_first_line_is_refused_however_the_body_arrives(
    both: Any,
) -> None:
    """Only the body's first bytes may be a byte order mark: one behind a blank first line
    was dropped or refused depending on where the body's first chunk ended."""
    body = b"\n\xef\xbb\xbf" + _ndjson({"inputs": ["one"]}).encode()
    with httpx.Client(base_url=both.url, timeout=60) as http:
        for content in (iter([body]), iter([body[:1], body[1:]])):
            (only,) = _lines(http.post("/api/v1/embed-stream", content=content))
            assert "line 2" in only["error"]["message"], only
