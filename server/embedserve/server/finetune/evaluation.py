"""Held-out evaluation: embed queries and corpus as the server would, then score rankings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embedserve.server.finetune.metrics import FloatArray, ranked, retrieval_metrics
from embedserve.server.finetune.pairs import Pair
from embedserve.server.finetune.prompts import TaskPrompts


def encode(model: Any, texts: Sequence[str], prompt: str, batch_size: int) -> FloatArray:
    """Unit vectors for ``texts`` with ``prompt`` prepended, as the server embeds them.
    No prompt is "", not None: sentence-transformers would use the default prompt then."""
    vectors = model.encode(
        list(texts),
        prompt=prompt,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def evaluate(
    model: Any,
    heldout: Sequence[Pair],
    corpus: Sequence[str],
    prompts: TaskPrompts,
    batch_size: int,
    corpus_vectors: FloatArray | None = None,
) -> dict[str, float]:
    """Metrics of the held-out queries ranked against the whole corpus."""
    index = {text: position for position, text in enumerate(corpus)}
    relevant: dict[str, set[int]] = {}
    for pair in heldout:
        relevant.setdefault(pair.query, set()).add(index[pair.positive])
    queries = list(relevant)
    if corpus_vectors is None:
        corpus_vectors = encode(model, corpus, prompts.document, batch_size)
    query_vectors = encode(model, queries, prompts.query, batch_size)
    rankings = ranked(query_vectors, corpus_vectors)
    return retrieval_metrics(rankings.tolist(), [relevant[q] for q in queries])
