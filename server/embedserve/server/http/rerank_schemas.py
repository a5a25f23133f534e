"""Request bodies of the rerank routes: embedserve's own (the gRPC RerankRequest) and the
/v1/rerank shape of Cohere, Jina and Infinity (TEI's is in tei_schemas.py)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Discriminator, Field, Tag

from embedserve.server.http.schemas import TEXT, TEXTS, U32, Body, OverflowName
from embedserve.server.http.tei_schemas import TeiRerankRequest, Text
from embedserve.server.reranking import RerankParams
from embedserve.server.tokenization import Overflow


class RerankRequest(Body):
    """The gRPC RerankRequest."""

    query: str = Field(json_schema_extra=TEXT)
    documents: list[str] = Field(json_schema_extra=TEXTS)
    top_n: U32 = Field(default=0, description="keep the best N; 0: every document")
    raw_scores: bool = Field(default=False, description="the model's logits, no activation")
    return_documents: bool = False
    overflow: OverflowName | None = Field(
        default=None, description="a pair past the reranker's maximum: cut, refuse or chunk"
    )

    def params(self) -> RerankParams:
        overflow = Overflow(self.overflow) if self.overflow else Overflow.TRUNCATE_RIGHT
        return RerankParams(self.top_n, self.raw_scores, overflow)


class DocumentText(Body):
    # Cohere's document objects may carry other fields (a title, an id): the text is ranked
    # and they are ignored, as Cohere does without rank_fields.
    model_config = ConfigDict(extra="ignore")

    text: Text


# Tags with a space: a mistake is named after the field, with the shape it was read as.
_TEXT = "a text"
_OBJECT = "an object with a text"


def _document_shape(document: Any) -> str:
    return _OBJECT if isinstance(document, dict) else _TEXT


Document = Annotated[
    Annotated[Text, Tag(_TEXT)] | Annotated[DocumentText, Tag(_OBJECT)],
    Discriminator(_document_shape),
]


class CohereRerankRequest(Body):
    """The /v1/rerank body of Cohere's, Jina's and Infinity's APIs."""

    model: str | None = Field(default=None, description="the served reranker's id")
    query: Text
    documents: Annotated[list[Document], Field(min_length=1)] = Field(
        description="texts, or objects with a text"
    )
    top_n: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="keep the best N; unset: every document"
    )
    return_documents: bool = False
    raw_scores: bool = Field(default=False, description="the model's logits (as Infinity)")

    def texts(self) -> list[str]:
        return [doc if isinstance(doc, str) else doc.text for doc in self.documents]

    def params(self) -> RerankParams:
        return RerankParams(top_n=self.top_n or 0, raw_scores=self.raw_scores)


# Tags with a space: error messages name them after the field, not in its path.
TEI_BODY = "TEI's body, with texts"
INFINITY_BODY = "Infinity's body, with documents"


def _rerank_shape(body: Any) -> str:
    return INFINITY_BODY if isinstance(body, dict) and "documents" in body else TEI_BODY


# /rerank takes TEI's body (texts) and Infinity's (documents, as /v1/rerank's).
AnyRerankRequest = Annotated[
    Annotated[TeiRerankRequest, Tag(TEI_BODY)] | Annotated[CohereRerankRequest, Tag(INFINITY_BODY)],
    Discriminator(_rerank_shape),
]
