"""Documents stored as passages: one point per window of a long text's tokens.

A text past the model's maximum would otherwise be cut (or pooled into one vector under
CHUNK); as passages, every part of it is searched, and grouped search (``group_by`` the
document id) answers once per document. Point ids and payload keys are fixed here, so that
writing a document again replaces its passages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

from embedserve.connectors.types import Filter, HasId, MatchAny, Range
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


# What ends a passage's id: a document split into passages may not end its id so, or its
# id could not be told from another document's passage ("report#1" is passage 1 of
# "report").
_PASSAGE_SUFFIX = re.compile(r"#[0-9]+\Z")


def check_split_id(doc_id: str, field: str) -> None:
    """Refuse to split a document whose id ends as a passage's id does."""
    if _PASSAGE_SUFFIX.search(doc_id):
        raise InvalidArgument(
            f"{field}.id {doc_id!r} ends in '#<digits>', as the id of a passage does "
            "('<id>#<n>'): a document split into passages needs an id that does not, or it "
            "could not be told from another document's passage"
        )


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
    """``stale_points`` without a filter, for a collection whose ``doc_id`` has no index
    (a filter would read every point): each document's unsplit point and its passages
    past the new count, up to the count its first passage says. ``counts``: each
    document's new passage count; ``stored``: the payload of each document's first passage
    as stored before this write (absent: none stored)."""
    ids: list[str] = []
    for doc_id, count in counts.items():
        ids.append(doc_id)
        before = stored.get(passage_id(doc_id, 0))
        old = before.get(PASSAGES_KEY) if isinstance(before, dict) else None
        if isinstance(old, int) and old > count:
            ids.extend(passage_id(doc_id, n) for n in range(count, old))
    return ids


def stale_points(counts: Mapping[str, int]) -> Filter:
    """What a write of split documents replaces besides the passages it writes: each
    document's passages numbered from its new count on (``counts``: each document's new
    passage count), whatever count its stored passages say, and the point it may have been
    written as unsplit under its id (never a passage: ``check_split_id``). Found by filter,
    so that passages left by a write that lost a race go with the next rewrite. Documents
    of the same count share a condition: one filter, one request, for the whole write."""
    by_count: defaultdict[int, list[str]] = defaultdict(list)
    for doc_id, count in counts.items():
        by_count[count].append(doc_id)
    past_the_end = [
        Filter(must=(MatchAny(DOC_ID_KEY, tuple(docs)), Range(PASSAGE_KEY, gte=count)))
        for count, docs in sorted(by_count.items())
    ]
    return Filter(should=(*past_the_end, HasId(tuple(counts))))


class DocumentLocks:
    """One lock per document (by collection and id), held by a write of split documents
    from the removal of what it replaces to the write of its passages, so that two writes
    of one document in this process do not interleave (passages of both would stay).
    A write takes its documents' locks in sorted order, so writes sharing documents never
    wait on each other in a cycle; writes of other documents do not wait at all. A lock
    goes once no write holds or awaits it. Other processes writing to the same store take
    no part: their writes of a document may still interleave with these."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def held(self, collection: str, doc_ids: Collection[str]) -> AsyncIterator[None]:
        keys = sorted({(collection, doc_id) for doc_id in doc_ids})
        locks = [self._join(key) for key in keys]
        taken = 0
        try:
            for lock in locks:
                await lock.acquire()
                taken += 1
            yield
        finally:
            for lock in locks[:taken]:
                lock.release()
            for key in keys:
                self._leave(key)

    def _join(self, key: tuple[str, str]) -> asyncio.Lock:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        return lock

    def _leave(self, key: tuple[str, str]) -> None:
        lock, users = self._locks[key]
        if users == 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)
