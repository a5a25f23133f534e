"""Retrieval quality of held-out queries against a corpus: recall@1/10, MRR@10, nDCG@10."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
METRIC_NAMES = ("recall@1", "recall@10", "mrr@10", "ndcg@10")
CUTOFF = 10


def ranked(queries: FloatArray, corpus: FloatArray, depth: int = CUTOFF) -> npt.NDArray[np.intp]:
    """The indices of each query's ``depth`` nearest documents by cosine, best first."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    d = corpus / np.maximum(np.linalg.norm(corpus, axis=1, keepdims=True), 1e-12)
    scores = q @ d.T
    # A stable sort keeps ties in corpus order, so the figures are reproducible.
    return np.argsort(-scores, axis=1, kind="stable")[:, :depth]


def retrieval_metrics(
    rankings: Sequence[Sequence[int]], relevant: Sequence[set[int]]
) -> dict[str, float]:
    """Mean metrics over queries, with binary relevance; each query has >= 1 relevant doc."""
    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    for ranking, rel in zip(rankings, relevant, strict=True):
        top = list(ranking)[:CUTOFF]
        hits = [doc in rel for doc in top]
        totals["recall@1"] += sum(hits[:1]) / len(rel)
        totals["recall@10"] += sum(hits) / len(rel)
        first = next((rank for rank, hit in enumerate(hits, start=1) if hit), None)
        totals["mrr@10"] += 1.0 / first if first else 0.0
        dcg = sum(1.0 / math.log2(rank + 1) for rank, hit in enumerate(hits, start=1) if hit)
        ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(rel), CUTOFF) + 1))
        totals["ndcg@10"] += dcg / ideal
    count = max(len(relevant), 1)
    return {name: value / count for name, value in totals.items()}


def format_table(before: Mapping[str, float], after: Mapping[str, float]) -> str:
    """A Markdown table of the metrics before and after training, with the change in points."""
    lines = ["| metric | before | after | change |", "| --- | ---: | ---: | ---: |"]
    for name in METRIC_NAMES:
        change = (after[name] - before[name]) * 100
        lines.append(f"| {name} | {before[name]:.4f} | {after[name]:.4f} | {change:+.1f} pts |")
    return "\n".join(lines)
