"""The transport-free analysis API: clustering and near-duplicates over a collection (or,
for clustering, a list of texts). Servicers and other front ends only map their messages
onto these calls.

Store reads and writes go through VectorCore (its thread pool and error mapping);
CPU-heavy steps (k-means, silhouette, HDBSCAN) run on a worker thread so the event loop
keeps serving other calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Sequence

import numpy as np

from embedserve.connectors.ids import RESERVED_KEY
from embedserve.connectors.store import VectorStore
from embedserve.connectors.types import Distance, Filter, HasId, Record, SearchParams
from embedserve.server.analysis_cluster import (
    NOISE,
    Clustering,
    ClusterSettings,
    central_members,
    cluster_vectors,
    nearest_centre,
)
from embedserve.server.analysis_duplicates import (
    Bin,
    DuplicateSettings,
    Group,
    Method,
    PairCollector,
    check_pair_budget,
    choose_method,
    compare_in_blocks,
    groups_of,
    histogram,
)
from embedserve.server.analysis_points import PAGE_SIZE, PointSet, collect, from_texts, text_of
from embedserve.server.analysis_words import distinguishing_words
from embedserve.server.errors import FailedPrecondition, InvalidArgument
from embedserve.server.passages import RESERVED_KEYS as PASSAGE_KEYS
from embedserve.server.stoppable import until_cancelled
from embedserve.server.vectors import TEXT_PAYLOAD_KEY, VectorCore

DUPLICATE_PAGE = 256
# A float32 unit vector's norm strays from 1 by rounding alone: far less than this.
UNIT_TOLERANCE = 1e-3
MAX_TEXTS = 50_000


@dataclasses.dataclass(frozen=True)
class ClusterJob:
    """What to cluster and how; exactly one of ``collection`` and ``texts``."""

    collection: str | None = None
    texts: Sequence[str] | None = None
    filter: Filter | None = None
    settings: ClusterSettings = dataclasses.field(default_factory=ClusterSettings)
    max_points: int = 20_000
    top_documents: int = 5
    top_words: int = 10
    write_label: str | None = None


@dataclasses.dataclass(frozen=True)
class Member:
    id: str
    score: float
    text: str | None


@dataclasses.dataclass(frozen=True)
class ClusterSummary:
    label: int
    size: int
    central: list[Member]
    words: list[tuple[str, float]]


@dataclasses.dataclass(frozen=True)
class ClusterReport:
    clusters: list[ClusterSummary]
    ids: list[str]
    labels: list[int]
    k: int
    silhouette: float
    silhouette_by_k: dict[int, float]
    points_total: int
    points_clustered: int
    labels_written: int
    elapsed_ms: float


@dataclasses.dataclass(frozen=True)
class DuplicateReport:
    pairs: list[tuple[str, str, float]]
    pairs_total: int
    groups: list[Group]
    histogram: list[Bin]
    points_scanned: int
    texts: dict[str, str]
    elapsed_ms: float
    method: Method


def _check_texts(texts: Sequence[str]) -> None:
    if not texts:
        raise InvalidArgument("texts must not be empty")
    if len(texts) > MAX_TEXTS:
        raise InvalidArgument(
            f"texts holds {len(texts)} texts; at most {MAX_TEXTS} (store more in a "
            "collection and analyse that)"
        )


def _check_job(job: ClusterJob) -> None:
    if (job.collection is None) == (job.texts is None):
        raise InvalidArgument("give exactly one of collection or texts")
    if job.texts is not None:
        _check_texts(job.texts)
        if job.write_label:
            raise InvalidArgument("write_label needs a collection, not texts")
        if job.filter is not None:
            raise InvalidArgument("filter needs a collection, not texts")
    # The passage fields find a document's passages (a rewrite removes the stale ones by
    # doc_id): a label written over them would cut passages off their document.
    if job.write_label in (TEXT_PAYLOAD_KEY, RESERVED_KEY, *PASSAGE_KEYS):
        raise InvalidArgument(f"write_label must not be {job.write_label!r}: that field is taken")
    if job.max_points < 2:
        raise InvalidArgument("max_points must be at least 2")


def summarise(points: PointSet, clustering: Clustering, job: ClusterJob) -> list[ClusterSummary]:
    """Size, most central members and distinguishing words of each cluster; largest
    first, noise last."""
    labels = clustering.labels
    distinct = sorted(set(labels.tolist()), key=lambda c: (c == NOISE, -int((labels == c).sum())))
    texts_by_cluster = {
        c: [t for t, label in zip(points.texts, labels.tolist(), strict=True) if label == c and t]
        for c in distinct
    }
    words = distinguishing_words(texts_by_cluster, job.top_words)
    summaries = []
    for c in distinct:
        central = [
            Member(points.ids[i], score, points.texts[i])
            for i, score in central_members(points.vectors, labels, c, job.top_documents)
        ]
        summaries.append(ClusterSummary(c, int((labels == c).sum()), central, words.get(c, [])))
    return summaries


class AnalysisCore:
    def __init__(self, vectors: VectorCore) -> None:
        self._vectors = vectors

    @property
    def _store(self) -> VectorStore:
        return self._vectors.store

    async def cluster(self, job: ClusterJob) -> ClusterReport:
        started = time.monotonic()
        _check_job(job)
        if job.texts is not None:
            embedded = await self._vectors.embed_documents(list(job.texts), field="texts")
            points = from_texts(list(job.texts), embedded)
        else:
            assert job.collection is not None
            points = await collect(
                self._vectors, job.collection, job.filter, job.max_points, job.settings.seed
            )
        clustering = await until_cancelled(
            functools.partial(cluster_vectors, points.vectors, job.settings)
        )
        summaries = await asyncio.to_thread(summarise, points, clustering, job)
        written = 0
        if job.write_label and job.collection is not None:
            written = await self._write_labels(job.collection, job, points, clustering)
        return ClusterReport(
            clusters=summaries,
            ids=points.ids,
            labels=[int(x) for x in clustering.labels],
            k=clustering.k,
            silhouette=clustering.silhouette,
            silhouette_by_k=clustering.silhouette_by_k,
            points_total=points.total,
            points_clustered=len(points),
            labels_written=written,
            elapsed_ms=(time.monotonic() - started) * 1000.0,
        )

    async def _write_labels(
        self, collection: str, job: ClusterJob, points: PointSet, clustering: Clustering
    ) -> int:
        """Set every matching point's label in its payload, vectors untouched; returns how
        many got one. Points left out of a sample get their nearest k-means centre; HDBSCAN
        cannot place them, so the field is removed from them: it holds this run's labels
        only, not an earlier run's beside them. A point deleted meanwhile stays deleted."""
        assert job.write_label
        known = dict(zip(points.ids, clustering.labels.tolist(), strict=True))
        written = 0
        cursor: str | None = None
        while True:
            page = await self._vectors.scroll(collection, job.filter, PAGE_SIZE, cursor, True, True)
            records = [r for r in page.records if r.vector is not None]
            labels = _labels_for(records, known, clustering)
            by_label: dict[int, list[str]] = {}
            unplaced: list[str] = []
            for record, label in zip(records, labels, strict=True):
                if label is None:
                    unplaced.append(record.id)
                else:
                    by_label.setdefault(label, []).append(record.id)
            for label, ids in by_label.items():
                present = Filter(must=(HasId(tuple(ids)),))
                await self._vectors.update_payload(
                    collection, [], present, {job.write_label: label}, []
                )
                written += len(ids)
            if unplaced:
                present = Filter(must=(HasId(tuple(unplaced)),))
                await self._vectors.update_payload(collection, [], present, {}, [job.write_label])
            cursor = page.next_cursor
            if cursor is None:
                return written

    async def find_duplicates(
        self,
        collection: str,
        filter: Filter | None,
        settings: DuplicateSettings,
        with_text: bool,
        texts: Sequence[str] | None = None,
    ) -> DuplicateReport:
        """Near-duplicates in a collection, or in ``texts`` (ids: their positions)."""
        started = time.monotonic()
        collector = PairCollector(settings.threshold)
        if texts is not None:
            scanned, method = await self._compare_texts(
                texts, collection, filter, settings, collector
            )
        else:
            scanned, method = await self._compare_collection(
                collection, filter, settings, collector
            )
        ranked = collector.ranked_pairs()
        shown = ranked[: settings.max_pairs]
        found: dict[str, str] = {}
        if with_text and shown:
            ids = sorted({i for a, b, _ in shown for i in (a, b)})
            if texts is not None:
                found = {i: texts[int(i)] for i in ids}
            else:
                found = await self._texts(collection, ids)
        return DuplicateReport(
            pairs=shown,
            pairs_total=len(ranked),
            groups=groups_of(ranked),
            histogram=histogram(collector.best.values()),
            points_scanned=scanned,
            texts=found,
            elapsed_ms=(time.monotonic() - started) * 1000.0,
            method=method,
        )

    async def _compare_collection(
        self,
        collection: str,
        filter: Filter | None,
        settings: DuplicateSettings,
        collector: PairCollector,
    ) -> tuple[int, Method]:
        if not collection:
            raise InvalidArgument("one of collection or texts must be set")
        info = await self._vectors.call(self._store.get_collection, collection)
        if info.spec.distance not in (Distance.COSINE, Distance.DOT):
            raise FailedPrecondition(
                f"collection {collection!r} uses {info.spec.distance.value} distance; "
                "near-duplicates by cosine threshold need a cosine (or dot, on unit vectors) "
                "collection"
            )
        matching = await self._vectors.count(collection, filter)
        check_pair_budget(matching, settings.max_neighbors)
        method = choose_method(settings.method, matching, info.spec.vector_size)
        if method is Method.EXACT_BLOCKS:
            return await self._compare_in_blocks(collection, filter, settings, collector), method
        unit_only = info.spec.distance is Distance.DOT
        scanned = await self._query_store(collection, filter, settings, collector, unit_only)
        return scanned, method

    async def _compare_texts(
        self,
        texts: Sequence[str],
        collection: str,
        filter: Filter | None,
        settings: DuplicateSettings,
        collector: PairCollector,
    ) -> tuple[int, Method]:
        """Free texts are in no store to query: embedded, then compared in exact blocks."""
        if collection:
            raise InvalidArgument("give exactly one of collection or texts")
        if filter is not None:
            raise InvalidArgument("filter needs a collection, not texts")
        if settings.method is Method.STORE_QUERIES:
            raise InvalidArgument("method STORE_QUERIES needs a collection, not texts")
        _check_texts(texts)
        check_pair_budget(len(texts), settings.max_neighbors)
        points = from_texts(list(texts), await self._vectors.embed_documents(texts, "texts"))
        await until_cancelled(
            functools.partial(
                compare_in_blocks, points.ids, points.vectors, collector, settings.max_neighbors
            )
        )
        return len(points), Method.EXACT_BLOCKS

    async def _compare_in_blocks(
        self,
        collection: str,
        filter: Filter | None,
        settings: DuplicateSettings,
        collector: PairCollector,
    ) -> int:
        points = await collect(
            self._vectors, collection, filter, max_points=2**62, with_payload=False
        )
        await until_cancelled(
            functools.partial(
                compare_in_blocks, points.ids, points.vectors, collector, settings.max_neighbors
            )
        )
        return len(points)

    async def _query_store(
        self,
        collection: str,
        filter: Filter | None,
        settings: DuplicateSettings,
        collector: PairCollector,
        unit_only: bool,
    ) -> int:
        """``unit_only``: refuse vectors not of unit length, whose store scores (a dot
        product collection's, as a model trained for dot product gets) are no cosines."""
        params = SearchParams(limit=settings.max_neighbors + 1, with_payload=False)
        scanned = 0
        cursor: str | None = None
        while True:
            page = await self._vectors.scroll(
                collection, filter, DUPLICATE_PAGE, cursor, False, True
            )
            if unit_only:
                _check_unit_length(collection, page.records)
            found = await self._vectors.call(
                _neighbours, self._store, collection, page.records, filter, params
            )
            for record, neighbours in zip(page.records, found, strict=True):
                collector.add_neighbours(record.id, neighbours)
            scanned += len(page.records)
            cursor = page.next_cursor
            if cursor is None:
                break
        if scanned == 0:
            where = " matching the filter" if filter is not None else ""
            raise FailedPrecondition(f"collection {collection!r} has no points{where} to compare")
        return scanned

    async def _texts(self, collection: str, ids: list[str]) -> dict[str, str]:
        texts: dict[str, str] = {}
        for start in range(0, len(ids), PAGE_SIZE):
            records = await self._vectors.get(collection, ids[start : start + PAGE_SIZE], False)
            for r in records:
                text = text_of(r.payload)
                if text is not None:
                    texts[r.id] = text
        return texts


def _labels_for(
    records: Sequence[Record], known: dict[str, int], clustering: Clustering
) -> list[int | None]:
    missing = [i for i, r in enumerate(records) if r.id not in known]
    placed: dict[int, int] = {}
    if missing and clustering.centres is not None:
        vectors = np.asarray([records[i].vector for i in missing], dtype=np.float32)
        for i, label in zip(missing, nearest_centre(vectors, clustering.centres), strict=True):
            placed[i] = int(label)
    return [known.get(r.id, placed.get(i)) for i, r in enumerate(records)]


def _neighbours(
    store: VectorStore,
    collection: str,
    records: Sequence[Record],
    filter: Filter | None,
    params: SearchParams,
) -> list[list[tuple[str, float]]]:
    """One page's neighbour queries, run together on one store thread."""
    results = []
    for record in records:
        assert record.vector is not None
        hits = store.search(collection, record.vector, filter, params)
        results.append([(h.id, h.score) for h in hits])
    return results


def _check_unit_length(collection: str, records: Sequence[Record]) -> None:
    for record in records:
        if record.vector is None:
            continue
        norm = float(np.linalg.norm(record.vector))
        if abs(norm - 1.0) > UNIT_TOLERANCE:
            raise FailedPrecondition(
                f"collection {collection!r} uses dot distance and holds vectors not of unit "
                f"length ({record.id!r}: {norm:.4g}), whose store scores are no cosines: use "
                "method EXACT_BLOCKS, which compares directions, or a cosine collection"
            )
