"""The embedded backend keeps what it acknowledged: across reopen, crashes and other processes."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from connectors_testdata import unit_vectors

import embedserve.connectors
from embedserve.connectors import (
    CollectionNotFound,
    CollectionSpec,
    Distance,
    EdgeStore,
    Filter,
    InvalidRequest,
    MatchValue,
    PayloadIndexKind,
    PointRecord,
    SearchParams,
    StoreLocked,
    TransientStoreError,
    edge,
)

CONNECTORS_ROOT = Path(embedserve.connectors.__file__).resolve().parents[2]


def run_python(code: str, *args: str, **popen: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(CONNECTORS_ROOT)}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, text=True, **popen
    )


def test_data_and_specs_survive_reopen(tmp_path: Path) -> None:
    spec = CollectionSpec(
        "kept",
        vector_size=16,
        distance=Distance.EUCLID,
        hnsw_m=12,
        hnsw_ef=99,
        payload_indexes={"tag": PayloadIndexKind.KEYWORD},
    )
    vectors = unit_vectors(np.random.default_rng(0), 100, 16)
    with EdgeStore(tmp_path) as store:
        store.create_collection(spec)
        store.create_collection(CollectionSpec("dropped", vector_size=4))
        store.upsert(
            "kept", [PointRecord(f"k{i}", vectors[i], {"tag": f"t{i % 3}"}) for i in range(100)]
        )
        store.delete("kept", ids=["k0", "k1"])
        store.delete("kept", filter=Filter(must=(MatchValue("tag", "t2"),)))
        store.delete_collection("dropped")
        before = store.search("kept", vectors[5], params=SearchParams(limit=10, exact=True))
        expected_count = store.count("kept")

    with EdgeStore(tmp_path) as store:
        assert store.list_collections() == ["kept"]
        info = store.get_collection("kept")
        assert info.spec == spec
        assert info.points_count == expected_count == 100 - 2 - 33
        [k3] = store.retrieve("kept", ["k0", "k2", "k3"], with_vectors=True)
        assert (k3.id, k3.payload) == ("k3", {"tag": "t0"})
        assert k3.vector is not None
        np.testing.assert_allclose(k3.vector, vectors[3], atol=1e-5)
        after = store.search("kept", vectors[5], params=SearchParams(limit=10, exact=True))
        assert after == before
        with pytest.raises(CollectionNotFound):
            store.count("dropped")
        # Still writable after a reload.
        store.upsert("kept", [PointRecord("new", vectors[0], {"tag": "t9"})])
        assert store.count("kept", Filter(must=(MatchValue("tag", "t9"),))) == 1


def test_flush_durability_mode(tmp_path: Path) -> None:
    vectors = unit_vectors(np.random.default_rng(1), 20, 8)
    with EdgeStore(tmp_path, durability="flush") as store:
        store.create_collection(CollectionSpec("c", vector_size=8))
        store.upsert("c", [PointRecord(f"p{i}", vectors[i]) for i in range(20)])
    with EdgeStore(tmp_path) as store:
        assert store.count("c") == 20


WRITER = """
    import sys
    import numpy as np
    from embedserve.connectors import CollectionSpec, EdgeStore, PointRecord

    store = EdgeStore(sys.argv[1])
    store.create_collection(CollectionSpec("w", vector_size=32))
    rng = np.random.default_rng(0)
    batch = int(sys.argv[2])
    for b in range(1_000_000):
        vectors = rng.standard_normal((batch, 32))
        store.upsert("w", [PointRecord(f"p{b * batch + j}", vectors[j], {"b": b})
                           for j in range(batch)])
        print(b, flush=True)  # batch b is acknowledged
"""


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    batch = 100
    writer = run_python(WRITER, str(tmp_path), str(batch), stdout=subprocess.PIPE)
    assert writer.stdout is not None
    acked = -1
    for line in writer.stdout:
        acked = int(line)
        if acked >= 30:
            break
    writer.send_signal(signal.SIGKILL)  # mid-stream: the writer never stops on its own
    rest, _ = writer.communicate(timeout=30)
    acked = max([acked, *(int(x) for x in rest.split())])
    assert writer.returncode == -signal.SIGKILL
    assert acked >= 30

    # The kernel dropped the dead writer's lock; everything acknowledged is there.
    with EdgeStore(tmp_path) as store:
        acked_points = (acked + 1) * batch
        count = store.count("w")
        assert count in (acked_points, acked_points + batch)  # batches are all or nothing
        ids = [f"p{i}" for i in range(acked_points)]
        assert len(store.retrieve("w", ids)) == acked_points
        last = store.retrieve("w", [f"p{acked_points - 1}"])
        assert last[0].payload == {"b": acked}


def test_second_process_gets_clear_error(tmp_path: Path) -> None:
    opener = """
        import sys
        from embedserve.connectors import EdgeStore, StoreLocked
        try:
            EdgeStore(sys.argv[1])
        except StoreLocked as exc:
            print("LOCKED", exc)
        else:
            print("OPENED")
    """
    with EdgeStore(tmp_path) as store:
        store.create_collection(CollectionSpec("c", vector_size=2))
        other = run_python(opener, str(tmp_path), stdout=subprocess.PIPE)
        out, _ = other.communicate(timeout=60)
        assert out.startswith("LOCKED")
        assert f"pid {os.getpid()}" in out
        # Another store object in this process is refused too.
        with pytest.raises(StoreLocked, match="already in use"):
            EdgeStore(tmp_path)
    other = run_python(opener, str(tmp_path), stdout=subprocess.PIPE)
    out, _ = other.communicate(timeout=60)
    assert out.strip() == "OPENED"


def test_interrupted_create_and_delete_are_cleaned_up(tmp_path: Path) -> None:
    with EdgeStore(tmp_path) as store:
        store.create_collection(CollectionSpec("ok", vector_size=2))
    root = tmp_path / "collections"
    (root / ".deleted-old-1234").mkdir()
    (root / ".deleted-old-1234" / "junk").write_text("x")
    (root / "half").mkdir()  # a create that died before writing its spec
    with EdgeStore(tmp_path) as store:
        assert store.list_collections() == ["ok"]
        assert not (root / ".deleted-old-1234").exists()
        store.create_collection(CollectionSpec("half", vector_size=3))
        assert store.list_collections() == ["half", "ok"]
    with EdgeStore(tmp_path) as store:
        assert store.get_collection("half").spec.vector_size == 3


def test_a_name_being_deleted_is_not_free_until_its_folder_is_gone(tmp_path: Path) -> None:
    """A delete waits for the writes under way (held here by the collection's write lock,
    as a long upsert holds it); a create of the same name meanwhile took the old folder for
    leftovers of an interrupted create and removed it under the open engine (the delete
    then failed), or had its own folder moved to the trash by the delete."""
    with EdgeStore(tmp_path) as store:
        store.create_collection(CollectionSpec("c", vector_size=2))
        store.upsert("c", [PointRecord("old", [1.0, 0.0])])
        deleting = concurrent.futures.ThreadPoolExecutor(1)
        with store._collections["c"].lock.write():  # a write under way
            deleted = deleting.submit(store.delete_collection, "c")
            while "c" in store.list_collections():
                time.sleep(0.01)
            with pytest.raises(TransientStoreError, match="'c' is being deleted"):
                store.create_collection(CollectionSpec("c", vector_size=3))
        deleted.result(timeout=10)
        deleting.shutdown()
        store.create_collection(CollectionSpec("c", vector_size=3))
        store.upsert("c", [PointRecord("new", [1.0, 0.0, 0.0])])
    with EdgeStore(tmp_path) as store:
        assert [r.id for r in store.scroll("c", limit=10).records] == ["new"]


def test_a_payload_nested_too_deep_is_refused_before_the_log_keeps_it(tmp_path: Path) -> None:
    """The engine acknowledges a payload nested 126 deep, then cannot replay its log: the
    whole store would stay closed. Payloads nest at most 32 deep, which every layer reads."""

    def nested(levels: int) -> dict[str, object]:
        payload: dict[str, object] = {"leaf": [1, 2]}  # an array: one level more
        for _ in range(levels - 2):
            payload = {"a": payload}
        return payload

    vector = np.ones(4, dtype=np.float32)
    with EdgeStore(tmp_path) as store:
        store.create_collection(CollectionSpec("c", vector_size=4))
        for levels in (33, 200):
            with pytest.raises(InvalidRequest, match=r"payload\.a\.a.*nest at most 32 deep"):
                store.upsert("c", [PointRecord("deep", vector, nested(levels))])
        store.upsert("c", [PointRecord("deepest", vector, nested(32))])
    with EdgeStore(tmp_path) as reopened:
        [kept] = reopened.retrieve("c", ["deepest"])
        assert kept.payload == nested(32)
        assert reopened.count("c") == 1


def test_the_write_ahead_log_is_trimmed_while_writes_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was trimmed only by a flush, which the default durability made only on close
    and settings changes: 20 points written over and over grew it by about 2 KB a write."""
    monkeypatch.setattr(edge, "FLUSH_INTERVAL_S", 0.05)
    wal = tmp_path / "collections" / "c" / "shard" / "wal"

    def wal_bytes() -> int:
        return sum(f.stat().st_size for f in wal.rglob("*") if f.is_file())

    with EdgeStore(tmp_path) as store:
        store.create_collection(CollectionSpec("c", vector_size=384))
        points = [PointRecord(f"p{j}", [0.1] * 384) for j in range(20)]
        sizes = []
        for _ in range(4):
            started = time.monotonic()
            for _ in range(1000):
                store.upsert("c", points)
            sizes.append(wal_bytes())
            assert time.monotonic() - started > 0.05  # a flush fell due in each round
        assert store.count("c") == 20
    # The log's segments are files of 32 MiB made ahead; 20,000 point writes a round
    # filled one more each round before.
    assert sizes[-1] < sizes[0] + (16 << 20), sizes
