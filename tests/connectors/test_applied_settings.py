"""Collection settings as the engine applied them, not as embedserve saved them.

``get_collection().spec`` echoes the spec embedserve stored, so an engine that ignored
``hnsw_m``, quantization or ``on_disk`` would still round-trip. These tests ask the engine:
the embedded engine's segment configs and shard info, the server's collection info.
qdrant-client's local mode has no index or storage options to apply, so it is not asked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from connectors_testdata import unit_vectors

from embedserve.connectors import (
    CollectionSpec,
    Distance,
    EdgeStore,
    InvalidRequest,
    PayloadIndexKind,
    PointRecord,
    Quantization,
    RemoteStore,
    VectorDatatype,
)

DIM, N = 12, 300  # 300 x 12 floats is ~14 KB: past a 1 KB threshold, so an index gets built
TUNED = CollectionSpec(
    "tuned",
    vector_size=DIM,
    distance=Distance.DOT,
    on_disk=True,
    hnsw_m=8,
    hnsw_ef_construct=64,
    quantization=Quantization.SCALAR_INT8,
    full_scan_threshold_kb=1,
    payload_indexes={"group": PayloadIndexKind.KEYWORD, "n": PayloadIndexKind.INTEGER},
)
PLAIN = CollectionSpec(
    "plain", vector_size=DIM, hnsw_m=20, hnsw_ef_construct=40, full_scan_threshold_kb=1
)


def _fill(store: Any, name: str) -> None:
    vectors = unit_vectors(np.random.default_rng(2), N, DIM)
    store.upsert(
        name,
        [PointRecord(f"p{i}", vectors[i], {"group": "ab"[i % 2], "n": i}) for i in range(N)],
    )


def _segment_configs(shard: Path) -> list[dict[str, Any]]:
    """The vector config of each segment, as the engine wrote it next to the segment."""
    configs = []
    for path in sorted(shard.glob("segments/*/segment.json")):
        configs.append(json.loads(path.read_text())["config"]["vector_data"][""])
    return configs


def test_embedded_engine_applies_index_quantization_storage_and_payload_indexes(
    tmp_path: Path,
) -> None:
    store = EdgeStore(tmp_path)
    for spec in (TUNED, PLAIN):
        store.create_collection(spec)
        _fill(store, spec.name)
        store.optimize(spec.name)
        store.flush(spec.name)

    tuned = _segment_configs(tmp_path / "collections" / "tuned" / "shard")
    [hnsw] = [c for c in tuned if c["index"]["type"] == "hnsw"]
    assert hnsw["index"]["options"]["m"] == 8
    assert hnsw["index"]["options"]["ef_construct"] == 64
    assert hnsw["index"]["options"]["full_scan_threshold"] == 1
    assert hnsw["quantization_config"]["scalar"]["type"] == "int8"
    assert hnsw["distance"] == "Dot"
    assert hnsw["size"] == DIM
    assert hnsw["storage_type"] == "Mmap"  # on_disk: vectors stay in memory-mapped files

    plain = _segment_configs(tmp_path / "collections" / "plain" / "shard")
    [plain_hnsw] = [c for c in plain if c["index"]["type"] == "hnsw"]
    assert plain_hnsw["index"]["options"]["m"] == 20
    assert plain_hnsw["index"]["options"]["ef_construct"] == 40
    assert plain_hnsw["quantization_config"] is None
    assert plain_hnsw["distance"] == "Cosine"
    assert plain_hnsw["storage_type"] != "Mmap"

    info = store._collections["tuned"].shard.info()
    kinds = {field: str(index.data_type) for field, index in info.payload_schema.items()}
    assert kinds == {"group": "PayloadSchemaType.Keyword", "n": "PayloadSchemaType.Integer"}
    assert store.get_collection("tuned").indexed_vectors_count == N
    store.close()


def _wait_indexed(server: Any, name: str, timeout: float = 60) -> dict[str, Any]:
    """The collection's info once the server's background optimiser has indexed it."""
    deadline = time.monotonic() + timeout
    while True:
        info: dict[str, Any] = server.request("GET", f"/collections/{name}")
        if info["status"] == "green" and info["indexed_vectors_count"] >= N:
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.2)


def test_server_applies_index_quantization_storage_sharding_and_payload_indexes(
    qdrant_server: Any,
) -> None:
    store = RemoteStore.connect(
        qdrant_server.url, api_key=qdrant_server.api_key, grpc_port=qdrant_server.grpc_port
    )
    sharded = CollectionSpec("sharded", vector_size=DIM, shard_number=2, write_consistency_factor=1)
    for spec in (TUNED, PLAIN, sharded):
        store.create_collection(spec)
        _fill(store, spec.name)

    tuned = _wait_indexed(qdrant_server, "tuned")
    config = tuned["config"]
    vectors = {"size": DIM, "distance": "Dot", "on_disk": True, "datatype": "float32"}
    assert config["params"]["vectors"] == vectors
    assert config["hnsw_config"]["m"] == 8
    assert config["hnsw_config"]["ef_construct"] == 64
    assert config["hnsw_config"]["full_scan_threshold"] == 1
    assert config["optimizer_config"]["indexing_threshold"] == 1
    assert config["quantization_config"]["scalar"]["type"] == "int8"
    schema = {field: index["data_type"] for field, index in tuned["payload_schema"].items()}
    assert schema == {"group": "keyword", "n": "integer"}
    # Both payload indexes cover every point.
    assert {index["points"] for index in tuned["payload_schema"].values()} == {N}

    plain = _wait_indexed(qdrant_server, "plain")["config"]
    assert plain["params"]["vectors"]["distance"] == "Cosine"
    assert not plain["params"]["vectors"].get("on_disk")
    assert (plain["hnsw_config"]["m"], plain["hnsw_config"]["ef_construct"]) == (20, 40)
    assert plain["quantization_config"] is None

    params = qdrant_server.request("GET", "/collections/sharded")["config"]["params"]
    assert params["shard_number"] == 2
    cluster = qdrant_server.request("GET", "/collections/sharded/cluster")
    assert cluster["shard_count"] == 2
    assert store.count("sharded") == N
    store.close()


def test_a_collection_made_by_another_tool_reads_back_as_the_server_reports_it(
    qdrant_server: Any,
) -> None:
    """No spec saved by embedserve: the spec is derived from the server's own config."""
    qdrant_server.request(
        "PUT",
        "/collections/foreign",
        {
            "vectors": {"size": 6, "distance": "Euclid", "on_disk": True},
            "hnsw_config": {"m": 24, "ef_construct": 90, "full_scan_threshold": 500},
            "quantization_config": {"scalar": {"type": "int8"}},
            "shard_number": 2,
        },
    )
    qdrant_server.request(
        "PUT",
        "/collections/foreign/index?wait=true",
        {"field_name": "tag", "field_schema": "keyword"},
    )
    store = RemoteStore.connect(
        qdrant_server.url, api_key=qdrant_server.api_key, grpc_port=qdrant_server.grpc_port
    )
    assert store.get_collection("foreign").spec == CollectionSpec(
        "foreign",
        vector_size=6,
        distance=Distance.EUCLID,
        on_disk=True,
        hnsw_m=24,
        hnsw_ef_construct=90,
        full_scan_threshold_kb=500,
        quantization=Quantization.SCALAR_INT8,
        shard_number=2,
        payload_indexes={"tag": PayloadIndexKind.KEYWORD},
    )
    compact = {"size": 8, "distance": "Cosine", "datatype": "float16"}
    qdrant_server.request(
        "PUT",
        "/collections/compact",
        {"vectors": compact, "quantization_config": {"binary": {"always_ram": True}}},
    )
    spec = store.get_collection("compact").spec
    assert (spec.quantization, spec.datatype) == (Quantization.BINARY, VectorDatatype.FLOAT16)
    store.close()


def test_a_uint8_collection_made_elsewhere_reads_back_and_refuses_float_vectors(
    qdrant_server: Any, tmp_path: Path
) -> None:
    bytes_config = {"vectors": {"size": 3, "distance": "Dot", "datatype": "uint8"}}
    qdrant_server.request("PUT", "/collections/bytes", bytes_config)
    points = [{"id": n, "vector": vector} for n, vector in ((1, [9, 0, 0]), (2, [8, 1, 0]))]
    qdrant_server.request("PUT", "/collections/bytes/points?wait=true", {"points": points})
    store = RemoteStore.connect(
        qdrant_server.url, api_key=qdrant_server.api_key, grpc_port=qdrant_server.grpc_port
    )
    spec = store.get_collection("bytes").spec
    assert (spec.datatype, spec.vector_size) == (VectorDatatype.UINT8, 3)
    refusal = "collection 'bytes' stores uint8 vectors"
    with pytest.raises(InvalidRequest, match=refusal):
        store.upsert("bytes", [PointRecord("x", [0.1, 0.2, 0.3])])
    with pytest.raises(InvalidRequest, match=refusal):
        store.search("bytes", [0.1, 0.2, 0.3])
    with pytest.raises(InvalidRequest, match=refusal):
        store.recommend("bytes", [[0.1, 0.2, 0.3]])
    assert store.count("bytes") == 2
    edge = EdgeStore(tmp_path / "edge")
    for made in (store, edge):
        with pytest.raises(InvalidRequest, match="uint8 vectors are read back"):
            made.create_collection(CollectionSpec("new", 3, datatype=VectorDatatype.UINT8))
    edge.close()
    store.close()
