"""Fresher or nearer documents first among equally good matches: a ranking's scores
weighed by the age of a date field (recency) or the distance to a place (proximity).

Each of the best ``candidates`` hits of any ranking (a dense, keyword or hybrid search, a
recommendation) keeps ``1 - weight`` of its score and earns up to ``weight`` more by its
closeness, from 1 down to 0: ``0.5 ** (age / half_life)`` for recency, ``0.5 ** (distance
/ half_distance)`` for proximity, 0 for a document without a readable date or place. With
both, the two factors multiply. Scores that are similarities (cosine, dot, the fusions of
them) grow with relevance, so the weighing multiplies a positive score and divides a
negative one: a closer document never ranks lower. At weight 1 a negative score with no
closeness left has nothing to be divided by: it scores ``LOWEST_SCORE``, the floor of the
weighed scores, and ranks last. The hits are re-sorted by the weighed scores, which they
carry, in windows of ``candidates`` (rank_windows.py).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from .errors import InvalidFilter, InvalidRequest
from .payload_fields import as_asked, field_at, with_fields
from .rank_windows import first_stage_span, in_windows, page_of
from .stable_pages import Ranked, stable_page
from .types import (
    OBJECT_PATH,
    Distance,
    Filter,
    GeoPoint,
    ScoredPoint,
    SearchParams,
    datetime_text,
    is_path,
    parse_datetime,
)

DEFAULT_CANDIDATES = 100
MAX_CANDIDATES = 10_000
DEFAULT_WEIGHT = 0.5
EARTH_RADIUS_M = 6_371_008.8  # the mean radius, as Qdrant's geo filters measure
# The lowest float32, the floor of weighed scores: where a negative score divided by no
# closeness (or by one too small) lands. An infinity would carry over gRPC's float32 but
# not in HTTP's JSON, and past this a gRPC float turns infinite.
LOWEST_SCORE = -3.4028234663852886e38


class Weighing(Protocol):
    @property
    def name(self) -> str:
        """In messages: "recency", "proximity"."""
        ...

    @property
    def key(self) -> str: ...

    @property
    def weight(self) -> float: ...

    @property
    def candidates(self) -> int | None: ...

    def closeness(self, payload: dict[str, Any] | None, now: datetime) -> float:
        """From 1 (now, here) down to 0 (long ago, far away, or no value)."""
        ...


def _check_common(w: Weighing) -> None:
    if not isinstance(w.key, str) or not is_path(OBJECT_PATH, w.key):
        raise InvalidRequest(
            f"{w.name}.key must be a payload key, or keys joined by dots into objects "
            f"(letters, digits, _ and -), got {w.key!r}"
        )
    weight = w.weight
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1:
        raise InvalidRequest(f"{w.name}.weight must be above 0 and at most 1, got {weight!r}")
    c = w.candidates
    if c is not None and (
        isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= MAX_CANDIDATES
    ):
        raise InvalidRequest(f"{w.name}.candidates must be from 1 to {MAX_CANDIDATES}, got {c!r}")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise InvalidRequest(f"{name} must be above 0, got {value!r}")


def _values(payload: dict[str, Any] | None, key: str) -> list[Any]:
    """The value at ``key`` (a dotted path through objects), a list's items one by one."""
    value = field_at(payload, key)
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Recency:
    """Weigh hits by the age of the date and time at ``key`` against ``now`` (default:
    the clock when the query runs); of several dates, the latest counts."""

    key: str
    half_life_hours: float
    weight: float = DEFAULT_WEIGHT
    now: str | None = None
    candidates: int | None = None
    name = "recency"

    def __post_init__(self) -> None:
        _check_common(self)
        _check_positive("recency.half_life_hours", self.half_life_hours)
        if self.now is not None:
            try:
                object.__setattr__(self, "now", datetime_text(parse_datetime(self.now)))
            except InvalidFilter as exc:
                raise InvalidRequest(f"recency.now: {exc}") from None

    @functools.cached_property
    def _fixed_now(self) -> datetime | None:
        """``now`` read once, not for every hit weighed."""
        return None if self.now is None else parse_datetime(self.now)

    def closeness(self, payload: dict[str, Any] | None, now: datetime) -> float:
        dates = []
        for item in _values(payload, self.key):
            try:
                dates.append(parse_datetime(item))
            except InvalidFilter:
                continue  # not a date: no freshness from it
        if not dates:
            return 0.0
        age_hours = max(0.0, ((self._fixed_now or now) - max(dates)).total_seconds() / 3600)
        return float(0.5 ** (age_hours / self.half_life_hours))


@dataclass(frozen=True)
class Proximity:
    """Weigh hits by the distance from ``center`` to the place at ``key`` (a ``{"lat",
    "lon"}`` object, or a list of them: the nearest counts)."""

    key: str
    center: GeoPoint
    half_distance_m: float
    weight: float = DEFAULT_WEIGHT
    candidates: int | None = None
    name = "proximity"

    def __post_init__(self) -> None:
        _check_common(self)
        if not isinstance(self.center, GeoPoint):
            raise InvalidRequest("proximity needs a center")
        _check_positive("proximity.half_distance_m", self.half_distance_m)

    def closeness(self, payload: dict[str, Any] | None, now: datetime) -> float:
        distances = []
        for item in _values(payload, self.key):
            if isinstance(item, dict):
                try:
                    place = GeoPoint(item.get("lat"), item.get("lon"))  # type: ignore[arg-type]
                except InvalidFilter:
                    continue  # not a place: no closeness from it
                distances.append(metres_between(self.center, place))
        if not distances:
            return 0.0
        return float(0.5 ** (min(distances) / self.half_distance_m))


def metres_between(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance by the haversine formula."""
    lat_a, lat_b = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat_b - lat_a, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat_a) * math.cos(lat_b) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def check_weighings(
    params: SearchParams, weighings: Sequence[Weighing], distance: Distance
) -> None:
    """Refuse what cannot be weighed before the query costs model time."""
    for w in weighings:
        if params.diversity is not None:
            raise InvalidRequest(f"a search weighed by {w.name} takes no diversity")
        if distance in (Distance.EUCLID, Distance.MANHATTAN):
            raise InvalidRequest(
                f"{w.name} weighs similarities; this collection ranks by {distance} distance"
            )
        if w.candidates is not None and params.limit > w.candidates:
            raise InvalidRequest(
                f"{w.name}.candidates ({w.candidates}) must be at least the limit ({params.limit})"
            )


def window_of(params: SearchParams, weighings: Sequence[Weighing]) -> int:
    """How many of the ranking's hits are re-sorted among themselves (rank_windows.py)."""
    given = [w.candidates for w in weighings if w.candidates is not None]
    return max(given) if given else max(DEFAULT_CANDIDATES, params.limit)


def weighed_score(score: float, factor: float) -> float:
    """``score`` weighed by ``factor`` (from 1 down to 0): multiplied when positive, divided
    when negative, so a smaller factor never ranks a hit higher."""
    if score >= 0:
        return score * factor
    if factor <= 0:
        return LOWEST_SCORE  # the limit, -infinity, as far down as a score goes
    return max(score / factor, LOWEST_SCORE)


def rank_weighed(
    search: Ranked, filter: Filter | None, params: SearchParams, weighings: Sequence[Weighing]
) -> list[ScoredPoint]:
    """The page ``params`` asks for of ``search``'s best candidates, re-ranked by their
    weighed scores; payloads and vectors as asked (the fields read for the weighing are
    left out unless asked for)."""
    now = datetime.now(UTC)
    keys = [w.key for w in weighings]
    wide, added = with_fields(params, keys)
    window = window_of(params, weighings)
    start, count = first_stage_span(window, params)
    hits = stable_page(search, filter, dataclasses.replace(wide, offset=start, limit=count))
    weighed = []
    for hit in hits:
        factor = math.prod(
            1 - w.weight + w.weight * w.closeness(hit.payload, now) for w in weighings
        )
        weighed.append(dataclasses.replace(hit, score=weighed_score(hit.score, factor)))
    return as_asked(page_of(in_windows(weighed, window), start, params), params, added)
