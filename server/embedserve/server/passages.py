"""Documents stored as passages: one point per window of a long text's tokens.

A text past the model's maximum would otherwise be cut (or pooled into one vector under
CHUNK); as passages, every part of it is searched, and grouped search (``group_by`` the
document id) answers once per document. Point ids and payload keys are fixed here, so that
writing a document again replaces its passages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from embedserve.server.errors import InvalidArgument

# Payload keys each passage carries besides the document's own payload.
DOC_ID_KEY = "doc_id"  # the document's id
PASSAGE_KEY = "passage"  # the passage's number, from 0
PASSAGES_KEY = "passages"  # how many passages the document has
SPAN_KEY = "span"  # [start, end): the passage's characters in the document's text
RESERVED_KEYS = (DOC_ID_KEY, PASSAGE_KEY, PASSAGES_KEY, SPAN_KEY)


@dataclasses.dataclass(frozen=True)
class PassageSplit:
    """How to cut texts: passages of at most ``max_tokens`` tokens of text (prompt and
    special tokens not counted; default: all the model takes after them), each repeating
    ``overlap_tokens`` of the one before (default: an eighth of max_tokens)."""

    max_tokens: int | None = None
    overlap_tokens: int | None = None

    def resolved(self, room: int, field: str) -> tuple[int, int]:
        """(max_tokens, overlap_tokens) for a model with ``room`` tokens for text."""
        if room < 1:
            raise InvalidArgument(f"{field}: the prompt leaves no room for text in a passage")
        size = room if self.max_tokens is None else self.max_tokens
        if not 1 <= size <= room:
            raise InvalidArgument(
                f"{field}.max_tokens must be from 1 to {room} (the model's maximum less the "
                f"prompt and special tokens); got {size}"
            )
        overlap = size // 8 if self.overlap_tokens is None else self.overlap_tokens
        if not 0 <= overlap <= size // 2:
            raise InvalidArgument(
                f"{field}.overlap_tokens must be from 0 to half of max_tokens ({size // 2}); "
                f"got {overlap}"
            )
        return size, overlap


def passage_id(doc_id: str, number: int) -> str:
    return f"{doc_id}#{number}"


def check_passage_payload(payload: Mapping[str, Any], field: str) -> None:
    taken = [key for key in RESERVED_KEYS if key in payload]
    if taken:
        raise InvalidArgument(
            f"{field}.payload has {', '.join(map(repr, taken))}, which a document split into "
            f"passages gets from the server ({', '.join(RESERVED_KEYS)})"
        )


def passage_payload(
    payload: Mapping[str, Any], doc_id: str, number: int, spans: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    start, end = spans[number]
    return {
        **payload,
        DOC_ID_KEY: doc_id,
        PASSAGE_KEY: number,
        PASSAGES_KEY: len(spans),
        SPAN_KEY: [start, end],
    }


def replaced_ids(counts: Mapping[str, int], stored: Mapping[str, Any]) -> list[str]:
    """What a write of split documents replaces besides the passages it writes: the point
    each document may have been written as unsplit, and its passages past the new count.
    ``counts``: each document's new passage count; ``stored``: the payload of each
    document's first passage as stored before this write (absent: none stored)."""
    ids: list[str] = []
    for doc_id, count in counts.items():
        ids.append(doc_id)
        before = stored.get(passage_id(doc_id, 0))
        old = before.get(PASSAGES_KEY) if isinstance(before, dict) else None
        if isinstance(old, int) and old > count:
            ids.extend(passage_id(doc_id, n) for n in range(count, old))
    return ids
