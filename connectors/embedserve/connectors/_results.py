"""Engine results to plain types, the same for both backends.

qdrant-edge and qdrant-client return points of different classes with the same fields
(``id``, ``payload``, ``vector`` and, for query results, ``score``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import StoreError
from .ids import split_payload
from .types import Record, ScoredPoint, SearchParams


def vector_of(raw: Any) -> list[float] | None:
    if isinstance(raw, dict):  # named-vector form; ours is the default, unnamed one
        raw = raw.get("")
    return None if raw is None else [float(x) for x in raw]


def missing_ids(wanted: Mapping[str, str], records: Iterable[Any]) -> list[str]:
    """The external ids of ``wanted`` (point id -> external id) that no record has."""
    found = {str(r.id) for r in records}
    return [external for pid, external in wanted.items() if pid not in found]


def scored_points(points: Iterable[Any], params: SearchParams) -> list[ScoredPoint]:
    results = []
    for p in points:
        external, payload = split_payload(p.payload, p.id)
        results.append(
            ScoredPoint(
                id=external,
                score=float(p.score),
                payload=payload if params.with_payload else None,
                vector=vector_of(p.vector) if params.with_vectors else None,
            )
        )
    return results


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
