"""open_store picks the backend; ids and request types validate before any backend runs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from embedserve.connectors import (
    RESERVED_KEY,
    CollectionSpec,
    Distance,
    EdgeStore,
    Filter,
    HasId,
    InvalidFilter,
    InvalidRequest,
    MatchAny,
    MatchValue,
    PointRecord,
    Range,
    RemoteStore,
    RetryingStore,
    SearchParams,
    StoreLocked,
    StoreSettings,
    VectorStore,
    open_store,
    point_id,
)


def test_open_store_embedded(tmp_path: Path) -> None:
    in_process = StoreSettings(data_dir=str(tmp_path / "data"), store_process=False)
    with open_store(in_process) as store:
        assert isinstance(store, RetryingStore)
        assert isinstance(store.inner, EdgeStore)
        assert isinstance(store, VectorStore)
        store.create_collection(CollectionSpec("c", vector_size=2))
    assert (tmp_path / "data" / "collections" / "c" / "collection.json").is_file()
    with open_store(in_process, retry=False) as store:
        assert isinstance(store, EdgeStore)
        assert store.list_collections() == ["c"]


def test_open_store_qdrant_local_modes(tmp_path: Path) -> None:
    with open_store(StoreSettings(qdrant_url=":memory:"), retry=False) as store:
        assert isinstance(store, RemoteStore)
        store.create_collection(CollectionSpec("m", vector_size=2))
        assert store.list_collections() == ["m"]

    folder = tmp_path / "qlocal"
    spec = CollectionSpec("p", vector_size=3, distance=Distance.DOT, hnsw_ef=33)
    local = StoreSettings(qdrant_url=f"local:{folder}")
    with open_store(local) as store:
        store.create_collection(spec)
        store.upsert("p", [PointRecord("a", [1.0, 2.0, 3.0], {"k": 1})])
        with pytest.raises(StoreLocked):
            open_store(local)
    with open_store(local) as store:
        assert store.get_collection("p").spec == spec  # kept in the collection's metadata
        assert store.retrieve("p", ["a"])[0].payload == {"k": 1}


@pytest.mark.parametrize("where", ["embedded", "local"])
def test_a_build_beam_a_qdrant_server_refuses_is_refused_on_every_engine(
    tmp_path: Path, where: str
) -> None:
    """hnsw_ef_construct 1 to 3 made collections that no server would take: their export
    failed to ingest there with Qdrant's own validation text."""
    settings = (
        StoreSettings(data_dir=str(tmp_path / "data"), store_process=False)
        if where == "embedded"
        else StoreSettings(qdrant_url=f"local:{tmp_path / 'qlocal'}")
    )
    with open_store(settings, retry=False) as store:
        with pytest.raises(InvalidRequest) as refused:
            store.create_collection(CollectionSpec("beam", vector_size=2, hnsw_ef_construct=3))
        assert str(refused.value) == (
            "hnsw_ef_construct must be at least 4 (as a Qdrant server takes it), got 3"
        )
        store.create_collection(CollectionSpec("beam", vector_size=2, hnsw_ef_construct=4))
        assert store.get_collection("beam").spec.hnsw_ef_construct == 4


def test_open_store_server_url_is_lazy() -> None:
    # No server is needed to build the client; failures surface on the first call.
    store = open_store(
        StoreSettings(
            qdrant_url="https://qdrant.example:6333", qdrant_api_key="k", qdrant_timeout_s=3
        )
    )
    assert isinstance(store, RetryingStore)
    assert isinstance(store.inner, RemoteStore)
    store.close()


@pytest.mark.parametrize("port", [-1, 65536])
def test_open_store_rejects_a_grpc_port_out_of_range(port: int) -> None:
    # The port in use is checked for real by the tests against a Qdrant server on free ports.
    with pytest.raises(InvalidRequest, match=f"qdrant_grpc_port must be 0-65535, got {port}"):
        open_store(StoreSettings(qdrant_url="http://127.0.0.1:6333", qdrant_grpc_port=port))


@pytest.mark.parametrize("url", ["ftp://host", "qdrant:6333", "memory"])
def test_open_store_rejects_unknown_urls(url: str) -> None:
    with pytest.raises(InvalidRequest, match="unsupported vector store url"):
        open_store(StoreSettings(qdrant_url=url))


def test_point_ids_are_deterministic_uuids() -> None:
    assert point_id("doc-1") == point_id("doc-1")
    assert point_id("doc-1") != point_id("doc-2")
    assert uuid.UUID(point_id("doc-1")).version == 5
    # Pinned: changing the namespace would orphan every stored point.
    assert point_id("doc-1") == str(
        uuid.uuid5(uuid.UUID("278267dc-b055-42a0-b3bb-cfd1f200b87b"), "doc-1")
    )
    assert RESERVED_KEY == "_embedserve_id"
    with pytest.raises(InvalidRequest):
        point_id("")


@pytest.mark.parametrize(
    "build",
    [
        lambda: MatchValue("k", 1.5),  # type: ignore[arg-type]
        lambda: MatchValue("", "x"),
        lambda: MatchAny("k", ()),
        lambda: MatchAny("k", ("a", 1)),  # type: ignore[arg-type]
        lambda: MatchAny("k", "abc"),  # type: ignore[arg-type]
        lambda: Range("k"),
        lambda: Range("k", gt="1"),  # type: ignore[arg-type]
        lambda: Range("k", lt=float("nan")),
        lambda: HasId("abc"),  # type: ignore[arg-type]
        lambda: HasId(("",)),
        lambda: Filter(must=("not a condition",)),  # type: ignore[arg-type]
    ],
)
def test_malformed_filters_fail_early(build: object) -> None:
    assert callable(build)
    with pytest.raises(InvalidFilter):
        build()


def test_filters_accept_lists_and_are_hashable() -> None:
    flt = Filter(must=[MatchAny("k", ["a", "b"]), HasId(["x"])])  # type: ignore[arg-type]
    assert flt == Filter(must=(MatchAny("k", ("a", "b")), HasId(("x",))))
    assert hash(flt) == hash(Filter(must=(MatchAny("k", ("a", "b")), HasId(("x",)))))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"offset": -1},
        {"hnsw_ef": 0},
        {"read_consistency": "most"},
        {"read_consistency": "0"},
    ],
)
def test_bad_search_params(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        SearchParams(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vector_size": 0},
        {"vector_size": 4, "hnsw_m": -1},
        {"vector_size": 4, "distance": "hamming"},
        {"vector_size": 4, "payload_indexes": {"f": "uuid"}},
        {"vector_size": 4, "shard_number": 0},
        {"vector_size": 4, "full_scan_threshold_kb": 0},
    ],
)
def test_bad_specs(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        CollectionSpec("c", **kwargs)  # type: ignore[arg-type]


def test_spec_dict_round_trip() -> None:
    raw: dict[str, Any] = {"distance": "dot", "payload_indexes": {"a": "text"}}
    spec = CollectionSpec("c", vector_size=4, **raw)
    assert spec.distance is Distance.DOT
    assert CollectionSpec.from_dict(spec.to_dict()) == spec


def test_specs_stored_before_the_full_scan_setting_keep_the_threshold_they_had() -> None:
    stored = CollectionSpec("c", vector_size=4).to_dict()
    del stored["full_scan_threshold_kb"]
    assert CollectionSpec.from_dict(stored).full_scan_threshold_kb == 10_000
    assert CollectionSpec("c", vector_size=4).full_scan_threshold_kb == 160_000


def test_collections_made_by_other_tools_still_open() -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(location=":memory:")
    client.create_collection(
        "foreign", vectors_config=models.VectorParams(size=3, distance=models.Distance.EUCLID)
    )
    foreign_id = str(uuid.uuid4())
    client.upsert(
        "foreign", [models.PointStruct(id=foreign_id, vector=[1.0, 2.0, 3.0], payload={"a": 1})]
    )
    with RemoteStore(client, local=True) as store:
        info = store.get_collection("foreign")
        assert (info.spec.vector_size, info.spec.distance) == (3, Distance.EUCLID)
        assert (info.spec.hnsw_m, info.spec.hnsw_ef_construct) == (16, 100)
        assert info.spec.full_scan_threshold_kb == 10_000  # Qdrant's own default
        assert info.points_count == 1
        [hit] = store.search("foreign", [1.0, 2.0, 3.0])
        assert (hit.id, hit.payload) == (f"qdrant:{foreign_id}", {"a": 1})  # named by its point
