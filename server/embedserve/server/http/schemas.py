"""Request bodies of the HTTP API (pydantic models, so /openapi.json documents them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from embedserve.server.embedder import EmbedParams, Task
from embedserve.server.model_spec import PoolingMode
from embedserve.server.tokenization import Overflow

TaskName = Literal["query", "document", "none"]
PoolingName = Literal["mean", "cls", "last_token"]
OverflowName = Literal["truncate_right", "truncate_left", "error", "chunk"]


class Body(BaseModel):
    # A misspelt option is the caller's mistake: say so instead of ignoring it.
    model_config = ConfigDict(extra="forbid")


class EmbedOptions(Body):
    """embedserve's embedding options; every field optional (the model's own defaults)."""

    task: TaskName | None = Field(default=None, description="picks the model's prompt for the task")
    prompt: str | None = Field(
        default=None, description="a free prompt string, instead of the task's"
    )
    dimensions: int | None = Field(default=None, ge=1, description="Matryoshka truncation")
    pooling: PoolingName | None = None
    normalize: bool | None = None
    overflow: OverflowName | None = Field(
        default=None, description="what to do past the model's maximum"
    )

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
        )


class OpenAIEmbeddingRequest(Body):
    """OpenAI's embeddings request, plus embedserve's options as extra fields."""

    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="a text, a list of texts, a list of token ids, or a list of such lists"
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
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = Field(default=None, description="accepted and ignored")
    task: TaskName | None = None
    prompt: str | None = None
    pooling: PoolingName | None = None
    normalize: bool | None = None
    overflow: OverflowName | None = None

    def options(self) -> EmbedOptions:
        return EmbedOptions(
            task=self.task,
            prompt=self.prompt,
            dimensions=self.dimensions,
            pooling=self.pooling,
            normalize=self.normalize,
            overflow=self.overflow,
        )


class EmbedRequest(Body):
    inputs: list[str]
    options: EmbedOptions = EmbedOptions()


class TokenizeRequest(Body):
    inputs: list[str]
    task: TaskName | None = None
    prompt: str | None = None


class Pair(Body):
    a: str
    b: str


class QueryCandidates(Body):
    query: str
    candidates: list[str]


class SimilarityRequest(Body):
    """Exactly one of ``pairs`` or ``query_candidates``."""

    pairs: list[Pair] | None = None
    query_candidates: QueryCandidates | None = None
    options: EmbedOptions = EmbedOptions()


class CollectionConfig(Body):
    dimensions: int | None = Field(default=None, ge=1, description="default: the model's width")
    distance: Literal["cosine", "dot", "euclid", "manhattan"] = "cosine"
    on_disk: bool = False
    quantization: Literal["none", "scalar_int8"] = "none"
    payload_indexes: dict[str, Literal["keyword", "integer", "float", "bool", "text"]] = {}
    hnsw_m: int | None = None
    hnsw_ef_construct: int | None = None
    hnsw_ef: int | None = None
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    full_scan_threshold_kb: int | None = None


class CreateCollectionRequest(Body):
    name: str
    config: CollectionConfig = CollectionConfig()


class Document(Body):
    """A document: exactly one of ``text`` (embedded on write) or ``vector``."""

    id: str
    text: str | None = None
    vector: list[float] | None = None
    payload: dict[str, Any] = {}


class WriteOptions(Body):
    embed: EmbedOptions = EmbedOptions()
    store_text: bool = Field(default=False, description="keep the text in the payload under 'text'")


class UpsertRequest(Body):
    documents: list[Document]
    options: WriteOptions = WriteOptions()


class IngestLine(Body):
    """One NDJSON line of an ingestion body: a batch of documents."""

    batch_id: str = ""
    documents: list[Document]
    options: WriteOptions = WriteOptions()


class QueryParams(Body):
    limit: int | None = Field(default=None, ge=1)
    offset: int = Field(default=0, ge=0)
    score_threshold: float | None = None
    with_payload: bool | None = None
    with_vectors: bool = False
    exact: bool = False
    hnsw_ef: int | None = Field(default=None, ge=1)
    read_consistency: str | None = None


# Filters keep the JSON form of the gRPC Filter message (must / should / must_not).
FilterJson = dict[str, Any]


class SearchRequest(Body):
    """Exactly one of ``text`` (embedded as a query) or ``vector``."""

    text: str | None = None
    vector: list[float] | None = None
    filter: FilterJson | None = None
    params: QueryParams = QueryParams()
    embed: EmbedOptions = EmbedOptions()


class Example(Body):
    """Exactly one of ``id``, ``text`` or ``vector``."""

    id: str | None = None
    text: str | None = None
    vector: list[float] | None = None


class RecommendRequest(Body):
    positive: list[Example]
    negative: list[Example] = []
    strategy: Literal["average_vector", "best_score", "sum_scores"] = "average_vector"
    filter: FilterJson | None = None
    params: QueryParams = QueryParams()
    embed: EmbedOptions = EmbedOptions()


class GetRequest(Body):
    ids: list[str]
    with_vectors: bool = False


class DeleteRequest(Body):
    ids: list[str] = []
    filter: FilterJson | None = None


class CountRequest(Body):
    filter: FilterJson | None = None


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


def _kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fits_like(first: Any) -> Callable[[Any], bool] | None:
    """The test every item of an input list passes: being of the kind of its first."""
    if isinstance(first, str):
        return lambda item: isinstance(item, str)
    if _is_token(first):
        return _is_token
    if isinstance(first, list):
        return lambda item: isinstance(item, list)
    return None


def input_problem(value: Any) -> str | None:
    """What is wrong with an OpenAI ``input``, naming the first wrong item; None if
    nothing is (its items all of the kind of its first: texts, token ids or lists)."""
    if isinstance(value, str) or (isinstance(value, list) and not value):
        return None
    if not isinstance(value, list):
        return f"input is {_kind(value)}"
    first = value[0]
    fits = _fits_like(first)
    for index, item in enumerate(value):
        if fits is None or not fits(item):
            return f"input[{index}] is {_kind(item)}" + (
                f", unlike input[0] ({_kind(first)})" if index else ""
            )
        if isinstance(item, list):
            for position, token in enumerate(item):
                if not _is_token(token):
                    return f"input[{index}][{position}] is {_kind(token)}, not a token id"
    return None
