"""VectorService methods (collections, ingestion, search, recommend), as plans shared by
both clients (see _steps)."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from embedserve.client import _documents as docs
from embedserve.client._errors import renumbered_in_stream
from embedserve.client._options import build_options, check_uint32, checked_text, listed, lookup
from embedserve.client._ordered import StreamCall, StreamPlan
from embedserve.client._steps import LastOf, Plan, Unary
from embedserve.v1 import vector_pb2 as pb

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
    "datetime": pb.PAYLOAD_INDEX_KIND_DATETIME,
    "geo": pb.PAYLOAD_INDEX_KIND_GEO,
}
INDEX_KIND_NAMES = tuple(_INDEX_KINDS)


def _index_kind(field: str, kind: str) -> pb.PayloadIndexKind.ValueType:
    return lookup(_INDEX_KINDS, kind, f"payload_indexes[{field!r}]")


def index_kind_names(indexes: Mapping[str, pb.PayloadIndexKind.ValueType]) -> dict[str, str]:
    """A collection's payload indexes by the names ``create_collection`` takes."""
    names = {kind: name for name, kind in _INDEX_KINDS.items()}
    return {field: names[kind] for field, kind in indexes.items()}


_STRATEGIES = {
    "average_vector": pb.RECOMMEND_STRATEGY_AVERAGE_VECTOR,
    "best_score": pb.RECOMMEND_STRATEGY_BEST_SCORE,
    "sum_scores": pb.RECOMMEND_STRATEGY_SUM_SCORES,
}
_SEARCH_MODES = {
    "dense": pb.SEARCH_MODE_DENSE,
    "keyword": pb.SEARCH_MODE_KEYWORD,
    "hybrid": pb.SEARCH_MODE_HYBRID,
}
_QUANTIZATIONS = {
    "none": pb.QUANTIZATION_NONE,
    "scalar_int8": pb.QUANTIZATION_SCALAR_INT8,
    "binary": pb.QUANTIZATION_BINARY,
}
_DATATYPES = {"float32": pb.VECTOR_DATATYPE_FLOAT32, "float16": pb.VECTOR_DATATYPE_FLOAT16}
_INGEST_STREAM = StreamCall("vectors", "IngestStream", "batch_id")
_QUERY_PARAMS = (
    "limit",
    "offset",
    "score_threshold",
    "with_payload",
    "with_vectors",
    "exact",
    "hnsw_ef",
    "read_consistency",
    "diversity",
    "diversity_candidates",
    "payload_keys",
    "keyword_weight",
    "oversampling",
)


def _split_params(options: dict[str, Any]) -> tuple[pb.QueryParams, dict[str, Any]]:
    params = {k: options.pop(k) for k in _QUERY_PARAMS if k in options}
    return docs.query_params(**params), options


def collection_config(
    dimensions: int | None = None,
    distance: str | None = None,
    payload_indexes: Mapping[str, str] | None = None,
    quantization: str | None = None,
    vector_datatype: str | None = None,
    **numbers: Any,
) -> pb.CollectionConfig:
    config = pb.CollectionConfig(
        distance=lookup(_DISTANCES, distance, "distance") if distance else pb.DISTANCE_UNSPECIFIED,
        on_disk=numbers.pop("on_disk", False),
        bm25=numbers.pop("bm25", False),
        bm25_language=numbers.pop("bm25_language", ""),
    )
    for name, number in {"dimensions": dimensions, **numbers}.items():
        check_uint32(name, number)
    if dimensions is not None:
        config.dimensions = dimensions
    if quantization is not None:
        config.quantization = lookup(_QUANTIZATIONS, quantization, "quantization")
    if vector_datatype is not None:
        config.vector_datatype = lookup(_DATATYPES, vector_datatype, "vector_datatype")
    for name, value in numbers.items():
        setattr(config, name, value)  # hnsw_m, hnsw_ef_construct, hnsw_ef, shard_number, ...
    for key, kind in (payload_indexes or {}).items():
        config.payload_indexes[key] = _index_kind(key, kind)
    return config


# The config's numbers (every one optional: unset means the server's default), read from
# the message so that a field added to the proto needs no change here.
_OPTIONAL_NUMBERS = frozenset(
    field.name
    for field in pb.CollectionConfig.DESCRIPTOR.fields
    if field.type == FieldDescriptor.TYPE_UINT32
)


def config_kwargs(config: pb.CollectionConfig) -> dict[str, Any]:
    """``create_collection``'s keyword arguments for a collection configured as ``config``
    (the inverse of ``collection_config``)."""
    distances = {kind: name for name, kind in _DISTANCES.items()}
    kwargs: dict[str, Any] = {
        "distance": distances.get(config.distance),
        "on_disk": config.on_disk,
        "bm25": config.bm25,
        "bm25_language": config.bm25_language,
        "payload_indexes": index_kind_names(config.payload_indexes),
    }
    names = {value: name for name, value in _QUANTIZATIONS.items() if name != "none"}
    if config.quantization in names:
        kwargs["quantization"] = names[config.quantization]
    if config.vector_datatype == pb.VECTOR_DATATYPE_FLOAT16:
        kwargs["vector_datatype"] = "float16"
    kwargs.update(
        {f.name: value for f, value in config.ListFields() if f.name in _OPTIONAL_NUMBERS}
    )
    return kwargs


SplitLike = bool | Mapping[str, int]


def write_options(
    store_text: bool, embed: Mapping[str, Any], split: SplitLike = False
) -> pb.WriteOptions:
    """``split``: True, or {"max_tokens": ..., "overlap_tokens": ...}, stores each text as
    passages (points "<id>#0", ... with doc_id, passage, passages and span payloads)."""
    options = pb.WriteOptions(store_text=store_text, embed=build_options(**embed))
    if split is True:
        options.split.SetInParent()
    elif isinstance(split, Mapping):
        unknown = set(split) - {"max_tokens", "overlap_tokens"}
        if unknown:
            raise ValueError(f"split takes max_tokens and overlap_tokens, not {sorted(unknown)}")
        options.split.SetInParent()
        for name, value in split.items():
            setattr(options.split, name, value)
    elif split is not False:
        raise TypeError(f"split is True, False or a mapping, got {split!r}")
    return options


def _with_filter(request: Any, value: docs.FilterLike | None) -> Any:
    query = docs.query_filter(value)
    if query is not None:
        request.filter.CopyFrom(query)
    return request


def create_collection(name: str, **config: Any) -> Plan[pb.CollectionInfo]:
    """Create a collection. ``dimensions`` defaults to the model's width and ``distance`` to
    the one matching its similarity function; also ``bm25=True`` (keep keyword vectors for
    keyword and hybrid search; ``bm25_language="german"``...), ``payload_indexes={"field":
    "keyword"}``, ``quantization`` (``"scalar_int8"``, ``"binary"``), ``vector_datatype``
    (``"float16"``: half the memory), ``hnsw_m``, ``hnsw_ef``, ``shard_number``..."""
    request = pb.CreateCollectionRequest(name=name, config=collection_config(**config))
    response = yield Unary("vectors", "CreateCollection", request)
    info: pb.CollectionInfo = response.collection
    return info


def list_collections() -> Plan[list[str]]:
    response = yield Unary("vectors", "ListCollections", pb.ListCollectionsRequest())
    return list(response.names)


def get_collection(name: str) -> Plan[pb.CollectionInfo]:
    response = yield Unary("vectors", "GetCollection", pb.GetCollectionRequest(name=name))
    info: pb.CollectionInfo = response.collection
    return info


def delete_collection(name: str) -> Plan[None]:
    yield Unary("vectors", "DeleteCollection", pb.DeleteCollectionRequest(name=name))


def update_collection(
    name: str,
    *,
    add_payload_indexes: Mapping[str, str] | None = None,
    drop_payload_indexes: Sequence[str] = (),
    hnsw_ef: int | None = None,
) -> Plan[pb.CollectionInfo]:
    """Index payload fields of a collection's stored documents (``{"topic": "keyword"}``),
    drop indexes, or set the search beam of searches that do not set one; nothing is
    embedded again."""
    request = pb.UpdateCollectionRequest(
        name=name,
        add_payload_indexes={k: _index_kind(k, v) for k, v in (add_payload_indexes or {}).items()},
        drop_payload_indexes=listed(
            drop_payload_indexes, "drop_payload_indexes takes a list of fields"
        ),
    )
    if hnsw_ef is not None:
        check_uint32("hnsw_ef", hnsw_ef)
        request.hnsw_ef = hnsw_ef
    response = yield Unary("vectors", "UpdateCollection", request)
    info: pb.CollectionInfo = response.collection
    return info


def update_aliases(set: Mapping[str, str] | None = None, delete: Sequence[str] = ()) -> Plan[None]:
    """Point aliases at collections (``set={"news": "news_v2"}``: new, or moved) and remove
    others (``delete=["old"]``), all in one change that is made whole or not at all. Every
    call that takes a collection's name also takes an alias of it."""
    removed = listed(delete, "delete takes a list of aliases")
    request = pb.UpdateAliasesRequest(set=dict(set or {}), delete=removed)
    yield Unary("vectors", "UpdateAliases", request)


def list_aliases(collection: str = "") -> Plan[dict[str, str]]:
    """Alias -> collection, sorted by alias; only ``collection``'s aliases when given."""
    request = pb.ListAliasesRequest(collection=collection)
    response = yield Unary("vectors", "ListAliases", request)
    return {a.alias: a.collection for a in response.aliases}


def upsert(
    collection: str,
    documents: Iterable[docs.DocumentLike],
    *,
    store_text: bool = False,
    split: SplitLike = False,
    **embed: Any,
) -> Plan[int]:
    """Write documents (dicts with id, text or vector, payload); returns once durable, with
    the number of points written (passages, with ``split``: see ``write_options``)."""
    request = pb.UpsertRequest(
        collection=collection,
        documents=docs.documents(documents),
        options=write_options(store_text, embed, split),
    )
    response = yield Unary("vectors", "Upsert", request)
    return int(response.upserted)


def ingest_iter(
    collection: str,
    documents: Iterable[docs.DocumentLike] | AsyncIterable[docs.DocumentLike],
    *,
    batch_size: int = 64,
    max_in_flight: int = 8,
    store_text: bool = False,
    split: SplitLike = False,
    **embed: Any,
) -> StreamPlan[docs.DocumentLike, pb.IngestStreamResponse]:
    """Stream any iterable of documents; yields one acknowledgement per batch, in order,
    each sent by the server only once the batch is durable. ``split``: see
    ``write_options``."""
    options = write_options(store_text, embed, split)

    def request(number: int, batch: list[docs.DocumentLike]) -> pb.IngestStreamRequest:
        return pb.IngestStreamRequest(
            batch_id=str(number),
            collection=collection,
            documents=docs.documents(batch),
            options=options,
        )

    def acknowledged(
        _: pb.IngestStreamRequest, ack: pb.IngestStreamResponse
    ) -> list[pb.IngestStreamResponse]:
        return [ack]

    def failed(error: Exception) -> Exception:  # naming a document by its place in all
        return renumbered_in_stream(error, batch_size, "batch_id", "documents")

    return StreamPlan(
        _INGEST_STREAM, documents, batch_size, max_in_flight, request, acknowledged, failed
    )


def ingest(
    collection: str,
    documents: Iterable[docs.DocumentLike] | AsyncIterable[docs.DocumentLike],
    **options: Any,
) -> Plan[int]:
    """Like ingest_iter, returning the number of acknowledged documents."""
    last = yield LastOf(ingest_iter(collection, documents, **options))
    return 0 if last is None else int(last.total_acknowledged)


def search(
    collection: str,
    text: str | Sequence[float] | None = None,
    *,
    vector: Sequence[float] | None = None,
    filter: docs.FilterLike | None = None,
    mode: str = "dense",
    **options: Any,
) -> Plan[list[docs.Hit]]:
    """Nearest documents to a text (embedded as a query) or a vector (``vector=``, or a
    list or array of numbers in the text's place). ``mode="keyword"`` ranks a text's BM25
    matches instead, ``mode="hybrid"`` fuses both rankings (collections created with
    ``bm25=True``).

    Options: limit, offset, score_threshold, with_payload, with_vectors, exact, hnsw_ef,
    read_consistency, diversity (0 to 1: maximal marginal relevance, dense mode),
    diversity_candidates, payload_keys (only these keys of each payload), keyword_weight
    (hybrid mode), recency (fresher documents first: ``{"key": "published",
    "half_life_hours": 168}``, optionally weight, now and candidates), proximity (nearer
    documents first: ``{"key": "at", "center": {"lat": 52.52, "lon": 13.4},
    "half_distance_m": 2000}``, optionally weight and candidates), rerank (``True``, or
    ``{"candidates": 100, "text_key": "body"}``: the best hits reordered by the server's
    reranker, which reads each hit's stored text), and embedding options (task, prompt,
    ...) for the text.
    """
    if text is not None and not isinstance(text, str):
        if vector is not None:
            raise TypeError("search takes a text or a vector, not both")
        text, vector = None, text
    request = _search_request(collection, text, vector, filter, mode, options)
    response = yield Unary("vectors", "Search", request)
    return docs.hits(response.results)


def search_groups(
    collection: str,
    text: str | Sequence[float] | None = None,
    *,
    group_by: str,
    group_size: int | None = None,
    vector: Sequence[float] | None = None,
    filter: docs.FilterLike | None = None,
    mode: str = "dense",
    **options: Any,
) -> Plan[list[docs.HitGroup]]:
    """The best hits per value of the payload field ``group_by`` (say, the best passages
    of each document): ``limit`` groups of at most ``group_size`` hits (default 3), best
    first. Takes the options of ``search`` except offset and diversity."""
    if text is not None and not isinstance(text, str):
        if vector is not None:
            raise TypeError("search_groups takes a text or a vector, not both")
        text, vector = None, text
    request = _search_request(collection, text, vector, filter, mode, options)
    _set_group(request.group_by, group_by, group_size)
    response = yield Unary("vectors", "Search", request)
    return docs.hit_groups(response.groups)


def search_batch(
    collection: str,
    queries: Sequence[str | Sequence[float]],
    *,
    filter: docs.FilterLike | None = None,
    mode: str = "dense",
    **options: Any,
) -> Plan[list[list[docs.Hit]]]:
    """One search per query (a text or a vector), the same options for all, in one call;
    the hits of each, in order."""
    request = _batch_request(collection, queries, filter, mode, options)
    response = yield Unary("vectors", "SearchBatch", request)
    return [docs.hits(r.results) for r in response.responses]


def search_batch_groups(
    collection: str,
    queries: Sequence[str | Sequence[float]],
    *,
    group_by: str,
    group_size: int | None = None,
    filter: docs.FilterLike | None = None,
    mode: str = "dense",
    **options: Any,
) -> Plan[list[list[docs.HitGroup]]]:
    """``search_groups`` for each query, in one call (their texts are embedded together):
    the groups of each, in order."""
    request = _batch_request(collection, queries, filter, mode, options)
    for search in request.searches:
        _set_group(search.group_by, group_by, group_size)
    response = yield Unary("vectors", "SearchBatch", request)
    return [docs.hit_groups(r.groups) for r in response.responses]


def _batch_request(
    collection: str,
    queries: Sequence[str | Sequence[float]],
    filter: docs.FilterLike | None,
    mode: str,
    options: dict[str, Any],
) -> pb.SearchBatchRequest:
    searches = [
        _search_request("", q, None, filter, mode, dict(options))
        if isinstance(q, str)
        else _search_request("", None, q, filter, mode, dict(options))
        for q in listed(queries, "a batch takes a list of queries")
    ]
    return pb.SearchBatchRequest(collection=collection, searches=searches)


def _search_request(
    collection: str,
    text: str | None,
    vector: Sequence[float] | None,
    filter: docs.FilterLike | None,
    mode: str,
    options: dict[str, Any],
) -> pb.SearchRequest:
    if mode not in _SEARCH_MODES:
        raise ValueError(f"unknown search mode {mode!r}; use one of {', '.join(_SEARCH_MODES)}")
    recency, proximity = options.pop("recency", None), options.pop("proximity", None)
    rerank = options.pop("rerank", None)
    params, embed = _split_params(options)
    request = pb.SearchRequest(
        collection=collection,
        params=params,
        embed=build_options(**embed),
        mode=_SEARCH_MODES[mode],
    )
    if text is not None:
        request.text = checked_text("the query text", text)
    elif vector is not None:
        request.vector.values.extend(float(x) for x in vector)
    _with_filter(request, filter)
    _set_weighings(request, recency, proximity)
    if rerank:  # True, or {"candidates": 100, "text_key": "body"}
        request.rerank.SetInParent()
        if rerank is not True:
            request.rerank.MergeFrom(pb.SearchRerank(**rerank))
    return request


def recommend(
    collection: str,
    positive: Sequence[docs.ExampleLike],
    negative: Sequence[docs.ExampleLike] = (),
    *,
    strategy: str = "average_vector",
    filter: docs.FilterLike | None = None,
    **options: Any,
) -> Plan[list[docs.Hit]]:
    """Documents like ``positive`` and unlike ``negative`` (ids, vectors or {"text": ...})."""
    request = _recommend_request(collection, positive, negative, strategy, filter, options)
    response = yield Unary("vectors", "Recommend", request)
    return docs.hits(response.results)


def recommend_groups(
    collection: str,
    positive: Sequence[docs.ExampleLike],
    negative: Sequence[docs.ExampleLike] = (),
    *,
    group_by: str,
    group_size: int | None = None,
    strategy: str = "average_vector",
    filter: docs.FilterLike | None = None,
    **options: Any,
) -> Plan[list[docs.HitGroup]]:
    """``recommend`` in groups, as ``search_groups``: the best hits per value of the
    payload field ``group_by`` (say, documents like a passage, once each by doc_id)."""
    request = _recommend_request(collection, positive, negative, strategy, filter, options)
    _set_group(request.group_by, group_by, group_size)
    response = yield Unary("vectors", "Recommend", request)
    return docs.hit_groups(response.groups)


def _recommend_request(
    collection: str,
    positive: Sequence[docs.ExampleLike],
    negative: Sequence[docs.ExampleLike],
    strategy: str,
    filter: docs.FilterLike | None,
    options: dict[str, Any],
) -> pb.RecommendRequest:
    recency, proximity = options.pop("recency", None), options.pop("proximity", None)
    params, embed = _split_params(options)
    request = pb.RecommendRequest(
        collection=collection,
        positive=[docs.example(e) for e in listed(positive, "positive takes a list of examples")],
        negative=[docs.example(e) for e in listed(negative, "negative takes a list of examples")],
        strategy=lookup(_STRATEGIES, strategy, "strategy"),
        params=params,
        embed=build_options(**embed),
    )
    _with_filter(request, filter)
    _set_weighings(request, recency, proximity)
    return request


def _set_weighings(
    request: pb.SearchRequest | pb.RecommendRequest,
    recency: Mapping[str, Any] | None,
    proximity: Mapping[str, Any] | None,
) -> None:
    """recency ``{"key": "published", "half_life_hours": 168}`` and proximity ``{"key":
    "at", "center": {"lat": 52.52, "lon": 13.4}, "half_distance_m": 2000}``, each
    optionally with weight and candidates (recency also now: a datetime or RFC 3339)."""
    if recency is not None:
        fields = dict(recency)
        if isinstance(fields.get("now"), datetime.datetime):
            fields["now"] = fields["now"].isoformat()
        request.recency.CopyFrom(pb.Recency(**fields))
    if proximity is not None:
        request.proximity.CopyFrom(pb.Proximity(**proximity))


def _set_group(message: pb.GroupBy, key: str, size: int | None) -> None:
    message.key = key
    if size is not None:
        message.size = size


def get(
    collection: str,
    ids: Sequence[docs.IdLike],
    *,
    with_vectors: bool = False,
    exact_payloads: bool = False,
) -> Plan[list[docs.StoredDocument]]:
    """The stored documents among ``ids``, in the order asked. ``exact_payloads``: payloads
    read as JSON text, so that integers past 2**53 come back exactly (a Struct's doubles
    would change them); whole numbers come back as ints either way, as they are stored."""
    request = pb.GetRequest(
        collection=collection,
        ids=docs.point_ids(ids),
        with_vectors=with_vectors,
        exact_payloads=exact_payloads,
    )
    response = yield Unary("vectors", "Get", request)
    return docs.stored(response.documents)


def delete(
    collection: str, ids: Sequence[docs.IdLike] = (), *, filter: docs.FilterLike | None = None
) -> Plan[None]:
    request = pb.DeleteRequest(collection=collection, ids=docs.point_ids(ids))
    yield Unary("vectors", "Delete", _with_filter(request, filter))


def update_payload(
    collection: str,
    ids: Sequence[docs.IdLike] = (),
    *,
    filter: docs.FilterLike | None = None,
    payload: Mapping[str, Any] | None = None,
    delete_keys: Sequence[str] = (),
) -> Plan[None]:
    """Set the top-level keys of ``payload`` and remove ``delete_keys`` on the documents
    named by ``ids`` (all must exist), matching ``filter``, or both; vectors are kept."""
    request = pb.UpdatePayloadRequest(
        collection=collection,
        ids=docs.point_ids(ids),
        delete_keys=listed(delete_keys, "delete_keys takes a list of keys"),
    )
    docs.fill_payload(request.payload, payload or {}, "update_payload")
    yield Unary("vectors", "UpdatePayload", _with_filter(request, filter))


def facet(
    collection: str, key: str, *, filter: docs.FilterLike | None = None, limit: int = 10
) -> Plan[list[docs.FacetCount]]:
    """How many documents hold each value of the payload field ``key`` (it needs a keyword,
    integer or bool index), most frequent first."""
    check_uint32("limit", limit)
    request = pb.FacetRequest(collection=collection, key=key, limit=limit)
    response = yield Unary("vectors", "Facet", _with_filter(request, filter))
    return docs.facet_counts(response.values)


def count(collection: str, *, filter: docs.FilterLike | None = None) -> Plan[int]:
    request = pb.CountRequest(collection=collection)
    response = yield Unary("vectors", "Count", _with_filter(request, filter))
    return int(response.count)
