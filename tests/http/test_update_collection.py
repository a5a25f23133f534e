"""UpdateCollection end to end with MiniLM: an index added to a filled collection serves
facets and grouped search at once, over gRPC, HTTP and the command line."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main

DOCS = [
    {"id": f"d{i}", "text": text, "payload": {"topic": topic}}
    for i, (text, topic) in enumerate(
        [
            ("the rocket reached orbit", "space"),
            ("the probe landed on a moon", "space"),
            ("bake the bread until brown", "food"),
            ("the striker scored late", "sport"),
        ]
    )
]


def test_an_index_added_later_serves_the_documents_already_stored(both: Any, capsys: Any) -> None:
    with EmbedClient(both.target) as client:
        client.create_collection("news")
        client.upsert("news", DOCS)
        with pytest.raises(grpc.RpcError) as error:
            client.facet("news", "topic")
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        info = client.update_collection("news", add_payload_indexes={"topic": "keyword"})
        assert dict(info.config.payload_indexes) == {"topic": 1}  # PAYLOAD_INDEX_KIND_KEYWORD
        assert [(f.value, f.count) for f in client.facet("news", "topic", limit=1)] == [
            ("space", 2)
        ]
        info = client.update_collection("news", hnsw_ef=48)
        assert info.config.hnsw_ef == 48 and info.points_count == 4
        with pytest.raises(grpc.RpcError) as error:
            client.update_collection("news", drop_payload_indexes=["nope"])
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no payload index on 'nope'" in error.value.details()

    with httpx.Client(base_url=both.url) as http:
        dropped = http.patch("/api/v1/collections/news", json={"drop_payload_indexes": ["topic"]})
        assert dropped.status_code == 200
        assert dropped.json()["collection"]["config"]["payload_indexes"] == {}
        assert http.post("/api/v1/collections/news/facet", json={"key": "topic"}).status_code == 400
        missing = http.patch("/api/v1/collections/nope", json={"hnsw_ef": 8})
        assert missing.status_code == 404

    target = ["--target", both.target]
    assert cli_main(["collections", "update", "news", "--index", "topic:keyword", *target]) == 0
    assert '"topic": "PAYLOAD_INDEX_KIND_KEYWORD"' in capsys.readouterr().out
    assert cli_main(["facet", "news", "topic", *target]) == 0
    assert "space" in capsys.readouterr().out
