"""Vectors in fewer bits, as both engines keep them: binary quantization (one bit per
dimension kept beside the float vectors, searches that read an oversampled candidate set
by the bits and score it again with the floats, exact searches that read the floats
alone) and float16 storage (each value rounded to 16 bits).

The vectors are clustered noise in 64 dimensions, the hardest case for bits (the
neighbours of a point differ from the others of its cluster by noise alone), so the
recall at each oversampling is far from 1 and grows with it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from connectors_testdata import clustered

from embedserve.connectors import (
    CollectionSpec,
    Distance,
    EdgeStore,
    InvalidRequest,
    PointRecord,
    Quantization,
    RecommendStrategy,
    RemoteStore,
    SearchParams,
    VectorDatatype,
    VectorStore,
)

DIM, K = 64, 10
DATA, _, _ = clustered(np.random.default_rng(7), 12, 100, DIM, spread=1.0)
QUERIES, _, _ = clustered(np.random.default_rng(8), 12, 1, DIM, spread=1.0)
TRUTH = np.argsort(-(QUERIES @ DATA.T), axis=1)[:, :K]
BITS = CollectionSpec(
    "bits", vector_size=DIM, quantization=Quantization.BINARY, full_scan_threshold_kb=1
)
FLOATS = CollectionSpec("floats", vector_size=DIM, full_scan_threshold_kb=1)
HALVES = CollectionSpec("halves", vector_size=DIM, datatype=VectorDatatype.FLOAT16)


def _fill(store: Any, spec: CollectionSpec) -> None:
    store.create_collection(spec)
    store.upsert(spec.name, [PointRecord(str(i), DATA[i]) for i in range(len(DATA))])


def _ids(store: Any, query: np.ndarray, **params: Any) -> list[int]:
    hits = store.search("bits", query, params=SearchParams(limit=K, with_payload=False, **params))
    return [int(hit.id) for hit in hits]


def _recall(store: Any, **params: Any) -> float:
    pairs = zip(QUERIES, TRUTH, strict=True)
    found = [len(set(_ids(store, q, **params)) & set(t.tolist())) for q, t in pairs]
    return sum(found) / (K * len(QUERIES))


def _check_searches(store: Any) -> None:
    # An exact search reads the float vectors: the true order, with the true scores.
    for query, truth in zip(QUERIES, TRUTH, strict=True):
        assert _ids(store, query, exact=True) == truth.tolist()
    hit = store.search("bits", QUERIES[0], params=SearchParams(limit=1))[0]
    assert hit.score == pytest.approx(float(DATA[int(hit.id)] @ QUERIES[0]), abs=1e-5)
    # Candidates by the bits, rescored: more of them find more of the true neighbours.
    one, default, thirty = (
        _recall(store, oversampling=1),
        _recall(store),
        _recall(store, oversampling=30),
    )
    assert one < default < thirty, (one, default, thirty)
    assert thirty >= 0.7
    assert [_ids(store, q) for q in QUERIES] == [_ids(store, q, oversampling=3) for q in QUERIES]
    with pytest.raises(InvalidRequest, match="oversampling must be from 1 to 100"):
        SearchParams(oversampling=0.5)
    with pytest.raises(InvalidRequest, match="'floats' has no quantization"):
        store.search("floats", QUERIES[0], params=SearchParams(oversampling=2))
    assert store.get_collection("bits").spec.quantization is Quantization.BINARY


def _check_halves(store: Any) -> None:
    """Stored, read back and scored as float16 values: the engine rounded them."""
    rounded = DATA.astype(np.float16).astype(np.float32)
    assert np.abs(rounded - DATA).max() > 1e-5  # the rounding is visible at this size
    [record] = store.retrieve("halves", ["7"], with_vectors=True)
    np.testing.assert_array_equal(np.asarray(record.vector, dtype=np.float32), rounded[7])
    hits = store.search("halves", QUERIES[0], params=SearchParams(limit=K, exact=True))
    # The engine compares the query in float16 too.
    exact = rounded @ QUERIES[0].astype(np.float16).astype(np.float32)
    assert [int(h.id) for h in hits] == np.argsort(-exact)[:K].tolist()
    np.testing.assert_allclose([h.score for h in hits], np.sort(exact)[::-1][:K], atol=2e-6)
    assert store.get_collection("halves").spec.datatype is VectorDatatype.FLOAT16


def test_embedded_engine_keeps_bits_and_rescores(tmp_path: Path) -> None:
    with EdgeStore(tmp_path) as store:
        for spec in (BITS, FLOATS, HALVES):
            _fill(store, spec)
            store.optimize(spec.name)
        store.flush("bits")
        segments = (tmp_path / "collections" / "bits" / "shard").glob("segments/*/segment.json")
        configs = [json.loads(path.read_text())["config"]["vector_data"][""] for path in segments]
        [indexed] = [c for c in configs if c["index"]["type"] == "hnsw"]
        assert indexed["quantization_config"] == {"binary": {"always_ram": True}}
        assert store.get_collection("bits").indexed_vectors_count == len(DATA)
        _check_searches(store)
        _check_halves(store)


def test_server_keeps_bits_and_rescores(qdrant_server: Any) -> None:
    store = RemoteStore.connect(
        qdrant_server.url, api_key=qdrant_server.api_key, grpc_port=qdrant_server.grpc_port
    )
    for spec in (BITS, FLOATS, HALVES):
        _fill(store, spec)
    deadline = time.monotonic() + 60
    while True:
        info = qdrant_server.request("GET", "/collections/bits")
        if info["status"] == "green" and info["indexed_vectors_count"] >= len(DATA):
            break
        assert time.monotonic() < deadline, info
        time.sleep(0.2)
    assert info["config"]["quantization_config"] == {"binary": {"always_ram": True}}
    _check_searches(store)
    halves = qdrant_server.request("GET", "/collections/halves")["config"]["params"]["vectors"]
    assert halves["datatype"] == "float16"
    _check_halves(store)
    store.close()


def test_every_store_refuses_what_float16_would_make_infinity(store: VectorStore) -> None:
    """A value past float16's largest (65504) is stored, or compared in a query, as
    infinity: scores of inf or NaN, points gone from distance rankings, exports no JSON
    can read. Refused where a collection keeps float16 values, on every store (local mode
    keeps float32, but a collection copied to a server would not); a cosine collection
    keeps unit vectors, whatever their length was."""
    for distance in (Distance.DOT, Distance.EUCLID):
        name = f"halves-{distance.value}"
        store.create_collection(
            CollectionSpec(name, vector_size=4, distance=distance, datatype=VectorDatatype.FLOAT16)
        )
        store.upsert(name, [PointRecord("fits", [65504.0, -65504.0, 1.0, 0.0])])
        too_large = [70000.0, 1.0, 0.0, 0.0]
        refused = f"collection '{name}' stores float16 vectors.*this vector holds 70000"
        with pytest.raises(InvalidRequest, match=refused):
            store.upsert(name, [PointRecord("big", too_large)])
        with pytest.raises(InvalidRequest, match=refused):
            store.search(name, too_large)
        with pytest.raises(InvalidRequest, match=refused):
            store.recommend(name, ["fits", too_large], strategy=RecommendStrategy.BEST_SCORE)
        assert [record.id for record in store.scroll(name).records] == ["fits"]
    store.create_collection(
        CollectionSpec("halves-cosine", vector_size=4, datatype=VectorDatatype.FLOAT16)
    )
    store.upsert("halves-cosine", [PointRecord("big", [70000.0, 1.0, 0.0, 0.0])])
    [hit] = store.search("halves-cosine", [1.0, 0.0, 0.0, 0.0])
    assert hit.id == "big" and hit.score == pytest.approx(1.0, abs=1e-3)


def test_every_store_refuses_oversampling_without_quantization(store: VectorStore) -> None:
    """Local mode, which searches exactly whatever it is asked, accepted it."""
    store.create_collection(FLOATS)
    with pytest.raises(InvalidRequest, match="'floats' has no quantization"):
        store.search("floats", QUERIES[0], params=SearchParams(oversampling=2))
    with pytest.raises(InvalidRequest, match="'floats' has no quantization"):
        store.recommend("floats", [QUERIES[0].tolist()], params=SearchParams(oversampling=2))
