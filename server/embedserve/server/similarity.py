"""Similarity scoring, shared by every transport: pairs, or one query against candidates.

Scores use the model's own similarity function (cosine unless its files say otherwise).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import numpy as np

from embedserve.server.embedder import Embedder, EmbedParams, EmbedResult, Task, Timings
from embedserve.server.errors import InvalidArgument
from embedserve.server.input_names import InputNames
from embedserve.server.model_spec import SimilarityFunction
from embedserve.server.windows import FloatArray


@dataclasses.dataclass
class SimilarityResult:
    scores: FloatArray
    total_tokens: int
    timings: Timings


def cosine(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise cosine similarity of two (n, d) matrices."""
    a_norm = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b_norm = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.asarray((a_norm * b_norm).sum(axis=1), dtype=np.float32)


def pairwise_scores(a: FloatArray, b: FloatArray, function: SimilarityFunction) -> FloatArray:
    """Row-wise scores as sentence-transformers computes them: higher is more similar, so
    the distances are negated."""
    if function is SimilarityFunction.COSINE:
        return cosine(a, b)
    if function is SimilarityFunction.DOT:
        scores = (a * b).sum(axis=1)
    elif function is SimilarityFunction.EUCLIDEAN:
        scores = -np.linalg.norm(a - b, axis=1)
    else:
        scores = -np.abs(a - b).sum(axis=1)
    return np.asarray(scores, dtype=np.float32)


def _scores(embedder: Embedder, a: FloatArray, b: FloatArray) -> FloatArray:
    return pairwise_scores(a, b, embedder.model.spec.similarity)


def _combine(scores: FloatArray, results: Sequence[EmbedResult]) -> SimilarityResult:
    timings = results[0].timings
    for other in results[1:]:
        timings.merge(other.timings)
    return SimilarityResult(scores, sum(r.total_tokens for r in results), timings)


async def score_pairs(
    embedder: Embedder,
    pairs: Sequence[tuple[str, str]],
    params: EmbedParams,
    deadline: float | None = None,
    field: str = "pairs.pairs",
) -> SimilarityResult:
    """``field``: where the request keeps its pairs, for error messages."""
    if not pairs:
        raise InvalidArgument(f"{field} must not be empty")
    # Each side is one request's inputs: as many pairs as a request may hold texts.
    firsts, seconds = await asyncio.gather(
        *(
            embedder.embed([pair[side] for pair in pairs], params, deadline, field=names)
            for side, names in enumerate(_pair_sides(field, len(pairs)))
        )
    )
    scores = _scores(embedder, firsts.vectors, seconds.vectors)
    return _combine(scores, [firsts, seconds])


def _pair_sides(field: str, count: int) -> tuple[InputNames, InputNames]:
    """The names of the pairs' first and second texts, in ``field``'s terms."""
    return (
        InputNames.listed(field, [f"{field}[{i}].a" for i in range(count)]),
        InputNames.listed(field, [f"{field}[{i}].b" for i in range(count)]),
    )


async def score_candidates(
    embedder: Embedder,
    query: str,
    candidates: Sequence[str],
    params: EmbedParams,
    deadline: float | None = None,
    *,
    split_prompts: bool = True,
    fields: tuple[str, str] = ("query_candidates.query", "query_candidates.candidates"),
) -> SimilarityResult:
    """``split_prompts``: the query and candidate prompt rule (query_and_candidate_params);
    off, both sides take ``params`` as they are. ``fields``: where the request keeps the
    query and the candidates, for error messages."""
    query_field, candidates_field = fields
    if not query:
        raise InvalidArgument(f"{query_field} is empty")
    query_params, candidate_params = (
        query_and_candidate_params(params) if split_prompts else (params, params)
    )
    query_result, candidate_result = await asyncio.gather(
        embedder.embed([query], query_params, deadline, field=InputNames.single(query_field)),
        embedder.embed(list(candidates), candidate_params, deadline, field=candidates_field),
    )
    repeated = np.repeat(query_result.vectors, len(candidates), axis=0)
    scores = _scores(embedder, repeated, candidate_result.vectors)
    return _combine(scores, [query_result, candidate_result])


def query_and_candidate_params(params: EmbedParams) -> tuple[EmbedParams, EmbedParams]:
    """With no task or prompt chosen, queries get the QUERY prompt and candidates DOCUMENT."""
    if params.task is not Task.DEFAULT or params.prompt is not None:
        return params, params
    return dataclasses.replace(params, task=Task.QUERY), dataclasses.replace(
        params, task=Task.DOCUMENT
    )
