"""Engine results to plain types, the same for both backends.

qdrant-edge and qdrant-client return points of different classes with the same fields
(``id``, ``payload``, ``vector`` and, for query results, ``score``).

Scores are float32, as Qdrant computes them and gRPC carries them. qdrant-client's local
mode computes some in float64: rounded here, they tie (and are ordered by id) where the
caller sees equal scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import StoreError
from .ids import PointId, split_payload
from .types import Record, ScoredPoint, SearchParams


def vector_of(raw: Any) -> list[float] | None:
    if isinstance(raw, dict):  # named-vector form; ours is the default, unnamed one
        raw = raw.get("")
    return None if raw is None else [float(x) for x in raw]


def missing_ids(wanted: Mapping[str, str], records: Iterable[Any]) -> list[str]:
    """The external ids of ``wanted`` (point id -> external id) that no record has."""
    found = {str(r.id) for r in records}
    return [external for pid, external in wanted.items() if pid not in found]


def as_float32(value: float) -> float:
    """``value`` rounded to the nearest float32."""
    return float(np.float32(value))


def as_float32s(values: Sequence[float]) -> list[float]:
    """``values`` rounded to the nearest float32s, all at once (faster than one by one)."""
    rounded: list[float] = np.asarray(values, dtype=np.float32).tolist()
    return rounded


def scored_points(points: Iterable[Any], params: SearchParams) -> list[ScoredPoint]:
    points = list(points)
    results = []
    for p, score in zip(points, as_float32s([p.score for p in points]), strict=True):
        external, payload = split_payload(p.payload, p.id)
        results.append(
            ScoredPoint(
                id=external,
                score=score,
                payload=payload if params.with_payload else None,
                vector=vector_of(p.vector) if params.with_vectors else None,
            )
        )
    return results


def point_scores(points: Iterable[Any]) -> list[ScoredPoint]:
    """Query results read without payloads, named by their point ids (``str(p.id)``): the
    caller's id lives in the payload, and reading it costs as much as the search for a
    hundred hits. ``named_hits`` names those kept."""
    points = list(points)
    scores = as_float32s([p.score for p in points])
    return [ScoredPoint(id=str(p.id), score=s) for p, s in zip(points, scores, strict=True)]


def engine_point_id(name: str) -> PointId:
    """The point id a ``point_scores`` hit is named by, as the engine takes it: an unsigned
    integer or a UUID."""
    return int(name) if name.isdigit() else name


def named_hits(
    hits: Sequence[ScoredPoint], records: Iterable[Any], params: SearchParams
) -> list[ScoredPoint]:
    """``point_scores`` hits under the caller's ids, with the payloads and vectors
    ``params`` asks for, from the engine's ``records`` of them; a hit without one (deleted
    since) is left out."""
    found = {str(r.id): r for r in records}
    named = []
    for hit in hits:
        record = found.get(hit.id)
        if record is None:
            continue
        external, payload = split_payload(record.payload, record.id)
        named.append(
            ScoredPoint(
                id=external,
                score=hit.score,
                payload=payload if params.with_payload else None,
                vector=vector_of(record.vector) if params.with_vectors else None,
            )
        )
    return named


def records_of(records: Iterable[Any], with_payload: bool, with_vectors: bool) -> list[Record]:
    """Engine records as plain records, in the engine's order."""
    out = []
    for r in records:
        external, payload = split_payload(r.payload, r.id)
        out.append(
            Record(
                id=external,
                payload=payload if with_payload else {},
                vector=vector_of(r.vector) if with_vectors else None,
            )
        )
    return out


def ordered_records(
    records: Sequence[Any], with_payload: bool, with_vectors: bool
) -> list[tuple[Record, int | float]]:
    """Records of an ordered scroll, each with the value that placed it."""
    values = [r.order_value for r in records]
    if any(v is None for v in values):
        raise StoreError("the engine answered an ordered scroll without order values")
    return list(zip(records_of(records, with_payload, with_vectors), values, strict=True))


def records_in_order(
    records: Iterable[Any], wanted: Sequence[str], with_vectors: bool
) -> list[Record]:
    """The records found, in the order their ids were asked for."""
    by_id: dict[str, Record] = {}
    for r in records:
        external, payload = split_payload(r.payload, r.id)
        vector = vector_of(r.vector) if with_vectors else None
        by_id[external] = Record(id=external, payload=payload, vector=vector)
    return [by_id[i] for i in wanted if i in by_id]
