"""Success bodies of embedserve's own routes (/api/v1), for /openapi.json.

The routes build their answers as dicts (``json_response``): these models only document
them, and are never built. A field some answers leave out is not required (``absent``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from embedserve.server.http.schemas import IndexKind, PoolingName

Payload = dict[str, Any]
GroupKey = str | int


def _no_default(schema: JsonDict) -> None:
    schema.pop("default", None)


def absent(description: str | None = None, alias: str | None = None) -> Any:
    """A field that some answers leave out (never null)."""
    return Field(default=None, alias=alias, description=description, json_schema_extra=_no_default)


def ok(model: Any) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses``: its 200 body is of ``model``."""
    return {200: {"model": model}}


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Empty(Answer):
    """Done; nothing to report."""


class Usage(Answer):
    total_tokens: int


class Timings(Answer):
    queue_ms: float
    tokenize_ms: float
    inference_ms: float
    total_ms: float


# -- embeddings ----------------------------------------------------------------------------


class Embedding(Answer):
    values: list[float] = absent("the vector (precision float32)")
    quantized: list[int] = absent("the vector in another precision's bytes")
    token_count: int = Field(description="tokens the model saw, every window's under chunk")
    truncated: bool
    chunk_count: int = Field(description="windows embedded: 1 unless overflow chunk split it")


class EmbedResponse(Answer):
    embeddings: list[Embedding] = Field(description="one per input, in order")
    usage: Usage
    timings: Timings
    model: str
    dimensions: int


class EmbedStreamResponse(EmbedResponse):
    """One answer line of an embed stream; a failure ends the stream with an error line
    (`{"error": {...}}`)."""

    request_id: str = Field(description="the request line's, or its line number")


class TokenEmbedding(Answer):
    token: str
    token_id: int
    start: int = Field(description="character offset into the input; 0 for special tokens")
    end: int
    values: list[float]


class TokenEmbeddings(Answer):
    tokens: list[TokenEmbedding]
    truncated: bool


class EmbedTokensResponse(Answer):
    results: list[TokenEmbeddings]
    usage: Usage
    timings: Timings
    dimensions: int


class Tokenization(Answer):
    ids: list[int]
    tokens: list[str]
    token_count: int
    exceeds_max_tokens: bool


class TokenizeResponse(Answer):
    results: list[Tokenization]
    usage: Usage
    max_tokens: int


class SimilarityResponse(Answer):
    scores: list[float] = Field(description="one per pair or candidate, in order")
    usage: Usage
    timings: Timings


class BatchingLimits(Answer):
    max_batch_tokens: int
    max_batch_size: int
    max_wait_ms: float
    max_queue_items: int
    sort_window: int
    max_padding_share: float
    calibrate_batches: bool
    parallel_passes: int


class RequestLimits(Answer):
    max_inputs_per_request: int
    max_input_chars: int
    max_message_bytes: int


class RerankerInfo(Answer):
    model_id: str
    max_tokens: int
    model_type: str
    activation: Literal["sigmoid", "identity", "tanh"]


class ModelInfo(Answer):
    model_id: str
    dimensions: int
    max_tokens: int
    pooling: PoolingName
    normalize: bool
    prompts: dict[str, str] = Field(description="prompt name to prompt text")
    default_prompt_name: str
    dtype: str
    device: str
    backend: Literal["torch", "torch-int8", "onnx", "onnx-int8"] = Field(
        description="what runs the forward pass (--backend); the int8 backends' vectors "
        "approximate the model's and share its fingerprint"
    )
    model_type: str
    similarity: Literal["cosine", "dot", "euclidean", "manhattan"]
    model_revision: str = Field(description="the hub commit served; empty for a local folder")
    fingerprint: str = Field(description="of the model's files")
    former_fingerprint: str = Field(
        description="of the former kind (the first 16 MiB of each weights file), which older "
        "collections and exports record: taken as this model's"
    )
    former_fingerprints: list[str] = Field(
        description="every fingerprint of the former kind naming this model: "
        "former_fingerprint, and for a model `embedserve finetune` made, the same with its "
        "finetune-report.json counted, as releases before it was left out recorded"
    )
    batching: BatchingLimits
    limits: RequestLimits
    reranker: RerankerInfo | None = Field(description="null when no reranker is served")


class RerankResult(Answer):
    index: int = Field(description="the document's position in the request")
    score: float
    document: str = absent("with return_documents")
    token_count: int
    truncated: bool


class RerankResponse(Answer):
    results: list[RerankResult] = Field(description="best first")
    usage: Usage
    timings: Timings
    model: str


# -- vector store --------------------------------------------------------------------------


class CollectionSettings(Answer):
    dimensions: int
    distance: Literal["cosine", "dot", "euclid", "manhattan"]
    on_disk: bool
    bm25: bool
    bm25_language: str
    quantization: Literal["none", "scalar_int8", "binary"]
    vector_datatype: Literal["float32", "float16", "uint8"]
    payload_indexes: dict[str, IndexKind]
    hnsw_m: int
    hnsw_ef_construct: int
    hnsw_ef: int
    shard_number: int
    replication_factor: int
    write_consistency_factor: int
    full_scan_threshold_kb: int


class CollectionInfo(Answer):
    name: str = Field(description="its own name, also when asked for by an alias")
    points_count: int
    aliases: list[str]
    model_id: str = Field(description="the model it was made for; empty where unknown")
    model_fingerprint: str
    config: CollectionSettings


class CollectionResponse(Answer):
    collection: CollectionInfo


class ListCollectionsResponse(Answer):
    names: list[str]


class Alias(Answer):
    alias: str
    collection: str


class ListAliasesResponse(Answer):
    aliases: list[Alias]


class UpsertResponse(Answer):
    upserted: int = Field(description="points written: one per document, or per passage")
    usage: Usage
    timings: Timings = Field(description="of the embedding; zeros when nothing was embedded")


class IngestStreamResponse(Answer):
    """One acknowledgement line of an ingestion stream, written once its batch is durable;
    a failure ends the stream with an error line (`{"error": {...}}`)."""

    batch_id: str = Field(description="the batch line's, as sent (empty if it had none)")
    ids: list[str]
    total_acknowledged: int = Field(description="documents acknowledged on this stream so far")


class StoredDocument(Answer):
    id: str
    payload: Payload
    vector: list[float] | None = Field(description="null unless with_vectors")


class ScoredDocument(StoredDocument):
    score: float


class HitGroup(Answer):
    key: GroupKey
    hits: list[ScoredDocument] = Field(description="best first")


class RecommendResponse(Answer):
    results: list[ScoredDocument] = Field(description="best first; empty when grouped")
    groups: list[HitGroup] = Field(description="a grouped query's, best first")
    usage: Usage
    search_ms: float


class SearchResponse(RecommendResponse):
    timings: Timings


class SearchBatchResponse(Answer):
    responses: list[SearchResponse]


class GetResponse(Answer):
    documents: list[StoredDocument]


class ScrollResponse(GetResponse):
    next_cursor: str = Field(description="empty after the last page")


class FacetValue(Answer):
    value: str | int | bool
    count: int


class FacetResponse(Answer):
    values: list[FacetValue]


class CountResponse(Answer):
    count: int


# -- analysis ------------------------------------------------------------------------------


class ClusterMember(Answer):
    id: str
    score: float = Field(description="cosine similarity to the cluster's centre")
    text: str | None


class WordScore(Answer):
    word: str
    score: float


class ClusterSummary(Answer):
    label: int = Field(description="-1: noise (hdbscan)")
    size: int
    central: list[ClusterMember]
    words: list[WordScore]


class ClusterResponse(Answer):
    clusters: list[ClusterSummary] = Field(description="largest first, noise last")
    ids: list[str] = Field(description="each clustered point's id, in parallel with labels")
    labels: list[int]
    silhouette: float = Field(description="mean silhouette (cosine); 0 when undefined")
    k: int
    silhouette_by_k: dict[str, float] = Field(description="of each k tried when k was chosen")
    points_total: int
    points_clustered: int
    labels_written: int
    elapsed_ms: float


class DuplicatePair(Answer):
    a: str
    b: str
    score: float


class DuplicateGroup(Answer):
    ids: list[str]
    min_score: float = Field(
        description="the lowest score of all the pairs found among the group's documents"
    )


class HistogramBin(Answer):
    lower: float
    upper: float
    count: int


class FindDuplicatesResponse(Answer):
    pairs: list[DuplicatePair]
    groups: list[DuplicateGroup]
    histogram: list[HistogramBin] = Field(description="best-neighbour scores, empty bins left out")
    points_scanned: int
    pairs_total: int = Field(description="pairs found before max_pairs cut the list")
    texts: dict[str, str] = Field(description="stored texts of the pairs' ids (with_text)")
    elapsed_ms: float
    method: Literal["store_queries", "exact_blocks"]
