"""A full queue says when to come back, as a rate limit does: Retry-After (and
retry-after-ms) over HTTP, trailing metadata retry-after-ms over gRPC."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx

from embedserve.client import EmbedClient

RETRY_AFTER_KEY = "retry-after-ms"
# One window per pass: seconds of queued work behind a call of these.
LONG_TEXTS = ["a word that repeats " * 60] * 64


def test_a_full_queue_says_when_to_retry_on_both_doors(
    start_http_server: Any, minilm_model: Any
) -> None:
    running = start_http_server(loaded=minilm_model, max_queue_items=1, max_batch_size=1)
    http_refusal: httpx.Response | None = None
    grpc_refusal: grpc.RpcError | None = None
    with (
        EmbedClient(running.target) as client,
        httpx.Client(base_url=running.url, timeout=60) as http,
        ThreadPoolExecutor(1) as pool,
    ):
        busy = pool.submit(client.embed, LONG_TEXTS)
        give_up = time.monotonic() + 60
        while (http_refusal is None or grpc_refusal is None) and time.monotonic() < give_up:
            if busy.done():  # the queue drained before both doors were refused: again
                busy = pool.submit(client.embed, LONG_TEXTS)
            reply = http.post("/api/v1/embed", json={"inputs": ["hello"]})
            if reply.status_code == 429:
                http_refusal = reply
            try:
                client.embed(["hello"])
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    grpc_refusal = exc
            time.sleep(0.05)
        assert busy.result().shape == (64, 384)  # the queued work itself is served

    assert http_refusal is not None, "the queue never filled"
    assert "queue is full" in http_refusal.json()["error"]["message"]
    wait_ms = int(http_refusal.headers[RETRY_AFTER_KEY])
    assert wait_ms >= 1
    assert int(http_refusal.headers["retry-after"]) == max(1, math.ceil(wait_ms / 1000))

    assert grpc_refusal is not None, "the queue never filled"
    assert "queue is full" in (grpc_refusal.details() or "")
    trailers = dict(grpc_refusal.trailing_metadata() or ())
    assert int(trailers[RETRY_AFTER_KEY]) >= 1
