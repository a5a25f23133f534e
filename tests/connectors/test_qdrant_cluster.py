"""A three-node Qdrant cluster on loopback: what a write sees when one node is killed,
scrolls in a field's order across shards, and collection changes while two nodes are down.

Two collections with 3 shards and 2 replicas each, one with write consistency factor 1 and
one with 2, are written batch by batch through the server backend; one node (not the one the
client talks to) gets SIGKILL part-way through.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from connectors_testdata import unit_vectors
from qdrant_server import QdrantCluster, qdrant_binary

from embedserve.connectors import (
    CollectionSpec,
    CollectionUpdate,
    InvalidRequest,
    PayloadIndexKind,
    PointRecord,
    RemoteStore,
    RetryingStore,
    RetryPolicy,
    ScrollOrder,
    SearchParams,
    StoreError,
    ordered_page,
)
from embedserve.connectors._remote_convert import OutcomeUnknown

DIM, BATCH, BATCHES, KILL_AFTER = 8, 20, 12, 4
KEYWORD = PayloadIndexKind.KEYWORD


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[QdrantCluster]:
    running = QdrantCluster(qdrant_binary(), tmp_path).start()
    yield running
    running.stop()


def test_a_killed_node_fails_writes_only_under_write_consistency_2(
    cluster: QdrantCluster,
) -> None:
    started = time.monotonic()
    endpoint = cluster.nodes[0].endpoint
    store = RemoteStore.connect(endpoint.url, grpc_port=endpoint.grpc_port)
    vectors = unit_vectors(np.random.default_rng(4), BATCH * BATCHES, DIM)
    for factor in (1, 2):
        store.create_collection(
            CollectionSpec(
                f"wcf{factor}",
                vector_size=DIM,
                shard_number=3,
                replication_factor=2,
                write_consistency_factor=factor,
            )
        )
    acknowledged: dict[int, list[str]] = {1: [], 2: []}
    failed: dict[int, list[int]] = {1: [], 2: []}
    for b in range(BATCHES):
        if b == KILL_AFTER:
            cluster.nodes[2].kill()
        batch = range(b * BATCH, (b + 1) * BATCH)
        points = [PointRecord(f"p{i}", vectors[i], {"batch": b}) for i in batch]
        for factor in (1, 2):
            try:
                store.upsert(f"wcf{factor}", points)
            except StoreError as exc:
                # The engine's own failure, neither the caller's mistake nor a dropped call.
                assert not isinstance(exc, InvalidRequest)
                assert "failed to apply" in str(exc), exc
                failed[factor].append(b)
            else:
                acknowledged[factor].extend(p.id for p in points)

    # Every batch touches every shard; two of the three have a replica on the dead node.
    assert failed[1] == []
    assert failed[2] == list(range(KILL_AFTER, BATCHES))
    for factor in (1, 2):
        name = f"wcf{factor}"
        acked = acknowledged[factor]
        assert {r.id for r in store.retrieve(name, acked)} == set(acked)
        # Reads go on with one replica of each shard alive.
        probe = vectors[1]
        hits = store.search(name, probe, params=SearchParams(limit=5, exact=True))
        assert hits[0].id == "p1"
        assert len(hits) == 5
    assert store.count("wcf1") == BATCH * BATCHES
    # A failed write is not undone: the replicas that were up kept it (re-sending is safe,
    # the ids decide the points).
    assert store.count("wcf2") == BATCH * BATCHES
    store.close()
    print(f"three-node cluster test body: {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("descending", [False, True])
def test_an_ordered_scroll_pages_exactly_across_shards(
    cluster: QdrantCluster, descending: bool
) -> None:
    endpoint = cluster.nodes[0].endpoint
    store = RemoteStore.connect(endpoint.url, grpc_port=endpoint.grpc_port)
    indexes = {"n": PayloadIndexKind.INTEGER}
    store.create_collection(
        CollectionSpec(
            "ranked", vector_size=DIM, shard_number=3, replication_factor=2, payload_indexes=indexes
        )
    )
    rng = np.random.default_rng(3)
    values = [int(v) for v in rng.integers(0, 7, 120)]  # long runs of equal values
    vectors = unit_vectors(rng, len(values), DIM)
    store.upsert(
        "ranked", [PointRecord(f"p{k}", vectors[k], {"n": v}) for k, v in enumerate(values)]
    )
    for limit in (1, 7, 50):
        seen: list[tuple[str, int]] = []
        cursor = None
        while True:
            order = ScrollOrder("n", descending)
            page = ordered_page(
                store, "ranked", order, PayloadIndexKind.INTEGER, None, limit, cursor
            )
            seen += [(r.id, r.payload["n"]) for r in page.records]
            if (cursor := page.next_cursor) is None:
                break
        assert sorted(seen) == sorted((f"p{k}", v) for k, v in enumerate(values))
        assert [v for _, v in seen] == sorted(values, reverse=descending)


def test_collection_changes_without_a_majority_are_reported_in_doubt_not_repeated(
    cluster: QdrantCluster,
) -> None:
    """Two of three nodes killed: a create, delete or alias change cannot be committed, yet
    is committed when they come back. Each fails at its first timeout saying so, and the
    create, committed later, claims no payload index that was never built."""
    endpoint = cluster.nodes[0].endpoint
    bare = RemoteStore.connect(endpoint.url, grpc_port=endpoint.grpc_port, timeout_s=2)
    store = RetryingStore(bare, RetryPolicy(max_attempts=5, max_total_s=30))
    with pytest.raises(InvalidRequest, match=r"^replication_factor .* 3 node"):
        store.create_collection(CollectionSpec("wide", vector_size=DIM, replication_factor=4))
    store.create_collection(CollectionSpec("old", vector_size=DIM, replication_factor=3))
    cluster.nodes[1].kill()
    cluster.nodes[2].kill()

    indexed = CollectionSpec("k5", vector_size=DIM, payload_indexes={"tag": KEYWORD})
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown, match=r"creating collection 'k5'.*GetCollection k5"):
        store.create_collection(indexed)
    assert time.monotonic() - started < 5  # one timeout of 2 s: not tried again
    with pytest.raises(OutcomeUnknown, match=r"deleting collection 'old'.*ListCollections"):
        store.delete_collection("old")
    with pytest.raises(OutcomeUnknown, match=r"changing aliases.*ListAliases"):
        store.update_aliases({"new": "old"})

    cluster.nodes[1].start()
    cluster.nodes[2].start()
    deadline = time.monotonic() + 60
    while store.list_collections() != ["k5"]:
        assert time.monotonic() < deadline, store.list_collections()
        time.sleep(0.2)
    metadata = endpoint.request("GET", "/collections/k5")["config"]["metadata"]
    assert metadata["embedserve_spec"]["payload_indexes"] == {}
    assert store.get_collection("k5").spec.payload_indexes == {}
    store.update_collection("k5", CollectionUpdate(add_payload_indexes={"tag": KEYWORD}))
    assert store.get_collection("k5").spec == indexed
    store.close()
