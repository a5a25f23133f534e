"""REST mirror of Cluster and FindDuplicates: on a collection, or on texts sent along.

Unset options take the analysis core's defaults, as over gRPC.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import ConfigDict, Field, WithJsonSchema
from pydantic.config import JsonDict
from starlette.responses import Response

from embedserve.server.analysis import AnalysisCore, ClusterJob, ClusterReport, DuplicateReport
from embedserve.server.analysis_cluster import Algorithm, ClusterSettings, check_options_given
from embedserve.server.analysis_duplicates import DuplicateSettings, Method
from embedserve.server.auth import ApiKey
from embedserve.server.http.backend import backend_of
from embedserve.server.http.guard import guard
from embedserve.server.http.response_schemas import ClusterResponse, FindDuplicatesResponse, ok
from embedserve.server.http.responses import json_response
from embedserve.server.http.rest_vectors import parse_filter
from embedserve.server.http.schemas import (
    TEXTS,
    U32,
    U32_MAX,
    Body,
    CollectionName,
    FilterJson,
    PositiveU32,
    default,
    integers,
)
from embedserve.server.http.strict_json import StrictJsonRoute

router = APIRouter(prefix="/api/v1", tags=["Analysis"], route_class=StrictJsonRoute)
Caller = Annotated[ApiKey | None, Depends(guard)]

# -- bodies ------------------------------------------------------------------------------


_CLUSTER = ClusterSettings()
_JOB = ClusterJob()
_DUPLICATES = DuplicateSettings()
# The analysis core's checks (analysis_cluster.check_settings), stated where they apply:
# k_min and k_max when k-means chooses k (no k), min_cluster_size under hdbscan. It also
# needs k_min <= k_max, and fewer points than k_min or min_cluster_size refuse a job.
_HDBSCAN: JsonDict = {"required": ["algorithm"], "properties": {"algorithm": {"const": "hdbscan"}}}
_CHOOSING_K: JsonDict = {
    "properties": {"algorithm": {"not": {"const": "hdbscan"}}, "k": {"type": "null"}}
}
_AT_LEAST_2: JsonDict = {"minimum": 2}
CLUSTER_RULES: JsonDict = {
    "allOf": [
        {
            "if": _CHOOSING_K,
            "then": {"properties": {"k_min": _AT_LEAST_2, "k_max": _AT_LEAST_2}},
        },
        {"if": _HDBSCAN, "then": {"properties": {"min_cluster_size": _AT_LEAST_2}}},
    ]
}


class ClusterOptions(Body):
    model_config = ConfigDict(json_schema_extra=CLUSTER_RULES)

    algorithm: Literal["kmeans", "hdbscan"] | None = Field(
        default=None,
        description="default kmeans",
        json_schema_extra=default(_CLUSTER.algorithm.value),
    )
    k: PositiveU32 | None = Field(
        default=None, description="kmeans: unset, chosen by silhouette over [k_min, k_max]"
    )
    k_min: PositiveU32 | None = Field(
        default=None,
        description="default 2; at least 2 when k is chosen",
        json_schema_extra=default(_CLUSTER.k_min),
    )
    k_max: PositiveU32 | None = Field(
        default=None,
        description="default 12; at least k_min when k is chosen",
        json_schema_extra=default(_CLUSTER.k_max),
    )
    min_cluster_size: PositiveU32 | None = Field(
        default=None,
        description="hdbscan, at least 2; default 5",
        json_schema_extra=default(_CLUSTER.min_cluster_size),
    )
    # Unbounded below: the core names the least (2) for any value under it.
    max_points: Annotated[int, Field(le=U32_MAX), integers(2)] | None = Field(
        default=None,
        description="cluster a random sample of this many of a collection's points; "
        "default 20000 (texts are clustered all)",
        json_schema_extra=default(_JOB.max_points),
    )
    top_documents: U32 | None = Field(
        default=None,
        description="default 5; 0: none",
        json_schema_extra=default(_JOB.top_documents),
    )
    top_words: U32 | None = Field(
        default=None, description="default 10; 0: none", json_schema_extra=default(_JOB.top_words)
    )
    seed: U32 | None = Field(
        default=None,
        description="for k-means and sampling; default 0",
        json_schema_extra=default(_CLUSTER.seed),
    )


class CollectionClusterRequest(ClusterOptions):
    filter: FilterJson | None = None
    write_label: str | None = Field(
        default=None, description="write each document's label into this payload field"
    )


class TextsClusterRequest(ClusterOptions):
    texts: list[str] = Field(json_schema_extra=TEXTS)


# DuplicateSettings checks it, with its own message.
Cosine = Annotated[float, WithJsonSchema({"type": "number", "minimum": -1, "maximum": 1})]


class DuplicateOptions(Body):
    threshold: Cosine | None = Field(
        default=None,
        description="cosine in [-1, 1]; default 0.92",
        json_schema_extra=default(_DUPLICATES.threshold),
    )
    max_neighbors: PositiveU32 | None = Field(
        default=None, description="default 10", json_schema_extra=default(_DUPLICATES.max_neighbors)
    )
    max_pairs: PositiveU32 | None = Field(
        default=None, description="default 1000", json_schema_extra=default(_DUPLICATES.max_pairs)
    )
    with_text: bool = Field(default=True, description="the pairs' stored texts")


class CollectionDuplicatesRequest(DuplicateOptions):
    filter: FilterJson | None = None
    method: Literal["auto", "store_queries", "exact_blocks"] | None = None


class TextsDuplicatesRequest(DuplicateOptions):
    texts: list[str] = Field(json_schema_extra=TEXTS)


# -- bodies to jobs, reports to JSON -----------------------------------------------------

_SETTINGS = {f.name for f in dataclasses.fields(ClusterSettings)}
_JOB_OPTIONS = {"max_points", "top_documents", "top_words"}


def cluster_job(
    options: ClusterOptions,
    collection: str | None = None,
    texts: list[str] | None = None,
    filter: FilterJson | None = None,
    write_label: str | None = None,
) -> ClusterJob:
    given = options.model_dump(exclude_none=True, include=_SETTINGS | _JOB_OPTIONS)
    given["algorithm"] = Algorithm(given.get("algorithm", _CLUSTER.algorithm.value))
    check_options_given(given["algorithm"], given)
    settings = ClusterSettings(**{k: v for k, v in given.items() if k in _SETTINGS})
    return ClusterJob(
        collection=collection,
        texts=texts,
        filter=parse_filter(filter),
        settings=settings,
        write_label=write_label or None,
        **{k: v for k, v in given.items() if k in _JOB_OPTIONS},
    )


def duplicate_settings(options: DuplicateOptions, method: str | None = None) -> DuplicateSettings:
    given = options.model_dump(
        exclude_none=True, include={"threshold", "max_neighbors", "max_pairs"}
    )
    settings = DuplicateSettings(**given)
    return dataclasses.replace(settings, method=Method(method)) if method else settings


def cluster_json(report: ClusterReport) -> dict[str, Any]:
    return {
        "clusters": [
            {
                "label": c.label,
                "size": c.size,
                "central": [{"id": m.id, "score": m.score, "text": m.text} for m in c.central],
                "words": [{"word": w, "score": s} for w, s in c.words],
            }
            for c in report.clusters
        ],
        "ids": report.ids,
        "labels": report.labels,
        "silhouette": report.silhouette,
        "k": report.k,
        "silhouette_by_k": {str(k): s for k, s in report.silhouette_by_k.items()},
        "points_total": report.points_total,
        "points_clustered": report.points_clustered,
        "labels_written": report.labels_written,
        "elapsed_ms": report.elapsed_ms,
    }


def duplicates_json(report: DuplicateReport) -> dict[str, Any]:
    return {
        "pairs": [{"a": a, "b": b, "score": s} for a, b, s in report.pairs],
        "groups": [{"ids": g.ids, "min_score": g.min_score} for g in report.groups],
        "histogram": [
            {"lower": b.lower, "upper": b.upper, "count": b.count} for b in report.histogram
        ],
        "points_scanned": report.points_scanned,
        "pairs_total": report.pairs_total,
        "texts": report.texts,
        "elapsed_ms": report.elapsed_ms,
        "method": report.method.value,
    }


def _analysis(request: Request) -> AnalysisCore:
    return AnalysisCore(backend_of(request).vectors)


# -- routes ------------------------------------------------------------------------------


@router.post(
    "/collections/{name}/cluster",
    summary="Cluster a collection's documents (write: write_label updates payloads)",
    responses=ok(ClusterResponse),
)
async def cluster_collection(
    name: CollectionName, body: CollectionClusterRequest, request: Request, caller: Caller
) -> Response:
    job = cluster_job(body, collection=name, filter=body.filter, write_label=body.write_label)
    return json_response(cluster_json(await _analysis(request).cluster(job)))


@router.post(
    "/cluster",
    summary="Embed texts and cluster them (ids: their positions)",
    responses=ok(ClusterResponse),
)
async def cluster_texts(body: TextsClusterRequest, request: Request, caller: Caller) -> Response:
    job = cluster_job(body, texts=body.texts)
    return json_response(cluster_json(await _analysis(request).cluster(job)))


@router.post(
    "/collections/{name}/find-duplicates",
    summary="Near-duplicate documents",
    responses=ok(FindDuplicatesResponse),
)
async def find_duplicates_in_collection(
    name: CollectionName, body: CollectionDuplicatesRequest, request: Request, caller: Caller
) -> Response:
    report = await _analysis(request).find_duplicates(
        name, parse_filter(body.filter), duplicate_settings(body, body.method), body.with_text
    )
    return json_response(duplicates_json(report))


@router.post(
    "/find-duplicates",
    summary="Embed texts and find near-duplicates among them",
    responses=ok(FindDuplicatesResponse),
)
async def find_duplicates_in_texts(
    body: TextsDuplicatesRequest, request: Request, caller: Caller
) -> Response:
    report = await _analysis(request).find_duplicates(
        "", None, duplicate_settings(body), body.with_text, texts=body.texts
    )
    return json_response(duplicates_json(report))
