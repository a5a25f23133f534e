"""Places in payloads: geo_radius and geo_bounding_box filters, with and without a geo
payload index, alike on every backend, against distances worked out here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from connectors_testdata import unit_vectors

from embedserve.connectors import (
    CollectionSpec,
    CollectionUpdate,
    Filter,
    GeoBoundingBox,
    GeoPoint,
    GeoPolygon,
    GeoRadius,
    InvalidFilter,
    PayloadIndexKind,
    PointRecord,
    SearchParams,
    VectorStore,
)

MITTE = GeoPoint(52.5200, 13.4050)
PLACES: dict[str, object] = {
    "mitte": {"lat": 52.5200, "lon": 13.4050},
    "alexanderplatz": {"lat": 52.5219, "lon": 13.4132},
    "potsdam": {"lat": 52.3906, "lon": 13.0645},
    "hamburg": {"lat": 53.5511, "lon": 9.9937},
    "munich": {"lat": 48.1351, "lon": 11.5820},
    # A chain with a shop in Paris and one in Spandau: either place can match.
    "chain": [{"lat": 48.8566, "lon": 2.3522}, {"lat": 52.5355, "lon": 13.1990}],
    "online": None,
}


def _metres(a: GeoPoint, lat: float, lon: float) -> float:
    """Haversine on the mean Earth radius, as Qdrant measures."""
    p1, p2 = math.radians(a.lat), math.radians(lat)
    dp, dl = p2 - p1, math.radians(lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def _near(radius_m: float) -> set[str]:
    found = set()
    for name, place in PLACES.items():
        points = place if isinstance(place, list) else [place] if place else []
        if any(_metres(MITTE, p["lat"], p["lon"]) <= radius_m for p in points):
            found.add(name)
    return found


def _fill(store: VectorStore, indexed: bool) -> None:
    indexes = {"at": PayloadIndexKind.GEO} if indexed else {}
    store.create_collection(CollectionSpec("shops", vector_size=4, payload_indexes=indexes))
    vectors = unit_vectors(np.random.default_rng(6), len(PLACES), 4)
    store.upsert(
        "shops",
        [
            PointRecord(name, vectors[k], {} if place is None else {"at": place})
            for k, (name, place) in enumerate(PLACES.items())
        ],
    )


@pytest.mark.parametrize("indexed", [True, False])
@pytest.mark.parametrize(
    ("radius_m", "expected"),
    [
        (1_000, {"mitte", "alexanderplatz"}),
        (30_000, {"mitte", "alexanderplatz", "potsdam", "chain"}),
        (300_000, {"mitte", "alexanderplatz", "potsdam", "chain", "hamburg"}),
    ],
)
def test_a_radius_keeps_the_places_within_it(
    store: VectorStore, indexed: bool, radius_m: float, expected: set[str]
) -> None:
    assert _near(radius_m) == expected  # the places sit well inside or outside each radius
    _fill(store, indexed)
    near = Filter(must=(GeoRadius("at", MITTE, radius_m),))
    assert store.count("shops", near) == len(expected)
    hits = store.search("shops", [1.0, 0, 0, 0], near, SearchParams(limit=10, exact=True))
    assert {h.id for h in hits} == expected
    elsewhere = Filter(must_not=(GeoRadius("at", MITTE, radius_m),))
    assert store.count("shops", elsewhere) == len(PLACES) - len(expected)


@pytest.mark.parametrize("indexed", [True, False])
def test_a_box_keeps_the_places_inside_it(store: VectorStore, indexed: bool) -> None:
    _fill(store, indexed)
    brandenburg = GeoBoundingBox("at", GeoPoint(53.0, 12.5), GeoPoint(52.0, 14.0))
    found = store.scroll("shops", Filter(must=(brandenburg,)), limit=20).records
    assert {r.id for r in found} == {"mitte", "alexanderplatz", "potsdam", "chain"}


# A rough ring around Berlin, with Mitte's blocks cut out as a hole, given open (the
# store closes it).
BERLIN = (
    GeoPoint(52.70, 13.05),
    GeoPoint(52.70, 13.80),
    GeoPoint(52.33, 13.80),
    GeoPoint(52.33, 13.05),
)
MITTE_BLOCKS = (
    GeoPoint(52.53, 13.39),
    GeoPoint(52.53, 13.41),
    GeoPoint(52.51, 13.41),
    GeoPoint(52.51, 13.39),
)


@pytest.mark.parametrize("indexed", [True, False])
def test_a_polygon_keeps_the_places_inside_it_and_outside_its_holes(
    store: VectorStore, indexed: bool
) -> None:
    _fill(store, indexed)
    berlin = GeoPolygon("at", BERLIN)
    assert berlin.exterior == (*BERLIN, BERLIN[0])
    found = store.scroll("shops", Filter(must=(berlin,)), limit=20).records
    # Potsdam (13.06 E, 52.39 N) is inside the ring; Spandau keeps the chain in.
    assert {r.id for r in found} == {"mitte", "alexanderplatz", "potsdam", "chain"}
    holed = GeoPolygon("at", (*BERLIN, BERLIN[0]), (MITTE_BLOCKS,))
    found = store.scroll("shops", Filter(must=(holed,)), limit=20).records
    assert {r.id for r in found} == {"alexanderplatz", "potsdam", "chain"}
    assert store.count("shops", Filter(must_not=(holed,))) == len(PLACES) - 3


def test_an_index_added_later_serves_the_places_stored(store: VectorStore) -> None:
    _fill(store, indexed=False)
    store.update_collection(
        "shops", CollectionUpdate(add_payload_indexes={"at": PayloadIndexKind.GEO})
    )
    assert store.get_collection("shops").spec.payload_indexes == {"at": PayloadIndexKind.GEO}
    assert store.count("shops", Filter(must=(GeoRadius("at", MITTE, 1_000),))) == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: GeoPoint(91, 0), "lat must be a number from -90 to 90"),
        (lambda: GeoPoint(0, -180.5), "lon must be a number from -180 to 180"),
        (lambda: GeoPoint(math.nan, 0), "lat must be a number"),
        (lambda: GeoRadius("at", MITTE, 0), "radius_m must be above 0"),
        (lambda: GeoRadius("at", MITTE, math.inf), "radius_m must be above 0"),
        (
            lambda: GeoBoundingBox("at", GeoPoint(52, 13), GeoPoint(53, 14)),
            "must not be south of bottom_right",
        ),
        (
            lambda: GeoPolygon("at", BERLIN[:2]),
            r"exterior needs 3 or more different corners, got 2",
        ),
        (
            lambda: GeoPolygon("at", BERLIN, ((MITTE, MITTE, MITTE),)),
            r"interiors\[0\] needs 3 or more different corners, got 1",
        ),
    ],
)
def test_places_off_the_globe_are_refused(make: object, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        make()  # type: ignore[operator]
