"""One map from start to finish: read the points, colour them, project them. The command
line writes the result; benchmarks and notebooks call ``build_map`` directly."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from embedserve.client._documents import FilterLike
from embedserve.client._sync import EmbedClient
from embedserve.client.maps.labels import cluster_labels, field_labels
from embedserve.client.maps.points import MapPoints, from_collection, from_file
from embedserve.client.maps.progress import Progress
from embedserve.client.maps.projection import (
    DEFAULT_MAX_POINTS,
    MIN_POINTS,
    Projection,
    project,
)

CLUSTER = "cluster"
# A source with one of these endings, or a path separator, is a file even when missing.
TEXT_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".txt")
METHOD_NAMES = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}


@dataclasses.dataclass(frozen=True)
class MapRequest:
    # A collection name or a file of texts.
    source: str
    projection: Projection = dataclasses.field(default_factory=Projection)
    # A payload field, CLUSTER, or None for one colour.
    color_by: str | None = None
    # None: the method's default (DEFAULT_MAX_POINTS).
    max_points: int | None = None
    filter: FilterLike | None = None
    # Cluster RPC options when colouring by cluster (algorithm, k, min_cluster_size).
    cluster: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Map:
    points: MapPoints
    coords: np.ndarray
    labels: list[str]
    title: str


def is_file(source: str) -> bool:
    """Whether ``source`` names a file of texts rather than a collection; a missing file
    is an error here, not a collection lookup that fails later with NOT_FOUND."""
    path = Path(source)
    # "-": standard input, as cluster --texts reads it; a pipe (<(command)) is no regular file
    if source == "-" or (path.exists() and not path.is_dir()):
        return True
    if "/" in source or path.suffix.lower() in TEXT_FILE_SUFFIXES:
        raise ValueError(f"{source}: no such file")
    return False


def build_map(client: EmbedClient, request: MapRequest, progress: Progress) -> Map:
    options = request.projection
    options.check()
    limit = request.max_points
    if limit is None:
        limit = DEFAULT_MAX_POINTS[options.method]
    if limit < MIN_POINTS:
        raise ValueError(f"--max-points {limit}: must be at least {MIN_POINTS}")
    source_is_file = is_file(request.source)
    if request.filter is not None and source_is_file:
        raise ValueError("--filter applies to collections, not files")
    points, labels = _points_and_labels(client, request, source_is_file, limit, progress)
    options.check_points(len(points))
    coords = project(points.vectors, options, progress)
    progress(f"projected {len(points):,} points")
    return Map(points, coords, labels, _title(request, points))


def _points_and_labels(
    client: EmbedClient,
    request: MapRequest,
    source_is_file: bool,
    limit: int,
    progress: Progress,
) -> tuple[MapPoints, list[str]]:
    seed = request.projection.seed
    by_cluster = request.color_by == CLUSTER
    cluster_options: dict[str, Any] = {"seed": seed, "max_points": limit}
    # Three words name each cluster in the legend.
    cluster_options |= {"top_documents": 1, "top_words": 3, **request.cluster}
    if source_is_file:
        points = from_file(client, request.source, max_points=limit, seed=seed, progress=progress)
        if not by_cluster:
            return points, _field_or_none(points, request.color_by)
        request.projection.check_points(len(points))  # before the server is asked
        progress(f"clustering {len(points):,} texts")
        response = client.cluster(texts=[t or "" for t in points.texts], **cluster_options)
        positions = [str(i) for i in range(len(points))]
        return points, cluster_labels(response, positions)
    clustering: Any = None  # the ClusterResponse, when colouring by cluster
    only: set[str] | None = None
    if by_cluster:
        # Cluster first, then map exactly the points it labelled (its own seeded sample
        # when the collection holds more than max_points). Too few points are named as a
        # map names them, before the server is asked to cluster them.
        count = client.count(request.source, filter=request.filter)
        if not count:
            matching = " matching the filter" if request.filter is not None else ""
            raise ValueError(f"collection {request.source!r} has no points{matching} to map")
        request.projection.check_points(min(count, limit))
        progress(f"clustering {request.source}")
        clustering = client.cluster(request.source, filter=request.filter, **cluster_options)
        if clustering.points_clustered < clustering.points_total:
            only = set(clustering.ids)
        progress(f"reading the {clustering.points_clustered:,} clustered points")
    else:
        progress(f"reading {request.source}")
    points = from_collection(
        client,
        request.source,
        max_points=limit,
        seed=seed,
        progress=progress,
        filter=request.filter,
        only=only,
    )
    if clustering is None:
        return points, _field_or_none(points, request.color_by)
    return points, cluster_labels(clustering, points.ids)


def _field_or_none(points: MapPoints, field: str | None) -> list[str]:
    return field_labels(points, field) if field else ["all points"] * len(points)


def _title(request: MapRequest, points: MapPoints) -> str:
    method = METHOD_NAMES[request.projection.method]
    count = f"{len(points):,} points"
    if points.total > len(points):
        count = f"a sample of {len(points):,} of {points.total:,} points"
    colored = f", coloured by {request.color_by}" if request.color_by else ""
    return f"{Path(request.source).name}: {method} of {count}{colored}"
