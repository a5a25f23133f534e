"""Request bodies of Cohere's embed API (/v1/embed, /v2/embed) and of its /v2/rerank."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, WithJsonSchema

from embedserve.server.batcher import Priority
from embedserve.server.embedder import EmbedParams, Task
from embedserve.server.errors import InvalidArgument
from embedserve.server.http.rerank_schemas import CohereRerankRequest
from embedserve.server.http.schemas import Body, PositiveU32, default, exactly_one
from embedserve.server.http.tei_schemas import Text, Texts
from embedserve.server.tokenization import Overflow

CohereInputType = Literal[
    "search_document", "search_query", "classification", "clustering", "image"
]
# Cohere's "image" is taken, to be refused in Cohere's words (params): the document leaves
# it out, as every request with it is refused.
InputType = Annotated[
    CohereInputType,
    WithJsonSchema(
        {"type": "string", "enum": [name for name in get_args(CohereInputType) if name != "image"]}
    ),
]
EmbeddingType = Literal["float", "int8", "uint8", "binary", "ubinary", "base64"]

_TASKS = {"search_query": Task.QUERY, "search_document": Task.DOCUMENT}
_OVERFLOWS = {
    "END": Overflow.TRUNCATE_RIGHT,
    "START": Overflow.TRUNCATE_LEFT,
    "NONE": Overflow.ERROR,
}
_UNSERVED = "only texts are embedded here"


class CohereTextPart(Body):
    type: Literal["text"]
    text: Text


class CohereImagePart(Body):
    type: Literal["image_url"]
    image_url: Any = Field(description="refused: " + _UNSERVED)


class CohereInput(Body):
    """One input of v2's ``inputs``: here, one text part."""

    content: Annotated[
        list[Annotated[CohereTextPart | CohereImagePart, Field(discriminator="type")]],
        Field(min_length=1),
    ]


class CohereEmbedRequest(Body):
    """Cohere's embed body (v1 and v2 share it); texts only."""

    model_config = ConfigDict(
        json_schema_extra=exactly_one(
            "texts", "inputs", types={"texts": "array", "inputs": "array"}
        )
    )
    model: str | None = Field(default=None, description="the served model's id")
    texts: Texts | None = Field(default=None, description="the texts to embed (or inputs)")
    inputs: Annotated[list[CohereInput], Field(min_length=1)] | None = Field(
        default=None,
        description="v2's inputs, each of one text part ({'type': 'text', 'text': ...}); "
        "image parts are refused",
    )
    input_type: InputType | None = Field(
        default=None,
        description="search_query and search_document pick the model's query and document "
        "prompts; classification and clustering the model's prompt of that name if it has one "
        "(Cohere's image is refused: " + _UNSERVED + ")",
    )
    embedding_types: Annotated[list[EmbeddingType], Field(min_length=1)] | None = Field(
        default=None, description="the formats to answer with; default float"
    )
    truncate: Literal["NONE", "START", "END"] | None = Field(
        default=None,
        description="past the model's maximum: refuse, or cut the start or the end (default)",
        json_schema_extra=default("END"),
    )
    output_dimension: PositiveU32 | None = Field(default=None, description="Matryoshka truncation")
    max_tokens: PositiveU32 | None = Field(
        default=None, description="accepted at the model's maximum or above"
    )
    priority: int | None = Field(
        default=None,
        description="0 (the default) or less: the interactive lane; above 0: the bulk lane, "
        "behind queries",
    )
    images: Any = Field(default=None, description="refused: " + _UNSERVED)

    def input_texts(self) -> tuple[list[str], str]:
        """The texts to embed and the field that holds them (texts or inputs)."""
        if (self.texts is None) == (self.inputs is None):
            raise InvalidArgument("give texts or inputs (one of them)")
        if self.texts is not None:
            return self.texts, "texts"
        texts = []
        for number, given in enumerate(self.inputs or ()):
            parts = [part for part in given.content if isinstance(part, CohereTextPart)]
            if len(parts) < len(given.content):
                raise InvalidArgument(f"inputs[{number}] holds an image: {_UNSERVED}")
            if len(parts) > 1:
                raise InvalidArgument(
                    f"inputs[{number}] holds {len(parts)} text parts; "
                    "one per input here (give each text its own input)"
                )
            texts.append(parts[0].text)
        return texts, "inputs"

    def params(self, prompts: dict[str, str], max_tokens: int, width: int) -> EmbedParams:
        """The core's parameters; ``prompts``, ``max_tokens`` and ``width`` are the served
        model's."""
        if self.images is not None or self.input_type == "image":
            raise InvalidArgument(f"images are not served: {_UNSERVED}")
        # Checked here too, to be named as Cohere names it (the core says dimensions).
        if self.output_dimension is not None and self.output_dimension > width:
            raise InvalidArgument(
                f"output_dimension must be between 1 and {width} (the model's width); "
                f"got {self.output_dimension}"
            )
        if self.max_tokens is not None and self.max_tokens < max_tokens:
            raise InvalidArgument(
                f"max_tokens {self.max_tokens} is below the model's maximum of {max_tokens}, "
                "which is where inputs are cut (truncate); leave it out"
            )
        task, prompt = Task.DEFAULT, None
        if self.input_type in _TASKS:
            task = _TASKS[self.input_type]
        elif self.input_type is not None and self.input_type in prompts:
            prompt = prompts[self.input_type]
        return EmbedParams(
            task=task,
            prompt=prompt,
            dimensions=self.output_dimension,
            overflow=_OVERFLOWS[self.truncate or "END"],
            priority=Priority.BULK if self.priority is not None and self.priority > 0 else None,
        )


class CohereV2RerankRequest(CohereRerankRequest):
    """Cohere's /v2/rerank body: /v1/rerank's, with a per-document token limit."""

    max_tokens_per_doc: PositiveU32 | None = Field(
        default=None, description="accepted at the reranker's maximum or above"
    )
    priority: int | None = Field(default=None, description="accepted and ignored")

    def check_limit(self, max_tokens: int) -> None:
        if self.max_tokens_per_doc is not None and self.max_tokens_per_doc < max_tokens:
            raise InvalidArgument(
                f"max_tokens_per_doc {self.max_tokens_per_doc} is below the reranker's "
                f"maximum of {max_tokens} per pair, which is where pairs are cut; leave it out"
            )
