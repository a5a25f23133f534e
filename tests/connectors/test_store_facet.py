"""Facets: counts of a payload field's values, the same on every backend."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from connectors_testdata import unit_vectors

from embedserve.connectors import (
    CollectionSpec,
    CollectionUpdate,
    FacetHit,
    Filter,
    InvalidRequest,
    MatchValue,
    PayloadIndexKind,
    PointRecord,
    Range,
    VectorStore,
)

DIM = 4
COLOURS = ["red", "blue", "red", "green", "red", "blue", "teal", "amber"]


@pytest.fixture
def items(store: VectorStore) -> VectorStore:
    indexes = {
        "colour": PayloadIndexKind.KEYWORD,
        "size": PayloadIndexKind.INTEGER,
        "sale": PayloadIndexKind.BOOL,
    }
    store.create_collection(CollectionSpec("items", vector_size=DIM, payload_indexes=indexes))
    vectors = unit_vectors(np.random.default_rng(8), len(COLOURS), DIM)
    store.upsert(
        "items",
        [
            PointRecord(
                f"i{n}",
                vectors[n],
                {"colour": colour, "size": n % 3, "sale": n % 2 == 0, "note": "x"},
            )
            for n, colour in enumerate(COLOURS)
        ]
        + [PointRecord("bare", vectors[0], {})],
    )
    return store


def test_counts_most_frequent_first_ties_by_value(items: VectorStore) -> None:
    hits = items.facet("items", "colour")
    assert hits == [
        FacetHit("red", 3),
        FacetHit("blue", 2),
        FacetHit("amber", 1),
        FacetHit("green", 1),
        FacetHit("teal", 1),
    ]
    assert items.facet("items", "colour", limit=3) == hits[:3]
    sizes = Counter(n % 3 for n in range(len(COLOURS)))
    assert items.facet("items", "size") == [
        FacetHit(v, c) for v, c in sorted(sizes.items(), key=lambda vc: (-vc[1], vc[0]))
    ]
    assert {h.value: h.count for h in items.facet("items", "sale")} == {True: 4, False: 4}


def test_values_no_document_holds_any_more_are_not_counted(items: VectorStore) -> None:
    """The embedded engine listed them with count 0 after their last holder went."""
    items.delete("items", ["i6", "i7"])  # teal's and amber's only holders
    items.update_payload("items", ["i3"], values={"colour": "red", "size": 9})  # green's
    assert items.facet("items", "colour") == [FacetHit("red", 4), FacetHit("blue", 2)]
    assert 9 in {h.value for h in items.facet("items", "size")}
    assert all(h.count > 0 for h in items.facet("items", "size"))


def test_counts_under_a_filter(items: VectorStore) -> None:
    on_sale = Filter(must=(MatchValue("sale", True), Range("size", gte=1)))
    expected = Counter(c for n, c in enumerate(COLOURS) if n % 2 == 0 and n % 3 >= 1)
    assert {h.value: h.count for h in items.facet("items", "colour", on_sale)} == expected


def test_fields_without_a_counting_index_are_refused(items: VectorStore) -> None:
    with pytest.raises(InvalidRequest, match="needs a keyword, integer or bool payload index"):
        items.facet("items", "note")
    with pytest.raises(InvalidRequest, match="limit must be in"):
        items.facet("items", "colour", limit=0)


def test_only_values_of_the_index_kind_are_counted(store: VectorStore) -> None:
    """Local mode, having no indexes, counted every type of value at the key."""
    indexes = {"topic": PayloadIndexKind.KEYWORD, "year": PayloadIndexKind.INTEGER}
    store.create_collection(CollectionSpec("mixed", vector_size=DIM, payload_indexes=indexes))
    payloads = [
        {"topic": "space", "year": 2024},
        {"topic": 7, "year": "2024"},
        {"topic": False, "year": True},
        {"topic": ["space", 3], "year": [2025, "x"]},
    ]
    vectors = unit_vectors(np.random.default_rng(9), len(payloads), DIM)
    store.upsert("mixed", [PointRecord(f"m{n}", vectors[n], p) for n, p in enumerate(payloads)])
    assert store.facet("mixed", "topic") == [FacetHit("space", 2)]
    assert store.facet("mixed", "year") == [FacetHit(2024, 1), FacetHit(2025, 1)]


def test_a_facet_on_an_index_of_another_kind_names_it(items: VectorStore) -> None:
    items.update_collection("items", CollectionUpdate({"note": PayloadIndexKind.TEXT}))
    with pytest.raises(InvalidRequest, match="collection 'items' has a text one"):
        items.facet("items", "note")
