"""A search's second stage: its best hits read by the reranker together with the query
text, reordered by the reranker's scores, which the hits then carry.
It reorders them in windows of ``candidates`` (rank_windows.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from embedserve.connectors.payload_fields import field_at
from embedserve.connectors.types import PAYLOAD_PATH, ScoredPoint, SearchParams
from embedserve.server.errors import FailedPrecondition, InvalidArgument

DEFAULT_CANDIDATES = 50
MAX_CANDIDATES = 1000  # each is a pass of the cross-encoder over query and text


@dataclasses.dataclass(frozen=True)
class RerankStage:
    text_key: str  # the payload field holding a document's text
    candidates: int | None = None  # None: DEFAULT_CANDIDATES, or the limit if more

    def window(self, params: SearchParams) -> int:
        """How many first-stage hits the reranker reorders among themselves."""
        if self.candidates is not None:
            return self.candidates
        return max(DEFAULT_CANDIDATES, params.limit)

    def check(self, params: SearchParams, query_text: str | None, weighings: Sequence[str]) -> None:
        """Refuse what the stage cannot do; ``weighings``: the names of those the search
        asks for too."""
        if query_text is None:
            raise InvalidArgument("rerank needs a text query: the reranker reads the query's text")
        others = ["diversity"] if params.diversity is not None else []
        if others := others + list(weighings):
            raise InvalidArgument(f"a reranked search takes no {others[0]}")
        if not PAYLOAD_PATH.fullmatch(self.text_key):
            raise InvalidArgument(f"rerank.text_key {self.text_key!r} is not a payload key")
        if self.candidates is None and params.limit > MAX_CANDIDATES:
            raise InvalidArgument(
                f"a reranked search reads at most {MAX_CANDIDATES} candidates, and a page is "
                f"cut from them; limit is {params.limit}"
            )
        if self.candidates is not None:
            if not 1 <= self.candidates <= MAX_CANDIDATES:
                raise InvalidArgument(
                    f"rerank.candidates must be between 1 and {MAX_CANDIDATES}; "
                    f"got {self.candidates}"
                )
            if self.candidates < params.limit:
                raise InvalidArgument(
                    f"rerank.candidates ({self.candidates}) must be at least the limit "
                    f"({params.limit}): a page is cut from them"
                )


def hit_texts(hits: Sequence[ScoredPoint], key: str) -> list[str]:
    """Each hit's text at ``key``, or FAILED_PRECONDITION naming the first without one."""
    texts = []
    for hit in hits:
        text = field_at(hit.payload, key)
        if not isinstance(text, str) or not text:
            raise FailedPrecondition(
                f"document {hit.id!r} has no text at payload key {key!r} for the reranker to "
                "read: write documents with store_text, or name the payload key that holds "
                "their text (rerank.text_key)"
            )
        texts.append(text)
    return texts
