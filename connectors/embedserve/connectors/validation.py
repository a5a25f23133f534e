"""Checks shared by both backends, so a bad request fails the same way everywhere."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DimensionMismatch, InvalidFilter, InvalidRequest, SettingsChanged
from .ids import RESERVED_KEY, PointId, check_external_id, point_id, stored_payload
from .types import (
    FACET_INDEX_KINDS,
    MAX_FACET_LIMIT,
    TEXT_CONDITIONS,
    CollectionSpec,
    Distance,
    Example,
    FacetHit,
    Filter,
    Nested,
    PayloadIndexKind,
    PointRecord,
    RecommendStrategy,
    SearchParams,
    SparseTerms,
    VectorDatatype,
    VectorLike,
)

_INT64 = (-(2**63), 2**63 - 1)
# Stores score and compare in 32-bit floats. Below this length, every dot product and
# squared distance between two vectors stays finite (|a . b| <= |a| |b|, and
# |a - b|^2 <= (|a| + |b|)^2 = 4 x this^2 = the largest float32).
MAX_VECTOR_NORM = math.sqrt(float(np.finfo(np.float32).max) / 4)
# Where float16 ends: the engine rounds a value this large, stored or in a query, to
# infinity (scores of inf or NaN, points gone from distance rankings); below it, to at most
# 65504, float16's largest. A cosine collection keeps unit vectors, far below it.
FLOAT16_INFINITE = 65520.0


# protobuf parses messages nested at most 100 deep, and each level of a payload (a Struct
# inside a Value) takes three: deeper payloads would be stored but unreadable over gRPC.
MAX_PAYLOAD_DEPTH = 32
# Conditions of a caller's filter (the service's own around it are not counted). Each is
# tested against every point the filter reaches: thousands of them on a field without an
# index held every store call for seconds (6,000 should-conditions: 19 s).
MAX_FILTER_CONDITIONS = 1024


def as_vector(vector: VectorLike, size: int, collection: str) -> list[float]:
    """A finite float vector of the collection's size, as a plain list."""
    try:
        arr = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidRequest("a vector must be a sequence of numbers") from None
    if arr.ndim != 1:
        raise InvalidRequest(f"a vector must be one-dimensional, got shape {arr.shape}")
    if arr.shape[0] != size:
        raise DimensionMismatch(size, int(arr.shape[0]), collection=collection)
    if not np.isfinite(arr).all():
        raise InvalidRequest("vector values must be finite (no NaN or infinity)")
    with np.errstate(over="ignore"):  # a length past float64's range is inf: refused
        length = float(np.linalg.norm(arr))
    if not length < MAX_VECTOR_NORM:
        raise InvalidRequest(
            f"vector length (L2 norm) must be below {MAX_VECTOR_NORM:.3g}, so that its "
            "scores and distances fit 32-bit floats"
        )
    values: list[float] = arr.tolist()
    return values


def check_payload(value: Any, path: str = "payload", depth: int = 0) -> None:
    """Reject what JSON (and so Qdrant) cannot hold, naming the offending field."""
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_PAYLOAD_DEPTH:
        raise InvalidRequest(f"{path}: objects and arrays nest at most {MAX_PAYLOAD_DEPTH} deep")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidRequest(f"{path}: integer out of the 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"{path}: numbers must be finite")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidRequest(f"{path}: keys must be strings, got {k!r}")
            check_payload(v, f"{path}.{k}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_payload(v, f"{path}[{i}]", depth + 1)
        return
    raise InvalidRequest(f"{path}: unsupported payload type {type(value).__name__}")


@dataclass(frozen=True)
class PreparedPoint:
    point_id: PointId
    vector: list[float]
    payload: dict[str, Any]
    keywords: SparseTerms | None = None


def check_document(external_id: str, payload: Any) -> None:
    """What a point needs besides its vector: a valid id and a storable payload."""
    check_external_id(external_id)
    if not isinstance(payload, Mapping):
        raise InvalidRequest(f"payload of point {external_id!r} must be a mapping")
    if RESERVED_KEY in payload:
        raise InvalidRequest(f"payload key {RESERVED_KEY!r} is reserved")
    if "" in payload:  # as update_payload refuses it: no filter names it, nothing removes it
        raise InvalidRequest("payload keys must be non-empty strings, got ''")
    check_payload(payload)


def check_payload_update(
    ids: Sequence[str] | None,
    f: Filter | None,
    values: Mapping[str, Any] | None,
    delete_keys: Sequence[str],
) -> dict[str, Any]:
    """The checked change, for points named by ids and/or a filter, as one set-payload: the
    keys to remove set to null, which removes a top-level key. One operation applies both
    to each point at once; two let a write land between them, and the second, by a filter
    on a field the first changed, matched nothing. The external-id key is the store's own."""
    if ids is None and f is None:
        raise InvalidRequest("a payload update needs ids or a non-empty filter")
    if ids is not None:
        check_id_list(ids)
    values = dict(values or {})
    if isinstance(delete_keys, str):
        raise InvalidRequest("delete_keys must be a list of keys, not a single string")
    keys = list(dict.fromkeys(delete_keys))
    if not values and not keys:
        raise InvalidRequest("a payload update needs keys to set or to delete")
    for key in [*values, *keys]:
        if not isinstance(key, str) or not key:
            raise InvalidRequest(f"payload keys must be non-empty strings, got {key!r}")
        if key == RESERVED_KEY:
            raise InvalidRequest(f"payload key {RESERVED_KEY!r} is reserved")
    if both := sorted(set(values) & set(keys)):
        raise InvalidRequest(f"keys both set and deleted: {', '.join(both)}")
    check_payload(values)
    return {**values, **dict.fromkeys(keys)}


def prepare_points(spec: CollectionSpec, points: Sequence[PointRecord]) -> list[PreparedPoint]:
    prepared = []
    for p in points:
        if not isinstance(p, PointRecord):
            raise InvalidRequest(f"expected PointRecord, got {type(p).__name__}")
        check_document(p.id, p.payload)
        if p.keywords is not None and not spec.bm25:
            raise SettingsChanged(f"collection {spec.name!r} was created without bm25")
        prepared.append(
            PreparedPoint(
                point_id=point_id(p.id),
                vector=spec_vector(p.vector, spec),
                payload=stored_payload(p.id, p.payload),
                keywords=p.keywords,
            )
        )
    return prepared


def search_vector(
    spec: CollectionSpec,
    vector: VectorLike | None,
    keywords: SparseTerms | None,
    params: SearchParams,
) -> list[float] | None:
    """The checked dense query vector of a search by vector, keywords or both."""
    if vector is None and keywords is None:
        raise InvalidRequest("a search needs a vector, keywords or both")
    if params.diversity is not None and (vector is None or keywords is not None):
        raise InvalidRequest("diversity applies to searches by vector alone")
    if params.keyword_weight != 1.0 and (vector is None or keywords is None):
        raise InvalidRequest("keyword_weight applies to hybrid searches (a vector and keywords)")
    if keywords is not None and not spec.bm25:
        raise InvalidRequest(
            f"collection {spec.name!r} was created without bm25, so it has no keyword "
            "vectors to search"
        )
    return None if vector is None else spec_vector(vector, spec)


def recommend_params(params: SearchParams | None) -> SearchParams:
    params = search_params(params)
    if params.diversity is not None:
        raise InvalidRequest("diversity applies to searches by vector, not recommendations")
    if params.keyword_weight != 1.0:
        raise InvalidRequest("keyword_weight applies to hybrid searches, not recommendations")
    return params


def spec_vector(vector: VectorLike, spec: CollectionSpec) -> list[float]:
    """``as_vector`` for the collection of ``spec``, which must store float vectors, in
    float16's range where it stores float16 ones."""
    if spec.datatype is VectorDatatype.UINT8:
        raise InvalidRequest(
            f"collection {spec.name!r} stores uint8 vectors (it was made by another tool); "
            "the float vectors embedserve writes and searches with do not fit it: use a "
            "float32 or float16 collection"
        )
    values = as_vector(vector, spec.vector_size, spec.name)
    if spec.datatype is VectorDatatype.FLOAT16 and spec.distance is not Distance.COSINE:
        largest = max((abs(value) for value in values), default=0.0)
        if largest >= FLOAT16_INFINITE:
            raise InvalidRequest(
                f"collection {spec.name!r} stores float16 vectors, whose values are at most "
                f"65504 in size; this vector holds {largest:g}, which would be infinity: "
                "scale it down, or use a float32 collection"
            )
    return values


# Qdrant's server refuses a smaller build-time beam; held on every engine alike, so that a
# collection made on one can be copied to a server (export, then ingest).
MIN_HNSW_EF_CONSTRUCT = 4


def check_new_collection(spec: CollectionSpec) -> None:
    if spec.hnsw_ef_construct < MIN_HNSW_EF_CONSTRUCT:
        raise InvalidRequest(
            f"hnsw_ef_construct must be at least {MIN_HNSW_EF_CONSTRUCT} (as a Qdrant server "
            f"takes it), got {spec.hnsw_ef_construct}"
        )
    if spec.datatype is VectorDatatype.UINT8:
        raise InvalidRequest(
            f"collection {spec.name!r}: uint8 vectors are read back from collections made "
            "by other tools, not created here; use float32 or float16"
        )


def split_examples(
    examples: Sequence[Example], spec: CollectionSpec
) -> tuple[list[str], list[list[float]]]:
    """Separate recommendation examples into external ids and checked vectors."""
    if isinstance(examples, str):
        raise InvalidRequest("examples must be a list of ids or vectors, not a single string")
    ids: list[str] = []
    vectors: list[list[float]] = []
    for e in examples:
        if isinstance(e, str):
            ids.append(check_external_id(e))
        else:
            vectors.append(spec_vector(e, spec))
    return ids, vectors


def check_id_list(ids: Sequence[str]) -> None:
    """A lone string is a mistake, not a list of one-character ids."""
    if isinstance(ids, str):
        raise InvalidRequest("ids must be a list of strings, not a single string")


def payload_selector(params: SearchParams) -> bool | list[str]:
    """What the engine returns of each hit's payload; the external id lives there, so it
    is fetched even when the caller wants none of it."""
    if not params.with_payload:
        return [RESERVED_KEY]
    if params.payload_keys is not None:
        return [*params.payload_keys, RESERVED_KEY]
    return True


def search_params(params: SearchParams | None) -> SearchParams:
    if params is None:
        return SearchParams()
    if not isinstance(params, SearchParams):
        raise InvalidRequest(f"expected SearchParams, got {type(params).__name__}")
    return params


def check_filter(f: Filter | None) -> Filter | None:
    """The filter if it has conditions, None if it is absent or empty."""
    if f is None:
        return None
    if not isinstance(f, Filter):
        raise InvalidFilter(f"expected a Filter, got {type(f).__name__}")
    return None if f.is_empty() else f


def condition_count(f: Filter) -> int:
    """Conditions in ``f``, those of inner and nested filters included."""
    count = 0
    for c in f.conditions():
        count += 1
        if isinstance(c, Filter):
            count += condition_count(c)
        elif isinstance(c, Nested):
            count += condition_count(c.filter)
    return count


def text_match_keys(f: Filter | None) -> set[str]:
    """The payload keys of the filter's text conditions, nested ones included."""
    keys: set[str] = set()
    for c in f.conditions() if f is not None else ():
        if isinstance(c, TEXT_CONDITIONS):
            keys.add(c.key)
        elif isinstance(c, Filter):
            keys |= text_match_keys(c)
        elif isinstance(c, Nested):
            # Inside, keys are read in each object of the list: the index is on the full path.
            keys |= {f"{c.key}[].{key}" for key in text_match_keys(c.filter)}
    return keys


def require_text_indexes(spec: CollectionSpec, keys: set[str]) -> None:
    """match_text only on fields with a text index: without one, a Qdrant server matches
    substrings, case-sensitively, where every other engine matches words."""
    missing = sorted(k for k in keys if spec.payload_indexes.get(k) is not PayloadIndexKind.TEXT)
    if missing:
        raise InvalidFilter(
            f"match_text and match_text_any need a text payload index on "
            f"{', '.join(map(repr, missing))}; "
            f"collection {spec.name!r} has none there (create it with "
            f"payload_indexes {{{missing[0]!r}: 'text'}})"
        )


def check_facet(spec: CollectionSpec, key: str, limit: int) -> None:
    """A facet over a field with an index that counts values, the same on every engine
    (local mode would count fields without one)."""
    if not isinstance(key, str) or not key:
        raise InvalidRequest(f"a facet needs a payload key, got {key!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_FACET_LIMIT:
        raise InvalidRequest(f"limit must be in [1, {MAX_FACET_LIMIT}], got {limit!r}")
    kind = spec.payload_indexes.get(key)
    if kind not in FACET_INDEX_KINDS:
        has = "none" if kind is None else f"a {kind.value} one"
        raise InvalidRequest(
            f"a facet on {key!r} needs a keyword, integer or bool payload index there; "
            f"collection {spec.name!r} has {has}"
        )


_FACET_TYPES: dict[PayloadIndexKind, Callable[[Any], bool]] = {
    PayloadIndexKind.KEYWORD: lambda value: isinstance(value, str),
    PayloadIndexKind.INTEGER: lambda value: isinstance(value, int) and not isinstance(value, bool),
    PayloadIndexKind.BOOL: lambda value: isinstance(value, bool),
}


def facet_hits(hits: Sequence[Any], limit: int, kind: PayloadIndexKind) -> list[FacetHit]:
    """The engine's hits, most frequent first, ties by value, so engines agree. The
    embedded engine's index keeps values whose last holder went (count 0), and local mode
    (no indexes) counts values of every type: only the index kind's values are kept."""
    plain = [
        FacetHit(h.value, int(h.count)) for h in hits if h.count > 0 and _FACET_TYPES[kind](h.value)
    ]
    plain.sort(key=lambda h: (-h.count, str(type(h.value)), h.value))
    return plain[:limit]


def strategy_of(value: RecommendStrategy | str) -> RecommendStrategy:
    try:
        return RecommendStrategy(value)
    except ValueError:
        choices = ", ".join(s.value for s in RecommendStrategy)
        raise InvalidRequest(f"unknown strategy {value!r}; use one of {choices}") from None


def engine_cursor(cursor: str | None) -> str | int | None:
    """A scroll cursor back as the engine's point id: ours are UUIDs, and points another
    tool wrote may have unsigned 64-bit integer ids; anything else did not come from a
    previous page."""
    if not cursor:
        return None
    if cursor.isascii() and cursor.isdigit() and str(int(cursor)) == cursor:
        if int(cursor) < 2**64:
            return int(cursor)
    else:
        try:
            return str(uuid.UUID(cursor))
        except ValueError:
            pass
    raise InvalidRequest(f"cursor {cursor!r} is not one this store handed out")
