"""The REST mirror against a live server: the same answers as gRPC, statuses from one table."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from embedserve.client import EmbedClient

TOLERANCE = 1e-6
JSON = {"content-type": "application/json"}


@pytest.fixture
def http(both: Any) -> Any:
    with httpx.Client(base_url=both.url, timeout=60) as client:
        yield client


def test_embed_with_options_matches_grpc(both: Any, http: httpx.Client) -> None:
    options = {"task": "query", "dimensions": 32, "overflow": "chunk", "normalize": True}
    texts = ["short text", "long " * 700]
    reply = http.post("/api/v1/embed", json={"inputs": texts, "options": options})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    with EmbedClient(both.target) as client:
        expected = client.embed(texts, **options)
    got = np.array([e["values"] for e in body["embeddings"]])
    assert np.abs(got - expected).max() <= TOLERANCE
    assert body["dimensions"] == 32
    assert [e["chunk_count"] for e in body["embeddings"]][1] > 1
    assert body["usage"]["total_tokens"] == sum(e["token_count"] for e in body["embeddings"])
    assert body["timings"]["total_ms"] > 0


def test_tokenize_similarity_and_model_info(both: Any, http: httpx.Client) -> None:
    with EmbedClient(both.target) as client:
        tokens = client.tokenize("Hello world").results[0]
        scores = client.similarity("a cat", ["a kitten", "a truck"])
        info = client.model_info()
    body = http.post("/api/v1/tokenize", json={"inputs": ["Hello world"]}).json()
    assert body["results"][0]["ids"] == list(tokens.ids)
    assert body["results"][0]["tokens"] == list(tokens.tokens)
    similar = http.post(
        "/api/v1/similarity",
        json={"query_candidates": {"query": "a cat", "candidates": ["a kitten", "a truck"]}},
    ).json()
    assert np.abs(np.array(similar["scores"]) - scores).max() <= TOLERANCE
    pairs = http.post("/api/v1/similarity", json={"pairs": [{"a": "x", "b": "x"}]}).json()
    assert pairs["scores"][0] == pytest.approx(1.0, abs=1e-5)
    too_long = {"pairs": [{"a": "x", "b": "x"}, {"a": "x", "b": "word " * 400}]}
    refused = http.post("/api/v1/similarity", json={**too_long, "options": {"overflow": "error"}})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("pairs[1].b has 402 tokens")
    model = http.get("/api/v1/model").json()
    assert model["model_id"] == info.model_id
    assert model["dimensions"] == info.dimensions == 384
    assert model["pooling"] == "mean"
    assert model["batching"]["max_batch_size"] == info.batching.max_batch_size
    assert model["batching"]["parallel_passes"] in (1, 2)  # as chosen, not the automatic 0
    assert model["backend"] == info.backend == "torch"
    tokens_reply = http.post("/api/v1/embed-tokens", json={"inputs": ["Hello world"]}).json()
    assert [t["token"] for t in tokens_reply["results"][0]["tokens"]] == list(tokens.tokens)


def test_vector_store_round_trip(both: Any, http: httpx.Client) -> None:
    created = http.post(
        "/api/v1/collections",
        json={"name": "news", "config": {"payload_indexes": {"topic": "keyword"}}},
    )
    assert created.status_code == 200, created.text
    assert created.json()["collection"]["config"]["dimensions"] == 384
    plain_bm25 = {"name": "worded", "config": {"bm25": True, "bm25_language": ""}}
    worded = http.post("/api/v1/collections", json=plain_bm25)
    assert worded.json()["collection"]["config"]["bm25_language"] == "english", worded.text
    assert http.delete("/api/v1/collections/worded").status_code == 200
    again = http.post("/api/v1/collections", json={"name": "news"})
    assert again.status_code == 409
    assert again.json()["error"]["status"] == "ALREADY_EXISTS"
    docs = [
        {"id": "a1", "text": "The rocket reached orbit.", "payload": {"topic": "space"}},
        {"id": "a2", "text": "Bake the bread for 40 minutes.", "payload": {"topic": "food"}},
        {"id": "a3", "text": "The probe landed on Mars.", "payload": {"topic": "space"}},
    ]
    upserted = http.post(
        "/api/v1/collections/news/upsert",
        json={"documents": docs, "options": {"store_text": True}},
    ).json()
    assert upserted["upserted"] == 3
    assert 0 < upserted["timings"]["inference_ms"] <= upserted["timings"]["total_ms"]
    assert http.get("/api/v1/collections").json()["names"] == ["news"]
    search = http.post(
        "/api/v1/collections/news/search",
        json={"text": "missions to planets", "params": {"limit": 2}},
    ).json()
    with EmbedClient(both.target) as client:
        grpc_hits = client.search("news", "missions to planets", limit=2)
    assert [h["id"] for h in search["results"]] == [h.id for h in grpc_hits]
    assert search["results"][0]["payload"]["text"].startswith("The ")
    space = {"must": [{"match": {"key": "topic", "text": "space"}}]}
    filtered = http.post(
        "/api/v1/collections/news/search", json={"text": "oven", "filter": space}
    ).json()
    assert {h["id"] for h in filtered["results"]} == {"a1", "a3"}
    unquantized = http.post(
        "/api/v1/collections/news/search", json={"text": "oven", "params": {"oversampling": 2}}
    )
    assert unquantized.status_code == 400
    assert "'news' has no quantization" in unquantized.json()["error"]["message"]
    compact = {"quantization": "binary", "vector_datatype": "float16"}
    bits = http.post("/api/v1/collections", json={"name": "bits", "config": compact})
    assert {k: bits.json()["collection"]["config"][k] for k in compact} == compact
    http.post("/api/v1/collections/bits/upsert", json={"documents": docs})
    oversampled = http.post(
        "/api/v1/collections/bits/search",
        json={"text": "missions to planets", "params": {"limit": 2, "oversampling": 4}},
    ).json()
    assert [h["id"] for h in oversampled["results"]] == [h.id for h in grpc_hits]
    assert http.delete("/api/v1/collections/bits").status_code == 200
    recommended = http.post(
        "/api/v1/collections/news/recommend",
        json={"positive": [{"id": "a1"}], "negative": [{"text": "bread"}]},
    ).json()
    assert recommended["results"][0]["id"] == "a3"
    assert "a1" not in [h["id"] for h in recommended["results"]]
    got = http.post("/api/v1/collections/news/get", json={"ids": ["a2"], "with_vectors": True})
    assert got.json()["documents"][0]["payload"]["topic"] == "food"
    assert len(got.json()["documents"][0]["vector"]) == 384
    count = http.post("/api/v1/collections/news/count", json={"filter": space}).json()
    assert count["count"] == 2
    # Empty values are the defaults, as over gRPC: every payload key, no read consistency.
    defaults = {"limit": 1, "payload_keys": [], "read_consistency": ""}
    hit = http.post("/api/v1/collections/news/search", json={"text": "oven", "params": defaults})
    assert hit.status_code == 200, hit.text
    assert set(hit.json()["results"][0]["payload"]) == {"topic", "text"}
    # An empty filter inside one matches every point: no way round the delete guard.
    everything = {"filter": {"must": [{"filter": {}}]}}
    refused = http.post("/api/v1/collections/news/delete", json=everything)
    assert refused.status_code == 400 and "empty filter" in refused.text
    assert http.post("/api/v1/collections/news/count", json={}).json()["count"] == 3
    # A JSON body not declared as JSON: the header is what is wrong.
    form = http.post(
        "/api/v1/collections/news/count",
        content=b"{}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 400 and "content-type application/json" in form.text
    assert http.post("/api/v1/collections/news/delete", json={"filter": space}).status_code == 200
    assert http.post("/api/v1/collections/news/count", json={}).json()["count"] == 1
    assert http.get("/api/v1/collections/news").json()["collection"]["points_count"] == 1
    assert http.delete("/api/v1/collections/news").status_code == 200
    missing = http.post("/api/v1/collections/news/count", json={})
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == "NOT_FOUND"


def test_ndjson_ingestion_acknowledges_each_batch(both: Any, http: httpx.Client) -> None:
    http.post("/api/v1/collections", json={"name": "feed"}).raise_for_status()
    batches = [
        {
            "batch_id": f"b{n}",
            "documents": [{"id": f"d{n}-{i}", "text": f"item {n} {i}"} for i in range(3)],
        }
        for n in range(4)
    ]
    body = "".join(json.dumps(batch) + "\n" for batch in batches)
    with http.stream(
        "POST",
        "/api/v1/collections/feed/ingest",
        content=body,
        headers={"content-type": "application/x-ndjson"},
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/x-ndjson"
        acks = [json.loads(line) for line in reply.iter_lines() if line]
    assert [a["batch_id"] for a in acks] == ["b0", "b1", "b2", "b3"]
    assert acks[-1]["total_acknowledged"] == 12
    assert acks[1]["ids"] == ["d1-0", "d1-1", "d1-2"]
    assert http.post("/api/v1/collections/feed/count", json={}).json()["count"] == 12
    # A bad line: the good ones before it are acknowledged, then one error line.
    bad = json.dumps(batches[0]) + "\n" + '{"batch_id": "b9", "documents": [{"id": "x"}]}\n'
    lines = [
        json.loads(line)
        for line in http.post("/api/v1/collections/feed/ingest", content=bad).text.splitlines()
    ]
    assert lines[0]["batch_id"] == "b0"
    assert lines[-1]["error"]["status"] == "INVALID_ARGUMENT"
    message = lines[-1]["error"]["message"]
    assert message == "batch_id 'b9': documents[0] needs exactly one of text or vector"
    assert http.post("/api/v1/collections/nope/ingest", content=bad).status_code == 404


def test_validation_and_limits(start_http_server: Any, minilm_model: Any) -> None:
    running = start_http_server(loaded=minilm_model, max_message_bytes=2000)
    with httpx.Client(base_url=running.url) as http:
        wrong_type = http.post("/api/v1/embed", json={"inputs": ["a"], "options": {"task": "x"}})
        assert wrong_type.status_code == 400
        assert wrong_type.json()["error"]["message"].startswith("options.task:")
        too_big = http.post("/api/v1/embed", json={"inputs": ["a" * 3000]})
        assert too_big.status_code == 400
        assert "max_message_bytes" in too_big.json()["error"]["message"]
        dims = http.post("/api/v1/embed", json={"inputs": ["a"], "options": {"dimensions": 999}})
        assert dims.status_code == 400
        assert "options.dimensions must be between 1 and 384" in dims.json()["error"]["message"]
        assert http.get("/nowhere").status_code == 404
        # Strict types: what pydantic would coerce is refused, naming the field.
        for options, field in (
            ({"normalize": 0}, "normalize"),
            ({"dimensions": "4"}, "dimensions"),
        ):
            coerced = http.post("/api/v1/embed", json={"inputs": ["a"], "options": options})
            assert coerced.status_code == 400, coerced.text
            assert coerced.json()["error"]["message"].startswith(f"options.{field}:")
        # The gRPC fields mirrored are uint32: a larger JSON integer is the caller's error,
        # not the store's (it was 503 UNAVAILABLE, which clients retry).
        http.post("/api/v1/collections", json={"name": "big"}).raise_for_status()
        huge = {"text": "a", "params": {"hnsw_ef": 2**70}}
        refused = http.post("/api/v1/collections/big/search", json=huge)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["message"].startswith("params.hnsw_ef:")


def test_the_body_limit_counts_chunked_bodies_and_spares_ndjson_streams(
    start_http_server: Any, minilm_model: Any
) -> None:
    """The limit read only Content-Length: a body sent in chunks was read whole, however
    large; and an NDJSON ingestion over the limit in all was refused though each of its
    batches was small (a 74 MB file sent with curl --data-binary). An embedding stream's
    was cut mid-answer, with no error line, logged as OK."""
    running = start_http_server(loaded=minilm_model, max_message_bytes=4000)
    big = json.dumps({"inputs": ["a"] * 3000}).encode()  # 15 KB

    def chunks() -> Iterator[bytes]:  # no length: httpx sends it chunked
        yield from (big[i : i + 1000] for i in range(0, len(big), 1000))

    with httpx.Client(base_url=running.url, timeout=60) as http:
        for path in ("/api/v1/embed", "/v1/embeddings"):
            body = big if path == "/api/v1/embed" else big.replace(b"inputs", b"input")
            answer = http.post(path, content=iter([body]), headers=JSON)
            assert answer.status_code == 400, answer.text
            assert "over 4000 bytes (max_message_bytes)" in answer.text
        answer = http.post("/api/v1/embed", content=chunks(), headers=JSON)
        assert answer.status_code == 400 and "max_message_bytes" in answer.text

        http.post("/api/v1/collections", json={"name": "feed"}).raise_for_status()
        lines = [
            json.dumps({"batch_id": str(b), "documents": [{"id": f"d{b}", "text": "x" * 900}]})
            for b in range(20)
        ]
        ndjson = ("\n".join(lines) + "\n").encode()  # 19 KB, declared: each line under 1 KB
        answer = http.post(
            "/api/v1/collections/feed/ingest",
            content=ndjson,
            headers={"content-type": "application/x-ndjson"},
        )
        assert answer.status_code == 200
        acks = [json.loads(line) for line in answer.text.splitlines()]
        assert [ack.get("batch_id") for ack in acks] == [str(b) for b in range(20)], acks[-1]
        assert http.post("/api/v1/collections/feed/count", json={}).json()["count"] == 20

        texts = [json.dumps({"inputs": [f"text {n} " + "x" * 900]}) for n in range(20)]
        answer = http.post(
            "/api/v1/embed-stream",
            content=("\n".join(texts) + "\n").encode(),  # 19 KB, each line under 1 KB
            headers={"content-type": "application/x-ndjson"},
        )
        answered = [json.loads(line) for line in answer.text.splitlines()]
        assert [a.get("request_id") for a in answered] == [str(n) for n in range(1, 21)]

        # One line over the limit, arriving whole in one piece with the line before it.
        over = json.dumps({"documents": [{"id": "big", "text": "y " * 2500}]})
        answer = http.post(
            "/api/v1/collections/feed/ingest",
            content=iter([(lines[0] + "\n" + over + "\n").encode()]),
            headers={"content-type": "application/x-ndjson"},
        )
        *acks, error = [json.loads(line) for line in answer.text.splitlines()]
        assert [ack["batch_id"] for ack in acks] == ["0"]
        assert "line 2 is over 4000 bytes (max_message_bytes)" in error["error"]["message"]
        assert http.post("/api/v1/collections/feed/get", json={"ids": ["big"]}).json() == {
            "documents": []
        }


def test_a_body_that_is_not_text_is_a_400_naming_where(
    start_http_server: Any, minilm_model: Any
) -> None:
    """Python's json turns a lone surrogate escape into a string no tokenizer or store
    takes (it was a 500 on /v1/embeddings and a 503, which clients retry, on upsert)."""
    running = start_http_server(loaded=minilm_model)
    json_body = {"content-type": "application/json"}
    with httpx.Client(base_url=running.url, headers=json_body) as http:
        http.post("/api/v1/collections", json={"name": "notes"}).raise_for_status()
        lone = (
            ("/v1/embeddings", '{"input": "a \\ud800 b"}', "\\ud800"),
            ("/api/v1/tokenize", '{"inputs": ["\\udc00"]}', "\\udc00"),
            (
                "/api/v1/collections/notes/upsert",
                '{"documents": [{"id": "1", "text": "t", "payload": {"k": "\\ud83d"}}]}',
                "\\ud83d",
            ),
        )
        for path, body, escape in lone:
            refused = http.post(path, content=body)
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert error["message"] == (
                f"body is not valid JSON: {escape} is half of a surrogate pair, "
                f"not a character (at character {body.index(escape)})"
            )
        assert http.post("/api/v1/collections/notes/count", json={}).json()["count"] == 0
        # A pair is one character, and an escaped backslash before "ud800" is text.
        escaped = http.post("/api/v1/embed", content='{"inputs": ["\\ud83d\\ude00", "\\\\ud800"]}')
        plain = http.post("/api/v1/embed", json={"inputs": ["\U0001f600", "\\ud800"]})
        assert escaped.json()["embeddings"] == plain.json()["embeddings"]
        not_utf8 = http.post("/v1/embeddings", content=b'{"input": "\xff"}')
        assert not_utf8.status_code == 400
        assert not_utf8.json()["error"]["message"].startswith("body is not valid JSON: the body")


def test_a_verb_a_path_does_not_take_is_405_with_all_its_verbs(
    both: Any, http: httpx.Client
) -> None:
    # GET and POST on /api/v1/collections are two routes; Allow names both (it was 501),
    # and HEAD, answered wherever GET is.
    for verb, path, allow in (
        ("PUT", "/api/v1/collections", "GET, HEAD, POST"),
        ("PUT", "/api/v1/collections/docs", "DELETE, GET, HEAD, PATCH"),
        ("GET", "/v1/embeddings", "POST"),
    ):
        reply = http.request(verb, path)
        assert reply.status_code == 405, reply.text
        assert reply.headers["allow"] == allow


def post_whole_body(port: int, path: str, content_type: str, body: bytes) -> bytes:
    """The raw answer to a POST whose whole body is written before anything is read, as
    a client still sending sees it."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body)  # a hang raises TimeoutError
        answer = b""
        while chunk := sock.recv(65536):  # a reset raises ConnectionResetError
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("path", "limit", "status", "says"),
    [
        ("/api/v1/embed", 2000, b"400 Bad Request", b"max_message_bytes"),  # over the limit
        ("/nowhere", 4_000_000, b"404 Not Found", b"Not Found"),
        ("/api/v1/collections/missing/ingest", 4_000_000, b"404 Not Found", b"missing"),
    ],
)
def test_an_early_answer_reaches_a_client_still_sending(
    start_http_server: Any, minilm_model: Any, path: str, limit: int, status: bytes, says: bytes
) -> None:
    # A megabyte the server answers before reading it all: uvicorn stops reading after
    # 64 KB, so the 400 came with a TCP reset (the client lost the answer every time at
    # this size) and the 404s left the client blocked in its write for ever.
    running = start_http_server(loaded=minilm_model, max_message_bytes=limit)
    body = json.dumps({"inputs": ["a" * 1_000_000]}).encode()
    answer = post_whole_body(running.server.http.port, path, "application/json", body)
    first_line, _, rest = answer.partition(b"\r\n")
    assert first_line == b"HTTP/1.1 " + status
    assert says in rest


def test_an_ingest_stream_ending_on_an_error_reaches_a_producer_still_sending(
    start_http_server: Any, minilm_model: Any
) -> None:
    # The stream stops at its first bad line while a megabyte of lines is still on the
    # way: the acknowledgements and the error line must reach the producer, not a reset.
    running = start_http_server(loaded=minilm_model)
    with httpx.Client(base_url=running.url) as http:
        http.post("/api/v1/collections", json={"name": "feed"}).raise_for_status()
    good = json.dumps({"batch_id": "b0", "documents": [{"id": "d0", "text": "one"}]})
    filler = json.dumps({"documents": [{"id": "z", "text": "z" * 1000}]})
    body = "\n".join([good, '{"documents": [{"id": "x"}]}', *[filler] * 1000]).encode()
    path = "/api/v1/collections/feed/ingest"
    answer = post_whole_body(running.server.http.port, path, "application/x-ndjson", body)
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b'"batch_id": "b0"' in answer or b'"batch_id":"b0"' in answer
    assert b"needs exactly one of text or vector" in answer


def test_openapi_and_offline_docs(both: Any, http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    for path in ("/v1/embeddings", "/api/v1/embed", "/api/v1/collections/{name}/ingest"):
        assert path in spec["paths"]
    # Errors as sent: 400 and the error shapes, not FastAPI's 422 and its validation body.
    embed = spec["paths"]["/api/v1/embed"]["post"]["responses"]
    assert "422" not in embed and {"400", "401", "403", "429", "500", "503"} <= set(embed)
    error_schema = embed["400"]["content"]["application/json"]["schema"]["$ref"]
    assert error_schema == "#/components/schemas/Error"
    openai = spec["paths"]["/v1/embeddings"]["post"]["responses"]["404"]
    assert openai["content"]["application/json"]["schema"]["$ref"].endswith("/OpenAIError")
    # Every reference resolves (the ingestion body's pointed at a missing $defs).
    text = json.dumps(spec)
    for name in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
        assert name in spec["components"]["schemas"], name
    assert "#/$defs/" not in text
    page = http.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    script = http.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 100_000


def test_request_id_health_and_drain(both: Any, http: httpx.Client) -> None:
    reply = http.get("/health", headers={"x-request-id": "trace-me"})
    assert reply.json() == {"status": "SERVING"}
    assert reply.headers["x-request-id"] == "trace-me"
    assert len(http.get("/health").headers["x-request-id"]) == 32  # generated
    both.loop.call_soon_threadsafe(both.server.drain.start)
    both.run(_nothing())
    assert http.get("/health").status_code == 503
    # A probe answered NOT_SERVING is no fault of the server's: counted UNAVAILABLE, not
    # INTERNAL (which alerts, and was logged as an error on every restart).
    registry = both.server.metrics.registry
    labels = {"method": "GET /health", "transport": "http"}
    deadline = time.monotonic() + 10  # recorded once the answer has gone out
    while not registry.get_sample_value("embedserve_rpc_total", {**labels, "code": "UNAVAILABLE"}):
        assert time.monotonic() < deadline, "the NOT_SERVING answer was not counted UNAVAILABLE"
        time.sleep(0.05)
    assert not registry.get_sample_value("embedserve_rpc_total", {**labels, "code": "INTERNAL"})
    refused = http.post("/api/v1/embed", json={"inputs": ["a"]})
    assert refused.status_code == 503
    assert refused.json()["error"]["status"] == "UNAVAILABLE"


async def _nothing() -> None:
    return None


def test_connections_send_without_nagles_delay(both: Any, http: httpx.Client) -> None:
    """Accepted connections have TCP_NODELAY: with Nagle's algorithm on, each response's
    body waited for the client's delayed ACK of its headers (about 40 ms per request on
    a kept-alive connection)."""
    assert http.get("/health").status_code == 200  # the connection stays open after it
    connections = list(both.server.http._server.server_state.connections)
    assert connections
    for connection in connections:
        sock = connection.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_an_unexpected_fault_is_a_500_the_client_receives(
    both: Any, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault no request can cause for real: a bug inside the core.
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(both.server.http.app.state.backend.embedder, "tokenize", broken)
    for _ in range(3):  # on one kept-alive connection
        reply = http.post("/api/v1/tokenize", json={"inputs": ["a"]})
        assert reply.status_code == 500
        assert reply.json() == {
            "error": {"code": 500, "status": "INTERNAL", "message": "internal error"}
        }
    assert http.get("/health").status_code == 200
