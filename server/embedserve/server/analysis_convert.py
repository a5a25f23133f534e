"""Cluster and FindDuplicates: protobuf to the analysis core's jobs and back."""

from __future__ import annotations

from google.protobuf.message import Message

from embedserve.server import convert
from embedserve.server import vector_convert as vc
from embedserve.server.analysis import ClusterJob, ClusterReport, DuplicateReport
from embedserve.server.analysis_cluster import Algorithm, ClusterSettings, check_options_given
from embedserve.server.analysis_duplicates import DuplicateSettings, Method
from embedserve.server.errors import InvalidArgument
from embedserve.v1 import vector_pb2 as pb

ALGORITHMS = {
    pb.CLUSTER_ALGORITHM_UNSPECIFIED: Algorithm.KMEANS,
    pb.CLUSTER_ALGORITHM_KMEANS: Algorithm.KMEANS,
    pb.CLUSTER_ALGORITHM_HDBSCAN: Algorithm.HDBSCAN,
}

METHODS = {
    pb.DUPLICATE_METHOD_UNSPECIFIED: Method.AUTO,
    pb.DUPLICATE_METHOD_STORE_QUERIES: Method.STORE_QUERIES,
    pb.DUPLICATE_METHOD_EXACT_BLOCKS: Method.EXACT_BLOCKS,
}
METHOD_TO_PROTO = {v: k for k, v in METHODS.items()}


def _optional(message: Message, field: str, default: int) -> int:
    """An optional number's value, or its documented default when unset."""
    return int(getattr(message, field)) if message.HasField(field) else default


def cluster_job(request: pb.ClusterRequest) -> ClusterJob:
    which = request.WhichOneof("source")
    if which is None:
        raise InvalidArgument("one of collection or texts must be set")
    algorithm = convert.enum_value(ALGORITHMS, request.algorithm, "algorithm")
    check_options_given(algorithm, (f.name for f, _ in request.ListFields()))
    settings = ClusterSettings(
        algorithm=algorithm,
        k=request.k if request.HasField("k") else None,
        k_min=_optional(request, "k_min", 2),
        k_max=_optional(request, "k_max", 12),
        min_cluster_size=_optional(request, "min_cluster_size", 5),
        seed=request.seed,
    )
    return ClusterJob(
        collection=request.collection if which == "collection" else None,
        texts=list(request.texts.texts) if which == "texts" else None,
        filter=vc.optional_filter(request),
        settings=settings,
        max_points=_optional(request, "max_points", 20_000),
        top_documents=_optional(request, "top_documents", 5),
        top_words=_optional(request, "top_words", 10),
        write_label=request.write_label or None,
    )


def cluster_response(report: ClusterReport) -> pb.ClusterResponse:
    return pb.ClusterResponse(
        clusters=[
            pb.ClusterSummary(
                label=c.label,
                size=c.size,
                central=[
                    pb.ClusterMember(id=m.id, score=m.score, text=m.text or "") for m in c.central
                ],
                words=[pb.WordScore(word=w, score=s) for w, s in c.words],
            )
            for c in report.clusters
        ],
        ids=report.ids,
        labels=report.labels,
        silhouette=report.silhouette,
        k=report.k,
        silhouette_by_k=report.silhouette_by_k,
        points_total=report.points_total,
        points_clustered=report.points_clustered,
        labels_written=report.labels_written,
        elapsed_ms=report.elapsed_ms,
    )


def duplicate_settings(request: pb.FindDuplicatesRequest) -> DuplicateSettings:
    return DuplicateSettings(
        threshold=request.threshold if request.HasField("threshold") else 0.92,
        max_neighbors=_optional(request, "max_neighbors", 10),
        max_pairs=_optional(request, "max_pairs", 1000),
        method=convert.enum_value(METHODS, request.method, "method"),
    )


def duplicates_response(report: DuplicateReport) -> pb.FindDuplicatesResponse:
    return pb.FindDuplicatesResponse(
        pairs=[pb.DuplicatePair(a=a, b=b, score=s) for a, b, s in report.pairs],
        groups=[pb.DuplicateGroup(ids=g.ids, min_score=g.min_score) for g in report.groups],
        histogram=[
            pb.HistogramBin(lower=b.lower, upper=b.upper, count=b.count) for b in report.histogram
        ],
        points_scanned=report.points_scanned,
        pairs_total=report.pairs_total,
        texts=report.texts,
        elapsed_ms=report.elapsed_ms,
        method=METHOD_TO_PROTO[report.method],
    )
