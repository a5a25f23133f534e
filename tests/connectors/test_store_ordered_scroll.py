"""Scrolling in the order of a numeric field: pages that neither repeat nor skip a point,
whatever the page size, ties and several values per point; the same on every backend."""

from __future__ import annotations

import base64
import math
from collections import Counter

import numpy as np
import pytest
from connectors_testdata import unit_vectors

from embedserve.connectors import (
    CollectionSpec,
    Filter,
    InvalidRequest,
    MatchValue,
    PayloadIndexKind,
    PointRecord,
    ScrollOrder,
    VectorStore,
    order_index,
    ordered_page,
)

INTEGER, FLOAT, KEYWORD = PayloadIndexKind.INTEGER, PayloadIndexKind.FLOAT, PayloadIndexKind.KEYWORD
# Runs of equal values longer than a page, a point with two values, points without one.
YEARS: list[int | list[int] | None] = [2020] * 7 + [2018, 2024, [2019, 2023], None, 2024, 2017]
YEARS += [2021] * 5 + [None, 2019]
# Neighbouring doubles: a step past a value must not jump over the next one.
PRICES = [1.5, 1.5, math.nextafter(1.5, 2), 0.25, 1e9, 1.5, -3.0]


def _fill(store: VectorStore) -> None:
    indexes = {"year": INTEGER, "price": FLOAT, "shelf": KEYWORD}
    store.create_collection(CollectionSpec("books", vector_size=4, payload_indexes=indexes))
    vectors = unit_vectors(np.random.default_rng(3), len(YEARS), 4)
    points = []
    for k, year in enumerate(YEARS):
        payload: dict[str, object] = {"shelf": "odd" if k % 2 else "even"}
        if year is not None:
            payload["year"] = year
        if k < len(PRICES):
            payload["price"] = PRICES[k]
        points.append(PointRecord(f"b{k}", vectors[k], payload))
    store.upsert("books", points)


def _entries(field: list[object], keep: set[int] | None = None) -> Counter[tuple[str, object]]:
    """Every (id, value) an ordered scroll must yield once: one per value of a point."""
    entries: Counter[tuple[str, object]] = Counter()
    for k, value in enumerate(field):
        if value is None or (keep is not None and k not in keep):
            continue
        for v in value if isinstance(value, list) else [value]:
            entries[f"b{k}", v] += 1
    return entries


def _scroll_all(
    store: VectorStore, order: ScrollOrder, limit: int, filter: Filter | None = None
) -> tuple[list[tuple[str, object]], list[int]]:
    """(id, value) in the order met, and each page's size."""
    kind = order_index(store.get_collection("books").spec, order)
    seen: list[tuple[str, object]] = []
    sizes: list[int] = []
    cursor = None
    while True:
        page = ordered_page(store, "books", order, kind, filter, limit, cursor)
        sizes.append(len(page.records))
        for record in page.records:
            values = record.payload[order.key]
            # A point with several values: the one it came for is the next in order.
            seen.append((record.id, values))
        cursor = page.next_cursor
        if cursor is None:
            return seen, sizes


def _placed(seen: list[tuple[str, object]], descending: bool) -> list[tuple[str, object]]:
    """Resolve multi-valued points to the value each visit stands for, in scroll order."""
    placed: list[tuple[str, object]] = []
    used: Counter[str] = Counter()
    for point, values in seen:
        if isinstance(values, list):
            ordered = sorted(values, reverse=descending)
            values = ordered[used[point]]
            used[point] += 1
        placed.append((point, values))
    return placed


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("limit", [1, 3, 4, 100])
def test_every_point_comes_once_per_value_in_order(
    store: VectorStore, descending: bool, limit: int
) -> None:
    _fill(store)
    seen, sizes = _scroll_all(store, ScrollOrder("year", descending), limit)
    placed = _placed(seen, descending)
    values = [v for _, v in placed]
    assert values == sorted(values, reverse=descending)  # type: ignore[type-var]
    assert Counter(placed) == _entries(list(YEARS))
    # Full pages until the last, which is never empty.
    assert all(size == limit for size in sizes[:-1]) and 1 <= sizes[-1] <= limit


@pytest.mark.parametrize("descending", [False, True])
def test_a_float_field_steps_to_the_neighbouring_double(
    store: VectorStore, descending: bool
) -> None:
    _fill(store)
    seen, _ = _scroll_all(store, ScrollOrder("price", descending), 2)
    values = [v for _, v in seen]
    assert values == sorted(values, reverse=descending)  # type: ignore[type-var]
    assert Counter(seen) == _entries(list(PRICES))


def test_a_filter_applies_to_every_page(store: VectorStore) -> None:
    _fill(store)
    odd = Filter(must=(MatchValue("shelf", "odd"),))
    seen, _ = _scroll_all(store, ScrollOrder("year"), 2, odd)
    keep = {k for k in range(len(YEARS)) if k % 2}
    assert Counter(_placed(seen, False)) == _entries(list(YEARS), keep)


def test_a_page_holds_the_values_and_the_parts_asked_for(store: VectorStore) -> None:
    _fill(store)
    page = ordered_page(
        store, "books", ScrollOrder("year", True), INTEGER, None, 2, None, False, True
    )
    assert [r.payload for r in page.records] == [{}, {}]
    assert all(r.vector is not None and len(r.vector) == 4 for r in page.records)
    newest = {f"b{k}" for k, y in enumerate(YEARS) if y == 2024}
    assert {r.id for r in page.records} == newest


def test_orders_need_a_numeric_index_and_their_own_cursor(store: VectorStore) -> None:
    _fill(store)
    spec = store.get_collection("books").spec
    for key in ("shelf", "missing"):
        with pytest.raises(InvalidRequest, match="integer, float or datetime payload index"):
            order_index(spec, ScrollOrder(key))
        with pytest.raises(InvalidRequest, match="integer, float or datetime payload index"):
            store.scroll_by_value("books", ScrollOrder(key), None, 3)
    with pytest.raises(InvalidRequest, match="payload key"):
        ScrollOrder("")
    page = ordered_page(store, "books", ScrollOrder("year"), INTEGER, None, 2)
    assert page.next_cursor is not None
    with pytest.raises(InvalidRequest, match="another order_by"):
        ordered_page(store, "books", ScrollOrder("year", True), INTEGER, None, 2, page.next_cursor)
    for cursor in ("not-a-cursor", "WzEsMl0", page.next_cursor + "x"):
        with pytest.raises(InvalidRequest, match="not one an ordered scroll handed out"):
            ordered_page(store, "books", ScrollOrder("year"), INTEGER, None, 2, cursor)
    # A plain scroll's cursor is not an ordered one, nor the other way round.
    with pytest.raises(InvalidRequest):
        store.scroll("books", limit=2, cursor=page.next_cursor)


@pytest.mark.parametrize("value", ["2**70", "NaN", "Infinity", "true", '"2020"', "null"])
def test_a_cursor_with_a_value_no_index_holds_is_refused(store: VectorStore, value: str) -> None:
    _fill(store)
    state = f'["year", false, {value.replace("2**70", str(2**70))}, false, null]'
    cursor = base64.urlsafe_b64encode(state.encode()).decode()
    with pytest.raises(InvalidRequest, match="not one an ordered scroll handed out"):
        ordered_page(store, "books", ScrollOrder("year"), INTEGER, None, 2, cursor)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_integers_past_two_to_the_53_page_exactly(
    store: VectorStore, descending: bool, limit: int
) -> None:
    # Engines take a scroll's start as a double: 2**60 + 1 reads as 2**60.
    big = 2**60
    values = [big, big, big + 1, big + 2, big + 40, 5, big + 1, -big, -big - 3]
    store.create_collection(CollectionSpec("ids", vector_size=2, payload_indexes={"n": INTEGER}))
    store.upsert("ids", [PointRecord(f"p{k}", [1.0, 0.0], {"n": v}) for k, v in enumerate(values)])
    seen, cursor = [], None
    while True:
        page = ordered_page(
            store, "ids", ScrollOrder("n", descending), INTEGER, None, limit, cursor
        )
        seen += [(r.id, r.payload["n"]) for r in page.records]
        if (cursor := page.next_cursor) is None:
            break
    assert sorted(seen) == sorted((f"p{k}", v) for k, v in enumerate(values))
    assert [v for _, v in seen] == sorted(values, reverse=descending)
