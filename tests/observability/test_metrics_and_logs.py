"""Metrics over HTTP and JSON log lines with request ids, against a real server."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from log_capture import captured_log
from prometheus_client.parser import text_string_to_metric_families
from running_server import free_port

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main
from embedserve.v1 import embedding_pb2, embedding_pb2_grpc, vector_pb2, vector_pb2_grpc

EMBED = "/embedserve.v1.EmbeddingService/Embed"
INGEST = "/embedserve.v1.VectorService/IngestStream"


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape_settled(port: int, expected: Samples) -> Samples:
    """Scrape until ``expected`` holds or 5 s pass.

    A call's metrics are recorded when its handler finishes, which can be just after the
    client has read the status: a scrape right after the call may come a moment early.
    """
    deadline = time.monotonic() + 5
    while True:
        metrics = scrape(port)
        settled = all(metrics.get(key) == value for key, value in expected.items())
        if settled or time.monotonic() > deadline:
            return metrics
        time.sleep(0.05)


def test_metrics_endpoint(start_server: Callable[..., Any], minilm_model: Any) -> None:
    port = free_port()
    running = start_server(loaded=minilm_model, metrics_port=port)
    with EmbedClient(running.target) as client:
        for _ in range(3):
            client.embed(["one", "two"])
        with pytest.raises(grpc.RpcError):
            client.embed([""])  # empty input: INVALID_ARGUMENT
        client.create_collection("news")
        docs = [{"id": f"n{i}", "text": f"news item {i}"} for i in range(10)]
        assert len(list(client.ingest_iter("news", docs, batch_size=4))) == 3

    def rpc_total(method: str, code: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return ("embedserve_rpc_total", (("code", code), ("method", method), ("transport", "grpc")))

    last_calls = {rpc_total(EMBED, "INVALID_ARGUMENT"): 1.0, rpc_total(INGEST, "OK"): 1.0}
    metrics = scrape_settled(port, last_calls)

    def value(name: str, **labels: str) -> float:
        return metrics.get((name, tuple(sorted(labels.items()))), 0.0)

    grpc_call = {"transport": "grpc"}
    assert value("embedserve_rpc_total", method=EMBED, code="OK", **grpc_call) == 3
    assert value("embedserve_rpc_total", method=EMBED, code="INVALID_ARGUMENT", **grpc_call) == 1
    assert value("embedserve_rpc_total", method=INGEST, code="OK", **grpc_call) == 1
    assert value("embedserve_rpc_seconds_count", method=EMBED, **grpc_call) == 4
    assert value("embedserve_batch_size_count") >= 4  # warm-up, 3 calls, ingestion
    assert value("embedserve_batch_size_bucket", le="+Inf") == value("embedserve_batch_size_count")
    assert value("embedserve_ingest_documents_total") == 10
    assert value("embedserve_ingest_acks_total") == 3
    assert value("embedserve_store_write_seconds_count") >= 1
    assert value("embedserve_store_write_points_sum") == 10


def test_refusals_are_counted(start_server: Callable[..., Any], minilm_model: Any) -> None:
    """Metrics sit outside auth and the rate limit: their refusals show up by code."""
    port = free_port()
    running = start_server(
        loaded=minilm_model,
        metrics_port=port,
        api_keys="reader read",
        rate_limit_rps=0.01,
        rate_limit_burst=1,
    )
    info = "/embedserve.v1.EmbeddingService/GetModelInfo"
    with EmbedClient(running.target) as anonymous, pytest.raises(grpc.RpcError):
        anonymous.model_info()
    with EmbedClient(running.target, api_key="reader") as reader:
        reader.model_info()
        with pytest.raises(grpc.RpcError):
            reader.model_info()
    expected: Samples = {
        ("embedserve_rpc_total", (("code", code), ("method", info), ("transport", "grpc"))): 1.0
        for code in ("UNAUTHENTICATED", "OK", "RESOURCE_EXHAUSTED")
    }
    metrics = scrape_settled(port, expected)
    for key, count in expected.items():
        assert metrics.get(key) == count, key


def test_metrics_off_by_default(minilm_server: Any) -> None:
    assert minilm_server.server.metrics_endpoint is None


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    with captured_log("json") as stream:
        yield stream


def test_json_log_lines_carry_request_id(
    start_server: Callable[..., Any], minilm_model: Any, json_log: io.StringIO
) -> None:
    running = start_server(loaded=minilm_model)
    with grpc.insecure_channel(running.target) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        stub.Embed(
            embedding_pb2.EmbedRequest(inputs=["hi"]), metadata=(("x-request-id", "req-42"),)
        )
        stub.Embed(embedding_pb2.EmbedRequest(inputs=["no id"]))
        unknown = channel.unary_unary("/embedserve.v1.EmbeddingService/Nope")
        with pytest.raises(grpc.RpcError) as unimplemented:
            unknown(b"", metadata=(("x-request-id", "req-nope"),))
    assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    (nope,) = [line for line in lines if "Nope" in line["message"]]
    assert nope.get("request_id") == "req-nope"  # the access line of a method not served
    mine = [line for line in lines if line.get("request_id") == "req-42"]
    assert mine, lines
    assert mine[0]["logger"] == "embedserve.access"
    assert EMBED in mine[0]["message"] and "OK" in mine[0]["message"]
    access = [line for line in lines if line["logger"] == "embedserve.access"]
    generated = [line["request_id"] for line in access if line["request_id"] != "req-42"]
    assert generated and len(generated[0]) == 32  # a fresh uuid4 hex when the client sent none


def test_store_retry_lines_carry_the_calls_request_id(
    start_server: Callable[..., Any], minilm_model: Any, json_log: io.StringIO
) -> None:
    """Store calls run on a thread pool, which did not carry the call's context: the
    retry warnings of an unreachable Qdrant server named no request."""
    dead_port = free_port()
    running = start_server(
        loaded=minilm_model,
        qdrant_url=f"http://127.0.0.1:{dead_port}",
        qdrant_grpc_port=dead_port,
        store_retry_attempts=2,
        store_retry_max_s=0.2,
    )
    with grpc.insecure_channel(running.target) as channel:
        stub = vector_pb2_grpc.VectorServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            stub.ListCollections(
                vector_pb2.ListCollectionsRequest(), metadata=(("x-request-id", "req-store"),)
            )
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    retries = [line for line in lines if "retrying in" in line["message"]]
    assert retries, lines
    assert {line.get("request_id") for line in retries} == {"req-store"}


def test_cli_flags_json_logs_and_metrics(tmp_path: Path) -> None:
    """The flags reach the server through the console script."""
    roots = ["server", "connectors", "clients/python"]
    repo = Path(__file__).resolve().parents[2]
    env = {
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "EMBEDSERVE_HTTP_PORT": "0",
        "PYTHONPATH": ":".join(str(repo / r) for r in roots),
    }
    port, metrics_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "embedserve.server.cli",
        "serve",
        "--model",
        "minilm",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "data"),
        "--log-format",
        "json",
        "--metrics-port",
        str(metrics_port),
    ]
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as err:
        process = subprocess.Popen(command, env=env, stderr=err)
    try:
        with EmbedClient(f"127.0.0.1:{port}") as client:
            client.wait_until_serving(timeout=120)
            client.embed(["x"])
        assert any(key[0] == "embedserve_rpc_total" for key in scrape(metrics_port))
    finally:
        process.terminate()
        assert process.wait(30) == 0
    records = [json.loads(line) for line in stderr.read_text().splitlines() if line.startswith("{")]
    assert any(r["logger"] == "embedserve.access" and r.get("request_id") for r in records)
    assert any("SERVING" in r["message"] for r in records)


def test_token_and_padding_counters_after_known_calls(minilm_server: Any) -> None:
    registry = minilm_server.server.metrics.registry

    def counters() -> tuple[float, float]:
        return (
            registry.get_sample_value("embedserve_tokens_total"),
            registry.get_sample_value("embedserve_padded_tokens_total"),
        )

    before = counters()
    texts = ["short", "a somewhat longer sentence with several more words in it"]
    with grpc.insecure_channel(minilm_server.target) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        reply = stub.Embed(embedding_pb2.EmbedRequest(inputs=texts), timeout=30)
    lengths = [e.token_count for e in reply.embeddings]
    real, padded = (a - b for a, b in zip(counters(), before, strict=True))
    assert lengths[0] < lengths[1] and reply.usage.total_tokens == sum(lengths)
    assert real == sum(lengths)
    # Two inputs of one request run as one batch, the short one padded to the long one.
    assert padded == 2 * max(lengths)


def test_queries_run_in_the_interactive_lane_and_writes_in_the_bulk_one(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    port, http_port = free_port(), free_port()
    running = start_server(loaded=minilm_model, metrics_port=port, http_port=http_port)
    rest = f"http://127.0.0.1:{http_port}"

    def batches() -> tuple[float, float]:
        metrics = scrape(port)
        return tuple(  # type: ignore[return-value]
            metrics.get(("embedserve_lane_batches_total", (("lane", lane),)), 0.0)
            for lane in ("interactive", "bulk")
        )

    def grew(before: tuple[float, float], after: tuple[float, float]) -> tuple[bool, bool]:
        return after[0] > before[0], after[1] > before[1]

    with EmbedClient(running.target) as client:
        client.create_collection("notes")
        steps: list[tuple[Callable[[], object], tuple[bool, bool]]] = [
            (lambda: client.embed(["a query"]), (True, False)),
            (lambda: list(client.embed_iter(["one", "two", "three"])), (False, True)),
            (lambda: client.upsert("notes", [{"id": "1", "text": "a note"}]), (False, True)),
            (lambda: client.search("notes", "a query"), (True, False)),
            (lambda: client.embed(["offline job"], priority="bulk"), (False, True)),
            (
                lambda: client.upsert(
                    "notes", [{"id": "2", "text": "urgent"}], priority="interactive"
                ),
                (True, False),
            ),
            (
                lambda: httpx.post(
                    f"{rest}/api/v1/embed",
                    json={"inputs": ["nightly job"], "options": {"priority": "bulk"}},
                ).raise_for_status(),
                (False, True),
            ),
            (
                lambda: httpx.post(
                    f"{rest}/v1/embeddings", json={"input": "job", "priority": "bulk"}
                ).raise_for_status(),
                (False, True),
            ),
            (
                lambda: cli_main(
                    ["embed", "offline", "--priority", "bulk", "--target", running.target]
                ),
                (False, True),
            ),
            (
                lambda: httpx.post(
                    f"{rest}/api/v1/embed-stream", content=b'{"inputs": ["streamed"]}\n'
                ).raise_for_status(),
                (False, True),
            ),
            (  # Cohere's priority: 0 is the highest, the default
                lambda: httpx.post(
                    f"{rest}/v2/embed", json={"texts": ["later"], "priority": 3}
                ).raise_for_status(),
                (False, True),
            ),
            (
                lambda: httpx.post(
                    f"{rest}/v2/embed", json={"texts": ["now"], "priority": 0}
                ).raise_for_status(),
                (True, False),
            ),
        ]
        for number, (step, lanes) in enumerate(steps):
            before = batches()
            step()
            assert grew(before, batches()) == lanes, number
    metrics = scrape(port)
    for lane in ("interactive", "bulk"):
        labels = (("lane", lane),)
        assert metrics[("embedserve_lane_queue_depth", labels)] == 0
        # Every input cut from a lane waited a recorded time, at least one in each.
        waits = metrics[("embedserve_lane_wait_seconds_count", labels)]
        assert waits >= metrics[("embedserve_lane_batches_total", labels)] >= 1


def test_a_query_asked_again_comes_from_the_query_cache(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    port = free_port()
    running = start_server(loaded=minilm_model, metrics_port=port, query_cache_size=100)

    def cache_counts() -> tuple[float, float]:
        metrics = scrape(port)
        return (
            metrics.get(("embedserve_query_cache_hits_total", ()), 0.0),
            metrics.get(("embedserve_query_cache_misses_total", ()), 0.0),
        )

    query = embedding_pb2.EmbedRequest(inputs=["where is my parcel?"])
    long_text = "a long document about parcels " * 30  # well over 64 tokens
    with grpc.insecure_channel(running.target) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        before = cache_counts()
        first = stub.Embed(query)
        again = stub.Embed(query)
        assert first.timings.inference_ms > 0
        assert again.timings.inference_ms == 0 and again.timings.queue_ms == 0
        assert list(again.embeddings[0].values) == list(first.embeddings[0].values)
        assert cache_counts() == (before[0] + 1, before[1] + 1)
        # Another prompt is another text to the model; a long text is not kept.
        as_query = stub.Embed(
            embedding_pb2.EmbedRequest(
                inputs=query.inputs, options=embedding_pb2.EmbedOptions(prompt="query: ")
            )
        )
        assert as_query.timings.inference_ms > 0
        for _ in range(2):
            answer = stub.Embed(embedding_pb2.EmbedRequest(inputs=[long_text]))
            assert answer.timings.inference_ms > 0
        # Matryoshka and normalisation apply to a kept vector as to a fresh one.
        short = stub.Embed(
            embedding_pb2.EmbedRequest(
                inputs=query.inputs, options=embedding_pb2.EmbedOptions(dimensions=64)
            )
        )
        assert short.timings.inference_ms == 0
        values = np.array(short.embeddings[0].values)
        assert values.shape == (64,) and abs(np.linalg.norm(values) - 1) < 1e-5
    with EmbedClient(running.target) as client:
        client.create_collection("notes")
        client.upsert("notes", [{"id": "1", "text": "where is my parcel?"}])
        hits_before = cache_counts()[0]
        for _ in range(2):  # a search's next page asks for the same query text
            client.search("notes", "parcel status", limit=1)
        assert cache_counts()[0] == hits_before + 1
        # Documents written are neither looked up nor kept, in the interactive lane too.
        counts = cache_counts()
        for priority in ("bulk", "bulk", "interactive", "interactive"):
            client.upsert("notes", [{"id": "2", "text": "parcel status"}], priority=priority)
        assert cache_counts() == counts


def test_label_values_stay_bounded_and_refusals_count_under_their_route(
    start_server: Callable[..., Any], minilm_model: Any
) -> None:
    """Paths, verbs and method names a client makes up count under one label each; a body
    refused before routing counts under the RPC its route mirrors."""
    from server_records import rpc_count

    running = start_server(loaded=minilm_model, http_port=free_port(), max_message_bytes=2000)
    base = f"http://127.0.0.1:{running.server.http.port}"
    with httpx.Client(base_url=base) as http:
        for verb in ("MADEUP", "OTHER" + "X" * 300):
            assert http.request(verb, "/api/v1/tokenize").status_code == 405
        assert http.get("/no/such/route").status_code == 404
        oversized = http.post("/api/v1/embed", json={"inputs": ["x" * 5000]})
        assert oversized.status_code == 400, oversized.text
        assert http.get("/openapi.json").status_code == 200
    with grpc.insecure_channel(running.target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary("/made.up.Service/Call")(b"", timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED

    registry = running.server.metrics.registry
    deadline = time.monotonic() + 5  # an HTTP call is recorded just after its answer
    while rpc_count(running, "GET /openapi.json", "OK", "http") < 1:
        assert time.monotonic() < deadline, "GET /openapi.json was not counted"
        time.sleep(0.05)
    labels = {
        sample.labels["method"]
        for family in registry.collect()
        if family.name == "embedserve_rpc"
        for sample in family.samples
    }
    assert not any("MADEUP" in label or "OTHER" in label for label in labels), labels
    assert "unknown" in labels and not any("made.up" in label for label in labels), labels
    assert rpc_count(running, "unknown", "UNIMPLEMENTED", "grpc") == 1
    assert rpc_count(running, EMBED, "INVALID_ARGUMENT", "http") == 1, labels
    unmatched = sum(
        rpc_count(running, "unmatched", code, "http") for code in ("UNIMPLEMENTED", "NOT_FOUND")
    )
    assert unmatched == 3
