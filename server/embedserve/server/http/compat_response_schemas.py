"""Success bodies of the routes in other servers' shapes (OpenAI, TEI, Cohere, and the
rerank APIs of Cohere, Jina and Infinity), for /openapi.json; as response_schemas.py's,
documentation only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, RootModel

from embedserve.server.http.response_schemas import Answer, absent
from embedserve.server.http.schemas import PoolingName

# -- OpenAI --------------------------------------------------------------------------------


class OpenAIEmbedding(Answer):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(
        description="the vector; with encoding_format base64, its float32 bytes "
        "(little-endian) in base64"
    )


class PromptUsage(Answer):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingList(Answer):
    object: Literal["list"]
    data: list[OpenAIEmbedding]
    model: str
    usage: PromptUsage


class OpenAIModel(Answer):
    id: str
    object: Literal["model"]
    created: int = Field(description="when the server started (Unix seconds)")
    owned_by: str


class OpenAIModelList(Answer):
    object: Literal["list"]
    data: list[OpenAIModel]


# -- TEI -----------------------------------------------------------------------------------


class TeiEmbeddings(RootModel[list[list[float]]]):
    """One vector per input."""


class TeiTokenEmbeddings(RootModel[list[list[list[float]]]]):
    """Per input, one vector per token."""


class TeiScores(RootModel[list[float]]):
    """One score per sentence, in order."""


class TeiTexts(RootModel[list[str]]):
    """One text per list of ids."""


class TeiToken(Answer):
    id: int
    text: str = Field(description="the text under the span, or the token for one without")
    special: bool
    start: int | None = Field(description="null for added and prompt tokens")
    stop: int | None


class TeiTokens(RootModel[list[list[TeiToken]]]):
    """Per input, its tokens."""


class TeiRank(Answer):
    index: int
    score: float
    text: str = absent("with return_text")


class TeiEmbeddingModel(Answer):
    pooling: PoolingName


class TeiModelType(Answer):
    embedding: TeiEmbeddingModel


class TeiInfo(Answer):
    model_id: str
    model_sha: str | None
    model_dtype: str
    model_type: TeiModelType
    prompts: dict[str, str]
    default_prompt_name: str | None
    max_input_length: int
    max_batch_tokens: int
    max_batch_requests: int
    max_client_batch_size: int
    auto_truncate: bool
    version: str


# -- rerank (Cohere, Jina, Infinity) -------------------------------------------------------


class RerankedText(Answer):
    text: str


class _Ranked(Answer):
    index: int = Field(description="the document's position in the request")
    relevance_score: float


class CohereRerankResult(_Ranked):
    document: RerankedText = absent("with return_documents")


class InfinityRerankResult(_Ranked):
    document: str = absent("with return_documents")


class CohereApiVersion(Answer):
    version: str


class CohereBilledUnits(Answer):
    input_tokens: int = absent("embeddings")
    search_units: int = absent("rerank")


class CohereMeta(Answer):
    api_version: CohereApiVersion
    billed_units: CohereBilledUnits


class _RerankAnswer(Answer):
    object: Literal["rerank"]
    id: str
    created: int
    model: str
    usage: PromptUsage


class CohereRerankResponse(_RerankAnswer):
    """Cohere's and Jina's answer (/v1/rerank, /v2/rerank)."""

    results: list[CohereRerankResult] = Field(description="best first")
    meta: CohereMeta = absent("/v2/rerank")


class InfinityRerankResponse(_RerankAnswer):
    """Infinity's answer (/rerank with documents)."""

    results: list[InfinityRerankResult] = Field(description="best first")


class TeiRerankResponse(RootModel[list[TeiRank] | InfinityRerankResponse]):
    """TEI's ranks, best first (a body with texts), or Infinity's answer (with documents)."""


# -- Cohere embed --------------------------------------------------------------------------


class CohereEmbeddings(Answer):
    """The vectors in each type asked for."""

    float_: list[list[float]] = absent(alias="float")
    int8: list[list[int]] = absent()
    uint8: list[list[int]] = absent()
    binary: list[list[int]] = absent()
    ubinary: list[list[int]] = absent()
    base64: list[str] = absent("float32 bytes (little-endian) in base64")


class _CohereEmbedAnswer(Answer):
    id: str
    texts: list[str]
    meta: CohereMeta


class CohereEmbedByType(_CohereEmbedAnswer):
    response_type: Literal["embeddings_by_type"]
    embeddings: CohereEmbeddings


class CohereEmbedFloats(_CohereEmbedAnswer):
    response_type: Literal["embeddings_floats"]
    embeddings: list[list[float]]


class CohereV1EmbedResponse(RootModel[CohereEmbedFloats | CohereEmbedByType]):
    """Plain floats unless embedding_types are asked for."""
