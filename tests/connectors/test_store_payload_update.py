"""Payload updates without re-embedding, the same on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from connectors_testdata import unit_vectors

from embedserve.connectors import (
    RESERVED_KEY,
    CollectionSpec,
    Filter,
    InvalidRequest,
    MatchValue,
    PointNotFound,
    PointRecord,
    VectorStore,
    document_terms,
    query_terms,
)

DIM = 8


@pytest.fixture
def shop(store: VectorStore) -> tuple[VectorStore, np.ndarray]:
    vectors = unit_vectors(np.random.default_rng(6), 4, DIM)
    store.create_collection(CollectionSpec("shop", vector_size=DIM, bm25=True))
    texts = ["red wool scarf", "blue cotton shirt", "red leather boots", "green wool hat"]
    store.upsert(
        "shop",
        [
            PointRecord(
                f"p{i}",
                vectors[i],
                {"colour": text.split()[0], "stock": 5, "tags": ["new"]},
                keywords=document_terms(text),
            )
            for i, text in enumerate(texts)
        ],
    )
    return store, vectors


def payloads(store: VectorStore) -> dict[str, dict[str, object]]:
    return {r.id: r.payload for r in store.retrieve("shop", ["p0", "p1", "p2", "p3"])}


def test_set_by_ids_keeps_other_keys_vectors_and_keywords(
    shop: tuple[VectorStore, np.ndarray],
) -> None:
    store, vectors = shop
    store.update_payload("shop", ["p0", "p2"], values={"stock": 0, "sale": {"percent": 20}})
    after = payloads(store)
    assert after["p0"] == {"colour": "red", "stock": 0, "tags": ["new"], "sale": {"percent": 20}}
    assert after["p1"] == {"colour": "blue", "stock": 5, "tags": ["new"]}
    [record] = store.retrieve("shop", ["p2"], with_vectors=True)
    assert record.vector == pytest.approx(vectors[2].tolist(), abs=1e-6)
    hits = store.search("shop", None, keywords=query_terms("leather boots"))
    assert [h.id for h in hits] == ["p2"]


def test_delete_keys_by_filter_and_by_both(shop: tuple[VectorStore, np.ndarray]) -> None:
    store, _ = shop
    red = Filter(must=(MatchValue("colour", "red"),))
    store.update_payload("shop", filter=red, delete_keys=["tags"])
    assert [k for k, p in sorted(payloads(store).items()) if "tags" not in p] == ["p0", "p2"]
    store.update_payload("shop", ["p1", "p2"], red, values={"stock": 1})
    assert {k: p["stock"] for k, p in payloads(store).items()} == {
        "p0": 5,
        "p1": 5,
        "p2": 1,
        "p3": 5,
    }
    assert all(RESERVED_KEY not in p for p in payloads(store).values())
    # A top-level key set to null goes, as Qdrant's set-payload has it; nested nulls stay.
    store.update_payload("shop", ["p3"], values={"colour": None, "extra": {"x": None}})
    assert payloads(store)["p3"] == {"stock": 5, "tags": ["new"], "extra": {"x": None}}
    assert {r.id for r in store.scroll("shop").records} == {"p0", "p1", "p2", "p3"}


def test_keys_set_and_removed_by_a_filter_on_a_key_set_change_together(
    shop: tuple[VectorStore, np.ndarray],
) -> None:
    """Setting and removing were two operations by the filter: once the first had changed
    the field the filter reads, the second matched nothing, and the keys stayed."""
    store, _ = shop
    red = Filter(must=(MatchValue("colour", "red"),))
    store.update_payload("shop", filter=red, values={"colour": "sold"}, delete_keys=["tags"])
    after = payloads(store)
    assert after["p0"] == after["p2"] == {"colour": "sold", "stock": 5}
    assert after["p1"] == {"colour": "blue", "stock": 5, "tags": ["new"]}


def test_missing_ids_change_nothing(shop: tuple[VectorStore, np.ndarray]) -> None:
    store, _ = shop
    with pytest.raises(PointNotFound) as missing:
        store.update_payload("shop", ["p0", "nope", "p1"], values={"stock": 9})
    assert missing.value.ids == ("nope",)
    assert {p["stock"] for p in payloads(store).values()} == {5}
    store.update_payload("shop", [], values={"stock": 9})  # nothing to do
    assert {p["stock"] for p in payloads(store).values()} == {5}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ids": ["p0"]}, "keys to set or to delete"),
        ({"values": {"stock": 1}}, "needs ids or a non-empty filter"),
        ({"ids": ["p0"], "values": {RESERVED_KEY: "x"}}, "is reserved"),
        ({"ids": ["p0"], "delete_keys": [RESERVED_KEY]}, "is reserved"),
        ({"ids": ["p0"], "values": {"a": 1}, "delete_keys": ["a"]}, "both set and deleted"),
        ({"ids": ["p0"], "values": {"a": math.nan}}, "finite"),
        ({"ids": ["p0"], "delete_keys": "tags"}, "not a single string"),
        ({"ids": "p0", "values": {"a": 1}}, "not a single string"),
    ],
)
def test_bad_updates_are_refused(
    shop: tuple[VectorStore, np.ndarray], kwargs: dict[str, object], message: str
) -> None:
    store, _ = shop
    with pytest.raises(InvalidRequest, match=message):
        store.update_payload("shop", **kwargs)  # type: ignore[arg-type]
    assert {p["stock"] for p in payloads(store).values()} == {5}


def test_deleted_keys_are_top_level_keys_even_with_dots_or_brackets(store: VectorStore) -> None:
    """A set writes {"a.b": 1} as one key; deleting "a.b" removes that key, not "b" inside
    "a" (the engines read a deleted key as a path unless it is quoted)."""
    store.create_collection(CollectionSpec("keys", vector_size=DIM))
    payload = {"a.b": 1, "a": {"b": 2}, "x[]": 3, "utm.source": "mail", "plain": 4, 'say "hi"': 5}
    store.upsert("keys", [PointRecord("p", unit_vectors(np.random.default_rng(1), 1, DIM)[0], {})])
    store.update_payload("keys", ["p"], values=payload)
    deleted = ["a.b", "x[]", "utm.source", "plain", 'say "hi"']
    store.update_payload("keys", ["p"], delete_keys=deleted)
    assert store.retrieve("keys", ["p"])[0].payload == {"a": {"b": 2}}
