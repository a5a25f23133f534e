"""Scroll, Cluster and FindDuplicates over gRPC with the packaged MiniLM, on the labelled
corpus of docs/data (300 texts in six topics, 36 planted near-duplicates)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from analysis_corpus import TOPIC_WORDS, documents, planted_pairs, rows
from running_server import RunningServer
from sklearn.metrics import adjusted_rand_score

from embedserve.client import EmbedClient
from embedserve.server import cli


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, minilm_model: Any) -> Iterator[str]:
    from embedserve.server.config import Settings

    settings = Settings(
        port=0, http_port=0, model="minilm", data_dir=str(tmp_path_factory.mktemp("data"))
    )
    running = RunningServer(settings, minilm_model).wait_ready()
    with EmbedClient(running.target) as client:
        client.create_collection("corpus", payload_indexes={"topic": "keyword"})
        client.ingest("corpus", documents(), batch_size=64, store_text=True)
        client.create_collection("empty")
    yield running.target
    running.stop()


@pytest.fixture
def client(server: str) -> Iterator[EmbedClient]:
    with EmbedClient(server) as opened:
        yield opened


def test_scroll_pages_filters_and_vectors(client: EmbedClient) -> None:
    page, cursor = client.scroll("corpus", limit=100)
    assert len(page) == 100 and cursor is not None
    assert {d.payload["topic"] for d in page} <= set(TOPIC_WORDS)
    everything = list(client.scroll_iter("corpus", page_size=100))
    assert sorted(d.id for d in everything) == sorted(r["id"] for r in rows())

    music = {"must": [{"match": {"key": "topic", "text": "music"}}]}
    found = list(client.scroll_iter("corpus", filter=music, with_vectors=True, page_size=7))
    assert len(found) == 56 and all(d.payload["topic"] == "music" for d in found)
    vector = found[0].vector
    assert vector is not None and vector.shape == (384,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)

    with pytest.raises(grpc.RpcError) as bad_cursor:
        client.scroll("corpus", cursor="nonsense")
    assert bad_cursor.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as missing:
        client.scroll("nope")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_scroll_in_a_fields_order(client: EmbedClient, server: str, capsys: Any) -> None:
    years = {f"r{k}": 2000 + k % 4 for k in range(11)} | {"undated": None}
    client.create_collection("dated", payload_indexes={"year": "integer", "topic": "keyword"})
    client.upsert(
        "dated",
        [
            {"id": i, "text": f"report {i}", "payload": {} if y is None else {"year": y}}
            for i, y in years.items()
        ],
    )
    newest = list(client.scroll_iter("dated", page_size=2, order_by="year", descending=True))
    assert [d.payload["year"] for d in newest] == sorted(
        (y for y in years.values() if y is not None), reverse=True
    )
    assert sorted(d.id for d in newest) == sorted(i for i, y in years.items() if y is not None)
    page, cursor = client.scroll("dated", limit=3, order_by="year")
    assert [d.payload["year"] for d in page] == [2000, 2000, 2000] and cursor is not None

    with pytest.raises(grpc.RpcError) as other_order:
        client.scroll("dated", cursor=cursor, order_by="year", descending=True)
    assert other_order.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "another order_by" in other_order.value.details()
    with pytest.raises(grpc.RpcError) as keyword:
        client.scroll("dated", order_by="topic")
    assert keyword.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs an integer, float or datetime payload index" in keyword.value.details()

    command = ["scroll", "dated", "--order-by", "year", "--desc", "--limit", "3"]
    assert cli.main([*command, "--target", server]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["payload"]["year"] for line in lines] == [2003, 2003, 2002]
    assert cli.main(["scroll", "dated", "--desc", "--target", server]) == 2
    assert "descending needs order_by" in capsys.readouterr().err


def test_cluster_with_chosen_k_recovers_the_topics(client: EmbedClient) -> None:
    response = client.cluster("corpus")
    topic = {r["id"]: r["topic"] for r in rows()}
    ari = adjusted_rand_score([topic[i] for i in response.ids], list(response.labels))
    named = 0
    for c in response.clusters:
        members = [
            i for i, label in zip(response.ids, response.labels, strict=True) if label == c.label
        ]
        majority = Counter(topic[i] for i in members).most_common(1)[0][0]
        words = {w.word for w in c.words}
        named += bool(words & TOPIC_WORDS[majority])
        assert c.size == len(members) and len(c.central) == 5
        assert all(topic[m.id] == majority and m.text for m in c.central)
    print(f"k={response.k} ARI={ari:.3f} clusters named by their words: {named}/6")
    assert response.k == 6 and sorted(response.silhouette_by_k) == list(range(2, 13))
    assert ari >= 0.7
    assert named >= 5
    assert response.points_total == response.points_clustered == 336


def test_cluster_a_sample_and_write_every_label(client: EmbedClient) -> None:
    response = client.cluster("corpus", k=6, max_points=120, write_label="cluster", seed=1)
    assert response.points_clustered == 120 and response.points_total == 336
    assert response.labels_written == 336
    sampled = dict(zip(response.ids, response.labels, strict=True))
    stored = {d.id: d.payload for d in client.scroll_iter("corpus")}
    assert all(stored[i]["cluster"] == label for i, label in sampled.items())
    # Points outside the sample went to their nearest centre: same topic, same label.
    by_topic: dict[str, Counter[int]] = {}
    for payload in stored.values():
        by_topic.setdefault(payload["topic"], Counter())[payload["cluster"]] += 1
    purity = sum(c.most_common(1)[0][1] for c in by_topic.values()) / len(stored)
    assert purity >= 0.9


def test_a_sampled_hdbscan_removes_the_field_where_it_writes_no_label(
    client: EmbedClient,
) -> None:
    """HDBSCAN cannot place documents left out of its sample: they kept the label an
    earlier run wrote into the same field, indistinguishable from this run's labels."""
    assert client.cluster("corpus", k=6, write_label="clu").labels_written == 336
    music = {"must": [{"match": {"key": "topic", "text": "music"}}]}
    response = client.cluster(
        "corpus",
        algorithm="hdbscan",
        filter={"must_not": music["must"]},
        max_points=60,
        write_label="clu",
    )
    assert response.points_clustered == 60 and response.points_total == 280
    assert response.labels_written == 60
    stored = {d.id: d.payload for d in client.scroll_iter("corpus")}
    labelled = {i: p["clu"] for i, p in stored.items() if p["topic"] != "music" and "clu" in p}
    assert labelled == dict(zip(response.ids, response.labels, strict=True))
    # Documents the filter left out are no part of the run: their labels stay.
    assert all("clu" in p for p in stored.values() if p["topic"] == "music")


def test_cluster_texts_with_hdbscan(client: EmbedClient) -> None:
    chosen = [r for r in rows() if r["topic"] in ("music", "finance") and not r["duplicate_of"]]
    chosen = chosen[:40] + chosen[-40:]
    response = client.cluster(texts=[r["text"] for r in chosen], algorithm="hdbscan")
    assert response.ids[:3] == ["0", "1", "2"] and response.points_clustered == 80
    assert response.k == 2
    ari = adjusted_rand_score([r["topic"] for r in chosen], list(response.labels))
    noise = sum(label == -1 for label in response.labels)
    print(f"hdbscan: ARI={ari:.3f}, noise {noise} of 80")
    assert ari >= 0.8
    if noise:
        assert response.clusters[-1].label == -1 and response.clusters[-1].size == noise


def test_hdbscan_gives_copies_of_a_text_one_label(client: EmbedClient) -> None:
    """PCA gives equal vectors coordinates 1e-8 apart, and one text embedded in batches of
    other shapes comes back about 1e-6 away: HDBSCAN, whose density is 1 / distance, took
    such copies for the densest clusters and split them (six "x": 0 1 1 1 1 0)."""
    for copies in (["x"] * 6, ["The cat sat on the mat."] * 8):
        response = client.cluster(texts=copies, algorithm="hdbscan", min_cluster_size=2)
        # One label; HDBSCAN makes no single cluster of all the points, so noise.
        assert list(response.labels) == [-1] * len(copies) and response.k == 0

    chosen = [r for r in rows() if r["topic"] in ("music", "finance") and not r["duplicate_of"]]
    chosen = chosen[:6] + chosen[-6:]
    texts, topics = [r["text"] for r in chosen], [r["topic"] for r in chosen]

    def one_topic_each(labels: list[int]) -> bool:
        return all(
            len({t for t, label in zip(topics, labels, strict=True) if label == c}) == 1
            for c in set(labels) - {-1}
        )

    for times, size, k in ((2, 3, 2), (3, 5, 2), (3, 3, 12)):
        response = client.cluster(texts=texts * times, algorithm="hdbscan", min_cluster_size=size)
        labels = np.asarray(response.labels).reshape(times, len(texts))
        assert (labels == labels[0]).all(), (times, size, labels)
        # As many copies as min_cluster_size are a cluster: none is denser than a point.
        assert response.k == k and one_topic_each(labels[0].tolist()), (times, size, labels)

    # Stored four times, one upsert each (so in batches that may differ in shape).
    client.create_collection("copies")
    for copy in range(4):
        client.upsert("copies", [{"id": f"{copy}-{i}", "text": t} for i, t in enumerate(texts)])
    for size, k in ((2, 12), (5, 2)):
        response = client.cluster("copies", algorithm="hdbscan", min_cluster_size=size)
        label = dict(zip(response.ids, response.labels, strict=True))
        labels = np.asarray([[label[f"{c}-{i}"] for i in range(len(texts))] for c in range(4)])
        assert (labels == labels[0]).all(), (size, labels)
        assert response.k == k and one_topic_each(labels[0].tolist()), (size, labels)


@pytest.mark.parametrize("method", ["store_queries", "exact_blocks"])
def test_find_duplicates_recovers_planted_pairs(client: EmbedClient, method: str) -> None:
    response = client.find_duplicates("corpus", threshold=0.9, method=method)
    assert response.method == {"store_queries": 1, "exact_blocks": 2}[method]
    found = {(min(p.a, p.b), max(p.a, p.b)) for p in response.pairs}
    planted = planted_pairs()
    hits = len(found & planted)
    precision, recall = hits / len(found), hits / len(planted)
    print(
        f"planted {len(planted)} found {len(found)} precision {precision:.3f} recall {recall:.3f}"
    )
    assert hits >= 30 and precision >= 0.9 and recall >= 0.9
    assert response.points_scanned == 336 and response.pairs_total == len(found)
    assert sum(b.count for b in response.histogram) == 336
    assert all(len(g.ids) >= 2 for g in response.groups)
    assert sum(len(g.ids) for g in response.groups) == len({i for p in found for i in p})
    first = response.pairs[0]
    assert response.texts[first.a] and response.texts[first.b]


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (
            lambda c: c.cluster("corpus", k=500),
            "INVALID_ARGUMENT",
            "k is 500 but there are only 336",
        ),
        (lambda c: c.cluster("empty"), "FAILED_PRECONDITION", "'empty' has no points"),
        (lambda c: c.cluster(texts=["a"], write_label="x"), "INVALID_ARGUMENT", "write_label"),
        (
            lambda c: c.cluster(
                texts=["a", "b", "c"], k=2, filter={"must": [{"is_empty": {"key": "x"}}]}
            ),
            "INVALID_ARGUMENT",
            "filter needs a collection, not texts",
        ),
        (lambda c: c.find_duplicates("corpus", threshold=1.5), "INVALID_ARGUMENT", r"\[-1, 1\]"),
        (lambda c: c.find_duplicates("empty"), "FAILED_PRECONDITION", "'empty' has no points"),
        (lambda c: c.find_duplicates("nope"), "NOT_FOUND", "nope"),
        # Every neighbour of every point held (a gigabyte from 2,000 texts): refused first.
        (
            lambda c: c.find_duplicates(
                texts=[f"t{i}" for i in range(1500)], threshold=-1, max_neighbors=10**6
            ),
            "INVALID_ARGUMENT",
            r"^1500 points with max_neighbors 1000000 may hold 2248500 neighbour pairs; at "
            r"most 2097152 \(their memory\)",
        ),
        (
            lambda c: c.cluster("corpus", k_min=2, k_max=100),
            "INVALID_ARGUMENT",
            r"k_max <= 64 to choose k",
        ),
        # An option of the other algorithm was ignored without a word.
        (
            lambda c: c.cluster("corpus", algorithm="hdbscan", k=3),
            "INVALID_ARGUMENT",
            "^k applies to kmeans; hdbscan finds the number of clusters",
        ),
        (
            lambda c: c.cluster("corpus", algorithm="hdbscan", k_min=2),
            "INVALID_ARGUMENT",
            "^k_min applies to kmeans",
        ),
        (
            lambda c: c.cluster("corpus", min_cluster_size=5),
            "INVALID_ARGUMENT",
            "^min_cluster_size applies to hdbscan",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(
    client: EmbedClient, call: Any, code: str, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        call(client)
    assert error.value.code().name == code
    assert re.search(message, error.value.details())


def test_cli_export_jsonl_and_npy(server: str, tmp_path: Path, capsys: Any) -> None:
    jsonl = tmp_path / "music.jsonl"
    music = '{"must":[{"match":{"key":"topic","text":"music"}}]}'
    assert (
        cli.main(["export", "corpus", "-o", str(jsonl), "--target", server, "--filter", music]) == 0
    )
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == 56 and all(line["payload"]["topic"] == "music" for line in lines)
    assert len(lines[0]["vector"]) == 384 and lines[0]["payload"]["text"]

    npy = tmp_path / "all.npy"
    assert cli.main(["export", "corpus", "-o", str(npy), "--target", server]) == 0
    matrix = np.load(npy)
    ids = [json.loads(line) for line in (tmp_path / "all.ids.jsonl").read_text().splitlines()]
    assert matrix.shape == (336, 384) and len(ids) == 336
    with EmbedClient(server) as client:
        (stored,) = client.get("corpus", [ids[7]["id"]], with_vectors=True)
    assert np.allclose(matrix[7], stored.vector, atol=1e-6)
    assert "336 vectors" in capsys.readouterr().err
    # A filter that matches nothing still gives a matrix of the collection's width.
    nothing = '{"must":[{"match":{"key":"topic","text":"no such topic"}}]}'
    assert (
        cli.main(["export", "corpus", "-o", str(npy), "--target", server, "--filter", nothing]) == 0
    )
    assert np.load(npy).shape == (0, 384)


def test_cli_cluster_and_duplicates(server: str, tmp_path: Path, capsys: Any) -> None:
    assert cli.main(["cluster", "corpus", "--k", "6", "--target", server]) == 0
    out = capsys.readouterr().out
    assert out.startswith("6 clusters (given)") and out.count("\ncluster ") == 6
    assert "words: " in out

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(r["text"] for r in rows()[:100:10]) + "\n")
    assert (
        cli.main(["cluster", "--texts", str(texts), "--k", "2", "--json", "--target", server]) == 0
    )
    response = json.loads(capsys.readouterr().out)
    assert response["k"] == 2 and len(response["labels"]) == 10

    assert cli.main(["duplicates", "corpus", "--threshold", "0.9", "--target", server]) == 0
    out = capsys.readouterr().out
    assert out.startswith("36 pairs in 36 groups at cosine >= 0.9 among 336 documents")
    assert "[+0.95, +1.00)" in out

    assert cli.main(["duplicates", "corpus", "--threshold", "2", "--target", server]) == 1
    assert "INVALID_ARGUMENT: threshold must be a cosine similarity" in capsys.readouterr().err
