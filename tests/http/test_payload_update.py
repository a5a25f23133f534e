"""UpdatePayload and Facet end to end over gRPC and HTTP: payload keys changed without
embedding again (Cluster's labels written the same way, keyword vectors kept), and the
counts of a field's values."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest

from embedserve.client import EmbedClient

DOCS = [
    {"id": "a", "text": "Orbit of the red planet", "payload": {"topic": "space", "stock": 3}},
    {"id": "b", "text": "A probe lands on a comet", "payload": {"topic": "space", "stock": 0}},
    {"id": "c", "text": "Slow-rise sourdough loaf", "payload": {"topic": "food", "stock": 7}},
    {"id": "d", "text": "Fresh pasta with basil", "payload": {"topic": "food", "stock": 2}},
]


@pytest.fixture
def client(both: Any) -> Any:
    with EmbedClient(both.target) as client:
        client.create_collection("items", bm25=True)
        client.upsert("items", DOCS, store_text=True)
        yield client


def payloads(client: Any) -> dict[str, dict[str, Any]]:
    return {d.id: d.payload for d in client.scroll_iter("items")}


def test_update_by_ids_and_by_filter_keeps_vectors(client: Any) -> None:
    before = {d.id: d.vector for d in client.get("items", ["a", "c"], with_vectors=True)}
    client.update_payload("items", ["a", "c"], payload={"stock": 0, "flags": ["sale"]})
    food = {"must": [{"match": {"key": "topic", "text": "food"}}]}
    client.update_payload("items", filter=food, delete_keys=["text"])
    after = payloads(client)
    assert after["a"] == {"topic": "space", "stock": 0, "flags": ["sale"], "text": DOCS[0]["text"]}
    assert after["c"] == {"topic": "food", "stock": 0, "flags": ["sale"]}
    assert after["d"] == {"topic": "food", "stock": 2}
    assert after["b"] == {**DOCS[1]["payload"], "text": DOCS[1]["text"]}
    for stored in client.get("items", ["a", "c"], with_vectors=True):
        assert stored.vector == pytest.approx(before[stored.id])
    assert [h.id for h in client.search("items", "sourdough", mode="keyword")] == ["c"]


def test_missing_ids_and_bad_updates_are_refused(both: Any, client: Any) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        client.update_payload("items", ["a", "zz"], payload={"stock": 9})
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND and "'zz'" in missing.value.details()
    assert payloads(client)["a"]["stock"] == 3
    with pytest.raises(grpc.RpcError) as reserved:
        client.update_payload("items", ["a"], delete_keys=["_embedserve_id"])
    assert reserved.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with httpx.Client(base_url=both.url, timeout=60) as http:
        ok = http.post(
            "/api/v1/collections/items/payload",
            json={"ids": ["b"], "payload": {"stock": 12, "topic": None}},
        )
        assert ok.status_code == 200, ok.text
        assert payloads(client)["b"] == {"stock": 12, "text": DOCS[1]["text"]}  # null: removed
        nothing = http.post("/api/v1/collections/items/payload", json={"ids": ["b"]})
        assert nothing.status_code == 400 and "keys to set or to delete" in nothing.text
        gone = http.post(
            "/api/v1/collections/items/payload", json={"ids": ["zz"], "payload": {"x": 1}}
        )
        assert gone.status_code == 404


def test_cluster_labels_leave_vectors_and_keywords(client: Any) -> None:
    before = {d.id: d.vector for d in client.get("items", list("abcd"), with_vectors=True)}
    response = client.cluster("items", k=2, write_label="group", seed=3)
    assert response.labels_written == 4
    stored = payloads(client)
    assert {stored[k]["group"] for k in "ab"} != {stored[k]["group"] for k in "cd"}
    for document in client.get("items", list("abcd"), with_vectors=True):
        assert document.vector == pytest.approx(before[document.id])
    assert [h.id for h in client.search("items", "comet", mode="keyword")] == ["b"]


def test_facet_counts_over_both_transports(both: Any, client: Any) -> None:
    client.create_collection("shelf", payload_indexes={"topic": "keyword", "stock": "integer"})
    client.upsert("shelf", DOCS)
    counts = client.facet("shelf", "topic")
    assert [(c.value, c.count) for c in counts] == [("food", 2), ("space", 2)]
    in_stock = {"must": [{"range": {"key": "stock", "gte": 1}}]}
    assert [(c.value, c.count) for c in client.facet("shelf", "topic", filter=in_stock)] == [
        ("food", 2),
        ("space", 1),
    ]
    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post("/api/v1/collections/shelf/facet", json={"key": "stock", "limit": 2})
        assert reply.json() == {"values": [{"value": 0, "count": 1}, {"value": 2, "count": 1}]}
        refused = http.post("/api/v1/collections/items/facet", json={"key": "topic"})
        assert refused.status_code == 400 and "needs a keyword, integer or bool" in refused.text
