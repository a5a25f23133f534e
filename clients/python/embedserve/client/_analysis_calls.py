"""Export and analysis methods (scroll, cluster, find_duplicates), as plans shared by both
clients (see _steps)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from embedserve.client import _documents as docs
from embedserve.client._options import listed, lookup
from embedserve.client._steps import Plan, Unary
from embedserve.v1 import vector_pb2 as pb

_ALGORITHMS = {"kmeans": pb.CLUSTER_ALGORITHM_KMEANS, "hdbscan": pb.CLUSTER_ALGORITHM_HDBSCAN}
_METHODS = {
    "auto": pb.DUPLICATE_METHOD_UNSPECIFIED,
    "store_queries": pb.DUPLICATE_METHOD_STORE_QUERIES,
    "exact_blocks": pb.DUPLICATE_METHOD_EXACT_BLOCKS,
}
_CLUSTER_NUMBERS = (
    "k",
    "k_min",
    "k_max",
    "min_cluster_size",
    "max_points",
    "top_documents",
    "top_words",
    "seed",
)


def _with_filter(request: Any, filter: docs.FilterLike | None) -> None:
    query = docs.query_filter(filter)
    if query is not None:
        request.filter.CopyFrom(query)


def scroll(
    collection: str,
    *,
    filter: docs.FilterLike | None = None,
    limit: int = 256,
    cursor: str | None = None,
    with_payload: bool = True,
    with_vectors: bool = False,
    order_by: str | None = None,
    descending: bool = False,
    exact_payloads: bool = False,
) -> Plan[tuple[list[docs.StoredDocument], str | None]]:
    """One page of stored documents and the cursor of the next (None after the last).
    Pages come in the engine's id order, or by the values of ``order_by``, a field with
    an integer, float or datetime index (largest first if ``descending``); the cursor belongs to
    the order it was handed out with. ``exact_payloads``: payloads read as JSON text, so
    that integers past 2**53 come back exactly (a Struct's doubles would change them)."""
    request = pb.ScrollRequest(
        collection=collection,
        limit=limit,
        cursor=cursor or "",
        with_payload=with_payload,
        with_vectors=with_vectors,
        exact_payloads=exact_payloads,
    )
    if order_by is not None:
        request.order_by.key = order_by
        request.order_by.descending = descending
    elif descending:
        raise ValueError("descending needs order_by")
    _with_filter(request, filter)
    response = yield Unary("vectors", "Scroll", request)
    return docs.stored(response.documents), response.next_cursor or None


def cluster(
    collection: str | None = None,
    *,
    texts: Sequence[str] | None = None,
    filter: docs.FilterLike | None = None,
    algorithm: str = "kmeans",
    write_label: str | None = None,
    **numbers: int,
) -> Plan[pb.ClusterResponse]:
    """Cluster a collection, or ``texts``. Numbers: k (unset: chosen by silhouette over
    k_min..k_max), min_cluster_size (hdbscan), max_points, top_documents, top_words, seed.
    """
    unknown = set(numbers) - set(_CLUSTER_NUMBERS)
    if unknown:
        raise TypeError(f"unknown cluster options: {sorted(unknown)}")
    algorithm_value = lookup(_ALGORITHMS, algorithm, "algorithm")
    request = pb.ClusterRequest(algorithm=algorithm_value, write_label=write_label or "")
    for name, value in numbers.items():
        setattr(request, name, value)
    if texts is not None:
        request.texts.texts.extend(listed(texts, "texts takes a list of texts"))
    elif collection is not None:
        request.collection = collection
    _with_filter(request, filter)
    response: pb.ClusterResponse = yield Unary("vectors", "Cluster", request)
    return response


def find_duplicates(
    collection: str | None = None,
    *,
    texts: Sequence[str] | None = None,
    threshold: float = 0.92,
    filter: docs.FilterLike | None = None,
    max_neighbors: int = 10,
    max_pairs: int = 1000,
    with_text: bool = True,
    method: str = "auto",
) -> Plan[pb.FindDuplicatesResponse]:
    """Near-duplicate pairs and groups at or above a cosine ``threshold`` in a collection,
    or in ``texts`` (ids: their indexes). ``method``: "auto", "store_queries" (a neighbour
    query per document) or "exact_blocks". The k most similar pairs of texts:
    ``threshold=-1, max_neighbors=k, max_pairs=k``."""
    request = pb.FindDuplicatesRequest(
        collection=collection or "",
        threshold=threshold,
        max_neighbors=max_neighbors,
        max_pairs=max_pairs,
        with_text=with_text,
        method=lookup(_METHODS, method, "method"),
    )
    if texts is not None:
        listed_texts = listed(texts, "texts takes a list of texts")
        request.texts.CopyFrom(pb.TextList(texts=listed_texts))  # set even when empty
    _with_filter(request, filter)
    response: pb.FindDuplicatesResponse = yield Unary("vectors", "FindDuplicates", request)
    return response
