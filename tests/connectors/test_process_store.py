"""The embedded engine in a child process: same answers, typed errors, crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedserve.connectors import (
    CollectionNotFound,
    CollectionSpec,
    DimensionMismatch,
    EdgeStore,
    Filter,
    MatchValue,
    PayloadIndexKind,
    PointRecord,
    RetryingStore,
    ScrollOrder,
    SearchParams,
    SettingsChanged,
    StoreFull,
    TransientStoreError,
    document_terms,
    ordered_page,
    process,
)
from embedserve.connectors.process import ProcessStore


def points(count: int = 200) -> list[PointRecord]:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((count, 16)).astype(np.float32)
    return [PointRecord(f"p{i}", v, {"group": i % 3}) for i, v in enumerate(vectors)]


def scenario(store) -> tuple[list[str], list[str], int, list[str]]:
    indexes = {"group": PayloadIndexKind.INTEGER}
    store.create_collection(CollectionSpec("c", vector_size=16, payload_indexes=indexes))
    store.upsert("c", points())
    query = points()[7].vector
    group = Filter(must=[MatchValue("group", 1)])
    found = [h.id for h in store.search("c", query, group, SearchParams(limit=5, exact=True))]
    liked = [h.id for h in store.recommend("c", ["p7"], ["p8"], params=SearchParams(limit=5))]
    by_group, cursor = [], None
    while True:
        page = ordered_page(
            store, "c", ScrollOrder("group", True), indexes["group"], None, 64, cursor
        )
        by_group += [r.id for r in page.records]
        if (cursor := page.next_cursor) is None:
            return found, liked, store.count("c", group), by_group


def test_same_answers_as_the_in_process_engine(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "direct") as direct:
        expected = scenario(direct)
    with ProcessStore(str(tmp_path / "child")) as child:
        assert scenario(child) == expected
        with pytest.raises(CollectionNotFound) as missing:
            child.get_collection("nope")
        assert missing.value.name == "nope"
        with pytest.raises(DimensionMismatch) as mismatch:
            child.upsert("c", [PointRecord("x", [1.0, 2.0])])
        assert (mismatch.value.expected, mismatch.value.got) == (16, 2)
        # Keyword vectors for a collection made without bm25 since: the server reads the
        # settings again and makes the write anew, which it can only tell by the type.
        with pytest.raises(SettingsChanged, match="created without bm25"):
            child.upsert("c", [PointRecord("k", [0.5] * 16, keywords=document_terms("a cat"))])


def test_a_module_named_embedserve_in_the_working_folder_is_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m`` searched the working folder first: started where an embedserve.py
    lies, the store's child ran it and failed, and the server did not start."""
    (tmp_path / "embedserve.py").write_text("raise SystemExit('the wrong embedserve ran')\n")
    monkeypatch.chdir(tmp_path)
    with ProcessStore("data") as store:  # relative to the working folder, as given
        store.create_collection(CollectionSpec("c", vector_size=2))
        assert store.list_collections() == ["c"]
    assert (tmp_path / "data").is_dir()


def test_a_dead_child_is_restarted_and_its_data_recovered(tmp_path: Path) -> None:
    child = ProcessStore(str(tmp_path))
    scenario(child)
    os.kill(child._process.pid, signal.SIGKILL)  # type: ignore[union-attr]
    child._process.wait()  # type: ignore[union-attr]
    assert child.count("c") == 200  # the next call starts a new child, which recovers
    child._conn.close()  # type: ignore[union-attr]  # the pipe breaks mid-call
    with pytest.raises(TransientStoreError, match="store process exited during count"):
        child.count("c")
    assert RetryingStore(child).count("c") == 200
    child.close()


def test_the_child_dies_with_its_parent_and_frees_the_directory(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from embedserve.connectors.process import ProcessStore\n"
        f"store = ProcessStore({str(tmp_path)!r})\n"
        "print(store._process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())  # type: ignore[union-attr]
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the store process outlived its parent")
    with EdgeStore(tmp_path) as reopened:  # the lock went with the child
        assert reopened.list_collections() == []


def test_a_child_killed_by_sigbus_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no small file system can be mounted: a real SIGBUS, read with both answers of
    the free-space rule (this disk has room, so the rule's threshold is moved instead)."""
    store = ProcessStore(str(tmp_path))
    scenario(store)
    for threshold, error, expected in (
        (0, TransientStoreError, "exited during count (killed by SIGBUS)"),
        (2**62, StoreFull, "died during count (killed by SIGBUS): the file system of the data"),
    ):
        monkeypatch.setattr(process, "LOW_SPACE_BYTES", threshold)
        assert store.count("c") == 200  # a new child after the first round
        os.kill(store._process.pid, signal.SIGBUS)  # type: ignore[union-attr]
        death = store._death("during count")
        assert type(death) is error and expected in str(death)
    store.close()
