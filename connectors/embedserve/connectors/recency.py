"""Fresher documents first among equally good matches: a ranking's scores weighed by the
age of a date and time field.

Each of the best ``candidates`` hits of any ranking (a dense, keyword or hybrid search, a
recommendation) keeps ``1 - weight`` of its score and earns up to ``weight`` more by its
freshness, ``0.5 ** (age / half_life)``: a document a half-life old counts half as fresh
as one written now, one without a readable date not at all. Scores that are similarities
(cosine, dot, the fusions of them) grow with relevance, so the weighing multiplies a
positive score and divides a negative one: a fresher document never ranks lower. The
candidates are re-sorted by the weighed scores, which the hits carry.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidFilter, InvalidRequest
from .groups import Ranked
from .types import (
    OBJECT_PATH,
    Distance,
    Filter,
    ScoredPoint,
    SearchParams,
    datetime_text,
    parse_datetime,
)

DEFAULT_RECENCY_CANDIDATES = 100
MAX_RECENCY_CANDIDATES = 10_000
DEFAULT_RECENCY_WEIGHT = 0.5


@dataclass(frozen=True)
class Recency:
    """Weigh hits by the age of the date and time at ``key`` (a field reached through
    objects) against ``now`` (default: the clock when the query runs)."""

    key: str
    half_life_hours: float
    weight: float = DEFAULT_RECENCY_WEIGHT
    now: str | None = None
    candidates: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not OBJECT_PATH.fullmatch(self.key):
            raise InvalidRequest(
                "recency.key must be a payload key, or keys joined by dots into objects "
                f"(letters, digits, _ and -), got {self.key!r}"
            )
        h = self.half_life_hours
        if isinstance(h, bool) or not isinstance(h, int | float) or not 0 < h < math.inf:
            raise InvalidRequest(f"recency.half_life_hours must be above 0, got {h!r}")
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w <= 1:
            raise InvalidRequest(f"recency.weight must be above 0 and at most 1, got {w!r}")
        if self.now is not None:
            try:
                object.__setattr__(self, "now", datetime_text(parse_datetime(self.now)))
            except InvalidFilter as exc:
                raise InvalidRequest(f"recency.now: {exc}") from None
        c = self.candidates
        if c is not None and (
            isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= MAX_RECENCY_CANDIDATES
        ):
            raise InvalidRequest(
                f"recency.candidates must be from 1 to {MAX_RECENCY_CANDIDATES}, got {c!r}"
            )

    def freshness(self, payload: dict[str, Any] | None, now: datetime) -> float:
        """1 for a document dated now or later, halving each half-life before; 0 without a
        date (of several, the latest counts)."""
        value: Any = payload
        for part in self.key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        dates = []
        for item in value if isinstance(value, list) else [value]:
            try:
                dates.append(parse_datetime(item))
            except InvalidFilter:
                continue  # not a date: no freshness from it
        if not dates:
            return 0.0
        age_hours = max(0.0, (now - max(dates)).total_seconds() / 3600)
        return float(0.5 ** (age_hours / self.half_life_hours))

    def weighed(self, score: float, freshness: float) -> float:
        factor = 1.0 - self.weight + self.weight * freshness
        return score * factor if score >= 0 else score / factor


def check_recency(params: SearchParams, recency: Recency, distance: Distance) -> None:
    """Refuse what recency cannot weigh before the query costs model time."""
    if params.diversity is not None:
        raise InvalidRequest("a search weighed by recency takes no diversity")
    if distance in (Distance.EUCLID, Distance.MANHATTAN):
        raise InvalidRequest(
            f"recency weighs similarities; this collection ranks by {distance} distance"
        )
    if params.limit + params.offset > candidates_of(params, recency):
        raise InvalidRequest(
            f"recency.candidates ({recency.candidates}) must be at least limit + offset "
            f"({params.limit + params.offset})"
        )


def candidates_of(params: SearchParams, recency: Recency) -> int:
    if recency.candidates is not None:
        return recency.candidates
    return max(DEFAULT_RECENCY_CANDIDATES, params.limit + params.offset)


def rank_by_recency(
    search: Ranked, filter: Filter | None, params: SearchParams, recency: Recency
) -> list[ScoredPoint]:
    """The page ``params`` asks for of ``search``'s best candidates, re-ranked by their
    weighed scores; payloads and vectors as asked (the date read for the weighing is
    left out unless asked for)."""
    now = parse_datetime(recency.now) if recency.now else datetime.now(UTC)
    wide, added = _with_date(params, recency.key)
    hits = search(filter, dataclasses.replace(wide, limit=candidates_of(params, recency), offset=0))
    weighed = [
        dataclasses.replace(h, score=recency.weighed(h.score, recency.freshness(h.payload, now)))
        for h in hits
    ]
    weighed.sort(key=lambda h: -h.score)  # stable: ties keep the ranking's order
    page = weighed[params.offset : params.offset + params.limit]
    if not params.with_payload:
        return [dataclasses.replace(h, payload=None) for h in page]
    if added:
        return [dataclasses.replace(h, payload=_without(h.payload, recency.key)) for h in page]
    return page


def _with_date(params: SearchParams, key: str) -> tuple[SearchParams, bool]:
    """``params`` whose hits carry the date at ``key``, and whether it was added."""
    if not params.with_payload:
        return dataclasses.replace(params, with_payload=True, payload_keys=(key,)), True
    keys = params.payload_keys
    if keys is None or any(key == k or key.startswith(k + ".") for k in keys):
        return params, False
    return dataclasses.replace(params, payload_keys=(*keys, key)), True


def _without(payload: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """``payload`` less the field at ``key``, and the objects only it kept."""
    if payload is None:
        return None
    head, _, rest = key.partition(".")
    if head not in payload:
        return payload
    kept = dict(payload)
    inner = kept.pop(head)
    if rest and isinstance(inner, dict):
        inner = _without(inner, rest)
        if inner:
            kept[head] = inner
    return kept
