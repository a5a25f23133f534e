"""Writes prepared for one collection's keyword settings, sent through an alias that moved
meanwhile to a collection with others (with bm25 or without): made again for the
collection the alias names now, on both engines, never written without keyword vectors
nor refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from embedserve.connectors import CollectionSpec, EdgeStore, RemoteStore, VectorStore
from embedserve.connectors.keywords import query_terms
from embedserve.server.metrics import Metrics
from embedserve.server.vectors import DocumentIn, SizeChanged, VectorCore, WriteSettings

TEXT = "the comet's tail glowed"
DOCUMENT = DocumentIn("d1", vector=[1.0, 0.0, 0.0, 0.0], payload={"text": TEXT})


@pytest.fixture(params=["edge", "qdrant-local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    opened = EdgeStore(tmp_path / "edge") if request.param == "edge" else RemoteStore.local()
    opened.create_collection(CollectionSpec("plain", vector_size=4))
    opened.create_collection(CollectionSpec("keyword", vector_size=4, bm25=True))
    yield opened
    opened.close()


def keyword_hits(store: VectorStore) -> list[str]:
    hits = store.search("keyword", None, keywords=query_terms("comet", "english"))
    return [hit.id for hit in hits]


@pytest.mark.parametrize(("before", "after"), [("plain", "keyword"), ("keyword", "plain")])
def test_a_write_prepared_before_the_alias_moved_is_made_again(
    store: VectorStore, before: str, after: str
) -> None:
    core = VectorCore(store, None, ThreadPoolExecutor(2), Metrics())  # type: ignore[arg-type]

    async def run() -> None:
        await core.update_aliases({"current": before}, [])
        prepared = await core.prepare("current", [DOCUMENT], WriteSettings())
        await core.update_aliases({"current": after}, [])
        with pytest.raises(SizeChanged):
            await core.write("current", [prepared])
        await core.upsert("current", [DOCUMENT], WriteSettings())  # made again, written

    asyncio.run(run())
    assert [r.id for r in store.retrieve(after, ["d1"])] == ["d1"]
    assert store.retrieve(before, ["d1"]) == []
    if after == "keyword":
        assert keyword_hits(store) == ["d1"]  # written with its keyword vector


@pytest.mark.parametrize(("before", "after"), [("plain", "keyword"), ("keyword", "plain")])
def test_an_alias_moved_by_another_server_is_followed_with_its_settings(
    store: VectorStore, before: str, after: str
) -> None:
    """Another server moves the alias, so this one's cached settings of it are stale: the
    write is made again for the collection the alias names now, not refused, and not
    written there without its keyword vector."""
    core = VectorCore(store, None, ThreadPoolExecutor(2), Metrics())  # type: ignore[arg-type]
    store.update_aliases({"current": before}, [])

    async def run() -> None:
        await core.collection_spec("current")  # cached, as a write through it leaves it
        store.update_aliases({"current": after}, [])  # not through this core
        await core.upsert("current", [DOCUMENT], WriteSettings())

    asyncio.run(run())
    assert [r.id for r in store.retrieve(after, ["d1"])] == ["d1"]
    assert store.retrieve(before, ["d1"]) == []
    if after == "keyword":
        assert keyword_hits(store) == ["d1"]
