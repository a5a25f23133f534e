"""Recency and proximity weighing: a ranking's best candidates re-ranked by score and
freshness or nearness, with the payloads asked for; on every backend, against scores
worked out by hand."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from embedserve.connectors import (
    CollectionSpec,
    Distance,
    GeoPoint,
    InvalidRequest,
    PointRecord,
    SearchParams,
    VectorStore,
)
from embedserve.connectors.weighing import (
    LOWEST_SCORE,
    Proximity,
    Recency,
    Weighing,
    check_weighings,
    metres_between,
    rank_weighed,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _ago(hours: float) -> str:
    return (NOW - timedelta(hours=hours)).isoformat()


def _unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


# Query [1, 0]: cosine similarity cos(angle). Dates: fresh, a week, a month, none,
# a list (the latest counts), a text that is no date, the future, and a negative score.
POINTS = [
    ("fresh", 0.5, {"published": _ago(1), "title": "a"}),
    ("week", 0.1, {"published": _ago(168), "title": "b"}),
    ("month", 0.0, {"published": _ago(720), "title": "c"}),
    ("undated", 0.05, {"title": "d"}),
    ("listed", 0.3, {"published": [_ago(2000), _ago(24)], "title": "e"}),
    ("garbled", 0.2, {"published": "last tuesday", "title": "f"}),
    ("future", 0.9, {"published": (NOW + timedelta(days=3)).isoformat(), "title": "g"}),
    ("opposite", 2.5, {"published": _ago(0), "title": "h"}),
]
AGES: dict[str, float | None] = {
    "fresh": 1,
    "week": 168,
    "month": 720,
    "undated": None,
    "listed": 24,
    "garbled": None,
    "future": 0,
    "opposite": 0,
}


def _fill(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("news", vector_size=2))
    store.upsert("news", [PointRecord(i, _unit(a), dict(p)) for i, a, p in POINTS])


def _expected(half_life: float, weight: float) -> list[tuple[str, float]]:
    scored = []
    for point, angle, _ in POINTS:
        age = AGES[point]
        fresh = 0.0 if age is None else 0.5 ** (age / half_life)
        factor = 1 - weight + weight * fresh
        score = math.cos(angle)
        scored.append((point, score * factor if score >= 0 else score / factor))
    return sorted(scored, key=lambda s: (-s[1], s[0]))  # equal scores by id


def _rank(store: VectorStore, params: SearchParams, *weighings: Weighing) -> list[Any]:
    search = functools.partial(store.search, "news", [1.0, 0.0])
    return rank_weighed(search, None, params, weighings)


@pytest.mark.parametrize(("half_life", "weight"), [(24.0, 0.5), (168.0, 0.9), (1.0, 1.0)])
def test_scores_are_weighed_by_freshness_and_resorted(
    store: VectorStore, half_life: float, weight: float
) -> None:
    _fill(store)
    recency = Recency("published", half_life, weight, now=NOW.isoformat())
    hits = _rank(store, SearchParams(limit=8, exact=True), recency)
    expected = _expected(half_life, weight)
    assert [h.id for h in hits] == [point for point, _ in expected]
    assert [h.score for h in hits] == pytest.approx([score for _, score in expected], abs=1e-5)


def test_a_stronger_weight_lifts_the_fresh_over_the_close(store: VectorStore) -> None:
    _fill(store)
    params = SearchParams(limit=2, exact=True)
    light = _rank(store, params, Recency("published", 24, 0.02, now=NOW.isoformat()))
    heavy = _rank(store, params, Recency("published", 24, 1.0, now=NOW.isoformat()))
    assert [h.id for h in light] == ["month", "undated"]  # the closest still lead
    assert [h.id for h in heavy] == ["fresh", "future"]  # a day old, 0.88; the future, 0.62


def test_pages_and_payloads_are_as_asked(store: VectorStore) -> None:
    _fill(store)
    recency = Recency("published", 24, 0.5, now=NOW.isoformat())
    whole = _rank(store, SearchParams(limit=8, exact=True), recency)
    page = _rank(store, SearchParams(limit=3, offset=2, exact=True), recency)
    assert [h.id for h in page] == [h.id for h in whole[2:5]]
    bare = _rank(store, SearchParams(limit=3, with_payload=False, exact=True), recency)
    assert [h.id for h in bare] == [h.id for h in whole[:3]]
    assert all(h.payload is None for h in bare)
    titled = _rank(store, SearchParams(limit=8, payload_keys=("title",), exact=True), recency)
    assert [h.id for h in titled] == [h.id for h in whole]
    assert all(set(h.payload) == {"title"} for h in titled)
    dated = _rank(store, SearchParams(limit=1, payload_keys=("published",), exact=True), recency)
    assert set(dated[0].payload) == {"published"}


def test_pages_past_the_candidates_re_sort_the_next_window(store: VectorStore) -> None:
    """Windows of three: the nearest three re-sorted among themselves, then the next three;
    pages of two cut across them show every point once, in that order."""
    _fill(store)
    recency = Recency("published", 24, 0.9, now=NOW.isoformat(), candidates=3)
    by_angle = [point for point, _, _ in sorted(POINTS, key=lambda p: math.cos(p[1]))[::-1]]
    weighed = dict(_expected(24, 0.9))
    want = [
        point
        for start in range(0, len(POINTS), 3)
        for point in sorted(by_angle[start : start + 3], key=lambda p: -weighed[p])
    ]
    pages = [
        _rank(store, SearchParams(limit=2, offset=o, exact=True), recency) for o in (0, 2, 4, 6)
    ]
    assert [h.id for page in pages for h in page] == want
    assert sorted(want) == sorted(AGES)
    assert want != [point for point, _ in _expected(24, 0.9)]  # not the one whole re-sort


def test_the_clock_is_now_when_no_now_is_given(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("news", vector_size=2))
    today = datetime.now(UTC)
    store.upsert(
        "news",
        [
            PointRecord("old", _unit(0.0), {"at": (today - timedelta(days=400)).isoformat()}),
            PointRecord("new", _unit(0.2), {"at": today.isoformat()}),
        ],
    )
    search = functools.partial(store.search, "news", [1.0, 0.0])
    hits = rank_weighed(search, None, SearchParams(limit=2), [Recency("at", 24, 0.5)])
    assert [h.id for h in hits] == ["new", "old"]
    assert hits[0].score == pytest.approx(math.cos(0.2), abs=1e-3)  # fresh: kept whole
    assert hits[1].score == pytest.approx(0.5, abs=1e-3)  # 400 days: no freshness left


@pytest.mark.parametrize(
    ("recency", "message"),
    [
        ({"key": "a b", "half_life_hours": 1}, "recency.key must be a payload key"),
        ({"key": "at", "half_life_hours": 0}, "half_life_hours must be above 0"),
        ({"key": "at", "half_life_hours": math.inf}, "half_life_hours must be above 0"),
        ({"key": "at", "half_life_hours": 1, "weight": 0}, "weight must be above 0"),
        ({"key": "at", "half_life_hours": 1, "weight": 1.5}, "at most 1"),
        ({"key": "at", "half_life_hours": 1, "now": "soon"}, "recency.now: 'soon' is no date"),
        ({"key": "at", "half_life_hours": 1, "candidates": 0}, "candidates must be from 1"),
    ],
)
def test_settings_out_of_range_are_refused(recency: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        Recency(**recency)


def test_what_recency_cannot_weigh_is_refused() -> None:
    recency = Recency("at", 24)
    with pytest.raises(InvalidRequest, match="no diversity"):
        check_weighings(SearchParams(diversity=0.5), [recency], Distance.COSINE)
    with pytest.raises(InvalidRequest, match="ranks by euclid distance"):
        check_weighings(SearchParams(), [recency], Distance.EUCLID)
    with pytest.raises(InvalidRequest, match=r"candidates \(3\) must be at least the limit"):
        check_weighings(SearchParams(limit=4), [Recency("at", 24, candidates=3)], Distance.DOT)
    check_weighings(  # a deeper page re-sorts a later window
        SearchParams(limit=4, offset=2), [Recency("at", 24, candidates=4)], Distance.DOT
    )
    check_weighings(SearchParams(limit=200), [recency], Distance.DOT)  # 200 candidates then


MITTE = GeoPoint(52.5200, 13.4050)
# Each at angle 0.2 from the query: equal similarity, so distance alone orders them.
SHOPS = [
    ("here", {"at": {"lat": 52.5200, "lon": 13.4050}}),
    ("near", {"at": {"lat": 52.5219, "lon": 13.4132}}),  # about 600 m
    ("far", {"at": {"lat": 53.5511, "lon": 9.9937}}),  # Hamburg
    ("chain", {"at": [{"lat": 48.8566, "lon": 2.3522}, {"lat": 52.5230, "lon": 13.4050}]}),
    ("nowhere", {"at": {"lat": 95, "lon": 0}}),  # no place on Earth
    ("online", {}),
]


def _fill_shops(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("news", vector_size=2))
    store.upsert("news", [PointRecord(i, _unit(0.2), p) for i, p in SHOPS])


def test_nearer_places_rise_by_their_distance(store: VectorStore) -> None:
    _fill_shops(store)
    near = Proximity("at", MITTE, half_distance_m=1000, weight=0.5)
    hits = _rank(store, SearchParams(limit=10, exact=True), near)
    assert [h.id for h in hits][:3] == ["here", "chain", "near"]  # chain: its Berlin shop
    similarity = math.cos(0.2)
    for hit in hits:
        place = dict(SHOPS)[hit.id].get("at")
        places = place if isinstance(place, list) else [place] if place else []
        metres = [
            metres_between(MITTE, GeoPoint(p["lat"], p["lon"])) for p in places if p["lat"] <= 90
        ]
        closeness = 0.5 ** (min(metres) / 1000) if metres else 0.0
        assert hit.score == pytest.approx(similarity * (0.5 + 0.5 * closeness), abs=1e-5)


def test_recency_and_proximity_multiply(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("news", vector_size=2))
    at = {"lat": 52.5200, "lon": 13.4050}
    store.upsert(
        "news",
        [
            PointRecord("old-here", _unit(0.1), {"at": at, "published": _ago(720)}),
            PointRecord(
                "new-far", _unit(0.1), {"at": {"lat": 48.1, "lon": 11.6}, "published": _ago(0)}
            ),
            PointRecord("new-here", _unit(0.3), {"at": at, "published": _ago(1)}),
        ],
    )
    fresh = Recency("published", 24, 0.5, now=NOW.isoformat())
    near = Proximity("at", MITTE, 1000, 0.5)
    hits = _rank(store, SearchParams(limit=3, payload_keys=("at",), exact=True), fresh, near)
    assert [h.id for h in hits] == ["new-here", "old-here", "new-far"]
    factor = (0.5 + 0.5 * 0.5 ** (1 / 24)) * 1.0
    assert hits[0].score == pytest.approx(math.cos(0.3) * factor, abs=1e-5)
    assert all(set(h.payload) == {"at"} for h in hits)  # the date read, then left out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Proximity("at", MITTE, 0), "half_distance_m must be above 0"),
        (lambda: Proximity("at", MITTE, 10, weight=0), "proximity.weight must be above 0"),
        (lambda: Proximity("a b", MITTE, 10), "proximity.key must be a payload key"),
        (lambda: Proximity("at", None, 10), "proximity needs a center"),  # type: ignore[arg-type]
    ],
)
def test_proximity_settings_out_of_range_are_refused(make: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        make()


def test_a_negative_score_without_closeness_at_weight_one_ranks_last(
    store: VectorStore,
) -> None:
    """Weight 1 leaves a hit nothing but its closeness: a negative score divided by none
    (no date, or one so old that its freshness rounds to 0) scores the lowest float32, not
    a division by zero, below a negative score with some freshness; ties there by id."""
    store.create_collection(CollectionSpec("news", vector_size=2))
    rows = [
        ("fresh", 0.5, {"published": _ago(1)}),
        ("undated", 0.2, {}),
        ("behind", 2.5, {"published": _ago(24)}),
        ("lost", 2.0, {}),
        ("ancient", 2.8, {"published": _ago(100_000)}),
    ]
    store.upsert("news", [PointRecord(i, _unit(a), p) for i, a, p in rows])
    recency = Recency("published", 24, 1.0, now=NOW.isoformat())
    hits = _rank(store, SearchParams(limit=5, exact=True), recency)
    assert [h.id for h in hits] == ["fresh", "undated", "behind", "ancient", "lost"]
    assert hits[2].score == pytest.approx(math.cos(2.5) / 0.5, abs=1e-5)
    assert [h.score for h in hits[3:]] == [LOWEST_SCORE, LOWEST_SCORE]


def test_a_negative_score_far_away_at_weight_one_ranks_last(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("news", vector_size=2))
    hamburg = {"lat": 53.5511, "lon": 9.9937}
    rows = [("here", 2.0, {"at": {"lat": 52.52, "lon": 13.405}}), ("far", 2.0, {"at": hamburg})]
    store.upsert("news", [PointRecord(i, _unit(a), p) for i, a, p in rows])
    near = Proximity("at", MITTE, half_distance_m=10, weight=1.0)
    hits = _rank(store, SearchParams(limit=2, exact=True), near)
    assert [(h.id, h.score) for h in hits][1] == ("far", LOWEST_SCORE)
    assert hits[0].score == pytest.approx(math.cos(2.0), abs=1e-5)
