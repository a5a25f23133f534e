"""Request bodies of the HTTP API (pydantic models, so /openapi.json documents them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema, field_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from embedserve.connectors import weighing
from embedserve.connectors.groups import DEFAULT_GROUP_SIZE, MAX_GROUP_SIZE
from embedserve.connectors.keywords import LANGUAGES
from embedserve.connectors.types import (
    COLLECTION_NAME_PATTERN,
    MAX_SCROLL_LIMIT,
    CollectionSpec,
    SearchParams,
)
from embedserve.server.batcher import Priority
from embedserve.server.embedder import EmbedParams, Task
from embedserve.server.model_spec import PoolingMode
from embedserve.server.search_rerank import DEFAULT_CANDIDATES as RERANK_CANDIDATES
from embedserve.server.search_rerank import MAX_CANDIDATES as MAX_RERANK_CANDIDATES
from embedserve.server.tokenization import Overflow
from embedserve.server.vectors import SCROLL_PAGE

# The gRPC fields these mirror are uint32: JSON's integers are not bounded.
U32_MAX = 2**32 - 1
U32 = Annotated[int, Field(ge=0, le=U32_MAX)]
PositiveU32 = Annotated[int, Field(ge=1, le=U32_MAX)]


def integers(minimum: int, maximum: int = U32_MAX) -> WithJsonSchema:
    """The range an integer is documented in, where the core checks a narrower one than its
    type's (pydantic validates the type as it was: the core's checks and messages stay)."""
    return WithJsonSchema({"type": "integer", "minimum": minimum, "maximum": maximum})


def default(value: JsonValue) -> JsonDict:
    """A field's json_schema_extra: the value the server takes for it when it is unset
    (null in the model, so that the core's own default applies)."""
    return {"default": value}


# The core refuses 0 (the store's "must be a positive integer"; gRPC's unset is absent).
PositiveSetting = Annotated[U32, integers(1)]
TaskName = Literal["query", "document", "none"]
PoolingName = Literal["mean", "cls", "last_token"]
OverflowName = Literal["truncate_right", "truncate_left", "error", "chunk"]
PriorityName = Literal["interactive", "bulk"]
_PRIORITY = (
    "the queue the inputs wait in: interactive runs before queued bulk work; "
    "default: bulk for documents written, interactive otherwise"
)
PrecisionName = Literal["float32", "int8", "uint8", "binary", "ubinary"]
IndexKind = Literal["keyword", "integer", "float", "bool", "text", "datetime", "geo"]


# Rules the core checks, stated in the OpenAPI document as well (json_schema_extra
# documents without validating: the core's checks and messages stay the only ones).
TEXT: JsonDict = {"minLength": 1}  # JSON Schema applies it to strings only: null stays valid
TEXT_ITEM: JsonDict = {"type": "string", "minLength": 1}
TEXTS: JsonDict = {"minItems": 1, "items": TEXT_ITEM}
NOT_EMPTY: JsonDict = {"minItems": 1}
TOKENS: JsonDict = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
NAME: JsonDict = {"pattern": COLLECTION_NAME_PATTERN}
CollectionName = Annotated[str, Path(description="a collection's name", json_schema_extra=NAME)]


def exactly_one(*fields: str, types: dict[str, str]) -> JsonDict:
    """JSON Schema for "exactly one of ``fields`` set": a branch per field, each needing
    that field with a value of its type (so that an explicit null does not count)."""
    branches: list[JsonValue] = [
        {"required": [field], "properties": {field: {"type": types[field]}}} for field in fields
    ]
    return {"oneOf": branches}


class Body(BaseModel):
    # A misspelt option is the caller's mistake: say so instead of ignoring it. Values
    # are taken as the document types them (strict): 0 is no boolean, "4" and 4.0 are no
    # integers; an integer is a number.
    model_config = ConfigDict(extra="forbid", strict=True)


class EmbedOptions(Body):
    """embedserve's embedding options; every field optional (the model's own defaults)."""

    task: TaskName | None = Field(default=None, description="picks the model's prompt for the task")
    prompt: str | None = Field(
        default=None, description="a free prompt string, instead of the task's"
    )
    dimensions: PositiveU32 | None = Field(default=None, description="Matryoshka truncation")
    pooling: PoolingName | None = None
    normalize: bool | None = None
    overflow: OverflowName | None = Field(
        default=None, description="what to do past the model's maximum"
    )
    priority: PriorityName | None = Field(default=None, description=_PRIORITY)

    def params(self, default_task: Task = Task.DEFAULT) -> EmbedParams:
        task = Task(self.task) if self.task else default_task
        if self.task is None and self.prompt is not None:
            task = Task.DEFAULT  # an explicit prompt wins over a default task
        return EmbedParams(
            task=task,
            prompt=self.prompt,
            dimensions=self.dimensions,
            pooling=PoolingMode(self.pooling) if self.pooling else None,
            normalize=self.normalize,
            overflow=Overflow(self.overflow) if self.overflow else Overflow.TRUNCATE_RIGHT,
            priority=Priority[self.priority.upper()] if self.priority else None,
        )


class OpenAIEmbeddingRequest(Body):
    """OpenAI's embeddings request, plus embedserve's options as extra fields."""

    input: str | list[str] | list[int] | list[list[int]] = Field(
        description=(
            "a text, a list of texts, or (with --openai-token-ids model) a list of the served "
            "model's token ids, or a list of such lists"
        ),
        json_schema_extra={
            "anyOf": [
                TEXT_ITEM,
                {"type": "array", **TEXTS},
                TOKENS,
                {"type": "array", "minItems": 1, "items": TOKENS},
            ]
        },
    )

    @field_validator("input", mode="before")
    @classmethod
    def _one_input_error(cls, value: Any) -> Any:
        # pydantic would report one problem per member of the union, the first of them
        # about the wrong member; name the first wrong item instead.
        if (problem := input_problem(value)) is not None:
            raise PydanticCustomError("input_shape", problem + "; " + INPUT_SHAPES)
        return value

    model: str | None = Field(
        default=None, description="the served model's id (see GET /v1/models)"
    )
    dimensions: PositiveU32 | None = None
    # null is unset, as OpenAI reads it (LiteLLM sends it whenever its caller sets none).
    encoding_format: Literal["float", "base64"] | None = "float"
    user: str | None = Field(default=None, description="accepted and ignored")
    task: TaskName | None = None
    prompt: str | None = None
    pooling: PoolingName | None = None
    normalize: bool | None = None
    overflow: OverflowName | None = None
    priority: PriorityName | None = Field(default=None, description=_PRIORITY)

    def options(self) -> EmbedOptions:
        return EmbedOptions(
            task=self.task,
            prompt=self.prompt,
            dimensions=self.dimensions,
            pooling=self.pooling,
            normalize=self.normalize,
            overflow=self.overflow,
            priority=self.priority,
        )


class EmbedTokensRequest(Body):
    inputs: list[str] = Field(json_schema_extra=TEXTS)
    options: EmbedOptions = EmbedOptions()


class EmbedRequest(EmbedTokensRequest):
    precision: PrecisionName = Field(
        default="float32",
        description="float32 (values), or each vector in fewer bits (quantized): int8 "
        "(scaled to -127..127 by its largest value), uint8 (int8 + 128), binary or ubinary "
        "(sign bits, eight dimensions to a byte)",
    )


class EmbedStreamLine(EmbedRequest):
    """One NDJSON line of an embed stream: a request of texts, answered in order."""

    request_id: str = Field(
        default="", description="echoed in its answer; default: the line number"
    )


class TokenizeRequest(Body):
    inputs: list[str] = Field(json_schema_extra=TEXTS)
    task: TaskName | None = None
    prompt: str | None = None


class Pair(Body):
    a: str = Field(json_schema_extra=TEXT)
    b: str = Field(json_schema_extra=TEXT)


class QueryCandidates(Body):
    query: str = Field(json_schema_extra=TEXT)
    candidates: list[str] = Field(json_schema_extra=TEXTS)


class SimilarityRequest(Body):
    """Exactly one of ``pairs`` or ``query_candidates``."""

    model_config = ConfigDict(
        json_schema_extra=exactly_one(
            "pairs", "query_candidates", types={"pairs": "array", "query_candidates": "object"}
        )
    )
    pairs: list[Pair] | None = Field(default=None, json_schema_extra=NOT_EMPTY)
    query_candidates: QueryCandidates | None = None
    options: EmbedOptions = EmbedOptions()


# Checked by the store (keywords.check_language), with its message; "" is the default, as
# over gRPC.
Bm25Language = Annotated[str, WithJsonSchema({"type": "string", "enum": ["", *LANGUAGES]})]


class CollectionConfig(Body):
    dimensions: PositiveU32 | None = Field(default=None, description="default: the model's width")
    distance: Literal["cosine", "dot", "euclid", "manhattan"] | None = Field(
        default=None, description="default: the one matching the model's similarity function"
    )
    on_disk: bool = False
    quantization: Literal["none", "scalar_int8", "binary"] = "none"
    vector_datatype: Literal["float32", "float16"] = Field(
        default="float32", description="float16: half the memory, values rounded to 16 bits"
    )
    payload_indexes: dict[str, IndexKind] = {}
    hnsw_m: PositiveSetting | None = Field(
        default=None, json_schema_extra=default(CollectionSpec.hnsw_m)
    )
    hnsw_ef_construct: PositiveSetting | None = Field(
        default=None, json_schema_extra=default(CollectionSpec.hnsw_ef_construct)
    )
    hnsw_ef: PositiveSetting | None = Field(
        default=None,
        description="the search beam of searches that do not set one",
        json_schema_extra=default(CollectionSpec.hnsw_ef),
    )
    shard_number: PositiveSetting | None = Field(
        default=None, description="default: the server's cluster layout settings"
    )
    replication_factor: PositiveSetting | None = Field(
        default=None, description="default: the server's cluster layout settings"
    )
    write_consistency_factor: PositiveSetting | None = Field(
        default=None, description="default: the server's cluster layout settings"
    )
    full_scan_threshold_kb: PositiveSetting | None = Field(
        default=None,
        description="segments smaller than this are searched by an exact scan, unindexed",
        json_schema_extra=default(CollectionSpec.full_scan_threshold_kb),
    )
    bm25: bool = Field(
        default=False,
        description="also keep a BM25 keyword vector of each text, for keyword and hybrid search",
    )
    bm25_language: Bm25Language = Field(
        default="english",
        description='the language of the BM25 stop words and stemmer ("": english); one '
        "other than english needs bm25",
    )


class CreateCollectionRequest(Body):
    name: str = Field(json_schema_extra=NAME)
    config: CollectionConfig = CollectionConfig()


class UpdateCollectionRequest(Body):
    add_payload_indexes: dict[str, IndexKind] = Field(
        default_factory=dict,
        description="fields to index, by kind (indexes the documents already stored)",
    )
    drop_payload_indexes: list[str] = Field(default_factory=list, description="indexes to remove")
    hnsw_ef: PositiveU32 | None = Field(
        default=None, description="the search beam of searches that do not set one"
    )


class UpdateAliasesRequest(Body):
    set: dict[str, str] = Field(
        default_factory=dict,
        description="alias -> collection: a new alias, or one that moves to this collection",
    )
    delete: list[str] = Field(default_factory=list, description="aliases to remove")


class Document(Body):
    """A document: exactly one of ``text`` (embedded on write) or ``vector``."""

    model_config = ConfigDict(
        json_schema_extra=exactly_one("text", "vector", types={"text": "string", "vector": "array"})
    )
    id: str = Field(json_schema_extra=TEXT)
    text: str | None = Field(default=None, json_schema_extra=TEXT)
    vector: list[float] | None = Field(default=None, json_schema_extra=NOT_EMPTY)
    payload: dict[str, Any] = {}


class PassageSplit(Body):
    """Store each text as passages, one point each ("<id>#0", ...), with doc_id,
    passage, passages and span in their payloads."""

    max_tokens: PositiveU32 | None = Field(
        default=None, description="tokens of text per passage (default: the model's most)"
    )
    overlap_tokens: U32 | None = Field(
        default=None, description="tokens repeated from the passage before (default: 1/8)"
    )


class WriteOptions(Body):
    embed: EmbedOptions = EmbedOptions()
    store_text: bool = Field(default=False, description="keep the text in the payload under 'text'")
    split: PassageSplit | None = Field(
        default=None, description="store each text as passages, one point each"
    )


class UpsertRequest(Body):
    documents: list[Document] = Field(json_schema_extra=NOT_EMPTY)
    options: WriteOptions = WriteOptions()


class IngestLine(Body):
    """One NDJSON line of an ingestion body: a batch of documents."""

    batch_id: str = ""
    documents: list[Document] = Field(json_schema_extra=NOT_EMPTY)
    options: WriteOptions = WriteOptions()


# What SearchParams.__post_init__ takes: an empty string is the default, as over gRPC.
READ_CONSISTENCY_PATTERN = "^(all|majority|quorum|[0-9]*[1-9][0-9]*)?$"
ReadConsistency = Annotated[
    str, WithJsonSchema({"type": "string", "pattern": READ_CONSISTENCY_PATTERN})
]


class QueryParams(Body):
    limit: PositiveU32 | None = Field(
        default=None,
        description="hits (groups, with group_by) per page",
        json_schema_extra=default(SearchParams.limit),
    )
    offset: U32 = 0
    score_threshold: float | None = None
    with_payload: bool | None = Field(
        default=None, json_schema_extra=default(SearchParams.with_payload)
    )
    with_vectors: bool = False
    exact: bool = False
    hnsw_ef: PositiveU32 | None = Field(default=None, description="default: the collection's")
    read_consistency: ReadConsistency | None = Field(
        default=None,
        description='server clusters: "all", "majority", "quorum" or a number of replicas; '
        '"" or unset: the server\'s default',
    )
    diversity: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="search by vector or in dense mode: re-rank by maximal marginal relevance",
    )
    diversity_candidates: PositiveU32 | None = None
    keyword_weight: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="hybrid mode: how much the keyword ranking counts (default 1)",
        json_schema_extra=default(SearchParams.keyword_weight),
    )
    payload_keys: list[str] | None = Field(
        default=None, description="only these top-level payload keys (default: all)"
    )
    oversampling: float | None = Field(
        default=None,
        ge=1,
        le=100,
        description="quantized collections: candidates read by the quantized vectors, "
        "as a multiple of limit + offset, then scored with the floats (default 3 binary, "
        "1 scalar_int8)",
    )


# Filters keep the JSON form of the gRPC Filter message (must / should / must_not).
FilterJson = dict[str, Any]


class GroupBy(Body):
    """The best hits per value of a payload field (a string or an integer, or a list of
    them); ``params.limit`` counts groups."""

    key: str = Field(
        description='a payload key; a dotted path ("meta.source") reaches inside',
        json_schema_extra=TEXT,
    )
    size: int | None = Field(
        default=None,
        ge=1,
        le=MAX_GROUP_SIZE,
        description="hits per group (default 3)",
        json_schema_extra=default(DEFAULT_GROUP_SIZE),
    )


# The weighings' check (weighing._check_common) refuses more.
WeighingCandidates = Annotated[PositiveU32, integers(1, weighing.MAX_CANDIDATES)]


class Recency(Body):
    """Weigh the best ``candidates`` hits by the age of a date and time field: each keeps
    ``1 - weight`` of its score and earns up to ``weight`` more by its freshness,
    ``0.5 ** (age / half_life)``."""

    key: str = Field(
        description='a payload key; a dotted path ("meta.published") reaches inside',
        json_schema_extra=TEXT,
    )
    half_life_hours: float = Field(gt=0, description="age at which freshness halves")
    weight: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="default 0.5",
        json_schema_extra=default(weighing.DEFAULT_WEIGHT),
    )
    now: str = Field(default="", description="RFC 3339; default: the server's clock")
    candidates: WeighingCandidates | None = Field(
        default=None,
        description=f"hits re-sorted among themselves (default {weighing.DEFAULT_CANDIDATES}, "
        "or the limit if more)",
    )


RECENCY = "fresher documents first among equally good matches (no diversity, no group_by)"


class GeoPoint(Body):
    lat: float = Field(ge=-90, le=90, description="degrees north")
    lon: float = Field(ge=-180, le=180, description="degrees east")


class Proximity(Body):
    """Weigh the best ``candidates`` hits by the distance from ``center`` to the place at
    ``key``: each keeps ``1 - weight`` of its score and earns up to ``weight`` more by its
    closeness, ``0.5 ** (distance / half_distance_m)``."""

    key: str = Field(
        description='a payload key holding {"lat", "lon"}; a dotted path reaches inside',
        json_schema_extra=TEXT,
    )
    center: GeoPoint
    half_distance_m: float = Field(gt=0, description="distance at which closeness halves")
    weight: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="default 0.5",
        json_schema_extra=default(weighing.DEFAULT_WEIGHT),
    )
    candidates: WeighingCandidates | None = Field(
        default=None,
        description=f"hits re-sorted among themselves (default {weighing.DEFAULT_CANDIDATES}, "
        "or the limit if more)",
    )


PROXIMITY = "nearer documents first among equally good matches (no diversity, no group_by)"


class SearchRerank(Body):
    """The best ``candidates`` hits reordered by the server's reranker, which reads the
    query text with each hit's text; the hits carry its scores."""

    candidates: Annotated[PositiveU32, integers(1, MAX_RERANK_CANDIDATES)] | None = Field(
        default=None,
        description=f"hits reordered among themselves (default {RERANK_CANDIDATES}, or the "
        "limit if more); at least the limit",
    )
    text_key: str = Field(
        default="", description='the payload key holding the text; "": "text" (store_text)'
    )


class SearchRequest(Body):
    """Exactly one of ``text`` (embedded as a query) or ``vector``; keyword and hybrid
    modes take a text, on a collection created with ``bm25``."""

    model_config = ConfigDict(
        json_schema_extra=exactly_one("text", "vector", types={"text": "string", "vector": "array"})
    )
    text: str | None = Field(default=None, json_schema_extra=TEXT)
    vector: list[float] | None = Field(default=None, json_schema_extra=NOT_EMPTY)
    filter: FilterJson | None = None
    params: QueryParams = QueryParams()
    embed: EmbedOptions = EmbedOptions()
    mode: Literal["dense", "keyword", "hybrid"] = Field(
        default="dense",
        description="dense: nearest embeddings; keyword: BM25; hybrid: both, fused by rank",
    )
    group_by: GroupBy | None = Field(
        default=None, description="answer in groups: the best hits per value of a payload field"
    )
    recency: Recency | None = Field(default=None, description=RECENCY)
    proximity: Proximity | None = Field(default=None, description=PROXIMITY)
    rerank: SearchRerank | None = Field(
        default=None,
        description="reorder the best hits with the server's reranker (a text query; no "
        "diversity, recency or proximity; with group_by, groups in its order)",
    )


class SearchBatchRequest(Body):
    searches: list[SearchRequest] = Field(json_schema_extra=NOT_EMPTY)


class Example(Body):
    """Exactly one of ``id``, ``text`` or ``vector``."""

    model_config = ConfigDict(
        json_schema_extra=exactly_one(
            "id", "text", "vector", types={"id": "string", "text": "string", "vector": "array"}
        )
    )
    id: str | None = Field(default=None, json_schema_extra=TEXT)
    text: str | None = Field(default=None, json_schema_extra=TEXT)
    vector: list[float] | None = Field(default=None, json_schema_extra=NOT_EMPTY)


class RecommendRequest(Body):
    positive: list[Example] = Field(json_schema_extra=NOT_EMPTY)
    negative: list[Example] = []
    strategy: Literal["average_vector", "best_score", "sum_scores"] = "average_vector"
    filter: FilterJson | None = None
    params: QueryParams = QueryParams()
    embed: EmbedOptions = EmbedOptions()
    group_by: GroupBy | None = Field(
        default=None, description="answer in groups: the best hits per value of a payload field"
    )
    recency: Recency | None = Field(default=None, description=RECENCY)
    proximity: Proximity | None = Field(default=None, description=PROXIMITY)


class GetRequest(Body):
    ids: list[str] = Field(json_schema_extra=TEXTS)
    with_vectors: bool = False


# Calls on stored documents that name them by ids, a filter or both.
IDS_OR_FILTER: JsonDict = {
    "anyOf": [
        {"required": ["ids"], "properties": {"ids": NOT_EMPTY}},
        {"required": ["filter"], "properties": {"filter": {"type": "object", "minProperties": 1}}},
    ]
}


class DeleteRequest(Body):
    """``ids``, a ``filter`` or both: deleting everything takes DeleteCollection."""

    model_config = ConfigDict(json_schema_extra=IDS_OR_FILTER)
    ids: list[str] = Field(default=[], json_schema_extra={"items": TEXT_ITEM})
    filter: FilterJson | None = None


class UpdatePayloadRequest(Body):
    """``ids``, a ``filter`` or both; keys to set (``payload``) and keys to remove."""

    model_config = ConfigDict(json_schema_extra=IDS_OR_FILTER)
    ids: list[str] = Field(default=[], json_schema_extra={"items": TEXT_ITEM})
    filter: FilterJson | None = None
    payload: dict[str, Any] = Field(default={}, description="top-level keys to set")
    delete_keys: list[str] = Field(default=[], description="top-level keys to remove")


class CountRequest(Body):
    filter: FilterJson | None = None


class FacetRequest(Body):
    """Counts of a payload field's values (keyword, integer or bool index needed)."""

    key: str = Field(json_schema_extra=TEXT)
    filter: FilterJson | None = None
    limit: int = Field(default=10, ge=1, le=10_000)


class ScrollOrder(Body):
    """Order by a field with an integer, float or datetime index; documents without a value there
    are left out, one with a list of values comes once per value."""

    key: str = Field(
        description="a payload key; a dotted path reaches inside", json_schema_extra=TEXT
    )
    descending: bool = Field(default=False, description="largest first")


class ScrollRequest(Body):
    """One page of a collection's documents, in id order or a field's."""

    filter: FilterJson | None = None
    limit: Annotated[PositiveU32, integers(1, MAX_SCROLL_LIMIT)] | None = Field(
        default=None,
        description=f"default {SCROLL_PAGE}; at most {MAX_SCROLL_LIMIT}",
        json_schema_extra=default(SCROLL_PAGE),
    )
    cursor: str = Field(default="", description="empty for the first page, then next_cursor")
    with_payload: bool = True
    with_vectors: bool = False
    order_by: ScrollOrder | None = Field(
        default=None, description="pages in a numeric field's order instead of id order"
    )


INPUT_SHAPES = "input takes a text, a list of texts, a list of token ids or a list of such lists"
_JSON_KINDS = {
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def json_kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def is_token(value: Any) -> bool:
    """An integer that is not a boolean (JSON true is not token 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _fits_like(first: Any) -> Callable[[Any], bool] | None:
    """The test every item of an input list passes: being of the kind of its first."""
    if isinstance(first, str):
        return lambda item: isinstance(item, str)
    if is_token(first):
        return is_token
    if isinstance(first, list):
        return lambda item: isinstance(item, list)
    return None


def input_problem(value: Any) -> str | None:
    """What is wrong with an OpenAI ``input``, naming the first wrong item; None if
    nothing is (its items all of the kind of its first: texts, token ids or lists)."""
    if isinstance(value, str) or (isinstance(value, list) and not value):
        return None
    if not isinstance(value, list):
        return f"input is {json_kind(value)}"
    first = value[0]
    fits = _fits_like(first)
    for index, item in enumerate(value):
        if fits is None or not fits(item):
            return f"input[{index}] is {json_kind(item)}" + (
                f", unlike input[0] ({json_kind(first)})" if index else ""
            )
        if isinstance(item, list):
            for position, token in enumerate(item):
                if not is_token(token):
                    return f"input[{index}][{position}] is {json_kind(token)}, not a token id"
    return None
