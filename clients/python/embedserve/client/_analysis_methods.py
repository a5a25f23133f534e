"""Export and analysis methods of the blocking client: scroll, cluster, find_duplicates."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from embedserve.client import _documents as docs
from embedserve.v1 import vector_pb2 as pb
from embedserve.v1 import vector_pb2_grpc as pb_grpc

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


class AnalysisMethods:
    """Mixed into EmbedClient; ``_vectors`` is the VectorService stub."""

    _vectors: pb_grpc.VectorServiceStub

    def _call_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def scroll(
        self,
        collection: str,
        *,
        filter: docs.FilterLike | None = None,
        limit: int = 256,
        cursor: str | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> tuple[list[docs.StoredDocument], str | None]:
        """One page of stored documents and the cursor of the next (None after the last)."""
        request = pb.ScrollRequest(
            collection=collection,
            limit=limit,
            cursor=cursor or "",
            with_payload=with_payload,
            with_vectors=with_vectors,
        )
        _with_filter(request, filter)
        response = self._vectors.Scroll(request, **self._call_kwargs())
        return docs.stored(response.documents), response.next_cursor or None

    def scroll_iter(
        self, collection: str, *, page_size: int = 256, **options: Any
    ) -> Iterator[docs.StoredDocument]:
        """Every stored document (matching ``filter``), one page request at a time."""
        cursor: str | None = None
        while True:
            page, cursor = self.scroll(collection, limit=page_size, cursor=cursor, **options)
            yield from page
            if cursor is None:
                return

    def cluster(
        self,
        collection: str | None = None,
        *,
        texts: Sequence[str] | None = None,
        filter: docs.FilterLike | None = None,
        algorithm: str = "kmeans",
        write_label: str | None = None,
        **numbers: int,
    ) -> pb.ClusterResponse:
        """Cluster a collection, or ``texts``. Numbers: k (unset: chosen by silhouette over
        k_min..k_max), min_cluster_size (hdbscan), max_points, top_documents, top_words, seed.
        """
        unknown = set(numbers) - set(_CLUSTER_NUMBERS)
        if unknown:
            raise TypeError(f"unknown cluster options: {sorted(unknown)}")
        request = pb.ClusterRequest(algorithm=_ALGORITHMS[algorithm], write_label=write_label or "")
        for name, value in numbers.items():
            setattr(request, name, value)
        if texts is not None:
            request.texts.texts.extend(texts)
        elif collection is not None:
            request.collection = collection
        _with_filter(request, filter)
        return self._vectors.Cluster(request, **self._call_kwargs())

    def find_duplicates(
        self,
        collection: str,
        *,
        threshold: float = 0.92,
        filter: docs.FilterLike | None = None,
        max_neighbors: int = 10,
        max_pairs: int = 1000,
        with_text: bool = True,
        method: str = "auto",
    ) -> pb.FindDuplicatesResponse:
        """Near-duplicate pairs and groups at or above a cosine ``threshold``. ``method``:
        "auto", "store_queries" (a neighbour query per document) or "exact_blocks"."""
        request = pb.FindDuplicatesRequest(
            collection=collection,
            threshold=threshold,
            max_neighbors=max_neighbors,
            max_pairs=max_pairs,
            with_text=with_text,
            method=_METHODS[method],
        )
        _with_filter(request, filter)
        return self._vectors.FindDuplicates(request, **self._call_kwargs())
