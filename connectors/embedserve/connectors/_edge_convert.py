"""Conversions between the plain types and the embedded engine's, and its errors."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import qdrant_edge as qe

from .errors import (
    DimensionMismatch,
    EngineFailure,
    InvalidRequest,
    StoreError,
    StoreFull,
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
)

DISTANCES = {
    Distance.COSINE: qe.Distance.Cosine,
    Distance.DOT: qe.Distance.Dot,
    Distance.EUCLID: qe.Distance.Euclid,
    Distance.MANHATTAN: qe.Distance.Manhattan,
}
DATATYPES = {
    VectorDatatype.FLOAT32: qe.VectorStorageDatatype.Float32,
    VectorDatatype.FLOAT16: qe.VectorStorageDatatype.Float16,
}
INDEX_KINDS = {
    PayloadIndexKind.KEYWORD: qe.PayloadSchemaType.Keyword,
    PayloadIndexKind.INTEGER: qe.PayloadSchemaType.Integer,
    PayloadIndexKind.FLOAT: qe.PayloadSchemaType.Float,
    PayloadIndexKind.BOOL: qe.PayloadSchemaType.Bool,
    PayloadIndexKind.TEXT: qe.PayloadSchemaType.Text,
    PayloadIndexKind.DATETIME: qe.PayloadSchemaType.Datetime,
    PayloadIndexKind.GEO: qe.PayloadSchemaType.Geo,
}

_DIM_RE = re.compile(r"expected dim: (\d+), got (\d+)")
# Engine errors arrive as bare Exceptions; these message fragments mark passing failures.
_TRANSIENT_MARKERS = (
    "Resource temporarily unavailable",
    "Interrupted system call",
    "Input/output error",
    "Timed out",
    "timed out",
    "Too many open files",
)
_INVALID_MARKERS = ("Wrong input", "Bad input", "Bad request", "Validation error")


@contextmanager
def engine_errors() -> Iterator[None]:
    """Translate whatever the engine raises into the StoreError hierarchy."""
    try:
        yield
    except StoreError:
        raise
    except (TypeError, ValueError) as exc:  # argument conversion in the bindings
        raise InvalidRequest(str(exc).splitlines()[0]) from exc
    except OSError as exc:
        if out_of_space(exc):
            raise StoreFull(f"embedded engine: {exc}") from exc
        raise TransientStoreError(f"embedded engine I/O error: {exc}") from exc
    except Exception as exc:
        message = str(exc)
        if out_of_space(message):
            raise StoreFull(f"embedded engine: {message}") from exc
        if m := _DIM_RE.search(message):
            raise DimensionMismatch(int(m.group(1)), int(m.group(2))) from exc
        if any(marker in message for marker in _TRANSIENT_MARKERS):
            raise TransientStoreError(f"embedded engine: {message}") from exc
        if any(marker in message for marker in _INVALID_MARKERS):
            raise InvalidRequest(message) from exc
        # Whatever else it says (a vector "not readable", a file "out of bounds") a retry
        # reads again from the same files.
        raise EngineFailure(f"embedded engine: {message}") from exc


def edge_filter(f: Filter) -> qe.Filter:
    """The engine's filter; what its bindings reject (e.g. a key that is not a payload
    path) is the caller's mistake, InvalidRequest."""
    with engine_errors():
        return _filter(f)


def _filter(f: Filter) -> qe.Filter:
    def part(conditions: Sequence[Any]) -> list[Any] | None:
        return [condition(c) for c in conditions] or None

    least = f.min_should
    return qe.Filter(
        must=part(f.must),
        should=part(f.should),
        must_not=part(f.must_not),
        min_should=None
        if least is None
        else qe.MinShould([condition(c) for c in least.conditions], least.min_count),
    )


def condition(c: Any) -> Any:
    if isinstance(c, MatchValue):
        # The bindings read a Python bool as the integer 0/1 (bool subclasses int), which
        # never matches a stored boolean; numpy's bool is not an int and converts as one.
        value: Any = np.bool_(c.value) if isinstance(c.value, bool) else c.value
        return qe.FieldCondition(c.key, match=qe.MatchValue(value))
    if isinstance(c, MatchAny):
        values: list[Any] = list(c.values)
        return qe.FieldCondition(c.key, match=qe.MatchAny(values))
    if isinstance(c, MatchExcept):
        excluded: list[Any] = list(c.values)
        return qe.FieldCondition(c.key, match=qe.MatchExcept(excluded))
    if isinstance(c, MatchText):
        return qe.FieldCondition(c.key, match=qe.MatchText(c.text))
    if isinstance(c, MatchTextAny):
        return qe.FieldCondition(c.key, match=qe.MatchTextAny(c.text))
    if isinstance(c, Range):
        bounds = {
            k: None if v is None else float(v)
            for k, v in (("gt", c.gt), ("gte", c.gte), ("lt", c.lt), ("lte", c.lte))
        }
        return qe.FieldCondition(c.key, range=qe.RangeFloat(**bounds))
    if isinstance(c, GeoRadius):
        center = qe.GeoPoint(lon=c.center.lon, lat=c.center.lat)
        return qe.FieldCondition(c.key, geo_radius=qe.GeoRadius(center, float(c.radius_m)))
    if isinstance(c, GeoBoundingBox):
        corners = (qe.GeoPoint(lon=p.lon, lat=p.lat) for p in (c.top_left, c.bottom_right))
        return qe.FieldCondition(c.key, geo_bounding_box=qe.GeoBoundingBox(*corners))
    if isinstance(c, GeoPolygon):
        return qe.FieldCondition(c.key, geo_polygon=_polygon(c))
    if isinstance(c, DatetimeRange):
        return qe.FieldCondition(c.key, range=qe.RangeDateTime(**c.bounds()))
    if isinstance(c, IsNull):
        return qe.IsNullCondition(c.key)
    if isinstance(c, IsEmpty):
        return qe.IsEmptyCondition(c.key)
    if isinstance(c, HasId):
        return qe.HasIdCondition(set(point_ids(c.ids)))
    if isinstance(c, ValuesCount):
        counts = qe.ValuesCount(lt=c.lt, gt=c.gt, lte=c.lte, gte=c.gte)
        return qe.FieldCondition(c.key, values_count=counts)
    if isinstance(c, Nested):
        return qe.NestedCondition(c.key, _filter(c.filter))
    if isinstance(c, Filter):
        return _filter(c)
    raise InvalidRequest(f"unsupported filter condition: {c!r}")


def _polygon(c: GeoPolygon) -> qe.GeoPolygon:
    def ring(corners: tuple[GeoPoint, ...]) -> list[qe.GeoPoint]:
        return [qe.GeoPoint(lon=p.lon, lat=p.lat) for p in corners]

    return qe.GeoPolygon(ring(c.exterior), [ring(hole) for hole in c.interiors] or None)


def sparse_vector(terms: SparseTerms) -> qe.SparseVector:
    return qe.SparseVector(list(terms.indices), list(terms.values))


def point_vector(dense: list[float], keywords: SparseTerms | None) -> Any:
    """The dense vector alone, or with the keyword vector as named vectors ("" is the
    default, unnamed one). A text without terms stores no keyword vector: local mode
    counted empty ones among BM25's documents, the other engines did not."""
    if keywords is None or not keywords.indices:
        return dense
    return {"": dense, KEYWORD_VECTOR: sparse_vector(keywords)}


def engine_search_params(spec: CollectionSpec, params: SearchParams) -> qe.SearchParams:
    quantized = quantized_search(spec, params)
    return qe.SearchParams(
        hnsw_ef=params.hnsw_ef or spec.hnsw_ef,
        exact=params.exact,
        quantization=None
        if quantized is None
        else qe.QuantizationSearchParams(
            ignore=quantized.ignore, rescore=True, oversampling=quantized.oversampling
        ),
    )


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity; a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def engine_config(spec: CollectionSpec) -> qe.EdgeConfig:
    quantization: Any = None
    if spec.quantization is Quantization.SCALAR_INT8:
        quantization = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99)
    elif spec.quantization is Quantization.BINARY:
        quantization = qe.BinaryQuantizationConfig(always_ram=True)
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(
            size=spec.vector_size,
            distance=DISTANCES[spec.distance],
            memory=qe.Memory.Cold if spec.on_disk else None,
            datatype=DATATYPES[spec.datatype],
        ),
        hnsw_config=qe.HnswIndexConfig(
            m=spec.hnsw_m,
            ef_construct=spec.hnsw_ef_construct,
            full_scan_threshold=spec.full_scan_threshold_kb,
        ),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=spec.full_scan_threshold_kb),
        # A search pool of this many threads for each collection (kept with it): the
        # engine's default took 8 on 2 CPUs, 4,000 threads for 500 collections.
        max_search_threads=usable_cpus(),
        quantization_config=quantization,
        sparse_vectors=(
            {KEYWORD_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
            if spec.bm25
            else None
        ),
    )
