"""Scroll pages on every backend: each point exactly once, filters, vectors and payloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from connectors_testdata import unit_vectors

from embedserve.connectors import (
    CollectionNotFound,
    CollectionSpec,
    Filter,
    InvalidRequest,
    MatchValue,
    PointRecord,
    VectorStore,
)

DIM = 8
N = 53


@pytest.fixture
def filled(store: VectorStore) -> VectorStore:
    store.create_collection(CollectionSpec("s", DIM))
    vectors = unit_vectors(np.random.default_rng(3), N, DIM)
    store.upsert(
        "s",
        [
            PointRecord(f"p{i}", vectors[i], {"parity": "even" if i % 2 == 0 else "odd", "i": i})
            for i in range(N)
        ],
    )
    return store


def all_pages(store: VectorStore, limit: int, **options: object) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = store.scroll("s", limit=limit, cursor=cursor, **options)  # type: ignore[arg-type]
        pages.append([r.id for r in page.records])
        cursor = page.next_cursor
        if cursor is None:
            return pages


def test_pages_cover_every_point_once(filled: VectorStore) -> None:
    pages = all_pages(filled, 10)
    assert [len(p) for p in pages] == [10, 10, 10, 10, 10, 3]
    ids = [i for page in pages for i in page]
    assert sorted(ids) == sorted(f"p{i}" for i in range(N))
    assert len(set(ids)) == N


def test_filter_and_payload_and_vectors(filled: VectorStore) -> None:
    even = Filter(must=(MatchValue("parity", "even"),))
    ids = [i for page in all_pages(filled, 7, filter=even) for i in page]
    assert sorted(ids) == sorted(f"p{i}" for i in range(0, N, 2))

    page = filled.scroll("s", limit=5, with_vectors=True)
    stored = {r.id: r for r in filled.retrieve("s", [r.id for r in page.records], True)}
    for record in page.records:
        assert record.payload["i"] == int(record.id[1:])
        assert record.vector is not None and len(record.vector) == DIM
        assert np.allclose(record.vector, stored[record.id].vector, atol=1e-6)

    bare = filled.scroll("s", limit=5, with_payload=False)
    assert all(r.payload == {} and r.vector is None for r in bare.records)
    assert [r.id for r in bare.records] == [r.id for r in page.records]


def test_bad_requests(filled: VectorStore) -> None:
    with pytest.raises(InvalidRequest, match="limit"):
        filled.scroll("s", limit=0)
    with pytest.raises(InvalidRequest, match="cursor"):
        filled.scroll("s", cursor="not-a-cursor")
    with pytest.raises(CollectionNotFound):
        filled.scroll("missing")


def test_empty_collection_has_one_empty_page(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("e", DIM))
    page = store.scroll("e")
    assert page.records == [] and page.next_cursor is None


def test_process_and_retrying_wrappers_pass_scroll_through(tmp_path: Path) -> None:
    from embedserve.connectors.process import ProcessStore
    from embedserve.connectors.retry import RetryingStore

    with ProcessStore(str(tmp_path / "p")) as inner:
        store = RetryingStore(inner)
        store.create_collection(CollectionSpec("w", DIM))
        store.upsert(
            "w", [PointRecord(f"p{i}", [1.0] + [0.0] * (DIM - 1), {"i": i}) for i in range(5)]
        )
        first = store.scroll("w", limit=3)
        second = store.scroll("w", limit=3, cursor=first.next_cursor)
        assert len(first.records) == 3 and len(second.records) == 2
        assert second.next_cursor is None
        seen = {r.id for r in first.records + second.records}
        assert seen == {f"p{i}" for i in range(5)}
        with pytest.raises(InvalidRequest, match="cursor"):
            store.scroll("w", cursor="bad")
