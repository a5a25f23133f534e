"""A file system that really fills up (a small tmpfs) under each store: the error names it,
is not retried, and what was acknowledged before survives once space is freed."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from connectors_testdata import SmallDisk
from qdrant_server import QdrantNode, qdrant_binary

from embedserve.connectors import CollectionSpec, PointRecord, RemoteStore, StoreError, StoreFull
from embedserve.connectors._edge_convert import engine_errors
from embedserve.connectors.errors import os_failure
from embedserve.connectors.process import ProcessStore
from embedserve.connectors.store import VectorStore


def fill(store: VectorStore, acknowledged: list[str]) -> None:
    """Upsert 64-point batches with 4 KB payloads until one fails; ``acknowledged`` gets the
    ids of every batch whose upsert returned."""
    rng = np.random.default_rng(0)
    for batch in range(100):  # about 26 MB in all
        ids = [f"b{batch}-{i}" for i in range(64)]
        vectors = rng.standard_normal((64, 16)).astype(np.float32)
        payload = {"blob": "x" * 4096}
        store.upsert("c", [PointRecord(i, v, payload) for i, v in zip(ids, vectors, strict=True)])
        acknowledged += ids


def test_a_full_file_system_is_named_and_acknowledged_writes_survive_it(
    small_disk: SmallDisk,
) -> None:
    """The embedded engine maps its files: on a full file system its child process dies
    by SIGBUS instead of returning an error."""
    store = ProcessStore(str(small_disk.path / "data"))
    store.create_collection(CollectionSpec("c", vector_size=16))
    acknowledged: list[str] = []
    with pytest.raises(StoreFull) as full:
        fill(store, acknowledged)
    message = str(full.value)
    assert "killed by SIGBUS" in message and "is full (" in message
    assert "acknowledged writes are kept" in message and len(acknowledged) >= 64
    with pytest.raises(StoreFull):  # a new child cannot even replay its log yet
        store.count("c")
    small_disk.resize("64m")
    records = store.retrieve("c", acknowledged)  # the next call starts a child again
    assert len(records) == len(acknowledged)
    store.close()


def test_a_full_qdrant_server_disk_is_named(small_disk: SmallDisk) -> None:
    """Qdrant refuses a write it has no room to log ("WAL buffer size exceeds available disk
    space"), as gRPC INTERNAL: it was UNAVAILABLE here, which clients retry."""
    binary = qdrant_binary()
    small_disk.resize("12m")  # room to start and create a collection, not for its log
    node = QdrantNode(binary, small_disk.path / "qdrant").start()
    try:
        endpoint = node.endpoint
        store = RemoteStore.connect(endpoint.url, grpc_port=endpoint.grpc_port)
        store.create_collection(CollectionSpec("c", vector_size=16))
        acknowledged: list[str] = []
        with pytest.raises(StoreFull, match=r"the Qdrant server's disk is full: .*No space left"):
            fill(store, acknowledged)
        assert acknowledged == []  # nothing fitted in the log
        small_disk.resize("256m")
        fill(store, acknowledged)
        assert store.count("c") == len(acknowledged) == 6400
        store.close()
    finally:
        node.stop()


@pytest.mark.parametrize(
    "raised",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("Service internal error: No space left on device (os error 28)"),
    ],
    ids=["os-error", "engine-message"],
)
def test_the_engines_words_for_a_full_disk_are_store_full(raised: Exception) -> None:
    """What the embedded engine raises where it meets ENOSPC as an error, not a signal."""
    with pytest.raises(StoreFull, match="No space left on device"), engine_errors():
        raise raised
    assert type(os_failure("cannot create collection 'c'", OSError(errno.ENOSPC, "full"))) is (
        StoreFull
    )
    assert type(os_failure("cannot create collection 'c'", OSError(errno.EACCES, "no"))) is (
        StoreError
    )
