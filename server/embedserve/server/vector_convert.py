"""VectorService messages to the store layer's types and back."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from embedserve.client._struct_numbers import whole_to_int
from embedserve.connectors import types as st
from embedserve.connectors.errors import InvalidRequest, StoreError
from embedserve.connectors.groups import GroupBy, HitGroup
from embedserve.connectors.ordered_scroll import ScrollOrder
from embedserve.connectors.validation import MAX_FILTER_CONDITIONS, check_payload, condition_count
from embedserve.connectors.weighing import Proximity, Recency, Weighing
from embedserve.server import convert
from embedserve.server.embedder import EmbedParams, Task
from embedserve.server.errors import InvalidArgument
from embedserve.server.json_escapes import lone_surrogate_at
from embedserve.server.passages import PassageSplit
from embedserve.server.search_rerank import RerankStage
from embedserve.server.vectors import (
    TEXT_PAYLOAD_KEY,
    DocumentIn,
    QueryIn,
    SearchIn,
    SearchMode,
    WriteSettings,
    translate_store_error,
)
from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import vector_pb2 as pb

T = TypeVar("T")

DISTANCES = {
    pb.DISTANCE_COSINE: st.Distance.COSINE,
    pb.DISTANCE_DOT: st.Distance.DOT,
    pb.DISTANCE_EUCLID: st.Distance.EUCLID,
    pb.DISTANCE_MANHATTAN: st.Distance.MANHATTAN,
}
DISTANCE_TO_PROTO = {v: k for k, v in DISTANCES.items()}
QUANTIZATIONS = {
    pb.QUANTIZATION_UNSPECIFIED: st.Quantization.NONE,
    pb.QUANTIZATION_NONE: st.Quantization.NONE,
    pb.QUANTIZATION_SCALAR_INT8: st.Quantization.SCALAR_INT8,
    pb.QUANTIZATION_BINARY: st.Quantization.BINARY,
}
DATATYPES: dict[pb.VectorDatatype.ValueType, st.VectorDatatype] = {
    pb.VECTOR_DATATYPE_UNSPECIFIED: st.VectorDatatype.FLOAT32,
    pb.VECTOR_DATATYPE_FLOAT32: st.VectorDatatype.FLOAT32,
    pb.VECTOR_DATATYPE_FLOAT16: st.VectorDatatype.FLOAT16,
    pb.VECTOR_DATATYPE_UINT8: st.VectorDatatype.UINT8,  # refused by the store, named
}
QUANTIZATION_TO_PROTO = {v: k for k, v in QUANTIZATIONS.items() if k != pb.QUANTIZATION_UNSPECIFIED}
DATATYPE_TO_PROTO = {v: k for k, v in DATATYPES.items() if k != pb.VECTOR_DATATYPE_UNSPECIFIED}
INDEX_KINDS = {
    pb.PAYLOAD_INDEX_KIND_KEYWORD: st.PayloadIndexKind.KEYWORD,
    pb.PAYLOAD_INDEX_KIND_INTEGER: st.PayloadIndexKind.INTEGER,
    pb.PAYLOAD_INDEX_KIND_FLOAT: st.PayloadIndexKind.FLOAT,
    pb.PAYLOAD_INDEX_KIND_BOOL: st.PayloadIndexKind.BOOL,
    pb.PAYLOAD_INDEX_KIND_TEXT: st.PayloadIndexKind.TEXT,
    pb.PAYLOAD_INDEX_KIND_DATETIME: st.PayloadIndexKind.DATETIME,
    pb.PAYLOAD_INDEX_KIND_GEO: st.PayloadIndexKind.GEO,
}
INDEX_KIND_TO_PROTO = {v: k for k, v in INDEX_KINDS.items()}
STRATEGIES = {
    pb.RECOMMEND_STRATEGY_UNSPECIFIED: st.RecommendStrategy.AVERAGE_VECTOR,
    pb.RECOMMEND_STRATEGY_AVERAGE_VECTOR: st.RecommendStrategy.AVERAGE_VECTOR,
    pb.RECOMMEND_STRATEGY_BEST_SCORE: st.RecommendStrategy.BEST_SCORE,
    pb.RECOMMEND_STRATEGY_SUM_SCORES: st.RecommendStrategy.SUM_SCORES,
}

SEARCH_MODES = {
    pb.SEARCH_MODE_UNSPECIFIED: SearchMode.DENSE,
    pb.SEARCH_MODE_DENSE: SearchMode.DENSE,
    pb.SEARCH_MODE_KEYWORD: SearchMode.KEYWORD,
    pb.SEARCH_MODE_HYBRID: SearchMode.HYBRID,
}


def store_value(make: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Build a store-layer value; its validation errors join the core's status table."""
    try:
        return make(*args, **kwargs)
    except StoreError as exc:
        raise translate_store_error(exc) from exc


@dataclasses.dataclass(frozen=True)
class CollectionLayout:
    """The settings section for the cluster layout of collections created without their
    own (it matters on a Qdrant server or cluster). Both transports' create calls use it."""

    default_shard_number: int = st.CollectionSpec.shard_number
    default_replication_factor: int = st.CollectionSpec.replication_factor
    default_write_consistency_factor: int = st.CollectionSpec.write_consistency_factor

    def spec_fields(self) -> dict[str, int]:
        """The defaults under the CollectionSpec field names they fill."""
        return {
            "shard_number": self.default_shard_number,
            "replication_factor": self.default_replication_factor,
            "write_consistency_factor": self.default_write_consistency_factor,
        }


def spec_from_proto(
    name: str,
    config: pb.CollectionConfig,
    model_width: int,
    model_distance: st.Distance,
    layout: CollectionLayout | None = None,
) -> st.CollectionSpec:
    """``model_width``, ``model_distance`` and ``layout`` (the cluster layout): the values of
    the fields the request leaves unset."""
    defaults = (layout or CollectionLayout()).spec_fields()
    fields: dict[str, Any] = {
        "vector_size": config.dimensions if config.HasField("dimensions") else model_width,
        "distance": (
            convert.enum_value(DISTANCES, config.distance, "config.distance")
            if config.distance != pb.DISTANCE_UNSPECIFIED
            else model_distance
        ),
        "on_disk": config.on_disk,
        "bm25": config.bm25,
        "bm25_language": config.bm25_language or st.CollectionSpec.bm25_language,
        "quantization": convert.enum_value(
            QUANTIZATIONS, config.quantization, "config.quantization"
        ),
        "datatype": convert.enum_value(DATATYPES, config.vector_datatype, "config.vector_datatype"),
        "payload_indexes": {
            key: convert.enum_value(INDEX_KINDS, kind, f"config.payload_indexes[{key!r}]")
            for key, kind in config.payload_indexes.items()
        },
    }
    for optional in st.TUNING_FIELDS:
        if config.HasField(optional):
            fields[optional] = getattr(config, optional)
        elif optional in defaults:
            fields[optional] = defaults[optional]
    if fields["vector_size"] == 0:
        raise InvalidArgument("config.dimensions must be at least 1")
    return store_value(st.CollectionSpec, name, **fields)


def update_from_proto(request: pb.UpdateCollectionRequest) -> st.CollectionUpdate:
    return st.CollectionUpdate(
        add_payload_indexes={
            key: convert.enum_value(INDEX_KINDS, kind, f"add_payload_indexes[{key!r}]")
            for key, kind in request.add_payload_indexes.items()
        },
        drop_payload_indexes=tuple(request.drop_payload_indexes),
        hnsw_ef=request.hnsw_ef if request.HasField("hnsw_ef") else None,
    )


def info_to_proto(info: st.CollectionInfo) -> pb.CollectionInfo:
    spec = info.spec
    return pb.CollectionInfo(
        name=spec.name,
        points_count=info.points_count,
        aliases=info.aliases,
        model_id=spec.model_id,
        model_fingerprint=spec.model_fingerprint,
        config=pb.CollectionConfig(
            dimensions=spec.vector_size,
            distance=DISTANCE_TO_PROTO[spec.distance],
            on_disk=spec.on_disk,
            hnsw_m=spec.hnsw_m,
            hnsw_ef_construct=spec.hnsw_ef_construct,
            hnsw_ef=spec.hnsw_ef,
            quantization=QUANTIZATION_TO_PROTO[spec.quantization],
            vector_datatype=DATATYPE_TO_PROTO[spec.datatype],
            shard_number=spec.shard_number,
            replication_factor=spec.replication_factor,
            write_consistency_factor=spec.write_consistency_factor,
            full_scan_threshold_kb=spec.full_scan_threshold_kb,
            payload_indexes={k: INDEX_KIND_TO_PROTO[v] for k, v in spec.payload_indexes.items()},
            bm25=spec.bm25,
            bm25_language=spec.bm25_language,
        ),
    )


def payload_from_proto(struct: struct_pb2.Struct, field: str = "payload") -> dict[str, Any]:
    """Struct numbers are doubles; whole ones an int64 holds become ints, so that integer
    filters match them."""
    try:
        values = MessageToDict(struct)
    except ValueError:  # NaN and infinities have no JSON form
        where = _non_finite_number(struct, field) or field
        raise InvalidArgument(f"{where}: numbers must be finite") from None
    return {key: whole_to_int(value) for key, value in values.items()}


def _non_finite_number(message: struct_pb2.Struct | struct_pb2.ListValue, path: str) -> str:
    """Where in ``message`` a NaN or an infinity is, as the store's checks name it."""
    items: Iterable[tuple[str | int, struct_pb2.Value]] = (
        message.fields.items()
        if isinstance(message, struct_pb2.Struct)
        else enumerate(message.values)
    )
    for key, value in items:
        where = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            return where
        inner = value.struct_value if kind == "struct_value" else value.list_value
        if kind in ("struct_value", "list_value") and (found := _non_finite_number(inner, where)):
            return found
    return ""


def payload_to_proto(payload: Mapping[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if payload:
        struct.update(dict(payload))
    return struct


def embed_params(options: epb.EmbedOptions, default_task: Task, field: str) -> EmbedParams:
    params = convert.params_from_proto(options, field)
    if params.task is Task.DEFAULT and params.prompt is None:
        return dataclasses.replace(params, task=default_task)
    return params


def write_settings(options: pb.WriteOptions) -> WriteSettings:
    split = None
    if options.HasField("split"):
        given = options.split
        split = PassageSplit(
            given.max_tokens if given.HasField("max_tokens") else None,
            given.overlap_tokens if given.HasField("overlap_tokens") else None,
        )
    return WriteSettings(
        embed=embed_params(options.embed, Task.DOCUMENT, "options.embed"),
        store_text=options.store_text,
        split=split,
    )


def documents_from_proto(documents: Sequence[pb.Document]) -> list[DocumentIn]:
    converted = []
    for index, document in enumerate(documents):
        which = document.WhichOneof("content")
        converted.append(
            DocumentIn(
                id=document.id,
                text=document.text if which == "text" else None,
                vector=list(document.vector.values) if which == "vector" else None,
                payload=document_payload(document, f"documents[{index}]"),
            )
        )
    return converted


def document_payload(document: pb.Document, field: str) -> dict[str, Any]:
    """A document's payload: its Struct, or its payload_json (numbers exact), not both."""
    if not document.payload_json:
        return payload_from_proto(document.payload, f"{field}.payload")
    if document.HasField("payload"):
        raise InvalidArgument(f"{field}: give payload or payload_json, not both")
    return payload_from_json(document.payload_json, f"{field}.payload_json")


def payload_from_json(text: str, field: str) -> dict[str, Any]:
    """The JSON object ``text``, its numbers as written (integers exact); NaN and the
    infinities, which Python's json reads, are no JSON and are refused, as is a string
    escape that is half of a surrogate pair (no text). The core checks what it holds."""

    def refuse(constant: str) -> Any:
        raise InvalidArgument(f"{field}: {constant} is not JSON (numbers must be finite)")

    try:
        value = json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{field} is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgument(f"{field}: arrays or objects nested too deeply") from None
    except ValueError as exc:  # an integer of more digits than Python reads (4,300)
        raise InvalidArgument(f"{field} is not JSON this server reads: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object, not {_json_kind(value)}")
    if (position := lone_surrogate_at(text)) is not None:
        escape = text[position : position + 6]
        raise InvalidArgument(
            f"{field}: {escape} at character {position + 1} is half of a surrogate pair, "
            "not a character"
        )
    try:  # here, so that its errors name payload_json, not payload
        check_payload(value, field)
    except InvalidRequest as exc:
        raise InvalidArgument(str(exc)) from None
    return value


# protobuf reads messages at most 100 deep: a filter in a condition in a filter takes two
# levels a step, through nested three.
FILTER_TOO_DEEP = (
    "nested too deep; filters go at most 48 deep within one another "
    "(32 through nested or min_should)"
)


def filter_from_proto(message: pb.Filter, field: str = "filter") -> st.Filter:
    """A caller's filter, of at most MAX_FILTER_CONDITIONS conditions in all."""
    parsed = _filter(message, field)
    if (count := condition_count(parsed)) > MAX_FILTER_CONDITIONS:
        raise InvalidArgument(
            f"{field} holds {count} conditions; at most {MAX_FILTER_CONDITIONS} are taken "
            "(match_any takes a list of values as one condition)"
        )
    return parsed


def _filter(message: pb.Filter, field: str) -> st.Filter:
    def conditions(part: str) -> list[st.Condition]:
        listed = getattr(message, part)
        return [_condition(c, f"{field}.{part}[{i}]") for i, c in enumerate(listed)]

    return store_value(
        st.Filter,
        must=conditions("must"),
        should=conditions("should"),
        must_not=conditions("must_not"),
        min_should=_min_should(message, f"{field}.min_should"),
    )


def _min_should(message: pb.Filter, field: str) -> st.MinShould | None:
    if not message.HasField("min_should"):
        return None
    least = message.min_should
    conditions = [_condition(c, f"{field}.conditions[{i}]") for i, c in enumerate(least.conditions)]
    return store_value(st.MinShould, conditions, least.min_count)


def optional_filter(holder: Any, field: str = "filter") -> st.Filter | None:
    if not holder.HasField(field):
        return None
    parsed = filter_from_proto(getattr(holder, field), field)
    return None if parsed.is_empty() else parsed


def _condition(message: pb.Condition, field: str) -> st.Condition:
    which = message.WhichOneof("condition")
    if which == "match":
        kind = message.match.WhichOneof("value")
        if kind is None:
            raise InvalidArgument(f"{field}.match needs a text, integer or boolean value")
        return store_value(st.MatchValue, message.match.key, getattr(message.match, kind))
    if which == "match_any":
        return store_value(
            st.MatchAny, message.match_any.key, _values(message.match_any, f"{field}.match_any")
        )
    if which == "match_except":
        none_of = message.match_except
        return store_value(st.MatchExcept, none_of.key, _values(none_of, f"{field}.match_except"))
    if which == "match_text":
        return store_value(st.MatchText, message.match_text.key, message.match_text.text)
    if which == "match_text_any":
        words = message.match_text_any
        return store_value(st.MatchTextAny, words.key, words.text)
    if which == "range":
        bounds = _optional(message.range, "gt", "gte", "lt", "lte")
        return store_value(st.Range, message.range.key, **bounds)
    if which == "datetime_range":
        within = message.datetime_range
        moments = {
            name: getattr(within, name)
            for name in ("gt", "gte", "lt", "lte")
            if getattr(within, name)
        }
        return store_value(st.DatetimeRange, within.key, **moments)
    if which == "geo_radius":
        circle = message.geo_radius
        if not circle.HasField("center"):
            raise InvalidArgument(f"{field}.geo_radius needs a center")
        return store_value(st.GeoRadius, circle.key, geo_point(circle.center), circle.radius_m)
    if which == "geo_bounding_box":
        box = message.geo_bounding_box
        if not (box.HasField("top_left") and box.HasField("bottom_right")):
            raise InvalidArgument(f"{field}.geo_bounding_box needs top_left and bottom_right")
        corners = (geo_point(box.top_left), geo_point(box.bottom_right))
        return store_value(st.GeoBoundingBox, box.key, *corners)
    if which == "geo_polygon":
        polygon = message.geo_polygon
        rings = [
            [geo_point(corner) for corner in ring.corners]
            for ring in (polygon.exterior, *polygon.interiors)
        ]
        return store_value(st.GeoPolygon, polygon.key, rings[0], rings[1:])
    if which == "is_null":
        return store_value(st.IsNull, message.is_null.key)
    if which == "is_empty":
        return store_value(st.IsEmpty, message.is_empty.key)
    if which == "has_id":
        return store_value(st.HasId, tuple(message.has_id.ids))
    if which == "values_count":
        counts = message.values_count
        bounds = _optional(counts, "gt", "gte", "lt", "lte")
        return store_value(st.ValuesCount, counts.key, **bounds)
    if which == "nested":
        inner = _filter(message.nested.filter, f"{field}.nested.filter")
        return store_value(st.Nested, message.nested.key, inner)
    if which == "filter":
        return _filter(message.filter, f"{field}.filter")
    raise InvalidArgument(f"{field} has no condition set")


def _values(message: pb.MatchAny | pb.MatchExcept, field: str) -> tuple[str, ...] | tuple[int, ...]:
    if message.texts and message.integers:
        raise InvalidArgument(f"{field} takes texts or integers, not both")
    return tuple(message.texts) if message.texts else tuple(message.integers)


def query_from_proto(request: pb.SearchRequest) -> QueryIn:
    which = request.WhichOneof("query")
    return QueryIn(
        text=request.text if which == "text" else None,
        vector=list(request.vector.values) if which == "vector" else None,
    )


def search_in(request: pb.SearchRequest) -> SearchIn:
    return SearchIn(
        query_from_proto(request),
        optional_filter(request),
        search_params(request.params),
        embed_params(request.embed, Task.QUERY, "embed"),
        convert.enum_value(SEARCH_MODES, request.mode, "mode"),
        group_by(request.group_by) if request.HasField("group_by") else None,
        weighings(request),
        rerank_from_proto(request.rerank) if request.HasField("rerank") else None,
    )


def rerank_stage(text_key: str, candidates: int | None) -> RerankStage:
    """A search's rerank stage; an empty ``text_key`` is where store_text keeps texts."""
    return RerankStage(text_key or TEXT_PAYLOAD_KEY, candidates)


def rerank_from_proto(message: pb.SearchRerank) -> RerankStage:
    candidates = message.candidates if message.HasField("candidates") else None
    return rerank_stage(message.text_key, candidates)


def weighings(request: pb.SearchRequest | pb.RecommendRequest) -> tuple[Weighing, ...]:
    """The request's recency and proximity weighings, those it sets."""
    found: list[Weighing] = []
    if request.HasField("recency"):
        given = request.recency
        options: dict[str, Any] = {"now": given.now or None}
        options |= _optional(given, "weight", "candidates")
        found.append(store_value(Recency, given.key, given.half_life_hours, **options))
    if request.HasField("proximity"):
        near = request.proximity
        if not near.HasField("center"):
            raise InvalidArgument("proximity needs a center")
        options = _optional(near, "weight", "candidates")
        center = geo_point(near.center)
        found.append(store_value(Proximity, near.key, center, near.half_distance_m, **options))
    return tuple(found)


def geo_point(message: pb.GeoPoint) -> st.GeoPoint:
    return store_value(st.GeoPoint, message.lat, message.lon)


def _optional(message: Any, *names: str) -> dict[str, Any]:
    return {name: getattr(message, name) for name in names if message.HasField(name)}


def group_by(message: pb.GroupBy) -> GroupBy:
    size = {"size": message.size} if message.HasField("size") else {}
    return store_value(GroupBy, message.key, **size)


def scroll_order(request: pb.ScrollRequest) -> ScrollOrder | None:
    if not request.HasField("order_by"):
        return None
    return store_value(ScrollOrder, request.order_by.key, request.order_by.descending)


def groups_to_proto(groups: Sequence[HitGroup]) -> list[pb.HitGroup]:
    messages = []
    for group in groups:
        message = pb.HitGroup(hits=scored_to_proto(group.hits))
        if isinstance(group.key, str):
            message.text = group.key
        else:
            message.integer = group.key
        messages.append(message)
    return messages


def batch_search_in(collection: str, request: pb.SearchRequest) -> SearchIn:
    """A search of a batch, which leaves its collection empty or names the batch's."""
    if request.collection not in ("", collection):
        raise InvalidArgument(
            f"collection is {request.collection!r}; a batch searches {collection!r}"
        )
    return search_in(request)


def example_from_proto(example: pb.Example) -> QueryIn:
    which = example.WhichOneof("example")
    return QueryIn(
        text=example.text if which == "text" else None,
        vector=list(example.vector.values) if which == "vector" else None,
        id=example.id if which == "id" else None,
    )


def search_params(message: pb.QueryParams) -> st.SearchParams:
    fields: dict[str, Any] = {
        "offset": message.offset,
        "with_vectors": message.with_vectors,
        "exact": message.exact,
        "read_consistency": message.read_consistency or None,
    }
    if message.HasField("limit"):
        if message.limit == 0:
            raise InvalidArgument("params.limit must be at least 1")
        fields["limit"] = message.limit
    if message.HasField("score_threshold"):
        fields["score_threshold"] = message.score_threshold
    if message.HasField("with_payload"):
        fields["with_payload"] = message.with_payload
    if message.HasField("hnsw_ef"):
        if message.hnsw_ef == 0:
            raise InvalidArgument("params.hnsw_ef must be at least 1")
        fields["hnsw_ef"] = message.hnsw_ef
    for optional in ("diversity", "diversity_candidates", "keyword_weight", "oversampling"):
        if message.HasField(optional):
            fields[optional] = getattr(message, optional)
    if message.payload_keys:
        fields["payload_keys"] = tuple(message.payload_keys)
    return store_value(st.SearchParams, **fields)


def facet_limit(request: pb.FacetRequest) -> int:
    if not request.HasField("limit"):
        return 10
    if request.limit == 0:
        raise InvalidArgument("limit must be at least 1")
    return request.limit


def facet_value_to_proto(hit: st.FacetHit) -> pb.FacetValue:
    if isinstance(hit.value, bool):
        return pb.FacetValue(boolean=hit.value, count=hit.count)
    if isinstance(hit.value, int):
        return pb.FacetValue(integer=hit.value, count=hit.count)
    return pb.FacetValue(text=str(hit.value), count=hit.count)


def scored_to_proto(points: Sequence[st.ScoredPoint]) -> list[pb.ScoredDocument]:
    return [
        pb.ScoredDocument(
            id=point.id,
            score=point.score,
            payload=payload_to_proto(point.payload),
            vector=pb.Vector(values=point.vector) if point.vector is not None else None,
        )
        for point in points
    ]


def _json_kind(value: Any) -> str:
    """What a parsed JSON value that is no object is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "a number"


def record_to_proto(record: st.Record, exact_payloads: bool = False) -> pb.StoredDocument:
    """``exact_payloads``: the payload as JSON text in payload_json (integers past 2**53
    as they are), and payload left empty."""
    vector = pb.Vector(values=record.vector) if record.vector is not None else None
    if exact_payloads:
        text = payload_json_text(record.payload or {})
        return pb.StoredDocument(id=record.id, payload_json=text, vector=vector)
    return pb.StoredDocument(id=record.id, payload=payload_to_proto(record.payload), vector=vector)


def payload_json_text(payload: Mapping[str, Any]) -> str:
    """A stored payload as compact JSON text, numbers as the store keeps them."""
    return json.dumps(dict(payload), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
