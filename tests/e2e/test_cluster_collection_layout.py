"""embedserve in front of a real three-node Qdrant cluster: collections get the server's
default layout (shards, replicas, write consistency), and losing one node leaves a
replicated collection readable and writable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from qdrant_cluster import Cluster

from embedserve.client import EmbedClient

pytestmark = pytest.mark.slow

LAYOUT = {
    "default_shard_number": 3,
    "default_replication_factor": 2,
    "default_write_consistency_factor": 1,
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path / "qdrant")
    yield running
    running.close()


@pytest.fixture
def client(
    cluster: Cluster, start_server: Callable[..., Any], minilm_model: Any
) -> Iterator[EmbedClient]:
    server = start_server(
        loaded=minilm_model,
        qdrant_url=cluster.nodes[0].url,
        qdrant_prefer_grpc=False,  # the REST port; each node's gRPC port is a random one
        store_retry_attempts=2,
        store_retry_max_s=1.0,
        **LAYOUT,
    )
    with EmbedClient(server.target, timeout=60) as connected:
        yield connected


def docs(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "text": f"document {i} about topic {i % 5}"} for i in range(n)]


def shard_peers(cluster: Cluster, name: str) -> list[int]:
    """The peer of every shard replica of a collection, as the cluster reports them."""
    info = cluster.nodes[0].get(f"/collections/{name}/cluster")
    local = [info["peer_id"] for _ in info["local_shards"]]
    return local + [shard["peer_id"] for shard in info["remote_shards"]]


def test_collections_get_the_default_layout_unless_they_set_their_own(
    cluster: Cluster, client: EmbedClient
) -> None:
    client.create_collection("spread")
    client.create_collection("single", shard_number=1, replication_factor=1)

    params = cluster.collection("spread")["config"]["params"]
    assert (params["shard_number"], params["replication_factor"]) == (3, 2)
    assert params["write_consistency_factor"] == 1
    placed = shard_peers(cluster, "spread")
    assert len(placed) == 6 and len(set(placed)) == 3  # 3 shards x 2 copies over 3 peers
    assert client.get_collection("spread").config.shard_number == 3

    single = cluster.collection("single")["config"]["params"]
    assert (single["shard_number"], single["replication_factor"]) == (1, 1)


def test_one_node_lost_replicated_collection_reads_and_writes_go_on(
    cluster: Cluster, client: EmbedClient
) -> None:
    client.create_collection("replicated")
    client.create_collection("unreplicated", replication_factor=1)
    for name in ("replicated", "unreplicated"):
        client.upsert(name, docs("a", 30))
        assert client.count(name) == 30

    cluster.nodes[2].kill()  # not the node embedserve talks to

    # Two copies of every shard: reads and writes go on against the surviving copies.
    assert client.count("replicated") == 30
    assert len(client.search("replicated", "topic 3", limit=5)) == 5
    assert [d.id for d in client.get("replicated", ["a7"])] == ["a7"]
    client.upsert("replicated", docs("b", 10))
    assert client.count("replicated") == 40

    # One copy: the shard on the lost node is gone, so calls that need it fail.
    with pytest.raises(grpc.RpcError) as error:
        client.count("unreplicated")
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE

    # A majority is left: a collection is made, with its payload indexes. Qdrant waited out
    # the replica's activation on the lost node past embedserve's timeout, so the create was
    # answered UNAVAILABLE though made, and its indexes were never built.
    client.create_collection("made_one_down", payload_indexes={"topic": "keyword"})
    made = client.get_collection("made_one_down")
    assert dict(made.config.payload_indexes) == {"topic": 1}  # KEYWORD
    assert set(cluster.collection("made_one_down")["payload_schema"]) == {"topic"}
