"""Scroll, Cluster and FindDuplicates over HTTP answer what the same calls answer over gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from embedserve.client import EmbedClient

TEXTS = [
    "the rocket reached orbit",
    "astronauts walked on the moon",
    "a probe landed on mars",
    "the telescope saw a distant galaxy",
    "bake the bread for forty minutes",
    "whisk the eggs with sugar",
    "simmer the soup slowly",
    "knead the dough until smooth",
    "the rocket reached orbit!",
]


@pytest.fixture
def topics(both: Any) -> Iterator[tuple[EmbedClient, httpx.Client]]:
    client = EmbedClient(both.target)
    client.create_collection("topics")  # kind: "space" for d0-d3 and d8, else "food"
    documents = [
        {"id": f"d{i}", "text": t, "payload": {"kind": "space" if i < 4 or i == 8 else "food"}}
        for i, t in enumerate(TEXTS)
    ]
    client.upsert("topics", documents, store_text=True)
    with httpx.Client(base_url=both.url, timeout=60) as http:
        yield client, http
    client.close()


def test_scroll_pages_through_what_grpc_pages_through(
    topics: tuple[EmbedClient, httpx.Client],
) -> None:
    client, http = topics
    over_grpc = list(client.scroll_iter("topics", page_size=4, with_vectors=True))
    pages, cursor = [], ""
    while True:
        body = {"limit": 4, "cursor": cursor, "with_vectors": True}
        page = http.post("/api/v1/collections/topics/scroll", json=body).json()
        pages.append(page["documents"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [len(p) for p in pages] == [4, 4, 1]
    over_http = [d for p in pages for d in p]
    assert [d["id"] for d in over_http] == [d.id for d in over_grpc]
    assert [d["payload"] for d in over_http] == [d.payload for d in over_grpc]
    assert [d["vector"] for d in over_http] == [pytest.approx(list(d.vector)) for d in over_grpc]
    food = {"must": [{"match": {"key": "kind", "text": "food"}}]}
    filtered = http.post(
        "/api/v1/collections/topics/scroll", json={"filter": food, "with_payload": False}
    ).json()
    assert sorted(d["id"] for d in filtered["documents"]) == ["d4", "d5", "d6", "d7"]
    assert {str(d["payload"]) for d in filtered["documents"]} == {"{}"}
    assert filtered["next_cursor"] == ""


def test_an_ordered_scroll_pages_as_grpc_does(topics: tuple[EmbedClient, httpx.Client]) -> None:
    client, http = topics
    client.update_collection("topics", add_payload_indexes={"rank": "float"})
    client.update_payload("topics", ["d1", "d4", "d7"], payload={"rank": 0.5})
    client.update_payload("topics", ["d2"], payload={"rank": 2.25})
    over_grpc = list(client.scroll_iter("topics", page_size=2, order_by="rank", descending=True))
    over_http, cursor = [], ""
    order = {"key": "rank", "descending": True}
    while True:
        body = {"limit": 2, "cursor": cursor, "order_by": order}
        page = http.post("/api/v1/collections/topics/scroll", json=body).json()
        over_http += page["documents"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [d["id"] for d in over_http] == [d.id for d in over_grpc]
    assert over_http[0]["id"] == "d2" and {d["id"] for d in over_http[1:]} == {"d1", "d4", "d7"}
    unordered = http.post(
        "/api/v1/collections/topics/scroll", json={"order_by": {"key": "kind"}}
    ).json()
    assert "needs an integer, float or datetime payload index" in unordered["error"]["message"]


def test_cluster_answers_what_grpc_answers(topics: tuple[EmbedClient, httpx.Client]) -> None:
    client, http = topics
    options = {"k": 2, "top_documents": 2, "top_words": 3, "seed": 7}
    over_grpc = client.cluster("topics", **options)
    over_http = http.post("/api/v1/collections/topics/cluster", json=options).json()
    assert over_http["ids"] == list(over_grpc.ids)
    assert over_http["labels"] == list(over_grpc.labels)
    assert over_http["k"] == over_grpc.k == 2
    assert over_http["silhouette"] == pytest.approx(over_grpc.silhouette, abs=1e-6)
    clusters = {c["label"]: c for c in over_http["clusters"]}
    space = clusters[over_http["labels"][over_http["ids"].index("d0")]]
    assert {m["id"] for m in space["central"]} <= {"d0", "d1", "d2", "d3", "d8"}
    assert [w["word"] for w in space["words"]] == [w.word for w in over_grpc.clusters[0].words]
    # k chosen by silhouette, the score of each k tried keyed by k.
    chosen = http.post("/api/v1/collections/topics/cluster", json={"k_max": 4}).json()
    assert set(chosen["silhouette_by_k"]) == {"2", "3", "4"}
    # Labels written into payloads, as over gRPC.
    written = http.post(
        "/api/v1/collections/topics/cluster", json={"k": 2, "write_label": "topic"}
    ).json()
    assert written["labels_written"] == len(TEXTS)
    stored = {d.id: d.payload["topic"] for d in client.get("topics", ["d0", "d4"])}
    labels = dict(zip(written["ids"], written["labels"], strict=True))
    assert stored == {"d0": labels["d0"], "d4": labels["d4"]}
    texts = http.post("/api/v1/cluster", json={"texts": TEXTS, "k": 2, "seed": 7}).json()
    assert texts["labels"] == list(client.cluster(texts=TEXTS, k=2, seed=7).labels)
    assert texts["ids"] == [str(i) for i in range(len(TEXTS))]
    # None of the central members or words, as over gRPC.
    bare = {"k": 2, "top_documents": 0, "top_words": 0}
    reply = http.post("/api/v1/collections/topics/cluster", json=bare)
    assert reply.status_code == 200, reply.text
    assert all(c["central"] == [] and c["words"] == [] for c in reply.json()["clusters"])
    # A passage's own fields find it from its document: no label is written over them.
    for taken in ("doc_id", "passage", "passages", "span"):
        refused = http.post(
            "/api/v1/collections/topics/cluster", json={"k": 2, "write_label": taken}
        )
        assert refused.status_code == 400 and "that field is taken" in refused.text


def test_find_duplicates_answers_what_grpc_answers(
    topics: tuple[EmbedClient, httpx.Client],
) -> None:
    client, http = topics
    over_grpc = client.find_duplicates("topics", threshold=0.9)
    found = http.post("/api/v1/collections/topics/find-duplicates", json={"threshold": 0.9})
    over_http = found.json()
    assert [(p["a"], p["b"]) for p in over_http["pairs"]] == [("d0", "d8")]
    assert [(p.a, p.b) for p in over_grpc.pairs] == [("d0", "d8")]
    assert over_http["pairs"][0]["score"] == pytest.approx(over_grpc.pairs[0].score, abs=1e-6)
    assert over_http["groups"] == [
        {"ids": ["d0", "d8"], "min_score": over_http["pairs"][0]["score"]}
    ]
    assert over_http["texts"] == {"d0": TEXTS[0], "d8": TEXTS[8]}
    assert over_http["points_scanned"] == len(TEXTS)
    assert sum(b["count"] for b in over_http["histogram"]) == len(TEXTS)
    assert over_http["method"] == "exact_blocks"
    queried = http.post(
        "/api/v1/collections/topics/find-duplicates",
        json={"threshold": 0.9, "method": "store_queries", "with_text": False},
    ).json()
    assert [(p["a"], p["b"]) for p in queried["pairs"]] == [("d0", "d8")]
    assert (queried["method"], queried["texts"]) == ("store_queries", {})
    # The k most similar pairs of free texts.
    texts = ["a cat sat", "the weather is cold", "a cat sat down", "cold weather today"]
    body = {"texts": texts, "threshold": -1, "max_neighbors": 2, "max_pairs": 2}
    best = http.post("/api/v1/find-duplicates", json=body).json()
    expected = client.find_duplicates(texts=texts, threshold=-1, max_neighbors=2, max_pairs=2)
    assert [(p["a"], p["b"]) for p in best["pairs"]] == [(p.a, p.b) for p in expected.pairs]
    assert {(p["a"], p["b"]) for p in best["pairs"]} == {("0", "2"), ("1", "3")}
    # Equal texts score 1 (their dot product in float32 is a few 1e-7 above), so a
    # threshold of 1 finds exact duplicates and no score leaves [-1, 1].
    same = http.post("/api/v1/find-duplicates", json={"texts": ["same"] * 3, "threshold": 1})
    assert [p["score"] for p in same.json()["pairs"]] == [1.0, 1.0, 1.0]


def test_analysis_errors_name_their_field(topics: tuple[EmbedClient, httpx.Client]) -> None:
    _, http = topics
    for path, body, status, message in (
        ("/api/v1/cluster", {"texts": ["one"], "k": 2}, 400, "k is 2 but there are only 1"),
        ("/api/v1/cluster", {"texts": ["a", "b"], "write_label": "x"}, 400, "write_label:"),
        ("/api/v1/find-duplicates", {"texts": ["a"], "filter": {}}, 400, "filter:"),
        ("/api/v1/find-duplicates", {"texts": ["a", "b"], "threshold": 2}, 400, "threshold"),
        ("/api/v1/collections/topics/cluster", {"algorithm": "dbscan"}, 400, "algorithm:"),
        ("/api/v1/collections/nope/find-duplicates", {}, 404, "collection 'nope' not found"),
        ("/api/v1/collections/topics/scroll", {"limit": 10001}, 400, "limit"),
        ("/api/v1/collections/topics/scroll", {"cursor": "garbage"}, 400, "cursor"),
        ("/api/v1/collections/topics/cluster", {"max_points": 0}, 400, "at least 2"),
        ("/api/v1/collections/topics/cluster", {"max_points": -1}, 400, "at least 2"),
        ("/api/v1/cluster", {"texts": ["a", "b"], "k": 2, "algorithm": "hdbscan"}, 400, "k app"),
        ("/api/v1/cluster", {"texts": ["a", "b"], "min_cluster_size": 2}, 400, "to hdbscan"),
    ):
        reply = http.post(path, json=body)
        assert reply.status_code == status, (path, body, reply.text)
        assert message in reply.json()["error"]["message"], (path, body, reply.text)
