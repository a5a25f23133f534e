"""Rate limit and metrics on the HTTP side: the same policies as gRPC."""

from __future__ import annotations

from typing import Any

import httpx


def test_rate_limit_429_with_retry_after_and_metrics(
    start_http_server: Any, minilm_model: Any
) -> None:
    running = start_http_server(loaded=minilm_model, rate_limit_rps=0.01, rate_limit_burst=1)
    with httpx.Client(base_url=running.url) as http:
        assert http.get("/v1/models").status_code == 200
        limited = http.get("/v1/models")
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["type"] == "rate_limit_error"
        assert http.get("/health").status_code == 200  # probes are never limited
    registry = running.server.metrics.registry
    info = "/embedserve.v1.EmbeddingService/GetModelInfo"
    for code in ("OK", "RESOURCE_EXHAUSTED"):
        labels = {"method": info, "code": code, "transport": "http"}
        assert registry.get_sample_value("embedserve_rpc_total", labels) == 1, code
