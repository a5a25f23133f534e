"""Plain data types of the vector-store layer: no engine or transport types leak out."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from .errors import InvalidFilter, InvalidRequest

# Chosen by measuring recall@10 against exact search on 20k random unit vectors of
# dimension 384, a hard case for HNSW: Qdrant's m=16/ef_construct=100 reached 0.42 at the
# default ef and 0.88 at ef=512; m=32/ef_construct=128 with ef=512 reached 0.99 at a few
# milliseconds per query. ef_construct=200 was no better and built the index ~30% slower.
DEFAULT_HNSW_M = 32
DEFAULT_HNSW_EF_CONSTRUCT = 128
DEFAULT_HNSW_EF = 512
# Segments whose vectors take less than this are searched by an exact full scan and get no
# HNSW index (Qdrant's full_scan_threshold and indexing_threshold). 100k vectors of 384
# dimensions (150 MB) scan in about 6 ms on one core, exactly, where HNSW at ef=512 took
# 10 ms at recall 0.74 and minutes of index building; past this size HNSW pays off.
DEFAULT_FULL_SCAN_THRESHOLD_KB = 160_000
# What collections stored before this setting existed were created with.
LEGACY_FULL_SCAN_THRESHOLD_KB = 10_000
# CollectionSpec's optional positive integers, besides vector_size.
TUNING_FIELDS: Final = (
    "hnsw_m",
    "hnsw_ef_construct",
    "hnsw_ef",
    "shard_number",
    "replication_factor",
    "write_consistency_factor",
    "full_scan_threshold_kb",
)

# Collection names become directory names for the embedded backend. Matched whole
# (fullmatch): re's "$" also matches before a final newline. The same pattern is in the
# HTTP API's OpenAPI document, where "$" is JSON Schema's (the end of the string).
COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
_NAME_RE = re.compile(COLLECTION_NAME_PATTERN)

# Qdrant's JSON paths into a payload: keys of letters, digits, _ and - (or "quoted"), each
# optionally followed by [] or [n] for arrays, joined by dots.
_PATH_PART = r'(?:[\w-]+|"[^"]*")(?:\[\d*\])*'
PAYLOAD_PATH = re.compile(rf"{_PATH_PART}(?:\.{_PATH_PART})*")
PAYLOAD_PATH_RULE = (
    'keys of letters, digits, _ and -, or "quoted", joined by dots, with [] or [n] for arrays'
)
# A field reached through objects only: keys of letters, digits, _ and -, joined by dots.
OBJECT_PATH = re.compile(r"[\w-]+(?:\.[\w-]+)*")


def is_path(pattern: re.Pattern[str], key: str) -> bool:
    """Whether ``key`` is a path of ``pattern`` (PAYLOAD_PATH, OBJECT_PATH) as Qdrant reads
    one: its letters are what Rust calls alphanumeric, which counts the combining marks of
    Devanagari, Arabic and other scripts (a word's vowel signs), where Python's \\w does not."""
    letters = "".join("a" if unicodedata.category(c) in ("Mn", "Mc") else c for c in key)
    return pattern.fullmatch(letters) is not None


VectorLike: TypeAlias = Sequence[float] | npt.NDArray[np.floating[Any]]
PayloadValue: TypeAlias = str | int | bool


class Distance(StrEnum):
    COSINE = "cosine"
    DOT = "dot"
    EUCLID = "euclid"
    MANHATTAN = "manhattan"


class Quantization(StrEnum):
    NONE = "none"
    SCALAR_INT8 = "scalar_int8"
    BINARY = "binary"


class VectorDatatype(StrEnum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"  # half the memory; values rounded to 16 bits
    # Integers from 0 to 255: read back from a collection made by another tool; float
    # vectors (the model's) do not fit it, so embedserve neither makes nor fills one.
    UINT8 = "uint8"


class PayloadIndexKind(StrEnum):
    KEYWORD = "keyword"
    INTEGER = "integer"
    FLOAT = "float"
    BOOL = "bool"
    TEXT = "text"
    DATETIME = "datetime"
    GEO = "geo"


class RecommendStrategy(StrEnum):
    AVERAGE_VECTOR = "average_vector"
    BEST_SCORE = "best_score"
    SUM_SCORES = "sum_scores"


def validate_collection_name(name: str, kind: str = "collection") -> str:
    """``kind`` names what the name is for in the error ("alias" names share the rule)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidRequest(
            f"invalid {kind} name {name!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "not starting with '.' or '-'"
        )
    return name


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    vector_size: int
    distance: Distance = Distance.COSINE
    on_disk: bool = False
    hnsw_m: int = DEFAULT_HNSW_M
    hnsw_ef_construct: int = DEFAULT_HNSW_EF_CONSTRUCT
    # Default ef for searches that do not set SearchParams.hnsw_ef.
    hnsw_ef: int = DEFAULT_HNSW_EF
    quantization: Quantization = Quantization.NONE
    datatype: VectorDatatype = VectorDatatype.FLOAT32
    shard_number: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1
    full_scan_threshold_kb: int = DEFAULT_FULL_SCAN_THRESHOLD_KB
    payload_indexes: Mapping[str, PayloadIndexKind] = field(default_factory=dict, hash=False)
    # Keep a BM25 sparse vector of each document's text beside its dense vector, for
    # keyword and hybrid search (see keywords.py), with this language's stop words and
    # stemmer.
    bm25: bool = False
    bm25_language: str = "english"
    # The model whose embeddings it holds: its id (for messages) and a fingerprint of its
    # files; "" where unknown (made outside the service, or before it recorded them).
    model_id: str = ""
    model_fingerprint: str = ""

    def __post_init__(self) -> None:
        validate_collection_name(self.name)
        for attr in ("vector_size", *TUNING_FIELDS):
            _positive(attr, getattr(self, attr))
        try:
            object.__setattr__(self, "distance", Distance(self.distance))
            object.__setattr__(self, "quantization", Quantization(self.quantization))
            object.__setattr__(self, "datatype", VectorDatatype(self.datatype))
            indexes = {str(k): PayloadIndexKind(v) for k, v in self.payload_indexes.items()}
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        if not isinstance(self.bm25, bool):
            raise InvalidRequest(f"bm25 must be true or false, got {self.bm25!r}")
        from .keywords import check_language  # keywords imports this module's types

        check_language(self.bm25_language)
        if self.bm25_language != "english" and not self.bm25:
            raise InvalidRequest("bm25_language applies to collections created with bm25")
        if any(not k for k in indexes):
            raise InvalidRequest("payload index field names must not be empty")
        object.__setattr__(self, "payload_indexes", indexes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vector_size": self.vector_size,
            "distance": self.distance.value,
            "on_disk": self.on_disk,
            "hnsw_m": self.hnsw_m,
            "hnsw_ef_construct": self.hnsw_ef_construct,
            "hnsw_ef": self.hnsw_ef,
            "quantization": self.quantization.value,
            "datatype": self.datatype.value,
            "shard_number": self.shard_number,
            "replication_factor": self.replication_factor,
            "write_consistency_factor": self.write_consistency_factor,
            "full_scan_threshold_kb": self.full_scan_threshold_kb,
            "payload_indexes": {k: v.value for k, v in self.payload_indexes.items()},
            "bm25": self.bm25,
            "bm25_language": self.bm25_language,
            "model_id": self.model_id,
            "model_fingerprint": self.model_fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollectionSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.setdefault("full_scan_threshold_kb", LEGACY_FULL_SCAN_THRESHOLD_KB)
        return cls(**known)


# Shards are what Qdrant spreads over nodes and moves between them; each is a folder with
# its own write-ahead log and segments on every node that holds it. 100,000 made a server
# create shard folders by the thousand; a few per node is the usual advice, and this leaves
# room for clusters of a hundred nodes and more.
MAX_SHARD_NUMBER: Final = 256


def check_layout(spec: CollectionSpec, nodes: int | None) -> None:
    """Refuse a layout that a Qdrant server would take and not honour. ``nodes``: how many
    nodes the cluster has (1 for a server out of distributed mode), None where unknown."""
    if spec.shard_number > MAX_SHARD_NUMBER:
        raise InvalidRequest(
            f"shard_number must be at most {MAX_SHARD_NUMBER}, got {spec.shard_number}"
        )
    rf, wcf = spec.replication_factor, spec.write_consistency_factor
    if nodes is not None and rf > nodes:
        # Qdrant would make fewer replicas than asked, and say nothing.
        raise InvalidRequest(
            f"replication_factor must be at most the Qdrant cluster's {nodes} node(s), each "
            f"replica of a shard being on a node of its own; got {rf}"
        )
    if wcf > rf:
        # Every write would wait for confirmations that no shard has replicas to give.
        raise InvalidRequest(
            f"write_consistency_factor must be at most replication_factor ({rf}), the "
            f"replicas a write can be confirmed by; got {wcf}"
        )


@dataclass(frozen=True)
class CollectionUpdate:
    """Changes to a collection that need no new vectors: payload indexes (one added
    indexes the points already stored; one of another kind replaces it) and the default
    search beam."""

    add_payload_indexes: Mapping[str, PayloadIndexKind] = field(default_factory=dict)
    drop_payload_indexes: tuple[str, ...] = ()
    hnsw_ef: int | None = None

    def applied_to(self, spec: CollectionSpec) -> CollectionSpec:
        """``spec`` with the changes made; InvalidRequest for one that cannot be."""
        if self.hnsw_ef is not None:  # 0 included: named as the mistake it is
            _positive("hnsw_ef", self.hnsw_ef)
        if not self.add_payload_indexes and not self.drop_payload_indexes and not self.hnsw_ef:
            raise InvalidRequest("nothing to update: add or drop payload indexes, or set hnsw_ef")
        if both := sorted(set(self.add_payload_indexes) & set(self.drop_payload_indexes)):
            raise InvalidRequest(f"payload index {both[0]!r} is both added and dropped")
        for key in self.drop_payload_indexes:
            if key not in spec.payload_indexes:
                raise InvalidRequest(f"collection {spec.name!r} has no payload index on {key!r}")
        kept = {k: v for k, v in spec.payload_indexes.items() if k not in self.drop_payload_indexes}
        return replace(
            spec,
            payload_indexes={**kept, **self.add_payload_indexes},
            hnsw_ef=self.hnsw_ef or spec.hnsw_ef,
        )

    def made_in(self, spec: CollectionSpec) -> bool:
        """Whether ``spec`` already shows every change."""
        indexes = spec.payload_indexes
        return (
            all(indexes.get(k) == v for k, v in self.add_payload_indexes.items())
            and not any(k in indexes for k in self.drop_payload_indexes)
            and self.hnsw_ef in (None, spec.hnsw_ef)
        )

    def indexes_to_drop(self, spec: CollectionSpec) -> list[str]:
        """The engine's indexes to remove first: dropped ones, and ones changing kind."""
        changed = [
            k for k, v in self.add_payload_indexes.items() if spec.payload_indexes.get(k, v) != v
        ]
        return [*self.drop_payload_indexes, *changed]

    def indexes_to_build(self, spec: CollectionSpec) -> dict[str, PayloadIndexKind]:
        return {
            k: v for k, v in self.add_payload_indexes.items() if spec.payload_indexes.get(k) != v
        }


@dataclass(frozen=True)
class CollectionInfo:
    spec: CollectionSpec
    points_count: int
    # How many vectors sit in an ANN index; None where the backend does not say.
    indexed_vectors_count: int | None = None
    # The aliases that name it (filled in by the service, not by the stores).
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class SparseTerms:
    """A sparse vector: term ids (hashes) and their weights, ids in increasing order."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise InvalidRequest("a sparse vector needs as many values as indices")


@dataclass(frozen=True)
class PointRecord:
    """A point to write: the caller's string id, its vector and a JSON-like payload;
    ``keywords``, the BM25 terms of its text, for collections created with ``bm25``."""

    id: str
    vector: VectorLike
    payload: Mapping[str, Any] = field(default_factory=dict)
    keywords: SparseTerms | None = None


Document = PointRecord


# ---------------------------------------------------------------------------- filters


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidFilter(f"condition key must be a non-empty string, got {key!r}")
    # Checked here so that every engine refuses a bad path alike (local mode's own
    # message did not name it).
    if not is_path(PAYLOAD_PATH, key):
        raise InvalidFilter(f"condition key {key!r} is no payload path ({PAYLOAD_PATH_RULE})")


def _is_match_value(value: object) -> bool:
    return isinstance(value, str | int)  # bool is an int


@dataclass(frozen=True)
class MatchValue:
    key: str
    value: PayloadValue

    def __post_init__(self) -> None:
        _check_key(self.key)
        if not _is_match_value(self.value):
            raise InvalidFilter(
                f"MatchValue({self.key!r}) needs a str, int or bool, "
                f"got {type(self.value).__name__}; use Range for floats"
            )


@dataclass(frozen=True)
class MatchAny:
    key: str
    values: tuple[str, ...] | tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _match_values(self, self.values))


@dataclass(frozen=True)
class MatchExcept:
    """The value at ``key`` is none of ``values`` (of a list, one item at least is none of
    them); a key with no value (missing, null, ``[]``) does not match."""

    key: str
    values: tuple[str, ...] | tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _match_values(self, self.values))


def _match_values(
    condition: MatchAny | MatchExcept, values: object
) -> tuple[str, ...] | tuple[int, ...]:
    name = f"{type(condition).__name__}({condition.key!r})"
    _check_key(condition.key)
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidFilter(f"{name} needs a sequence of values")
    checked = tuple(values)
    all_str = all(isinstance(v, str) for v in checked)
    all_int = all(isinstance(v, int) and not isinstance(v, bool) for v in checked)
    if not checked or not (all_str or all_int):
        raise InvalidFilter(f"{name} needs a non-empty list of only strings or only integers")
    return checked


@dataclass(frozen=True)
class MatchText:
    """The text at ``key`` holds every word of ``text`` (lowercased, not stemmed)."""

    key: str
    text: str

    def __post_init__(self) -> None:
        _check_words(self)


@dataclass(frozen=True)
class MatchTextAny:
    """The text at ``key`` holds at least one word of ``text`` (as MatchText reads words)."""

    key: str
    text: str

    def __post_init__(self) -> None:
        _check_words(self)


def _check_words(condition: MatchText | MatchTextAny) -> None:
    _check_key(condition.key)
    if not isinstance(condition.text, str) or not condition.text.strip():
        raise InvalidFilter(
            f"{type(condition).__name__}({condition.key!r}) needs a text with at least one word"
        )


# Text conditions: a Qdrant server without a text index on their key matches substrings.
TEXT_CONDITIONS = (MatchText, MatchTextAny)


@dataclass(frozen=True)
class Range:
    key: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def __post_init__(self) -> None:
        _check_key(self.key)
        bounds = (self.gt, self.gte, self.lt, self.lte)
        if all(b is None for b in bounds):
            raise InvalidFilter(f"Range({self.key!r}) needs at least one bound")
        for b in bounds:
            if b is not None and (
                isinstance(b, bool) or not isinstance(b, int | float) or math.isnan(b)
            ):
                raise InvalidFilter(f"Range({self.key!r}) bounds must be numbers, got {b!r}")
        _keep_tighter_bounds(self, lambda bound: bound)


def _keep_tighter_bounds(bounds: Range | DatetimeRange, value: Callable[[Any], Any]) -> None:
    """One lower and one upper bound, the tighter where both kinds are given (gt and gte):
    an engine's index keeps one of them, whichever it prefers, and would match more than
    a scan of the same filter (or a delete by it)."""
    for strict, inclusive in (("gt", "gte"), ("lt", "lte")):
        first, second = getattr(bounds, strict), getattr(bounds, inclusive)
        if first is None or second is None:
            continue
        inclusive_tighter = (
            value(second) > value(first) if strict == "gt" else value(second) < value(first)
        )
        object.__setattr__(bounds, strict if inclusive_tighter else inclusive, None)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# The forms the engines read in stored values: a date, with a time to the minute, or to
# the second (a fraction, an offset). Python reads more (week dates, "20261201T1000"),
# and a bound in a form no stored value can take is a mistake.
_DATETIME_FORM = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?)?"
)


def parse_datetime(text: str) -> datetime:
    """An RFC 3339 date and time ("2026-12-01T10:00:00Z", "...+02:00"), a date
    ("2026-12-01") or a time without an offset (read as UTC, as Qdrant reads it), in UTC."""
    try:
        if not _DATETIME_FORM.fullmatch(text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidFilter(
            f"{text!r} is no date and time; use RFC 3339, such as 2026-12-01T10:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def datetime_text(moment: datetime) -> str:
    """RFC 3339 in UTC to the microsecond (strftime's %Y would not pad years before 1000)."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def datetime_of_micros(micros: int) -> str:
    """The text of an engine's datetime value (microseconds since 1970 in UTC)."""
    return datetime_text(_EPOCH + timedelta(microseconds=micros))


@dataclass(frozen=True)
class DatetimeRange:
    """A date and time field within bounds, each a text ``parse_datetime`` reads; they are
    kept in one form, UTC to the microsecond, that every engine reads alike."""

    key: str
    gt: str | None = None
    gte: str | None = None
    lt: str | None = None
    lte: str | None = None

    def __post_init__(self) -> None:
        _check_key(self.key)
        if not self.bounds():
            raise InvalidFilter(f"DatetimeRange({self.key!r}) needs at least one bound")
        for name, bound in self.bounds().items():
            try:
                moment = parse_datetime(bound)
            except InvalidFilter as exc:
                raise InvalidFilter(f"DatetimeRange({self.key!r}).{name}: {exc}") from None
            object.__setattr__(self, name, datetime_text(moment))
        _keep_tighter_bounds(self, parse_datetime)

    def bounds(self) -> dict[str, str]:
        """The bounds set, by name (gt, gte, lt, lte)."""
        named = {"gt": self.gt, "gte": self.gte, "lt": self.lt, "lte": self.lte}
        return {name: bound for name, bound in named.items() if bound is not None}


def _check_degrees(name: str, value: object, most: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not -most <= value <= most:
        raise InvalidFilter(f"{name} must be a number from {-most:g} to {most:g}, got {value!r}")


@dataclass(frozen=True)
class GeoPoint:
    """A place on Earth in degrees (WGS 84). Stored in a payload as ``{"lat": ..., "lon":
    ...}``, the form Qdrant's geo filters and indexes read (or a list of such objects)."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        _check_degrees("lat", self.lat, 90)
        _check_degrees("lon", self.lon, 180)


@dataclass(frozen=True)
class GeoRadius:
    """The place at ``key`` lies within ``radius_m`` metres of ``center``."""

    key: str
    center: GeoPoint
    radius_m: float

    def __post_init__(self) -> None:
        _check_key(self.key)
        if not isinstance(self.center, GeoPoint):
            raise InvalidFilter(f"GeoRadius({self.key!r}) needs a center point")
        r = self.radius_m
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0 < r < math.inf:
            raise InvalidFilter(f"GeoRadius({self.key!r}).radius_m must be above 0, got {r!r}")


@dataclass(frozen=True)
class GeoBoundingBox:
    """The place at ``key`` lies within the box from ``top_left`` (north-west) to
    ``bottom_right`` (south-east)."""

    key: str
    top_left: GeoPoint
    bottom_right: GeoPoint

    def __post_init__(self) -> None:
        _check_key(self.key)
        if not (isinstance(self.top_left, GeoPoint) and isinstance(self.bottom_right, GeoPoint)):
            raise InvalidFilter(f"GeoBoundingBox({self.key!r}) needs top_left and bottom_right")
        if self.top_left.lat < self.bottom_right.lat:
            raise InvalidFilter(
                f"GeoBoundingBox({self.key!r}): top_left (lat {self.top_left.lat}) must not be "
                f"south of bottom_right (lat {self.bottom_right.lat})"
            )


@dataclass(frozen=True)
class GeoPolygon:
    """The place at ``key`` lies within the polygon ``exterior`` and outside each of
    ``interiors`` (holes). Each ring takes 3 or more corners; it is closed here (its first
    corner repeated at its end) when it is not already."""

    key: str
    exterior: tuple[GeoPoint, ...]
    interiors: tuple[tuple[GeoPoint, ...], ...] = ()

    def __post_init__(self) -> None:
        _check_key(self.key)
        object.__setattr__(self, "exterior", self._ring(self.exterior, "exterior"))
        if isinstance(self.interiors, str) or not isinstance(self.interiors, Sequence):
            raise InvalidFilter(f"GeoPolygon({self.key!r}).interiors must be a list of rings")
        holes = tuple(
            self._ring(ring, f"interiors[{number}]") for number, ring in enumerate(self.interiors)
        )
        object.__setattr__(self, "interiors", holes)

    def _ring(self, ring: object, where: str) -> tuple[GeoPoint, ...]:
        if not isinstance(ring, Sequence) or not all(isinstance(p, GeoPoint) for p in ring):
            raise InvalidFilter(f"GeoPolygon({self.key!r}).{where} must be a list of points")
        corners = tuple(ring)
        if len(corners) > 1 and corners[0] == corners[-1]:
            corners = corners[:-1]
        if len(set(corners)) < 3:
            raise InvalidFilter(
                f"GeoPolygon({self.key!r}).{where} needs 3 or more different corners, "
                f"got {len(set(corners))}"
            )
        return (*corners, corners[0])


@dataclass(frozen=True)
class IsNull:
    """Matches points whose payload has the key set to null."""

    key: str

    def __post_init__(self) -> None:
        _check_key(self.key)


@dataclass(frozen=True)
class IsEmpty:
    """Matches points with no value at the key: the key missing, null or an empty list."""

    key: str

    def __post_init__(self) -> None:
        _check_key(self.key)


@dataclass(frozen=True)
class HasId:
    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.ids, str) or not isinstance(self.ids, Sequence):
            raise InvalidFilter("HasId needs a sequence of ids")
        ids = tuple(self.ids)
        if not all(isinstance(i, str) and i for i in ids):
            raise InvalidFilter("HasId ids must be non-empty strings")
        object.__setattr__(self, "ids", ids)


@dataclass(frozen=True)
class ValuesCount:
    """The number of values at ``key`` (a list's length, 1 for one value, 0 when missing,
    null or ``[]``) lies within the bounds given."""

    key: str
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None

    def __post_init__(self) -> None:
        _check_key(self.key)
        bounds = (self.gt, self.gte, self.lt, self.lte)
        if all(b is None for b in bounds):
            raise InvalidFilter(f"ValuesCount({self.key!r}) needs at least one bound")
        for b in bounds:
            if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 0):
                raise InvalidFilter(
                    f"ValuesCount({self.key!r}) bounds must be counts (integers from 0), got {b!r}"
                )

    def admits_zero(self) -> bool:
        """Whether a key with no values (missing, null, an empty list) meets the bounds."""
        return (
            self.gt is None
            and (self.gte is None or self.gte <= 0)
            and (self.lt is None or self.lt > 0)
            and (self.lte is None or self.lte >= 0)
        )


@dataclass(frozen=True)
class Nested:
    """``key`` holds a list of objects and one of them, alone, matches ``filter``, whose
    keys are read inside each object."""

    key: str
    filter: Filter

    def __post_init__(self) -> None:
        _check_key(self.key)
        if not isinstance(self.filter, Filter) or self.filter.is_empty():
            raise InvalidFilter(f"Nested({self.key!r}) needs a filter with conditions")
        if _has_id_inside(self.filter):
            # Ids name points, not the objects of a list: Qdrant refuses it there.
            raise InvalidFilter(
                f"Nested({self.key!r}): has_id cannot be used inside a nested filter"
            )


@dataclass(frozen=True)
class MinShould:
    """At least ``min_count`` of ``conditions``."""

    conditions: tuple[Condition, ...]
    min_count: int

    def __post_init__(self) -> None:
        conditions = _conditions(self.conditions, "MinShould.conditions")
        object.__setattr__(self, "conditions", conditions)
        count = self.min_count
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 1 <= count <= len(conditions)
        ):
            raise InvalidFilter(
                f"MinShould.min_count must be from 1 to its {len(conditions)} conditions, "
                f"got {count!r}"
            )


Condition: TypeAlias = (
    "MatchValue | MatchAny | MatchExcept | MatchText | MatchTextAny | Range | DatetimeRange"
    " | GeoRadius | GeoBoundingBox | GeoPolygon | IsNull | IsEmpty | HasId | ValuesCount"
    " | Nested | Filter"
)
_CONDITION_TYPES = (
    MatchValue,
    MatchAny,
    MatchExcept,
    MatchText,
    MatchTextAny,
    Range,
    DatetimeRange,
    GeoRadius,
    GeoBoundingBox,
    GeoPolygon,
    IsNull,
    IsEmpty,
    HasId,
    ValuesCount,
    Nested,
)


def _conditions(conditions: object, where: str) -> tuple[Condition, ...]:
    if not isinstance(conditions, Sequence):
        raise InvalidFilter(f"{where} must be a sequence of conditions")
    for c in conditions:
        if not isinstance(c, (*_CONDITION_TYPES, Filter)):
            raise InvalidFilter(f"unsupported filter condition: {c!r}")
        if isinstance(c, Filter) and c.is_empty():
            # It matches every point (none under must_not): a delete "by filter" holding
            # one would remove everything past the guard that an empty filter meets.
            raise InvalidFilter(f"{where} holds an empty filter, which matches every point")
    return tuple(conditions)


@dataclass(frozen=True)
class Filter:
    """All of ``must``, at least one of ``should`` (if any), none of ``must_not``, and at
    least ``min_should.min_count`` of ``min_should.conditions`` (if set)."""

    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()
    min_should: MinShould | None = None

    def __post_init__(self) -> None:
        for part in ("must", "should", "must_not"):
            object.__setattr__(self, part, _conditions(getattr(self, part), f"Filter.{part}"))
        if self.min_should is not None and not isinstance(self.min_should, MinShould):
            raise InvalidFilter(f"Filter.min_should must be a MinShould, got {self.min_should!r}")

    def is_empty(self) -> bool:
        return not (self.must or self.should or self.must_not or self.min_should)

    def conditions(self) -> tuple[Condition, ...]:
        """Every condition at this level, min_should's included."""
        extra = self.min_should.conditions if self.min_should is not None else ()
        return (*self.must, *self.should, *self.must_not, *extra)


def _has_id_inside(f: Filter) -> bool:
    return any(
        isinstance(c, HasId) or (isinstance(c, Filter) and _has_id_inside(c))
        for c in f.conditions()
    )


# ---------------------------------------------------------------------------- queries

_READ_CONSISTENCY = ("all", "majority", "quorum")


@dataclass(frozen=True)
class SearchParams:
    limit: int = 10
    offset: int = 0
    score_threshold: float | None = None
    with_payload: bool = True
    with_vectors: bool = False
    exact: bool = False
    hnsw_ef: int | None = None
    # Server clusters only: "all", "majority", "quorum" or a replica count as digits.
    read_consistency: str | None = None
    # Searches by vector only: maximal marginal relevance. The nearest
    # ``diversity_candidates`` (default: 100, or limit + offset if more) are re-ranked so
    # that each next hit is also unlike the hits before it: 0 keeps the order of
    # relevance, 1 weighs unlikeness alone. Scores stay the similarities to the query.
    diversity: float | None = None
    diversity_candidates: int | None = None
    # Only these top-level payload keys in the hits (None: all of them).
    payload_keys: tuple[str, ...] | None = None
    # Hybrid searches only: how much the keyword ranking counts against the dense one.
    # Qdrant's weighted reciprocal rank fusion: rank r (from 0) of the keyword list
    # scores as rank (r + 1) / keyword_weight - 1 of the dense list would.
    keyword_weight: float = 1.0
    # Quantized collections only: candidates read by the quantized vectors, as a multiple
    # of limit + offset, then scored again with the float vectors (None: the default
    # for the collection's quantization).
    oversampling: float | None = None
    # Hybrid searches only: candidates each ranking contributes to the fusion (None: 100,
    # or limit + offset if more). Pinned by stable_page, which reads past the page asked
    # for to finish a run of ties at its end, so that reading deeper fuses no deeper.
    fusion_depth: int | None = None

    def __post_init__(self) -> None:
        _positive("limit", self.limit)
        o = self.oversampling
        if o is not None and (
            isinstance(o, bool) or not isinstance(o, int | float) or not 1 <= o <= MAX_OVERSAMPLING
        ):
            raise InvalidRequest(f"oversampling must be from 1 to {MAX_OVERSAMPLING}, got {o!r}")
        if self.payload_keys is not None:
            keys = self.payload_keys
            if isinstance(keys, str) or not all(isinstance(k, str) and k for k in keys):
                raise InvalidRequest("payload_keys must be a list of non-empty strings")
            for key in keys:
                if not is_path(PAYLOAD_PATH, key):
                    raise InvalidRequest(
                        f"payload_keys: {key!r} is no payload path ({PAYLOAD_PATH_RULE})"
                    )
            object.__setattr__(self, "payload_keys", tuple(keys))
        w = self.keyword_weight
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w <= MAX_KEYWORD_WEIGHT:
            raise InvalidRequest(
                f"keyword_weight must be above 0 and at most {MAX_KEYWORD_WEIGHT}, got {w!r}"
            )
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise InvalidRequest(f"offset must be a non-negative integer, got {self.offset!r}")
        _check_diversity(self)  # after limit and offset, which it adds
        if self.hnsw_ef is not None:
            _positive("hnsw_ef", self.hnsw_ef)
        if self.fusion_depth is not None:
            _positive("fusion_depth", self.fusion_depth)
        t = self.score_threshold
        if t is not None and (
            isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t)
        ):  # NaN compares false with every score: the search would find nothing
            raise InvalidRequest(f"score_threshold must be a finite number, got {t!r}")
        rc = self.read_consistency
        # isdigit() alone accepts digits such as '²' that int() rejects.
        count = rc is not None and rc.isascii() and rc.isdigit() and int(rc) > 0
        if rc is not None and not (rc in _READ_CONSISTENCY or count):
            raise InvalidRequest(
                f"read_consistency must be one of {_READ_CONSISTENCY} or a positive integer, "
                f"got {rc!r}"
            )


MIN_DIVERSITY_CANDIDATES = 100
# Qdrant's own cap: the re-ranking compares every pair of candidates (memory grows with
# their square; 100,000 took a store past 20 GB).
MAX_DIVERSITY_CANDIDATES = 16_384
# It picks its results one by one, each compared with every candidate: its time grows with
# their product (on 2 cores 1,000 results of 4,096 candidates took 10 s, and 9,000 of
# 16,384 eleven minutes, the embedded store's one worker busy all along).
MAX_DIVERSITY_WORK = 4_096 * 1_024
MAX_OVERSAMPLING = 100.0
MAX_KEYWORD_WEIGHT = 100.0


def _check_diversity(params: SearchParams) -> None:
    d, candidates = params.diversity, params.diversity_candidates
    if d is not None and (
        isinstance(d, bool) or not isinstance(d, int | float) or not 0.0 <= d <= 1.0
    ):
        raise InvalidRequest(f"diversity must be a number from 0 to 1, got {d!r}")
    if candidates is not None:
        if d is None:
            raise InvalidRequest("diversity_candidates applies to searches with a diversity")
        _positive("diversity_candidates", candidates)
        if candidates > MAX_DIVERSITY_CANDIDATES:
            raise InvalidRequest(
                f"diversity_candidates ({candidates}) must be at most {MAX_DIVERSITY_CANDIDATES}"
            )
        if candidates < params.limit + params.offset:
            raise InvalidRequest(
                f"diversity_candidates ({candidates}) must be at least limit + offset "
                f"({params.limit + params.offset})"
            )
    if d is not None:
        _check_diversity_work(params)


def _check_diversity_work(params: SearchParams) -> None:
    results, candidates = params.limit + params.offset, diversity_candidates(params)
    if results * candidates > MAX_DIVERSITY_WORK:
        raise InvalidRequest(
            f"a diverse search compares each of its limit + offset results ({results}) with "
            f"each of its {candidates} candidates: their product must be at most "
            f"{MAX_DIVERSITY_WORK:,} (1,024 results of 4,096 candidates, 256 of 16,384)"
        )


def diversity_candidates(params: SearchParams) -> int:
    """How many of the nearest points a diverse search re-ranks."""
    if params.diversity_candidates is not None:
        return params.diversity_candidates
    return max(MIN_DIVERSITY_CANDIDATES, params.limit + params.offset)


Example: TypeAlias = str | VectorLike
"""A recommendation example: a stored point's external id, or a raw vector."""


@dataclass(frozen=True)
class ScoredPoint:
    """A search hit. Payload and vector are None unless asked for; cosine collections
    store (and so return) vectors normalised to unit length."""

    id: str
    score: float
    payload: dict[str, Any] | None = None
    vector: list[float] | None = None


@dataclass(frozen=True)
class Record:
    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None


@dataclass(frozen=True)
class FacetHit:
    """One value of a payload field and how many points hold it."""

    value: PayloadValue
    count: int


# Payload indexes that can count their values (Qdrant facets on these only).
FACET_INDEX_KINDS = frozenset(
    {PayloadIndexKind.KEYWORD, PayloadIndexKind.INTEGER, PayloadIndexKind.BOOL}
)
MAX_FACET_LIMIT = 10_000

MAX_SCROLL_LIMIT = 10_000


@dataclass(frozen=True)
class ScrollPage:
    """One page of a scroll; ``next_cursor`` is None after the last page.

    The cursor is opaque to callers: the engine's id of the first point of the next page.
    """

    records: list[Record]
    next_cursor: str | None


def check_scroll_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_SCROLL_LIMIT:
        raise InvalidRequest(f"limit must be in [1, {MAX_SCROLL_LIMIT}], got {limit}")
    return limit
