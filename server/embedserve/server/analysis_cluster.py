"""Clustering of unit vectors: k-means with a given k or k chosen by silhouette, or
HDBSCAN (noise labelled -1); the most central members of each cluster."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.neighbors import radius_neighbors_graph

from embedserve.server.errors import InvalidArgument
from embedserve.server.hdbscan_child import hdbscan_labels
from embedserve.server.stoppable import Checkpoint, never_stopped
from embedserve.server.windows import FloatArray

NOISE = -1
# HDBSCAN's densities mean little in hundreds of dimensions, where sentence vectors are
# almost equidistant; on the labelled corpus it called a third of the points noise there,
# and 6% after PCA to 5 dimensions (the reduction BERTopic makes, with UMAP).
HDBSCAN_DIMENSIONS = 5
# Rows closer than this where HDBSCAN looks (after PCA) are one point. HDBSCAN's density
# is 1 / distance with no floor, so rounding reads as the densest structure of all: PCA
# gives equal rows coordinates 1e-8 apart, and one text embedded in batches of other
# shapes comes back up to about 1e-6 away (float32); HDBSCAN split such copies of one text
# into clusters of their own. MiniLM puts texts that differ by a character 3e-2 or more
# apart. (bfloat16 moves a text by up to about 1e-2 between batches: more than this.)
SAME_POINT = 1e-4
# Silhouette is quadratic in the points; past this many it is estimated on a sample.
SILHOUETTE_SAMPLE = 3000
# k-means runs once per k tried, each longer the larger k: a k_max of 499 on 500 texts ran
# for most of an hour (the default range, 2 to 12, takes seconds).
MAX_K = 1000
MAX_K_CHOSEN = 64

Labels = npt.NDArray[np.int64]


class Algorithm(enum.Enum):
    KMEANS = "kmeans"
    HDBSCAN = "hdbscan"


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    algorithm: Algorithm = Algorithm.KMEANS
    # None: chosen by silhouette over [k_min, k_max].
    k: int | None = None
    k_min: int = 2
    k_max: int = 12
    min_cluster_size: int = 5
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Clustering:
    labels: Labels
    # The clusters formed (noise excluded): fewer than asked when points repeat.
    k: int
    silhouette: float
    silhouette_by_k: dict[int, float]
    # k-means centres (means of unit rows, not unit length); None for HDBSCAN.
    centres: FloatArray | None


# Each algorithm's own options: given to the other one, they were ignored without a word.
_KMEANS_OPTIONS = ("k", "k_min", "k_max")
_HDBSCAN_OPTIONS = ("min_cluster_size",)


def check_options_given(algorithm: Algorithm, given: Iterable[str]) -> None:
    """InvalidArgument for an option ``given`` (a request's field set) of the other
    algorithm."""
    for name in given:
        if algorithm is Algorithm.HDBSCAN and name in _KMEANS_OPTIONS:
            raise InvalidArgument(f"{name} applies to kmeans; hdbscan finds the number of clusters")
        if algorithm is Algorithm.KMEANS and name in _HDBSCAN_OPTIONS:
            raise InvalidArgument(f"{name} applies to hdbscan")


def check_settings(settings: ClusterSettings, points: int) -> None:
    """Errors the caller can fix, named by the request's fields."""
    if settings.algorithm is Algorithm.HDBSCAN:
        if settings.min_cluster_size < 2:
            raise InvalidArgument("min_cluster_size must be at least 2")
        if points < settings.min_cluster_size:
            raise InvalidArgument(
                f"min_cluster_size is {settings.min_cluster_size} but there are only "
                f"{points} points"
            )
        return
    if settings.k is not None:
        if not 1 <= settings.k <= MAX_K:
            raise InvalidArgument(f"k must be from 1 to {MAX_K}, got {settings.k}")
        if settings.k > points:
            raise InvalidArgument(
                f"k is {settings.k} but there are only {points} points to cluster"
            )
        return
    if settings.k_min < 2 or settings.k_max < settings.k_min or settings.k_max > MAX_K_CHOSEN:
        raise InvalidArgument(
            f"need 2 <= k_min <= k_max <= {MAX_K_CHOSEN} to choose k, got "
            f"k_min={settings.k_min}, k_max={settings.k_max} (for more clusters, give k)"
        )
    if points < 3:
        raise InvalidArgument(f"choosing k needs at least 3 points, there are {points}")
    # The silhouette that picks k needs fewer clusters than points.
    if settings.k_min >= points:
        raise InvalidArgument(
            f"k_min is {settings.k_min} but there are only {points} points: choosing k "
            "needs k_min below the number of points"
        )


def _silhouette(vectors: FloatArray, labels: Labels, seed: int) -> float:
    clustered = labels != NOISE
    distinct = len(set(labels[clustered].tolist()))
    if distinct < 2 or distinct >= int(clustered.sum()):
        return 0.0
    sample = SILHOUETTE_SAMPLE if int(clustered.sum()) > SILHOUETTE_SAMPLE else None
    return float(
        silhouette_score(
            vectors[clustered],
            labels[clustered],
            metric="cosine",
            sample_size=sample,
            random_state=seed,
        )
    )


def _kmeans(vectors: FloatArray, k: int, seed: int) -> tuple[Labels, FloatArray]:
    """Labels 0 to n - 1 and their centres. n is below ``k`` when the vectors hold fewer
    than k distinct points: k-means then leaves clusters empty, which are dropped (their
    centres, copies of others, would take points in ``nearest_centre``)."""
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(vectors)
    used, labels = np.unique(np.asarray(model.labels_, dtype=np.int64), return_inverse=True)
    centres = np.asarray(model.cluster_centers_, dtype=np.float32)[used]
    return labels.astype(np.int64).reshape(-1), centres


def _hdbscan(vectors: FloatArray, settings: ClusterSettings, checkpoint: Checkpoint) -> Labels:
    """HDBSCAN on the rows reduced by PCA, where copies of a point (rows within SAME_POINT)
    are made exactly equal: they count as many points as there are copies (for
    min_cluster_size) but hold no structure among themselves, and they get one label."""
    dims = min(HDBSCAN_DIMENSIONS, vectors.shape[1], len(vectors) - 1)
    pca = PCA(dims, random_state=settings.seed).fit(vectors)
    # Equal rows transformed together can still differ in the last bits (BLAS blocks).
    distinct, row_of = np.unique(vectors, axis=0, return_inverse=True)
    reduced = np.asarray(pca.transform(distinct))
    _, group_of = connected_components(
        radius_neighbors_graph(reduced, SAME_POINT, mode="connectivity"), directed=False
    )
    groups = np.asarray(group_of, dtype=np.intp)[np.asarray(row_of).reshape(-1)]
    _, first = np.unique(group_of, return_index=True)
    points = reduced[first][groups]
    labels = hdbscan_labels(points, settings.min_cluster_size, checkpoint)
    return _one_label_per_point(labels, groups, settings.min_cluster_size)


def _one_label_per_point(labels: Labels, groups: npt.NDArray[np.intp], min_size: int) -> Labels:
    """HDBSCAN breaks ties between equal distances by the order it meets them, which can
    put copies of one point in two clusters, or some in a cluster and the rest in noise.
    The copies all take the cluster most of them got (the lower label on a tie); a cluster
    left with fewer than ``min_size`` points becomes noise, and labels are renumbered from
    0 without gaps."""
    count = int(groups.max()) + 1
    lowest = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    highest = np.full(count, NOISE, dtype=np.int64)
    np.minimum.at(lowest, groups, labels)
    np.maximum.at(highest, groups, labels)
    split = np.flatnonzero(lowest != highest)
    if split.size == 0:
        return labels
    labels = labels.copy()
    for group in split:
        members = groups == group
        clustered = labels[members & (labels != NOISE)]
        values, counts = np.unique(clustered, return_counts=True)
        labels[members] = values[int(np.argmax(counts))]
    values, counts = np.unique(labels[labels != NOISE], return_counts=True)
    renumbered = np.full(int(labels.max()) + 1, NOISE, dtype=np.int64)
    kept = values[counts >= min_size]
    renumbered[kept] = np.arange(len(kept))
    return np.where(labels == NOISE, NOISE, renumbered[labels])


def cluster_vectors(
    vectors: FloatArray, settings: ClusterSettings, checkpoint: Checkpoint = never_stopped
) -> Clustering:
    """Cluster unit-length rows (Euclidean k-means on them is spherical k-means);
    ``checkpoint`` is called between the k-means runs of a search for k, and while
    HDBSCAN runs in its child process."""
    check_settings(settings, len(vectors))
    if settings.algorithm is Algorithm.HDBSCAN:
        labels = _hdbscan(vectors, settings, checkpoint)
        found = len(set(labels.tolist()) - {NOISE})
        return Clustering(labels, found, _silhouette(vectors, labels, settings.seed), {}, None)
    if settings.k is not None:
        labels, centres = _kmeans(vectors, settings.k, settings.seed)
        return Clustering(
            labels, len(centres), _silhouette(vectors, labels, settings.seed), {}, centres
        )
    by_k: dict[int, float] = {}
    best: tuple[float, Labels, FloatArray] | None = None
    for k in range(settings.k_min, min(settings.k_max, len(vectors) - 1) + 1):
        checkpoint()
        labels, centres = _kmeans(vectors, k, settings.seed)
        checkpoint()
        score = _silhouette(vectors, labels, settings.seed)
        by_k[k] = score
        if best is None or score > best[0]:
            best = (score, labels, centres)
    assert best is not None  # check_settings keeps k_min below the number of points
    score, labels, centres = best
    return Clustering(labels, len(centres), score, by_k, centres)


def central_members(
    vectors: FloatArray, labels: Labels, label: int, top: int
) -> list[tuple[int, float]]:
    """Row indexes of the ``top`` members closest (cosine) to their cluster's mean
    direction, with that similarity, closest first."""
    members = np.flatnonzero(labels == label)
    if members.size == 0 or top <= 0:
        return []
    centre = vectors[members].mean(axis=0)
    centre /= np.linalg.norm(centre) or 1.0
    scores = vectors[members] @ centre
    order = np.argsort(-scores, kind="stable")[:top]
    return [(int(members[i]), float(scores[i])) for i in order]


def nearest_centre(vectors: FloatArray, centres: FloatArray) -> Labels:
    """Labels for points that were left out of a sample: their nearest k-means centre, by
    k-means' own (Euclidean) rule, which labelled the sample. The centres are means of
    unit rows, shorter than 1 and each its own length, so the largest cosine would pick
    another centre for some points, and two equal texts could differ."""
    squared = (centres.astype(np.float64) ** 2).sum(axis=1)
    distances = squared[None, :] - 2.0 * (vectors.astype(np.float64) @ centres.T.astype(np.float64))
    return np.asarray(np.argmin(distances, axis=1), dtype=np.int64)
