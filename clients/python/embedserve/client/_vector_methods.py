"""VectorService methods of the blocking client: collections, ingestion, search, recommend."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from embedserve.client import _documents as docs
from embedserve.client._options import build_options
from embedserve.v1 import vector_pb2 as pb
from embedserve.v1 import vector_pb2_grpc as pb_grpc

_DISTANCES = {
    "cosine": pb.DISTANCE_COSINE,
    "dot": pb.DISTANCE_DOT,
    "euclid": pb.DISTANCE_EUCLID,
    "manhattan": pb.DISTANCE_MANHATTAN,
}
_INDEX_KINDS = {
    "keyword": pb.PAYLOAD_INDEX_KIND_KEYWORD,
    "integer": pb.PAYLOAD_INDEX_KIND_INTEGER,
    "float": pb.PAYLOAD_INDEX_KIND_FLOAT,
    "bool": pb.PAYLOAD_INDEX_KIND_BOOL,
    "text": pb.PAYLOAD_INDEX_KIND_TEXT,
}
_STRATEGIES = {
    "average_vector": pb.RECOMMEND_STRATEGY_AVERAGE_VECTOR,
    "best_score": pb.RECOMMEND_STRATEGY_BEST_SCORE,
    "sum_scores": pb.RECOMMEND_STRATEGY_SUM_SCORES,
}
_QUERY_PARAMS = (
    "limit",
    "offset",
    "score_threshold",
    "with_payload",
    "with_vectors",
    "exact",
    "hnsw_ef",
    "read_consistency",
)


def _split_params(options: dict[str, Any]) -> tuple[pb.QueryParams, dict[str, Any]]:
    params = {k: options.pop(k) for k in _QUERY_PARAMS if k in options}
    return docs.query_params(**params), options


def collection_config(
    dimensions: int | None = None,
    distance: str = "cosine",
    payload_indexes: Mapping[str, str] | None = None,
    quantization: str | None = None,
    **numbers: Any,
) -> pb.CollectionConfig:
    config = pb.CollectionConfig(
        distance=_DISTANCES[distance], on_disk=numbers.pop("on_disk", False)
    )
    if dimensions is not None:
        config.dimensions = dimensions
    if quantization == "scalar_int8":
        config.quantization = pb.QUANTIZATION_SCALAR_INT8
    for name, value in numbers.items():
        setattr(config, name, value)  # hnsw_m, hnsw_ef_construct, hnsw_ef, shard_number, ...
    for key, kind in (payload_indexes or {}).items():
        config.payload_indexes[key] = _INDEX_KINDS[kind]
    return config


def write_options(store_text: bool, embed: Mapping[str, Any]) -> pb.WriteOptions:
    return pb.WriteOptions(store_text=store_text, embed=build_options(**embed))


class VectorMethods:
    """Mixed into EmbedClient; ``_vectors`` is the VectorService stub."""

    _vectors: pb_grpc.VectorServiceStub

    def _call_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def create_collection(self, name: str, **config: Any) -> pb.CollectionInfo:
        """Create a collection. ``dimensions`` defaults to the model's width; also ``distance``,
        ``payload_indexes={"field": "keyword"}``, ``hnsw_m``, ``hnsw_ef``, ``shard_number``..."""
        request = pb.CreateCollectionRequest(name=name, config=collection_config(**config))
        response = self._vectors.CreateCollection(request, **self._call_kwargs())
        return response.collection

    def list_collections(self) -> list[str]:
        response = self._vectors.ListCollections(pb.ListCollectionsRequest(), **self._call_kwargs())
        return list(response.names)

    def get_collection(self, name: str) -> pb.CollectionInfo:
        request = pb.GetCollectionRequest(name=name)
        return self._vectors.GetCollection(request, **self._call_kwargs()).collection

    def delete_collection(self, name: str) -> None:
        self._vectors.DeleteCollection(pb.DeleteCollectionRequest(name=name), **self._call_kwargs())

    def upsert(
        self,
        collection: str,
        documents: Iterable[docs.DocumentLike],
        *,
        store_text: bool = False,
        **embed: Any,
    ) -> int:
        """Write documents (dicts with id, text or vector, payload); returns once durable."""
        request = pb.UpsertRequest(
            collection=collection,
            documents=docs.documents(documents),
            options=write_options(store_text, embed),
        )
        return int(self._vectors.Upsert(request, **self._call_kwargs()).upserted)

    def ingest_iter(
        self,
        collection: str,
        documents: Iterable[docs.DocumentLike],
        *,
        batch_size: int = 64,
        max_in_flight: int = 8,
        store_text: bool = False,
        **embed: Any,
    ) -> Iterator[pb.IngestStreamResponse]:
        """Stream any iterable of documents; yields one acknowledgement per batch, in order,
        each sent by the server only once the batch is durable."""
        options = write_options(store_text, embed)
        slots = threading.Semaphore(max_in_flight)
        done = threading.Event()

        def requests() -> Iterator[pb.IngestStreamRequest]:
            for index, batch in enumerate(docs.chunked(documents, batch_size)):
                while not slots.acquire(timeout=0.1):
                    if done.is_set():
                        return
                yield pb.IngestStreamRequest(
                    batch_id=str(index), collection=collection, documents=batch, options=options
                )

        responses = self._vectors.IngestStream(requests(), metadata=self._call_kwargs()["metadata"])
        try:
            for expected, ack in enumerate(responses):
                if ack.batch_id != str(expected):
                    raise RuntimeError(
                        f"acknowledgements out of order: got {ack.batch_id!r}, expected {expected}"
                    )
                slots.release()
                yield ack
        finally:
            done.set()
            responses.cancel()

    def ingest(
        self, collection: str, documents: Iterable[docs.DocumentLike], **options: Any
    ) -> int:
        """Like ingest_iter, returning the number of acknowledged documents."""
        total = 0
        for ack in self.ingest_iter(collection, documents, **options):
            total = int(ack.total_acknowledged)
        return total

    def search(
        self,
        collection: str,
        text: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        filter: docs.FilterLike | None = None,
        **options: Any,
    ) -> list[docs.Hit]:
        """Nearest documents to a text (embedded as a query) or a vector.

        Options: limit, offset, score_threshold, with_payload, with_vectors, exact, hnsw_ef,
        read_consistency, and embedding options (task, prompt, ...) for the text.
        """
        params, embed = _split_params(options)
        request = pb.SearchRequest(
            collection=collection, params=params, embed=build_options(**embed)
        )
        if text is not None:
            request.text = text
        elif vector is not None:
            request.vector.values.extend(float(x) for x in vector)
        query = docs.query_filter(filter)
        if query is not None:
            request.filter.CopyFrom(query)
        return docs.hits(self._vectors.Search(request, **self._call_kwargs()).results)

    def recommend(
        self,
        collection: str,
        positive: Sequence[docs.ExampleLike],
        negative: Sequence[docs.ExampleLike] = (),
        *,
        strategy: str = "average_vector",
        filter: docs.FilterLike | None = None,
        **options: Any,
    ) -> list[docs.Hit]:
        """Documents like ``positive`` and unlike ``negative`` (ids, vectors or {"text": ...})."""
        params, embed = _split_params(options)
        request = pb.RecommendRequest(
            collection=collection,
            positive=[docs.example(e) for e in positive],
            negative=[docs.example(e) for e in negative],
            strategy=_STRATEGIES[strategy],
            params=params,
            embed=build_options(**embed),
        )
        query = docs.query_filter(filter)
        if query is not None:
            request.filter.CopyFrom(query)
        return docs.hits(self._vectors.Recommend(request, **self._call_kwargs()).results)

    def get(
        self, collection: str, ids: Sequence[str], *, with_vectors: bool = False
    ) -> list[docs.StoredDocument]:
        request = pb.GetRequest(collection=collection, ids=list(ids), with_vectors=with_vectors)
        return docs.stored(self._vectors.Get(request, **self._call_kwargs()).documents)

    def delete(
        self, collection: str, ids: Sequence[str] = (), *, filter: docs.FilterLike | None = None
    ) -> None:
        request = pb.DeleteRequest(collection=collection, ids=list(ids))
        query = docs.query_filter(filter)
        if query is not None:
            request.filter.CopyFrom(query)
        self._vectors.Delete(request, **self._call_kwargs())

    def count(self, collection: str, *, filter: docs.FilterLike | None = None) -> int:
        request = pb.CountRequest(collection=collection)
        query = docs.query_filter(filter)
        if query is not None:
            request.filter.CopyFrom(query)
        return int(self._vectors.Count(request, **self._call_kwargs()).count)
