"""The cluster layout settings (default_shard_number, default_replication_factor,
default_write_consistency_factor) reach collections created over either transport."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from embedserve.client import EmbedClient

LAYOUT = {
    "default_shard_number": 3,
    "default_replication_factor": 2,
    "default_write_consistency_factor": 2,
}


def layout_of(config: Any) -> tuple[int, int, int]:
    if isinstance(config, dict):
        names = ("shard_number", "replication_factor", "write_consistency_factor")
        return tuple(config[name] for name in names)  # type: ignore[return-value]
    return config.shard_number, config.replication_factor, config.write_consistency_factor


def test_both_transports_apply_the_default_layout(
    start_http_server: Callable[..., Any], minilm_model: Any
) -> None:
    running = start_http_server(loaded=minilm_model, **LAYOUT)
    with (
        EmbedClient(running.target) as client,
        httpx.Client(base_url=running.url, timeout=60) as http,
    ):
        client.create_collection("over_grpc")
        assert layout_of(client.get_collection("over_grpc").config) == (3, 2, 2)

        created = http.post("/api/v1/collections", json={"name": "over_http"})
        assert created.status_code == 200, created.text
        assert layout_of(created.json()["collection"]["config"]) == (3, 2, 2)
        assert layout_of(client.get_collection("over_http").config) == (3, 2, 2)

        # A request's own layout wins over the defaults, field by field.
        body = {"name": "own", "config": {"shard_number": 1, "write_consistency_factor": 1}}
        created = http.post("/api/v1/collections", json=body)
        assert created.status_code == 200, created.text
        assert layout_of(created.json()["collection"]["config"]) == (1, 2, 1)
