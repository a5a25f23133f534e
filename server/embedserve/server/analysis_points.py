"""A collection's points, read for analysis: every page of a scroll, or a seeded reservoir
sample when there are more than an analysis should hold in memory."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np

from embedserve.connectors.types import Filter, Record
from embedserve.server.errors import FailedPrecondition
from embedserve.server.vectors import TEXT_PAYLOAD_KEY, VectorCore
from embedserve.server.windows import FloatArray

PAGE_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class PointSet:
    """Points to analyse; ``vectors`` rows have unit length (cosine geometry)."""

    ids: list[str]
    vectors: FloatArray
    texts: list[str | None]
    payloads: list[dict[str, Any]]
    # Points that matched, before sampling.
    total: int

    def __len__(self) -> int:
        return len(self.ids)


def unit_rows(matrix: FloatArray) -> FloatArray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def text_of(payload: dict[str, Any]) -> str | None:
    text = payload.get(TEXT_PAYLOAD_KEY)
    return text if isinstance(text, str) else None


def from_texts(texts: list[str], vectors: FloatArray) -> PointSet:
    """Free texts: their ids are their positions."""
    return PointSet(
        ids=[str(i) for i in range(len(texts))],
        vectors=unit_rows(np.asarray(vectors, dtype=np.float32)),
        texts=list(texts),
        payloads=[{} for _ in texts],
        total=len(texts),
    )


async def collect(
    core: VectorCore,
    collection: str,
    filter: Filter | None,
    max_points: int,
    seed: int = 0,
    with_payload: bool = True,
) -> PointSet:
    """All matching points, or a uniform sample of ``max_points`` of them (Algorithm R:
    one pass, memory bounded by the sample)."""
    rng = random.Random(seed)
    kept: list[Record] = []
    seen = 0
    cursor: str | None = None
    while True:
        page = await core.scroll(collection, filter, PAGE_SIZE, cursor, with_payload, True)
        for record in page.records:
            seen += 1
            if len(kept) < max_points:
                kept.append(record)
            else:
                slot = rng.randrange(seen)
                if slot < max_points:
                    kept[slot] = record
        cursor = page.next_cursor
        if cursor is None:
            break
    if not kept:
        where = " matching the filter" if filter is not None else ""
        raise FailedPrecondition(f"collection {collection!r} has no points{where} to analyse")
    matrix = np.asarray([r.vector for r in kept], dtype=np.float32)
    return PointSet(
        ids=[r.id for r in kept],
        vectors=unit_rows(matrix),
        texts=[text_of(r.payload) for r in kept],
        payloads=[r.payload for r in kept],
        total=seen,
    )
