"""The embedded engine's side of a collection: a damaged file's failure names the
collection and its folder (the engine's own message, "elements range 6400..6435 is out of
bounds", names neither), on the call and when the store opens again with the failed write
in its log; and the threads it keeps for each collection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedserve.connectors import CollectionSpec, EdgeStore, EngineFailure, PointRecord


def points(count: int) -> list[PointRecord]:
    vectors = np.random.default_rng(1).standard_normal((count, 4)).astype(np.float32)
    return [PointRecord(f"p{i}", v, {"n": i}) for i, v in enumerate(vectors)]


def test_a_damaged_collection_is_named_on_the_call_and_at_open(tmp_path: Path) -> None:
    with EdgeStore(tmp_path) as store:
        for name in ("bad", "good"):
            store.create_collection(CollectionSpec(name, vector_size=4))
            store.upsert(name, points(50))
    (page,) = tmp_path.glob("collections/bad/**/payload_storage/page_0.dat")
    page.write_bytes(b"")  # as a failed copy or restore leaves it
    named = rf"collection 'bad' \(folder '{tmp_path / 'collections' / 'bad'}'\): embedded engine"
    with EdgeStore(tmp_path) as store:
        assert store.count("good") == 50
        with pytest.raises(EngineFailure, match=rf"^{named}"):
            store.upsert("bad", points(1))
    with pytest.raises(EngineFailure, match=rf"^cannot open {named}"):
        EdgeStore(tmp_path)  # the write's log is replayed at open, and fails again


def test_a_collection_searches_on_as_many_threads_as_the_process_has_cpus(
    tmp_path: Path,
) -> None:
    """The engine's default pool took 8 threads a collection on 2 CPUs (4,000 threads for
    500 collections); the count is kept with the collection, across restarts."""
    import json

    from embedserve.connectors._edge_convert import usable_cpus

    with EdgeStore(tmp_path) as store:
        store.create_collection(CollectionSpec("c", vector_size=4))
    kept = json.loads((tmp_path / "collections/c/shard/edge_config.json").read_text())
    assert kept["max_search_threads"] == usable_cpus()  # the engine's own record
