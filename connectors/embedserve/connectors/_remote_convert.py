"""Conversions between the plain types and qdrant-client's, and its errors."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime, timedelta
from typing import Any

import grpc
import httpx
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from .errors import (
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    InvalidRequest,
    PointNotFound,
    StoreError,
    StoreFull,
    StoreRefused,
    TransientStoreError,
    out_of_space,
)
from .ids import point_ids
from .keywords import KEYWORD_VECTOR
from .quantization import quantized_search
from .types import (
    CollectionSpec,
    DatetimeRange,
    Distance,
    Filter,
    GeoBoundingBox,
    GeoPoint,
    GeoPolygon,
    GeoRadius,
    HasId,
    IsEmpty,
    IsNull,
    MatchAny,
    MatchExcept,
    MatchText,
    MatchTextAny,
    MatchValue,
    Nested,
    PayloadIndexKind,
    Quantization,
    Range,
    SearchParams,
    SparseTerms,
    ValuesCount,
    VectorDatatype,
    parse_datetime,
)
from .validation import check_filter

SPEC_METADATA_KEY = "embedserve_spec"

DISTANCES = {
    Distance.COSINE: qm.Distance.COSINE,
    Distance.DOT: qm.Distance.DOT,
    Distance.EUCLID: qm.Distance.EUCLID,
    Distance.MANHATTAN: qm.Distance.MANHATTAN,
}
DATATYPES = {
    VectorDatatype.FLOAT32: qm.Datatype.FLOAT32,
    VectorDatatype.FLOAT16: qm.Datatype.FLOAT16,
    VectorDatatype.UINT8: qm.Datatype.UINT8,
}
_DATATYPES_READ = {v: k for k, v in DATATYPES.items()}
INDEX_KINDS = {
    PayloadIndexKind.KEYWORD: qm.PayloadSchemaType.KEYWORD,
    PayloadIndexKind.INTEGER: qm.PayloadSchemaType.INTEGER,
    PayloadIndexKind.FLOAT: qm.PayloadSchemaType.FLOAT,
    PayloadIndexKind.BOOL: qm.PayloadSchemaType.BOOL,
    PayloadIndexKind.TEXT: qm.PayloadSchemaType.TEXT,
    PayloadIndexKind.DATETIME: qm.PayloadSchemaType.DATETIME,
    PayloadIndexKind.GEO: qm.PayloadSchemaType.GEO,
}
_TRANSIENT_GRPC = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}
# What a Qdrant server answers when a call's gRPC deadline passes there before it does here.
_SERVER_TIMEOUT = "timeout expired"
_TRANSIENT_HTTP = {408, 429, 502, 503, 504}
_REFUSED_GRPC = {"UNAUTHENTICATED", "PERMISSION_DENIED"}
_REFUSED_HTTP = {401, 403}
_REFUSED = "the Qdrant server refused embedserve's API key (qdrant_api_key)"
_DIM_RE = re.compile(r"expected dim: (\d+), got (\d+)")


def remote_filter(f: Filter) -> qm.Filter:
    def part(conditions: Sequence[Any]) -> list[Any] | None:
        return [_condition(c) for c in conditions] or None

    least = f.min_should
    return qm.Filter(
        must=part(f.must),
        should=part(f.should),
        must_not=part(f.must_not),
        min_should=None
        if least is None
        else qm.MinShould(
            conditions=[_condition(c) for c in least.conditions], min_count=least.min_count
        ),
    )


def _condition(c: Any) -> Any:
    if isinstance(c, MatchValue):
        return qm.FieldCondition(key=c.key, match=qm.MatchValue(value=c.value))
    if isinstance(c, MatchAny):
        values: list[Any] = list(c.values)
        return qm.FieldCondition(key=c.key, match=qm.MatchAny(any=values))
    if isinstance(c, MatchExcept):
        excluded: list[Any] = list(c.values)
        return qm.FieldCondition(key=c.key, match=qm.MatchExcept(**{"except": excluded}))
    if isinstance(c, MatchText):
        return qm.FieldCondition(key=c.key, match=qm.MatchText(text=c.text))
    if isinstance(c, MatchTextAny):
        return qm.FieldCondition(key=c.key, match=qm.MatchTextAny(text_any=c.text))
    if isinstance(c, Range):
        return qm.FieldCondition(key=c.key, range=qm.Range(gt=c.gt, gte=c.gte, lt=c.lt, lte=c.lte))
    if isinstance(c, GeoRadius):
        center = qm.GeoPoint(lon=c.center.lon, lat=c.center.lat)
        return qm.FieldCondition(
            key=c.key, geo_radius=qm.GeoRadius(center=center, radius=c.radius_m)
        )
    if isinstance(c, GeoBoundingBox):
        box = qm.GeoBoundingBox(
            top_left=qm.GeoPoint(lon=c.top_left.lon, lat=c.top_left.lat),
            bottom_right=qm.GeoPoint(lon=c.bottom_right.lon, lat=c.bottom_right.lat),
        )
        return qm.FieldCondition(key=c.key, geo_bounding_box=box)
    if isinstance(c, GeoPolygon):
        return qm.FieldCondition(key=c.key, geo_polygon=_polygon(c))
    if isinstance(c, DatetimeRange):
        return qm.FieldCondition(key=c.key, range=qm.DatetimeRange(**_to_the_microsecond(c)))
    if isinstance(c, IsNull):
        return qm.IsNullCondition(is_null=qm.PayloadField(key=c.key))
    if isinstance(c, IsEmpty):
        return qm.IsEmptyCondition(is_empty=qm.PayloadField(key=c.key))
    if isinstance(c, HasId):
        return qm.HasIdCondition(has_id=list(point_ids(c.ids)))
    if isinstance(c, ValuesCount):
        counts = qm.ValuesCount(lt=c.lt, gt=c.gt, lte=c.lte, gte=c.gte)
        counted = qm.FieldCondition(key=c.key, values_count=counts)
        if not c.admits_zero():
            return counted
        # A Qdrant server finds no count at a missing key, where the embedded engine and
        # local mode count none: the missing keys are added so that every engine agrees.
        missing = qm.IsEmptyCondition(is_empty=qm.PayloadField(key=c.key))
        return qm.Filter(should=[counted, missing])
    if isinstance(c, Nested):
        return qm.NestedCondition(nested=qm.Nested(key=c.key, filter=remote_filter(c.filter)))
    if isinstance(c, Filter):
        return remote_filter(c)
    raise InvalidRequest(f"unsupported filter condition: {c!r}")


def _polygon(c: GeoPolygon) -> qm.GeoPolygon:
    def ring(corners: tuple[GeoPoint, ...]) -> qm.GeoLineString:
        return qm.GeoLineString(points=[qm.GeoPoint(lon=p.lon, lat=p.lat) for p in corners])

    return qm.GeoPolygon(
        exterior=ring(c.exterior), interiors=[ring(hole) for hole in c.interiors] or None
    )


def sparse_vector(terms: SparseTerms) -> qm.SparseVector:
    return qm.SparseVector(indices=list(terms.indices), values=list(terms.values))


def point_vector(dense: list[float], keywords: SparseTerms | None) -> Any:
    """The dense vector alone, or with the keyword vector as named vectors ("" is the
    default, unnamed one). A text without terms stores no keyword vector: local mode
    counted empty ones among BM25's documents, the other engines did not."""
    if keywords is None or not keywords.indices:
        return dense
    return {"": dense, KEYWORD_VECTOR: sparse_vector(keywords)}


def optional_filter(f: Filter | None) -> qm.Filter | None:
    return remote_filter(f) if (f := check_filter(f)) else None


def read_consistency_of(value: str | None) -> qm.ReadConsistency | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else qm.ReadConsistencyType(value)


class ErrorContext:
    """What a failing call was about, so a server message maps to the right error."""

    def __init__(self, collection: str | None = None, ids: Mapping[str, str] | None = None):
        self.collection = collection
        self.ids = ids or {}  # point id -> external id, for "point not found" messages

    def translate(self, message: str, exc: BaseException) -> StoreError:
        lowered = message.lower()
        if out_of_space(message):
            return StoreFull(f"the Qdrant server's disk is full: {message}")
        if m := _DIM_RE.search(message):
            return DimensionMismatch(int(m.group(1)), int(m.group(2)), collection=self.collection)
        missing = [e for p, e in self.ids.items() if re.search(rf"\b{re.escape(p)}\b", lowered)]
        if missing and self.collection and "not found" in lowered:
            return PointNotFound(self.collection, list(dict.fromkeys(missing)))
        if self.collection and "collection" in lowered:
            if "already exists" in lowered:
                return CollectionExists(self.collection)
            if "not found" in lowered or "doesn't exist" in lowered or "does not exist" in lowered:
                return CollectionNotFound(self.collection)
        return StoreError(message)


@contextlib.contextmanager
def client_errors(ctx: ErrorContext) -> Iterator[None]:
    """Translate qdrant-client, gRPC and HTTP failures into the StoreError hierarchy."""
    try:
        yield
    except StoreError:
        raise
    except grpc.RpcError as exc:
        code = getattr(exc.code(), "name", str(exc.code())) if hasattr(exc, "code") else ""
        details = exc.details() if hasattr(exc, "details") else str(exc)
        message = f"qdrant gRPC {code}: {details}"
        if code in _TRANSIENT_GRPC or _timed_out(exc):
            raise TransientStoreError(message) from exc
        if code in _REFUSED_GRPC:
            raise StoreRefused(f"{_REFUSED}: {details}") from exc
        err = ctx.translate(str(details), exc)
        if type(err) is StoreError and code == "INVALID_ARGUMENT":
            err = InvalidRequest(message)
        elif type(err) is StoreError:
            err = StoreError(message)
        raise err from exc
    except UnexpectedResponse as exc:
        body = exc.content.decode("utf-8", errors="replace")
        message = f"qdrant HTTP {exc.status_code}: {body}"
        if exc.status_code in _TRANSIENT_HTTP:
            raise TransientStoreError(message) from exc
        if exc.status_code in _REFUSED_HTTP:
            raise StoreRefused(f"{_REFUSED}: {body}") from exc
        err = ctx.translate(body, exc)
        if type(err) is StoreError and exc.status_code in (400, 422):
            err = InvalidRequest(message)
        elif type(err) is StoreError:
            err = StoreError(message)
        raise err from exc
    except (ResponseHandlingException, httpx.TransportError, TimeoutError, ConnectionError) as exc:
        source = getattr(exc, "source", exc)
        raise TransientStoreError(f"qdrant unreachable: {source!r}") from exc
    except ValueError as exc:  # local mode reports bad input and missing things this way
        err = ctx.translate(str(exc), exc)
        raise (InvalidRequest(str(exc)) if type(err) is StoreError else err) from exc


class OutcomeUnknown(StoreError):
    """A change to collections or aliases reached Qdrant but no answer came in time: the
    cluster may still make it, once a majority of its nodes agree. Not retried, since a
    repeat would race the first; the caller is told what to check before trying again."""


_COMMIT_TIMEOUT = "waiting for consensus operation commit failed"


def _timed_out(exc: grpc.RpcError) -> bool:
    """The call's gRPC deadline passed, here (DEADLINE_EXCEEDED) or first at the server,
    which cancels it (CANCELLED, "Timeout expired")."""
    code = exc.code() if hasattr(exc, "code") else None
    details = str(exc.details() if hasattr(exc, "details") else "").lower()
    return code == grpc.StatusCode.DEADLINE_EXCEEDED or (
        code == grpc.StatusCode.CANCELLED and details == _SERVER_TIMEOUT
    )


def in_doubt(exc: BaseException) -> bool:
    """Whether a failed call may still take effect: it was sent, and the server did not
    answer in time or gave up waiting for its cluster to commit it."""
    if isinstance(exc, ResponseHandlingException):
        exc = exc.source
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        return True  # a connect or pool timeout sent nothing: retried as transient
    if isinstance(exc, grpc.RpcError):
        details = exc.details() if hasattr(exc, "details") else ""
        return _timed_out(exc) or _COMMIT_TIMEOUT in str(details).lower()
    if isinstance(exc, UnexpectedResponse):
        return _COMMIT_TIMEOUT in exc.content.decode("utf-8", errors="replace").lower()
    return False


@contextlib.contextmanager
def change_in_doubt(change: str, check: str) -> Iterator[None]:
    """Around a change made through Qdrant's consensus (creating or deleting a collection,
    changing aliases): one whose answer timed out is OutcomeUnknown, naming ``check``, what
    to look at before trying again. Seen on a cluster that had lost two of its three nodes:
    the change timed out, and was made when the nodes came back."""
    try:
        yield
    except Exception as exc:
        if not in_doubt(exc):
            raise
        raise OutcomeUnknown(
            f"{change}: no answer from the Qdrant cluster in time ({_cause(exc)}); it may "
            f"still be made once a majority of its nodes agree. Check {check} before trying "
            "again"
        ) from exc


def _cause(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code") and hasattr(exc, "details"):
        return f"gRPC {getattr(exc.code(), 'name', exc.code())}: {exc.details()}"
    if isinstance(exc, UnexpectedResponse):
        body = exc.content.decode("utf-8", errors="replace")
        return f"HTTP {exc.status_code}: {body}"
    return f"HTTP {getattr(exc, 'source', exc)!r}"


def quantization_config(quantization: Quantization) -> qm.QuantizationConfig | None:
    """The server's config for ``quantization``: the quantized vectors kept in RAM."""
    if quantization is Quantization.SCALAR_INT8:
        return qm.ScalarQuantization(
            scalar=qm.ScalarQuantizationConfig(
                type=qm.ScalarType.INT8, quantile=0.99, always_ram=True
            )
        )
    if quantization is Quantization.BINARY:
        return qm.BinaryQuantization(binary=qm.BinaryQuantizationConfig(always_ram=True))
    return None


def quantization_of(config: Any) -> Quantization:
    if isinstance(config, qm.ScalarQuantization):
        return Quantization.SCALAR_INT8
    if isinstance(config, qm.BinaryQuantization):
        return Quantization.BINARY
    return Quantization.NONE


def engine_search_params(spec: CollectionSpec, params: SearchParams) -> qm.SearchParams:
    quantized = quantized_search(spec, params)
    return qm.SearchParams(
        hnsw_ef=params.hnsw_ef or spec.hnsw_ef,
        exact=params.exact,
        quantization=None
        if quantized is None
        else qm.QuantizationSearchParams(
            ignore=quantized.ignore, rescore=True, oversampling=quantized.oversampling
        ),
    )


# What a Qdrant server does not keep of a collection's settings, read from the spec that
# embedserve saves in its metadata; the server reports the rest as it is now.
_KEPT_IN_METADATA = ("hnsw_ef", "bm25_language", "model_id", "model_fingerprint")
_SPEC_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(CollectionSpec)}


def saved_spec(spec: CollectionSpec) -> dict[str, Any]:
    """The metadata that keeps ``spec``."""
    return {SPEC_METADATA_KEY: spec.to_dict()}


def spec_from_info(name: str, info: qm.CollectionInfo, *, server: bool = True) -> CollectionSpec:
    """The collection's settings. A server reports its layout, HNSW graph, quantization and
    payload indexes as they are now, whoever changed them since it was made (another client
    may add an index or patch the replication factor; an index asked for at creation may
    never have been built): those come from its config. qdrant-client's local mode
    (``server=False``) reports its defaults instead of what it was given: there the saved
    spec is taken whole."""
    stored = (info.config.metadata or {}).get(SPEC_METADATA_KEY)
    saved: dict[str, Any] = stored if isinstance(stored, dict) else {}
    if saved and not server:
        with contextlib.suppress(InvalidRequest, TypeError):
            return CollectionSpec.from_dict({**saved, "name": name})
    reported = _reported_spec(name, info, saved)
    if not saved:
        return reported
    kept = {key: saved[key] for key in _KEPT_IN_METADATA if key in saved}
    if not reported.bm25:
        kept.pop("bm25_language", None)
    try:
        return replace(reported, **kept)
    except (InvalidRequest, TypeError):
        return reported  # a damaged metadata entry: what the server reports still holds


def _reported_spec(name: str, info: qm.CollectionInfo, saved: Mapping[str, Any]) -> CollectionSpec:
    params = info.config.params
    vectors = params.vectors
    if isinstance(vectors, dict):
        vectors = vectors.get("")
    if vectors is None:
        raise StoreError(f"collection {name!r} has only named vectors, which are not supported")
    hnsw = vectors.hnsw_config or info.config.hnsw_config
    quantization = info.config.quantization_config or vectors.quantization_config
    kinds = {v: k for k, v in INDEX_KINDS.items()}
    indexes = {
        field: kinds[qm.PayloadSchemaType(schema.data_type)]
        for field, schema in (info.payload_schema or {}).items()
        if schema.data_type in kinds
    }
    distances = {v: k for k, v in DISTANCES.items()}

    def graph(reported: int | None, collection_wide: int | None, key: str) -> int:
        # 0 (HNSW turned off, which a spec cannot say) falls back to the saved value.
        value = reported or collection_wide or saved.get(key)
        return value if isinstance(value, int) and value > 0 else _SPEC_DEFAULTS[key]

    wide = info.config.hnsw_config
    return CollectionSpec(
        name=name,
        vector_size=vectors.size,
        distance=distances[vectors.distance],
        on_disk=bool(vectors.on_disk),
        datatype=_DATATYPES_READ.get(
            vectors.datatype or qm.Datatype.FLOAT32, VectorDatatype.FLOAT32
        ),
        hnsw_m=graph(hnsw.m, wide.m, "hnsw_m"),
        hnsw_ef_construct=graph(hnsw.ef_construct, wide.ef_construct, "hnsw_ef_construct"),
        full_scan_threshold_kb=graph(
            hnsw.full_scan_threshold, wide.full_scan_threshold, "full_scan_threshold_kb"
        ),
        quantization=quantization_of(quantization),
        shard_number=params.shard_number or 1,
        replication_factor=params.replication_factor or 1,
        write_consistency_factor=params.write_consistency_factor or 1,
        payload_indexes=indexes,
        bm25=KEYWORD_VECTOR in (params.sparse_vectors or {}),
    )


def _to_the_microsecond(c: DatetimeRange) -> dict[str, datetime]:
    """The bounds as an inclusive lower and a strict upper one. A Qdrant server without a
    datetime index compares stored values to the nanosecond, where the other engines (and
    its index) read them to the microsecond: a value 10:00:00.123456789 would be after the
    bound 10:00:00.123456 it was truncated to. At the microsecond, gt t is gte t + 1 us and
    lte t is lt t + 1 us, whatever digits the stored value has past it."""
    bounds = {}
    for name, text in c.bounds().items():
        moment = parse_datetime(text)
        if name in ("gt", "lte"):
            name, moment = ("gte" if name == "gt" else "lt"), moment + timedelta(microseconds=1)
        bounds[name] = moment
    return bounds
