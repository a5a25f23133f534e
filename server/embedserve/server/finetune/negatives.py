"""Hard negatives: for each pair, a corpus document the base model ranks high but is wrong."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from embedserve.server.finetune.metrics import FloatArray
from embedserve.server.finetune.pairs import Pair

# Candidates looked at per query; a negative further down teaches the model little.
DEPTH = 64
CHUNK = 256


def mine_hard_negatives(
    pairs: Sequence[Pair],
    corpus: Sequence[str],
    query_vectors: FloatArray,
    corpus_vectors: FloatArray,
    margin: float,
) -> tuple[list[Pair], int]:
    """Give each pair without a negative the best-scoring document that is not a positive.

    ``query_vectors[i]`` embeds ``pairs[i].query``; vectors are unit length. A candidate must
    score below the pair's positive by ``margin`` (relative): one that scores as high is more
    likely an unlabelled answer than a wrong one. Returns the pairs and how many got one.
    """
    index = {text: position for position, text in enumerate(corpus)}
    positives: dict[str, set[int]] = {}
    for pair in pairs:
        positives.setdefault(pair.query, set()).add(index[pair.positive])
    depth = min(DEPTH, len(corpus))
    result: list[Pair] = []
    mined = 0
    for start in range(0, len(pairs), CHUNK):
        block = pairs[start : start + CHUNK]
        scores = query_vectors[start : start + CHUNK] @ corpus_vectors.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        for row, pair in enumerate(block):
            if pair.negative is not None:
                result.append(pair)
                continue
            positive_score = float(scores[row, index[pair.positive]])
            limit = positive_score - margin * abs(positive_score)
            skip = positives[pair.query]
            choice = next(
                (int(d) for d in top[row] if int(d) not in skip and scores[row, d] < limit), None
            )
            if choice is None:
                result.append(pair)
                continue
            result.append(dataclasses.replace(pair, negative=corpus[choice]))
            mined += 1
    return result, mined
