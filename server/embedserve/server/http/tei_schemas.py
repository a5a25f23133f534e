"""Request bodies of the TEI-compatible routes, in text-embeddings-inference's own shapes."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from embedserve.server.embedder import EmbedParams, Task
from embedserve.server.errors import InvalidArgument
from embedserve.server.http.schemas import Body, PositiveU32, is_token, json_kind
from embedserve.server.input_names import InputNames
from embedserve.server.reranking import RerankParams
from embedserve.server.tokenization import Overflow

# TEI takes both spellings; documented as a pattern, as an enum of both would give a
# generated client two members of one name.
Direction = Annotated[
    Literal["right", "left", "Right", "Left"],
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^([Ll]eft|[Rr]ight)$",
            "description": "the side cut past the maximum: right or left (or Right, Left)",
        }
    ),
]
# Checked here, not only documented: TEI's routes answer a body against them with 422.
Text = Annotated[str, Field(min_length=1)]
Texts = Annotated[list[Text], Field(min_length=1)]
INPUTS_SHAPE = "inputs takes a text or a list of texts, none of them empty"


def inputs_problem(value: Any) -> str | None:
    """What is wrong with ``inputs``, naming the first wrong item; None if nothing is."""
    if value == "" or value == []:
        return "inputs is empty"
    if isinstance(value, str):
        return None
    if not isinstance(value, list):
        return f"inputs is {json_kind(value)}"
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            return f"inputs[{index}] is {json_kind(item) if item != '' else 'empty'}"
    return None


class TeiBody(Body):
    # TEI reads its bodies without refusing fields it does not know (clients such as
    # LiteLLM send top_n to /rerank): so do its routes here.
    model_config = ConfigDict(extra="ignore", strict=True)


class PromptChoice(TeiBody):
    prompt_name: str | None = Field(
        default=None,
        description="a key of the model's prompts; unset: the model's default prompt, if any",
    )

    def prompt(self, prompts: dict[str, str]) -> str | None:
        """The prompt text named, or None for the model's default."""
        return None if self.prompt_name is None else prompt_named(self.prompt_name, prompts)


class TruncationOptions(PromptChoice):
    truncate: bool | None = Field(
        default=None,
        description="false: a text past the model's maximum is refused; true or unset: cut",
    )
    truncation_direction: Direction = "right"

    def params(self, prompts: dict[str, str]) -> EmbedParams:
        overflow = tei_overflow(self.truncate, self.truncation_direction)
        return EmbedParams(task=Task.DEFAULT, prompt=self.prompt(prompts), overflow=overflow)


def tei_overflow(truncate: bool | None, direction: str) -> Overflow:
    """TEI's truncate and truncation_direction as an overflow policy: false refuses."""
    if truncate is False:
        return Overflow.ERROR
    return Overflow.TRUNCATE_LEFT if direction.lower() == "left" else Overflow.TRUNCATE_RIGHT


def prompt_named(name: str, prompts: dict[str, str]) -> str:
    if name in prompts:
        return prompts[name]
    if not prompts:
        raise InvalidArgument(f"prompt_name {name!r}: the model has no prompts")
    known = ", ".join(sorted(prompts))
    raise InvalidArgument(f"prompt_name {name!r} is not one of the model's prompts ({known})")


class TeiInputs(TeiBody):
    inputs: Text | Texts

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_inputs_error(cls, value: Any) -> Any:
        # pydantic would report one problem per member of the union; name the first instead.
        if (problem := inputs_problem(value)) is not None:
            raise PydanticCustomError("inputs_shape", problem + "; " + INPUTS_SHAPE)
        return value

    def texts(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else self.inputs


class TeiEmbedAllRequest(TeiInputs, TruncationOptions):
    def params(self, prompts: dict[str, str]) -> EmbedParams:
        # TEI answers the model's hidden states as they are: the normalisation of a
        # sentence-transformers model applies to its pooled vector only.
        return dataclasses.replace(super().params(prompts), normalize=False)


class TeiEmbedRequest(TeiEmbedAllRequest):
    normalize: bool = True
    dimensions: PositiveU32 | None = Field(default=None, description="Matryoshka truncation")

    def params(self, prompts: dict[str, str]) -> EmbedParams:
        options = super().params(prompts)
        return dataclasses.replace(options, normalize=self.normalize, dimensions=self.dimensions)


class TeiTokenizeRequest(TeiInputs, PromptChoice):
    add_special_tokens: bool = Field(
        default=True, description="false: the tokenizer's added tokens left out of the answer"
    )


TokenId = Annotated[int, Field(ge=0)]
TokenIds = Annotated[list[TokenId], Field(min_length=1)]


IDS_SHAPE = "ids takes a list of token ids (integers from 0) or a list of such lists"


def _id_problem(item: Any, where: str) -> str | None:
    if is_token(item) and item >= 0:
        return None
    return f"{where} is {json_kind(item)}" + (", not a token id" if is_token(item) else "")


def ids_problem(value: Any) -> str | None:
    """What is wrong with /decode's ``ids``, naming the first wrong item; None if nothing is."""
    if not isinstance(value, list) or not value:
        return f"ids is {json_kind(value) if value != [] else 'empty'}"
    if not isinstance(value[0], list):
        return next((p for i, v in enumerate(value) if (p := _id_problem(v, f"ids[{i}]"))), None)
    for index, ids in enumerate(value):
        if not isinstance(ids, list) or not ids:
            kind = json_kind(ids) if ids != [] else "empty"
            return f"ids[{index}] is {kind}" + (", unlike ids[0] (an array)" if ids else "")
        for position, item in enumerate(ids):
            if problem := _id_problem(item, f"ids[{index}][{position}]"):
                return problem
    return None


class TeiDecodeRequest(TeiBody):
    ids: TokenIds | Annotated[list[TokenIds], Field(min_length=1)] = Field(
        description="the model's token ids, or a list of such lists"
    )
    skip_special_tokens: bool = True

    @field_validator("ids", mode="before")
    @classmethod
    def _one_ids_error(cls, value: Any) -> Any:
        # pydantic would report one problem per member of the union, under a member's name.
        if (problem := ids_problem(value)) is not None:
            raise PydanticCustomError("ids_shape", problem + "; " + IDS_SHAPE)
        return value

    def id_lists(self) -> list[list[int]]:
        return [self.ids] if isinstance(self.ids[0], int) else self.ids

    def id_names(self) -> InputNames:
        """How errors name each list: one list is ``ids`` itself (``ids[3]`` an id of it)."""
        return InputNames.single("ids") if isinstance(self.ids[0], int) else InputNames("ids")


class SimilarityInput(TeiBody):
    source_sentence: Text
    sentences: Texts


class TeiSimilarityRequest(TeiBody):
    inputs: SimilarityInput
    parameters: TruncationOptions | None = None


class TeiRerankRequest(TeiBody):
    """text-embeddings-inference's /rerank."""

    query: Text
    texts: Texts
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool | None = Field(
        default=None, description="false: a pair past the reranker's maximum is refused"
    )
    truncation_direction: Direction = "right"

    def params(self) -> RerankParams:
        overflow = tei_overflow(self.truncate, self.truncation_direction)
        return RerankParams(raw_scores=self.raw_scores, overflow=overflow)
