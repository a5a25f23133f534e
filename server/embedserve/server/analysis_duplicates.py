"""Near-duplicates: pairs above a cosine threshold, their groups (connected components)
and a histogram of each document's best-neighbour score.

The pairs come from neighbour queries against the store, one page of documents at a time,
so memory holds one page and the pairs found, never an all-pairs matrix.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from embedserve.server.errors import InvalidArgument

BIN_WIDTH = 0.05
BIN_COUNT = round(2 / BIN_WIDTH)  # over [-1, 1]


@dataclasses.dataclass(frozen=True)
class DuplicateSettings:
    threshold: float = 0.92
    max_neighbors: int = 10
    max_pairs: int = 1000

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and -1.0 <= self.threshold <= 1.0):
            raise InvalidArgument(
                f"threshold must be a cosine similarity in [-1, 1], got {self.threshold}"
            )
        if self.max_neighbors < 1:
            raise InvalidArgument("max_neighbors must be at least 1")
        if self.max_pairs < 1:
            raise InvalidArgument("max_pairs must be at least 1")


@dataclasses.dataclass(frozen=True)
class Group:
    ids: list[str]
    min_score: float


@dataclasses.dataclass(frozen=True)
class Bin:
    lower: float
    upper: float
    count: int


class PairCollector:
    """Pairs (each once, unordered) and every document's best-neighbour score."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.pairs: dict[tuple[str, str], float] = {}
        self.best: dict[str, float] = {}

    def add_neighbours(self, source: str, neighbours: Iterable[tuple[str, float]]) -> None:
        for other, score in neighbours:
            if other == source:
                continue
            if score > self.best.get(source, -math.inf):
                self.best[source] = score
            if score >= self.threshold:
                key = (source, other) if source < other else (other, source)
                self.pairs[key] = max(score, self.pairs.get(key, -math.inf))

    def ranked_pairs(self) -> list[tuple[str, str, float]]:
        return sorted(
            ((a, b, s) for (a, b), s in self.pairs.items()), key=lambda p: (-p[2], p[0], p[1])
        )


def groups_of(pairs: Iterable[tuple[str, str, float]]) -> list[Group]:
    """Connected components of the pairs graph (union-find), largest first."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = list(pairs)
    for a, b, _ in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = {}
    for x in parent:
        members.setdefault(root(x), []).append(x)
    weakest: dict[str, float] = {}
    for a, _, score in edges:
        r = root(a)
        weakest[r] = min(score, weakest.get(r, math.inf))
    groups = [Group(sorted(ids), weakest[r]) for r, ids in members.items()]
    return sorted(groups, key=lambda g: (-len(g.ids), g.ids[0]))


def histogram(scores: Iterable[float]) -> list[Bin]:
    """Counts in bins of BIN_WIDTH over [-1, 1]; empty bins are left out."""
    counts = [0] * BIN_COUNT
    for score in scores:
        index = min(BIN_COUNT - 1, max(0, math.floor((score + 1.0) / BIN_WIDTH)))
        counts[index] += 1
    return [
        Bin(round(-1.0 + i * BIN_WIDTH, 4), round(-1.0 + (i + 1) * BIN_WIDTH, 4), n)
        for i, n in enumerate(counts)
        if n
    ]
