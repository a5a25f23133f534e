"""Writes of documents split into passages, on real engines: two writes of one document at
once end as one of them; with a keyword index on doc_id, a rewrite removes whatever
passages an earlier race left, and a write of several documents costs one removal request
(without one, no filter: it would read every point).

The interleaving that lost passages is forced, not hoped for: a store wrapper holds the
first write between its removal of stale passages and its write of new ones until the
second write has been written (or, where the second waits for the first, a short time).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from embedserve.connectors import (
    CollectionSpec,
    EdgeStore,
    Filter,
    MatchValue,
    PayloadIndexKind,
    PointRecord,
    RemoteStore,
    VectorStore,
)
from embedserve.server.metrics import Metrics
from embedserve.server.passages import DocumentLocks, passage_id, passage_payload
from embedserve.server.vectors import PreparedBatch, VectorCore

DIM = 4
BACKENDS = ["edge", "qdrant-local", "qdrant-server"]
# How long the first write waits for the second where the second cannot go first.
HOLD_S = 0.5


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    opened: VectorStore
    if request.param == "edge":
        opened = EdgeStore(tmp_path / "edge")
    elif request.param == "qdrant-local":
        opened = RemoteStore.local()
    else:
        server = request.getfixturevalue("qdrant_server")
        opened = RemoteStore.connect(server.url, api_key=server.api_key, grpc_port=server.grpc_port)
    opened.create_collection(CollectionSpec("plain", vector_size=DIM))
    indexes = {"doc_id": PayloadIndexKind.KEYWORD}
    opened.create_collection(CollectionSpec("docs", vector_size=DIM, payload_indexes=indexes))
    yield opened
    opened.close()


def passages(doc: str, count: int, version: int) -> list[PointRecord]:
    spans = [(10 * n, 10 * n + 10) for n in range(count)]
    return [
        PointRecord(
            passage_id(doc, n),
            [1.0, float(n), float(version), 0.5],
            passage_payload({"version": version}, doc, n, spans),
        )
        for n in range(count)
    ]


def batch(counts: dict[str, int], version: int) -> PreparedBatch:
    points = [p for doc, count in counts.items() for p in passages(doc, count, version)]
    return PreparedBatch(points, tokens=0, passage_counts=dict(counts))


def stored(store: VectorStore, doc: str, collection: str = "docs") -> list[tuple[str, int, int]]:
    """(id, version, passages) of each stored passage of ``doc``."""
    page = store.scroll(collection, Filter(must=(MatchValue("doc_id", doc),)), limit=1000)
    return sorted((r.id, r.payload["version"], r.payload["passages"]) for r in page.records)


def whole(doc: str, count: int, version: int) -> list[tuple[str, int, int]]:
    return sorted((passage_id(doc, n), version, count) for n in range(count))


class Calls:
    """A store that records its calls and can hold the first delete after it ran."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self.calls: list[str] = []
        self.hold_first_delete = False
        self.first_deleted = threading.Event()
        self.upserted = threading.Event()  # by a write other than the held one

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            result = found(*args, **kwargs)
            if name == "delete" and self.hold_first_delete and not self.first_deleted.is_set():
                self.first_deleted.set()
                self.upserted.wait(HOLD_S)  # the other write runs now, if it may
            elif name == "upsert" and self.first_deleted.is_set():
                self.upserted.set()
            return result

        return call


def core_over(store: Any) -> VectorCore:
    return VectorCore(store, None, ThreadPoolExecutor(4), Metrics())  # type: ignore[arg-type]


@pytest.mark.parametrize("collection", ["docs", "plain"])
@pytest.mark.parametrize("short_through", ["name", "alias"])
def test_two_writes_of_one_document_at_once_leave_one_version(
    store: VectorStore, collection: str, short_through: str
) -> None:
    """The short version's write removes what it replaces; the long version's write, run
    in between, must wait for it, else the short one's passages land over the long one's
    first two and its other fifteen stay, each saying 17. A write through an alias waits
    for one by the collection's name as well."""
    store.update_aliases({"current": collection}, [])
    short_to = "current" if short_through == "alias" else collection
    calls = Calls(store)
    calls.hold_first_delete = True
    core = core_over(calls)

    async def race() -> None:
        short = asyncio.create_task(core.write(short_to, [batch({"r": 2}, version=1)]))
        await asyncio.to_thread(calls.first_deleted.wait, 5)
        long = asyncio.create_task(core.write(collection, [batch({"r": 17}, version=6)]))
        await asyncio.gather(short, long)

    asyncio.run(race())
    assert stored(store, "r", collection) == whole("r", 17, 6)  # the long write went second, whole
    assert len(core._documents) == 0  # no lock kept after the writes


def test_a_rewrite_removes_the_passages_a_lost_race_left(store: VectorStore) -> None:
    """What the race left before the fix: passages 0 and 1 say 2, 2 to 16 say 17. A rewrite
    reads no count: it removes every passage of the document from its new count on."""
    store.upsert("docs", passages("r", 17, version=6)[2:] + passages("r", 2, version=1))
    store.upsert("docs", [PointRecord("other#5", [0.0, 1.0, 0.0, 0.0], {"doc_id": "other"})])
    asyncio.run(core_over(store).write("docs", [batch({"r": 3}, version=9)]))
    assert stored(store, "r") == whole("r", 3, 9)
    assert [r.id for r in store.retrieve("docs", ["other#5"])] == ["other#5"]


@pytest.mark.parametrize("collection", ["docs", "plain"])
def test_the_unsplit_point_goes_and_other_documents_stay(
    store: VectorStore, collection: str
) -> None:
    store.upsert(
        collection,
        [
            PointRecord("r", [1.0, 0.0, 0.0, 0.0], {"version": 0}),
            *passages("report", 6, version=1),
        ],
    )
    asyncio.run(core_over(store).write(collection, [batch({"r": 2}, version=2)]))
    assert store.retrieve(collection, ["r"]) == []
    assert stored(store, "r", collection) == whole("r", 2, 2)
    assert stored(store, "report", collection) == whole("report", 6, 1)


@pytest.mark.parametrize(
    ("collection", "requests"),
    [
        ("docs", ["list_aliases", "delete", "upsert"]),
        ("plain", ["list_aliases", "retrieve", "delete", "upsert"]),
    ],
)
def test_a_write_of_several_documents_removes_in_one_request(
    store: VectorStore, collection: str, requests: list[str]
) -> None:
    """By filter where doc_id has a keyword index; without one, by the ids the first
    passages count (a filter would read the whole collection on every write)."""
    store.upsert(collection, passages("a", 5, 1) + passages("b", 5, 1) + passages("c", 2, 1))
    calls = Calls(store)
    core = core_over(calls)
    asyncio.run(core.collection_spec(collection))  # as a write's preparation reads it
    calls.calls.clear()
    write = [batch({"a": 2, "b": 3}, 2), batch({"c": 2, "d": 1}, 2)]
    asyncio.run(core.write(collection, write))
    assert calls.calls == requests
    for doc, count in {"a": 2, "b": 3, "c": 2, "d": 1}.items():
        assert stored(store, doc, collection) == whole(doc, count, 2)
    # Writes of documents not split take no lock and remove nothing.
    calls.calls.clear()
    plain = PointRecord("plain", [0.0, 0.0, 1.0, 0.0], {})
    asyncio.run(core.write(collection, [PreparedBatch([plain], tokens=0)]))
    assert calls.calls == ["list_aliases", "upsert"]


def test_an_alias_moved_during_a_write_leaves_the_write_whole_where_it_began(
    store: VectorStore,
) -> None:
    """The alias moves between the removal of the replaced passages and the write of the
    new ones: both go to the collection the alias named when the write began, else the
    first collection keeps two stale passages of the long version and the second gets
    the short one."""
    store.upsert("docs", passages("r", 17, version=6))
    store.update_aliases({"current": "docs"}, [])
    calls = Calls(store)
    calls.hold_first_delete = True
    core = core_over(calls)

    async def move_meanwhile() -> None:
        write = asyncio.create_task(core.write("current", [batch({"r": 2}, version=1)]))
        await asyncio.to_thread(calls.first_deleted.wait, 5)
        store.update_aliases({"current": "plain"}, [])
        calls.upserted.set()
        await write

    asyncio.run(move_meanwhile())
    assert stored(store, "r", "docs") == whole("r", 2, 1)
    assert stored(store, "r", "plain") == []


async def hold(locks: DocumentLocks, ids: Sequence[str], log: list[str], name: str) -> None:
    async with locks.held("docs", ids):
        log.append(f"{name} in")
        await asyncio.sleep(0.01)
        log.append(f"{name} out")


def test_document_locks_order_shared_documents_and_leave_others_free() -> None:
    async def run() -> list[str]:
        locks = DocumentLocks()
        log: list[str] = []
        # Opposite orders over shared documents: taken sorted, so neither waits on the other
        # in a cycle; a write of other documents runs alongside.
        await asyncio.wait_for(
            asyncio.gather(
                hold(locks, ["x", "y"], log, "first"),
                hold(locks, ["y", "x"], log, "second"),
                hold(locks, ["z"], log, "other"),
            ),
            timeout=5,
        )
        assert len(locks) == 0
        return log

    log = asyncio.run(run())
    assert log.index("first out") < log.index("second in")
    assert log.index("other in") < log.index("first out")


def test_a_cancelled_waiter_leaves_no_lock_behind() -> None:
    async def run() -> int:
        locks = DocumentLocks()
        async with locks.held("docs", ["x"]):
            waiter = asyncio.create_task(hold(locks, ["x"], [], "waiter"))
            await asyncio.sleep(0.01)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        return len(locks)

    assert asyncio.run(run()) == 0
