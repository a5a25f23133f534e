"""Transport-free vector-store layer: one protocol, an embedded and a server backend.

>>> from embedserve.connectors import open_store, CollectionSpec, PointRecord, StoreSettings
>>> store = open_store(StoreSettings(data_dir="/var/lib/embedserve"))   # embedded engine
>>> store.create_collection(CollectionSpec("docs", vector_size=384))
"""

from typing import TYPE_CHECKING, Any

from .edge import EdgeStore
from .errors import (
    AliasNotFound,
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    EngineFailure,
    InvalidFilter,
    InvalidRequest,
    NameIsAlias,
    PointNotFound,
    SettingsChanged,
    StoreClosed,
    StoreError,
    StoreFull,
    StoreLocked,
    StoreRefused,
    StoreUnavailable,
    TransientStoreError,
)
from .factory import open_store
from .groups import GroupBy, HitGroup, search_groups
from .ids import RESERVED_KEY, point_id
from .keywords import document_terms, query_terms
from .ordered_scroll import ScrollOrder, order_index, ordered_page
from .retry import RetryingStore, RetryPolicy, call_with_retry
from .settings import StoreSettings
from .store import VectorStore
from .types import (
    DEFAULT_HNSW_EF,
    DEFAULT_HNSW_EF_CONSTRUCT,
    DEFAULT_HNSW_M,
    CollectionInfo,
    CollectionSpec,
    CollectionUpdate,
    Condition,
    DatetimeRange,
    Distance,
    Document,
    Example,
    FacetHit,
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
    MinShould,
    Nested,
    PayloadIndexKind,
    PointRecord,
    Quantization,
    Range,
    RecommendStrategy,
    Record,
    ScoredPoint,
    ScrollPage,
    SearchParams,
    SparseTerms,
    ValuesCount,
    VectorDatatype,
)

if TYPE_CHECKING:
    from .remote import RemoteStore


def __getattr__(name: str) -> Any:
    # qdrant-client takes seconds to import; only the server backend needs it.
    if name == "RemoteStore":
        from .remote import RemoteStore

        return RemoteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_HNSW_EF",
    "DEFAULT_HNSW_EF_CONSTRUCT",
    "DEFAULT_HNSW_M",
    "RESERVED_KEY",
    "AliasNotFound",
    "CollectionExists",
    "CollectionInfo",
    "CollectionNotFound",
    "CollectionSpec",
    "CollectionUpdate",
    "Condition",
    "DatetimeRange",
    "DimensionMismatch",
    "Distance",
    "Document",
    "EdgeStore",
    "EngineFailure",
    "Example",
    "FacetHit",
    "Filter",
    "GeoBoundingBox",
    "GeoPoint",
    "GeoPolygon",
    "GeoRadius",
    "GroupBy",
    "HasId",
    "HitGroup",
    "InvalidFilter",
    "InvalidRequest",
    "IsEmpty",
    "IsNull",
    "MatchAny",
    "MatchExcept",
    "MatchText",
    "MatchTextAny",
    "MatchValue",
    "MinShould",
    "NameIsAlias",
    "Nested",
    "PayloadIndexKind",
    "PointNotFound",
    "PointRecord",
    "Quantization",
    "Range",
    "RecommendStrategy",
    "Record",
    "RemoteStore",
    "RetryPolicy",
    "RetryingStore",
    "ScoredPoint",
    "ScrollOrder",
    "ScrollPage",
    "SearchParams",
    "SettingsChanged",
    "SparseTerms",
    "StoreClosed",
    "StoreError",
    "StoreFull",
    "StoreLocked",
    "StoreRefused",
    "StoreSettings",
    "StoreUnavailable",
    "TransientStoreError",
    "ValuesCount",
    "VectorDatatype",
    "VectorStore",
    "call_with_retry",
    "document_terms",
    "open_store",
    "order_index",
    "ordered_page",
    "point_id",
    "query_terms",
    "search_groups",
]
