"""REST mirror of VectorService: collections, upsert, search, recommend, get, delete, count.

Filters keep the JSON form of the gRPC ``Filter`` message, parsed by the same converter.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from google.protobuf.json_format import ParseDict, ParseError
from starlette.responses import Response

from embedserve.connectors import groups, ordered_scroll, weighing
from embedserve.connectors import types as st
from embedserve.server import vector_convert as vc
from embedserve.server.auth import ApiKey, check_collection, shown_aliases
from embedserve.server.embedder import Task
from embedserve.server.errors import InvalidArgument, named
from embedserve.server.http.backend import backend_of
from embedserve.server.http.guard import guard
from embedserve.server.http.response_schemas import (
    CollectionResponse,
    CountResponse,
    Empty,
    FacetResponse,
    GetResponse,
    ListCollectionsResponse,
    RecommendResponse,
    ScrollResponse,
    SearchBatchResponse,
    SearchResponse,
    UpsertResponse,
    ok,
)
from embedserve.server.http.responses import json_response
from embedserve.server.http.rest_embed import timings_json
from embedserve.server.http.schemas import (
    CollectionName,
    CountRequest,
    CreateCollectionRequest,
    DeleteRequest,
    Document,
    Example,
    FacetRequest,
    FilterJson,
    GetRequest,
    GroupBy,
    Proximity,
    QueryParams,
    Recency,
    RecommendRequest,
    ScrollOrder,
    ScrollRequest,
    SearchBatchRequest,
    SearchRequest,
    SearchRerank,
    UpdateCollectionRequest,
    UpdatePayloadRequest,
    UpsertRequest,
    WriteOptions,
)
from embedserve.server.http.strict_json import StrictJsonRoute
from embedserve.server.passages import PassageSplit
from embedserve.server.search_rerank import RerankStage
from embedserve.server.vectors import (
    DocumentIn,
    QueryIn,
    QueryResult,
    SearchIn,
    SearchMode,
    VectorCore,
    WriteSettings,
)
from embedserve.v1 import vector_pb2 as pb

router = APIRouter(prefix="/api/v1/collections", tags=["Vector store"], route_class=StrictJsonRoute)
Caller = Annotated[ApiKey | None, Depends(guard)]


def _core(request: Request) -> VectorCore:
    return backend_of(request).vectors


# -- JSON to core types ----------------------------------------------------------------


def parse_filter(value: FilterJson | None, field: str = "filter") -> st.Filter | None:
    if value is None:
        return None
    try:
        message = ParseDict(value, pb.Filter())
    except ParseError as exc:
        if "Message too deep" in str(exc):  # protobuf's words repeat a line per level
            raise InvalidArgument(f"{field}: {vc.FILTER_TOO_DEEP}") from None
        raise InvalidArgument(f"{field}: {exc}") from exc
    parsed = vc.filter_from_proto(message, field)
    return None if parsed.is_empty() else parsed


def spec_of(
    body: CreateCollectionRequest,
    model_width: int,
    model_distance: st.Distance,
    layout: vc.CollectionLayout,
) -> st.CollectionSpec:
    config = body.config
    given = {name: getattr(config, name) for name in st.TUNING_FIELDS}
    tuning = layout.spec_fields() | {name: v for name, v in given.items() if v is not None}
    return vc.store_value(
        st.CollectionSpec,
        body.name,
        vector_size=config.dimensions or model_width,
        distance=st.Distance(config.distance) if config.distance else model_distance,
        on_disk=config.on_disk,
        bm25=config.bm25,
        bm25_language=config.bm25_language or st.CollectionSpec.bm25_language,  # "" as gRPC
        quantization=st.Quantization(config.quantization),
        datatype=st.VectorDatatype(config.vector_datatype),
        payload_indexes={k: st.PayloadIndexKind(v) for k, v in config.payload_indexes.items()},
        **tuning,
    )


def search_in(body: SearchRequest) -> SearchIn:
    return SearchIn(
        QueryIn(text=body.text, vector=body.vector),
        parse_filter(body.filter),
        search_params(body.params),
        body.embed.params(Task.QUERY),
        SearchMode(body.mode),
        group_by(body.group_by),
        weighings(body.recency, body.proximity),
        rerank_stage(body.rerank),
    )


def rerank_stage(body: SearchRerank | None) -> RerankStage | None:
    return None if body is None else vc.rerank_stage(body.text_key, body.candidates)


def scroll_order(body: ScrollOrder | None) -> ordered_scroll.ScrollOrder | None:
    return vc.store_value(ordered_scroll.ScrollOrder, body.key, body.descending) if body else None


def weighings(
    recency: Recency | None, proximity: Proximity | None
) -> tuple[weighing.Weighing, ...]:
    found: list[weighing.Weighing] = []
    if recency is not None:
        given = recency.model_dump(exclude_none=True) | {"now": recency.now or None}
        found.append(vc.store_value(weighing.Recency, **given))
    if proximity is not None:
        near = proximity.model_dump(exclude_none=True)
        near["center"] = vc.store_value(st.GeoPoint, **near["center"])
        found.append(vc.store_value(weighing.Proximity, **near))
    return tuple(found)


def group_by(body: GroupBy | None) -> groups.GroupBy | None:
    return vc.store_value(groups.GroupBy, **body.model_dump(exclude_none=True)) if body else None


def search_params(params: QueryParams) -> st.SearchParams:
    fields = params.model_dump(exclude_none=True)
    # As over gRPC, an empty value is the default: no keys named (so all of them), no
    # read consistency asked for.
    for name in ("payload_keys", "read_consistency"):
        if name in fields and not fields[name]:
            del fields[name]
    return vc.store_value(st.SearchParams, **fields)


def documents_in(documents: list[Document]) -> list[DocumentIn]:
    return [DocumentIn(d.id, d.text, d.vector, dict(d.payload)) for d in documents]


def write_settings(options: WriteOptions) -> WriteSettings:
    split = options.split
    return WriteSettings(
        options.embed.params(Task.DOCUMENT),
        options.store_text,
        PassageSplit(split.max_tokens, split.overlap_tokens) if split else None,
    )


def example_in(example: Example) -> QueryIn:
    return QueryIn(text=example.text, vector=example.vector, id=example.id)


# -- core types to JSON ----------------------------------------------------------------


def info_json(info: st.CollectionInfo, caller: ApiKey | None = None) -> dict[str, Any]:
    """``caller``: a restricted key sees only the aliases its list holds."""
    spec = info.spec
    config: dict[str, Any] = {
        "dimensions": spec.vector_size,
        "distance": spec.distance.value,
        "on_disk": spec.on_disk,
        "bm25": spec.bm25,
        "bm25_language": spec.bm25_language,
        "quantization": spec.quantization.value,
        "vector_datatype": spec.datatype.value,
        "payload_indexes": {k: v.value for k, v in spec.payload_indexes.items()},
    }
    config |= {name: getattr(spec, name) for name in st.TUNING_FIELDS}
    return {
        "name": spec.name,
        "points_count": info.points_count,
        "aliases": shown_aliases(caller, info.aliases),
        "model_id": spec.model_id,
        "model_fingerprint": spec.model_fingerprint,
        "config": config,
    }


def search_json(outcome: QueryResult) -> dict[str, Any]:
    return {
        "results": scored_json(outcome.results),
        "groups": groups_json(outcome.groups),
        "usage": {"total_tokens": outcome.tokens},
        "timings": timings_json(outcome.timings),
        "search_ms": outcome.search_ms,
    }


def groups_json(found: list[groups.HitGroup] | None) -> list[dict[str, Any]]:
    return [{"key": g.key, "hits": scored_json(g.hits)} for g in found or ()]


def record_json(record: st.Record) -> dict[str, Any]:
    return {"id": record.id, "payload": record.payload, "vector": record.vector}


def scored_json(points: list[st.ScoredPoint]) -> list[dict[str, Any]]:
    return [
        {"id": p.id, "score": p.score, "payload": p.payload or {}, "vector": p.vector}
        for p in points
    ]


# -- routes ------------------------------------------------------------------------------


@router.get("", summary="List collections", responses=ok(ListCollectionsResponse))
async def list_collections(request: Request, caller: Caller) -> Response:
    core = _core(request)
    names = await core.list_collections()
    if caller is not None:
        names = [n for n in names if caller.allows_collection(n)]
    return json_response({"names": names})


@router.post("", summary="Create a collection (admin)", responses=ok(CollectionResponse))
async def create_collection(
    body: CreateCollectionRequest, request: Request, caller: Caller
) -> Response:
    if caller is not None:
        check_collection(caller, body.name)
    core = _core(request)
    layout = backend_of(request).settings.section(vc.CollectionLayout)
    info = await core.create_collection(
        spec_of(body, core.model_width, core.model_distance, layout)
    )
    return json_response({"collection": info_json(info, caller)})


@router.get("/{name}", summary="Describe a collection", responses=ok(CollectionResponse))
async def get_collection(name: CollectionName, request: Request, caller: Caller) -> Response:
    core = _core(request)
    info = await core.get_collection(name)
    return json_response({"collection": info_json(info, caller)})


@router.patch(
    "/{name}",
    summary="Add or drop payload indexes, set the default hnsw_ef (admin)",
    responses=ok(CollectionResponse),
)
async def update_collection(
    name: CollectionName, body: UpdateCollectionRequest, request: Request, caller: Caller
) -> Response:
    update = st.CollectionUpdate(
        add_payload_indexes={
            k: st.PayloadIndexKind(v) for k, v in body.add_payload_indexes.items()
        },
        drop_payload_indexes=tuple(body.drop_payload_indexes),
        hnsw_ef=body.hnsw_ef,
    )
    info = await _core(request).update_collection(name, update)
    return json_response({"collection": info_json(info, caller)})


@router.delete("/{name}", summary="Delete a collection (admin)", responses=ok(Empty))
async def delete_collection(name: CollectionName, request: Request, caller: Caller) -> Response:
    await _core(request).delete_collection(name)
    return json_response({})


@router.post(
    "/{name}/upsert", summary="Write one batch of documents (write)", responses=ok(UpsertResponse)
)
async def upsert(
    name: CollectionName, body: UpsertRequest, request: Request, caller: Caller
) -> Response:
    core = _core(request)
    prepared = await core.upsert(name, documents_in(body.documents), write_settings(body.options))
    return json_response(
        {
            "upserted": len(prepared.points),
            "usage": {"total_tokens": prepared.tokens},
            "timings": timings_json(prepared.timings),
        }
    )


@router.post(
    "/{name}/search",
    summary="kNN, keyword (BM25) or hybrid search by text or vector",
    responses=ok(SearchResponse),
)
async def search(
    name: CollectionName, body: SearchRequest, request: Request, caller: Caller
) -> Response:
    outcome = await _core(request).search(name, search_in(body))
    return json_response(search_json(outcome))


@router.post(
    "/{name}/search-batch",
    summary="Several searches in one call",
    responses=ok(SearchBatchResponse),
)
async def search_batch(
    name: CollectionName, body: SearchBatchRequest, request: Request, caller: Caller
) -> Response:
    searches = []
    for index, search in enumerate(body.searches):
        with named(f"searches[{index}]"):
            searches.append(search_in(search))
    outcomes = await _core(request).search_batch(name, searches)
    return json_response({"responses": [search_json(o) for o in outcomes]})


@router.post(
    "/{name}/recommend",
    summary="Recommend from example ids, texts or vectors",
    responses=ok(RecommendResponse),
)
async def recommend(
    name: CollectionName, body: RecommendRequest, request: Request, caller: Caller
) -> Response:
    outcome = await _core(request).recommend(
        name,
        [example_in(e) for e in body.positive],
        [example_in(e) for e in body.negative],
        st.RecommendStrategy(body.strategy),
        parse_filter(body.filter),
        search_params(body.params),
        body.embed.params(Task.QUERY),
        group_by(body.group_by),
        weighings(body.recency, body.proximity),
    )
    return json_response(
        {
            "results": scored_json(outcome.results),
            "groups": groups_json(outcome.groups),
            "usage": {"total_tokens": outcome.tokens},
            "search_ms": outcome.search_ms,
        }
    )


@router.post("/{name}/get", summary="Fetch documents by id", responses=ok(GetResponse))
async def get_documents(
    name: CollectionName, body: GetRequest, request: Request, caller: Caller
) -> Response:
    records = await _core(request).get(name, body.ids, body.with_vectors)
    return json_response({"documents": [record_json(r) for r in records]})


@router.post(
    "/{name}/delete", summary="Delete documents by ids and/or filter (write)", responses=ok(Empty)
)
async def delete_documents(
    name: CollectionName, body: DeleteRequest, request: Request, caller: Caller
) -> Response:
    await _core(request).delete(name, body.ids, parse_filter(body.filter))
    return json_response({})


@router.post(
    "/{name}/payload",
    summary="Set and remove payload keys, vectors kept (write)",
    responses=ok(Empty),
)
async def update_payload(
    name: CollectionName, body: UpdatePayloadRequest, request: Request, caller: Caller
) -> Response:
    await _core(request).update_payload(
        name, body.ids, parse_filter(body.filter), dict(body.payload), body.delete_keys
    )
    return json_response({})


@router.post(
    "/{name}/facet", summary="Count the values of a payload field", responses=ok(FacetResponse)
)
async def facet(
    name: CollectionName, body: FacetRequest, request: Request, caller: Caller
) -> Response:
    hits = await _core(request).facet(name, body.key, parse_filter(body.filter), body.limit)
    return json_response({"values": [{"value": h.value, "count": h.count} for h in hits]})


@router.post(
    "/{name}/count", summary="Count documents, optionally filtered", responses=ok(CountResponse)
)
async def count(
    name: CollectionName, body: CountRequest, request: Request, caller: Caller
) -> Response:
    total = await _core(request).count(name, parse_filter(body.filter))
    return json_response({"count": total})


@router.post(
    "/{name}/scroll",
    summary="Page through documents in id order or a field's",
    responses=ok(ScrollResponse),
)
async def scroll(
    name: CollectionName, body: ScrollRequest, request: Request, caller: Caller
) -> Response:
    limit = {"limit": body.limit} if body.limit is not None else {}
    page = await _core(request).scroll(
        name,
        parse_filter(body.filter),
        cursor=body.cursor or None,
        with_payload=body.with_payload,
        with_vectors=body.with_vectors,
        order=scroll_order(body.order_by),
        **limit,
    )
    return json_response(
        {"documents": [record_json(r) for r in page.records], "next_cursor": page.next_cursor or ""}
    )
