"""Near-duplicates: pairs above a cosine threshold, their groups (connected components)
and a histogram of each document's best-neighbour score.

Two ways to find the pairs, never through an all-pairs matrix in memory:

- STORE_QUERIES: one neighbour query against the store per document, a page at a time;
  memory holds one page. Each query costs what a search costs (on 2 CPU cores about 11 ms
  as a full scan of 100k x 384, 4 ms through HNSW), so 100k documents take minutes.
- EXACT_BLOCKS: the vectors, read by scroll, are compared in tiles of 1024 rows by 4096
  columns, each unordered pair once (half a full matrix's products); memory holds the
  vectors and one tile of scores. Exact, and far faster while the vectors fit in memory.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Sequence

import numpy as np

from embedserve.server.errors import InvalidArgument
from embedserve.server.stoppable import Checkpoint, never_stopped
from embedserve.server.windows import FloatArray

BIN_WIDTH = 0.05
BIN_COUNT = round(2 / BIN_WIDTH)  # over [-1, 1]
# A cosine this far below the threshold reaches it: float32 rounding of unit vectors.
ROUNDING = 1e-6
BLOCK_ROWS = 1024
BLOCK_COLUMNS = 4096
# AUTO compares in blocks while the vectors take at most this much memory.
BLOCK_MEMORY_LIMIT = 1 << 30
# Neighbour pairs one call may hold (points x max_neighbors): each takes about 300 bytes
# by the end, and at threshold -1 every one is kept (a 2,000-text call with max_neighbors
# 1e9 took a gigabyte).
MAX_NEIGHBOR_PAIRS = 1 << 21


class Method(enum.Enum):
    AUTO = "auto"
    STORE_QUERIES = "store_queries"
    EXACT_BLOCKS = "exact_blocks"


@dataclasses.dataclass(frozen=True)
class DuplicateSettings:
    threshold: float = 0.92
    max_neighbors: int = 10
    max_pairs: int = 1000
    method: Method = Method.AUTO

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and -1.0 <= self.threshold <= 1.0):
            raise InvalidArgument(
                f"threshold must be a cosine similarity in [-1, 1], got {self.threshold}"
            )
        if self.max_neighbors < 1:
            raise InvalidArgument("max_neighbors must be at least 1")
        if self.max_pairs < 1:
            raise InvalidArgument("max_pairs must be at least 1")


def check_pair_budget(points: int, max_neighbors: int) -> None:
    """Refuse a call whose neighbour lists could outgrow MAX_NEIGHBOR_PAIRS."""
    pairs = points * min(max_neighbors, max(points - 1, 0))
    if pairs > MAX_NEIGHBOR_PAIRS:
        raise InvalidArgument(
            f"{points} points with max_neighbors {max_neighbors} may hold {pairs} neighbour "
            f"pairs; at most {MAX_NEIGHBOR_PAIRS} (their memory): lower max_neighbors or "
            "compare fewer points (a filter)"
        )


@dataclasses.dataclass(frozen=True)
class Group:
    ids: list[str]
    # The lowest score of every pair found among the ids, not the weakest link that
    # holds them together: a-b and b-c at 0.94 with a-c found at 0.77 give 0.77.
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
        # What a score is compared with: equal texts' unit vectors score 1 - 6e-8 in
        # float32 as often as 1, and a threshold of 1 must find them.
        self.reached_at = threshold - ROUNDING
        self.pairs: dict[tuple[str, str], float] = {}
        self.best: dict[str, float] = {}

    def add_neighbours(self, source: str, neighbours: Iterable[tuple[str, float]]) -> None:
        for other, score in neighbours:
            if other == source:
                continue
            if score > 1.0:  # rounding: the dot product of two equal unit vectors is ~1 + 5e-7
                score = 1.0
            if score > self.best.get(source, -math.inf):
                self.best[source] = score
            if score >= self.reached_at:
                key = (source, other) if source < other else (other, source)
                self.pairs[key] = max(score, self.pairs.get(key, -math.inf))

    def ranked_pairs(self) -> list[tuple[str, str, float]]:
        return sorted(
            ((a, b, s) for (a, b), s in self.pairs.items()), key=lambda p: (-p[2], p[0], p[1])
        )


def groups_of(pairs: Iterable[tuple[str, str, float]]) -> list[Group]:
    """Connected components of the pairs graph (union-find), largest first, each with the
    lowest score of its pairs."""
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
        if math.isnan(score):  # no similarity to place (vectors stored too large)
            continue
        clamped = min(1.0, max(-1.0, score))  # dot scores of vectors not of unit length
        counts[min(BIN_COUNT - 1, math.floor((clamped + 1.0) / BIN_WIDTH))] += 1
    return [
        Bin(round(-1.0 + i * BIN_WIDTH, 4), round(-1.0 + (i + 1) * BIN_WIDTH, 4), n)
        for i, n in enumerate(counts)
        if n
    ]


def choose_method(method: Method, points: int, dimensions: int) -> Method:
    if method is not Method.AUTO:
        return method
    fits = points * dimensions * 4 <= BLOCK_MEMORY_LIMIT
    return Method.EXACT_BLOCKS if fits else Method.STORE_QUERIES


def compare_in_blocks(
    ids: Sequence[str],
    vectors: FloatArray,
    collector: PairCollector,
    max_neighbors: int,
    rows: int = BLOCK_ROWS,
    columns: int = BLOCK_COLUMNS,
    checkpoint: Checkpoint = never_stopped,
) -> None:
    """For each row: its best other row (for the histogram) and up to ``max_neighbors``
    rows at or above the threshold, exactly.

    Each unordered pair is scored once: a block of rows against the columns from its own
    first row on, in tiles small enough to stay in cache while they are scanned. A tile
    serves both sides of its pairs: its rows and its columns each raise their best score
    and keep at most ``max_neighbors`` hits from the tile (a partition, only for points
    with more hits than that, as at a threshold of -1 in a top-k pair search). Candidates
    are cut back to each point's best ``max_neighbors`` as they pile up, so memory stays
    near ``n * max_neighbors`` pairs, never ``n^2``."""
    n = len(ids)
    if n < 2:
        return
    keep = min(max_neighbors, n - 1)
    best = np.full(n, -np.inf, dtype=np.float32)
    best_at = np.zeros(n, dtype=np.int64)
    found = _Candidates(keep, limit=4 * n * keep + (1 << 20))
    for row0 in range(0, n, rows):
        checkpoint()  # between blocks of rows
        block = vectors[row0 : row0 + rows]
        for col0 in range(row0, n, columns):
            scores = block @ vectors[col0 : col0 + columns].T
            if col0 == row0:  # the diagonal tile: keep pairs (r, c) with c > r only
                scores[np.tril_indices(scores.shape[0], m=scores.shape[1])] = -np.inf
            for side, first, other_first in ((scores, row0, col0), (scores.T, col0, row0)):
                top = side.max(axis=1)
                _raise_best(best, best_at, first, top, side, other_first)
                found.add(first, other_first, side, top, collector.reached_at)
        found.compact_if_large()
    chosen = found.per_point()
    for i in range(n):
        neighbours = [(ids[j], score) for j, score in chosen.get(i, ())]
        if np.isfinite(best[i]):
            neighbours.append((ids[int(best_at[i])], float(best[i])))
        collector.add_neighbours(ids[i], neighbours)


def _raise_best(
    best: np.ndarray,
    best_at: np.ndarray,
    first: int,
    top: np.ndarray,
    side: np.ndarray,
    other_first: int,
) -> None:
    """Raise ``best`` for the points ``first..`` (the rows of ``side``) to ``top``, their
    maxima in this tile. Where a maximum is found is looked up only where it beats the
    best so far: argmax across a transposed tile costs far more than a plain max."""
    own = slice(first, first + top.shape[0])
    better = np.flatnonzero(top > best[own])
    if better.size:
        best[first + better] = top[better]
        best_at[first + better] = other_first + np.argmax(side[better], axis=1)


class _Candidates:
    """Directed (point, partner, score) hits, at most ``keep`` per point once compacted."""

    def __init__(self, keep: int, limit: int) -> None:
        self._keep = keep
        self._limit = limit
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._size = 0

    def add(
        self, first: int, other_first: int, side: np.ndarray, top: np.ndarray, threshold: float
    ) -> None:
        """The hits of the rows of ``side`` (only rows whose ``top`` reaches the threshold
        are scanned), each row's cut to its best ``keep`` in this tile."""
        rows = np.flatnonzero(top >= threshold)
        if not rows.size:
            return
        sub = side[rows]
        hits = sub >= threshold
        crowded = np.flatnonzero(hits.sum(axis=1) > self._keep)
        if crowded.size:
            best = np.argpartition(sub[crowded], -self._keep, axis=1)[:, -self._keep :]
            hits[crowded] = False
            hits[crowded[:, None], best] = True
        r, c = np.nonzero(hits)
        self._parts.append((first + rows[r], other_first + c, sub[r, c]))
        self._size += r.size

    def compact_if_large(self) -> None:
        if self._size > self._limit:
            self._compact()

    def _compact(self) -> None:
        if not self._parts:
            return
        columns = zip(*self._parts, strict=True)
        point, partner, score = (np.concatenate(column) for column in columns)
        order = np.lexsort((partner, -score, point))
        point, partner, score = point[order], partner[order], score[order]
        starts = np.r_[True, point[1:] != point[:-1]]
        group_start = np.maximum.accumulate(np.where(starts, np.arange(point.size), 0))
        kept = np.arange(point.size) - group_start < self._keep
        self._parts = [(point[kept], partner[kept], score[kept])]
        self._size = int(kept.sum())

    def per_point(self) -> dict[int, list[tuple[int, float]]]:
        """Every point's best ``keep`` partners, strongest first."""
        self._compact()
        chosen: dict[int, list[tuple[int, float]]] = {}
        for parts in self._parts:
            for i, j, s in zip(*(column.tolist() for column in parts), strict=True):
                chosen.setdefault(i, []).append((j, s))
        return chosen
