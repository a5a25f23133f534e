"""Fixtures for the vector-store layer: the same tests run on every backend.

``qdrant-server`` is a real Qdrant server (see tests/qdrant_server.py); without one those
cases skip, naming the variable to set.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from connectors_testdata import SmallDisk, StoreFactory

from embedserve.connectors import EdgeStore, RemoteStore, VectorStore

BACKENDS = ["edge", "qdrant-local", "qdrant-server"]


@pytest.fixture
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open a fresh store of the named backend; all are closed at the end of the test."""
    opened: list[VectorStore] = []

    def make(kind: str) -> VectorStore:
        store: VectorStore
        if kind == "edge":
            store = EdgeStore(tmp_path / f"edge-{len(opened)}")
        elif kind == "qdrant-local":
            store = RemoteStore.local()
        elif kind == "qdrant-server":
            server = request.getfixturevalue("qdrant_server")
            store = RemoteStore.connect(
                server.url, api_key=server.api_key, grpc_port=server.grpc_port
            )
        else:
            raise ValueError(kind)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, make_store: StoreFactory) -> VectorStore:
    opened: VectorStore = make_store(request.param)
    return opened


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 2 MiB tmpfs at ``tmp_path/disk``; skips where mounting is not allowed."""
    path = tmp_path / "disk"
    path.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root with CAP_SYS_ADMIN")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
