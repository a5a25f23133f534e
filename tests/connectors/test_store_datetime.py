"""Dates and times in payloads: datetime_range filters, datetime payload indexes and
scrolls in time order, read alike by every backend whatever form the texts take."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest
from connectors_testdata import unit_vectors

from embedserve.connectors import (
    CollectionSpec,
    CollectionUpdate,
    DatetimeRange,
    Filter,
    InvalidFilter,
    PayloadIndexKind,
    PointRecord,
    ScrollOrder,
    SearchParams,
    VectorStore,
    order_index,
    ordered_page,
)
from embedserve.connectors.types import parse_datetime

DATETIME = PayloadIndexKind.DATETIME
# One instant in three forms (b0, b1, b2), its neighbour a microsecond on (b3), a date
# alone (midnight UTC), a time without an offset (UTC), a list, and no date at all.
STAMPS: list[str | list[str] | None] = [
    "2026-12-01T10:00:00Z",
    "2026-12-01T12:00:00+02:00",
    "2026-12-01T10:00:00.000000Z",
    "2026-12-01T10:00:00.000001Z",
    "2026-11-30",
    "2026-12-01 09:59:59",
    ["2025-01-01T00:00:00Z", "2027-06-30T23:00:00-01:00"],
    None,
    "2026-12-01T10:00:00Z",
    "2024-02-29T00:00:00Z",
    "2026-12-01T10:00:00.000000789Z",  # b0 to the microsecond, as every engine reads it
]


def _fill(store: VectorStore, indexed: bool = True) -> None:
    indexes = {"published": DATETIME} if indexed else {}
    store.create_collection(CollectionSpec("news", vector_size=4, payload_indexes=indexes))
    vectors = unit_vectors(np.random.default_rng(4), len(STAMPS), 4)
    store.upsert(
        "news",
        [
            PointRecord(f"b{k}", vectors[k], {} if stamp is None else {"published": stamp})
            for k, stamp in enumerate(STAMPS)
        ],
    )


def _moments(stamp: str | list[str] | None) -> list[datetime]:
    if stamp is None:
        return []
    return [parse_datetime(s) for s in (stamp if isinstance(stamp, list) else [stamp])]


def _within(bounds: DatetimeRange) -> set[str]:
    """The ids a datetime_range must match: any of a point's values within every bound."""
    checks = {
        "gt": lambda m, b: m > b,
        "gte": lambda m, b: m >= b,
        "lt": lambda m, b: m < b,
        "lte": lambda m, b: m <= b,
    }
    limits = {name: parse_datetime(text) for name, text in bounds.bounds().items()}
    return {
        f"b{k}"
        for k, stamp in enumerate(STAMPS)
        if any(all(checks[n](m, b) for n, b in limits.items()) for m in _moments(stamp))
    }


RANGES = [
    DatetimeRange("published", gte="2026-12-01T10:00:00Z", lte="2026-12-01T10:00:00Z"),
    DatetimeRange("published", gt="2026-12-01T12:00:00+02:00"),
    DatetimeRange("published", lt="2026-12-01"),
    DatetimeRange("published", gte="2026-11-30T00:00:00+00:00", lt="2026-12-01T09:59:59.5Z"),
    DatetimeRange("published", gt="2026-11-30", gte="2026-12-01T10:00:00.000001Z"),
    DatetimeRange("published", lte="2026-12-01T10:00:00Z", lt="2026-12-01T10:00:00.000001Z"),
]


@pytest.mark.parametrize("indexed", [True, False])
@pytest.mark.parametrize("bounds", RANGES, ids=lambda b: ",".join(b.bounds()))
def test_a_datetime_range_matches_the_instants_within_it(
    store: VectorStore, bounds: DatetimeRange, indexed: bool
) -> None:
    _fill(store, indexed)
    wanted = _within(bounds)
    assert wanted  # each case matches something, and not everything
    assert len(wanted) < sum(stamp is not None for stamp in STAMPS)
    only = Filter(must=(bounds,))
    assert store.count("news", only) == len(wanted)
    hits = store.search("news", [1.0, 0, 0, 0], only, SearchParams(limit=20, exact=True))
    assert {h.id for h in hits} == wanted
    outside = Filter(must_not=(bounds,))
    assert store.count("news", outside) == len(STAMPS) - len(wanted)


@pytest.mark.parametrize("descending", [False, True])
def test_a_scroll_in_time_order_pages_through_equal_instants(
    store: VectorStore, descending: bool
) -> None:
    _fill(store)
    order = ScrollOrder("published", descending)
    kind = order_index(store.get_collection("news").spec, order)
    seen: list[tuple[str, datetime]] = []
    used: Counter[str] = Counter()
    cursor = None
    while True:
        page = ordered_page(store, "news", order, kind, None, 2, cursor)
        for record in page.records:
            moments = sorted(_moments(record.payload["published"]), reverse=descending)
            seen.append((record.id, moments[used[record.id]]))
            used[record.id] += 1
        if (cursor := page.next_cursor) is None:
            break
    instants = [m for _, m in seen]
    assert instants == sorted(instants, reverse=descending)
    expected = Counter((f"b{k}", m) for k, stamp in enumerate(STAMPS) for m in _moments(stamp))
    assert Counter(seen) == expected


def test_an_index_added_later_orders_the_stored_points(store: VectorStore) -> None:
    _fill(store, indexed=False)
    store.update_collection("news", CollectionUpdate(add_payload_indexes={"published": DATETIME}))
    assert store.get_collection("news").spec.payload_indexes == {"published": DATETIME}
    page = ordered_page(store, "news", ScrollOrder("published", True), DATETIME, None, 1)
    assert [r.id for r in page.records] == ["b6"]  # its later value is the latest


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({}, "at least one bound"),
        ({"gt": "yesterday"}, r"DatetimeRange\('published'\).gt: 'yesterday' is no date"),
        ({"lte": "2026-13-01"}, "is no date and time"),
        ({"gte": 1764583200}, "is no date and time"),
        # Python reads these; no engine reads them in a stored value.
        ({"gte": "2026-W23-1"}, "is no date and time"),
        ({"gte": "20261201T100000Z"}, "is no date and time"),
        ({"gte": "2026-12-01T10:00Z"}, "is no date and time"),
    ],
)
def test_bounds_that_are_no_dates_are_refused(bounds: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        DatetimeRange("published", **bounds)  # type: ignore[arg-type]


def test_bounds_are_kept_in_utc_to_the_microsecond() -> None:
    bounds = DatetimeRange("t", gt="2026-12-01T12:00:00+02:00", lt="2026-12-02")
    assert bounds.bounds() == {
        "gt": "2026-12-01T10:00:00.000000Z",
        "lt": "2026-12-02T00:00:00.000000Z",
    }
    assert parse_datetime("2026-12-01 09:59:59") == datetime(2026, 12, 1, 9, 59, 59, tzinfo=UTC)
