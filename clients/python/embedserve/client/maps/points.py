"""The points of a map: a collection's stored vectors and payloads (read through Scroll),
or a file's texts (embedded through Embed). Above ``max_points`` a seeded uniform sample
is kept, so a map of a large collection holds bounded memory and time."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Collection
from typing import Any

import numpy as np

from embedserve.client._documents import FilterLike
from embedserve.client._sync import EmbedClient
from embedserve.client.cli_texts import named_by_line, read_texts
from embedserve.client.maps.progress import Progress

# The payload field where `ingest --store-text` keeps a document's text.
TEXT_FIELD = "text"
PAGE_SIZE = 2000
# A progress line every this many points read.
REPORT_EVERY = 10_000


@dataclasses.dataclass(frozen=True)
class MapPoints:
    ids: list[str]
    vectors: np.ndarray
    texts: list[str | None]
    payloads: list[dict[str, Any]]
    # Points that matched (the filter) before sampling.
    total: int

    def __len__(self) -> int:
        return len(self.ids)


def from_collection(
    client: EmbedClient,
    collection: str,
    *,
    max_points: int,
    seed: int,
    progress: Progress,
    filter: FilterLike | None = None,
    only: Collection[str] | None = None,
) -> MapPoints:
    """Every matching point, or a uniform sample of ``max_points`` (reservoir sampling:
    one pass, memory for the sample only). ``only`` keeps just those ids (the points a
    clustering labelled)."""
    rng = random.Random(seed)
    kept: list[Any] = []
    read = seen = 0
    documents = client.scroll_iter(
        collection, page_size=PAGE_SIZE, filter=filter, with_vectors=True
    )
    for doc in documents:
        read += 1
        if read % REPORT_EVERY == 0:
            progress(f"read {read:,} points")
        if only is not None and doc.id not in only:
            continue
        seen += 1
        if len(kept) < max_points:
            kept.append(doc)
        else:
            slot = rng.randrange(seen)
            if slot < max_points:
                kept[slot] = doc
    if not kept:
        matching = " matching the filter" if filter is not None else ""
        raise ValueError(f"collection {collection!r} has no points{matching} to map")
    if any(doc.vector is None for doc in kept):
        raise ValueError(f"collection {collection!r} returned points without vectors")
    payloads = [dict(doc.payload) for doc in kept]
    texts = [p.pop(TEXT_FIELD) if isinstance(p.get(TEXT_FIELD), str) else None for p in payloads]
    return MapPoints(
        ids=[doc.id for doc in kept],
        vectors=np.stack([np.asarray(doc.vector, dtype=np.float32) for doc in kept]),
        texts=texts,
        payloads=payloads,
        total=read,
    )


def from_file(
    client: EmbedClient, path: str, *, max_points: int, seed: int, progress: Progress
) -> MapPoints:
    """A file's texts (the formats ``cluster --texts`` reads), embedded as documents."""
    records = read_texts(path)
    if not records:
        raise ValueError(f"{path} holds no texts to map")
    chosen = records
    if len(records) > max_points:
        keep = sorted(random.Random(seed).sample(range(len(records)), max_points))
        chosen = [records[i] for i in keep]
    progress(f"embedding {len(chosen):,} texts from {path}")
    with named_by_line(path, chosen):
        vectors = client.embed([r.text for r in chosen], task="document")
    return MapPoints(
        ids=[r.label for r in chosen],
        vectors=np.asarray(vectors, dtype=np.float32),
        texts=[r.text for r in chosen],
        payloads=[r.payload for r in chosen],
        total=len(records),
    )
