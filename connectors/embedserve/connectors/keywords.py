"""BM25 keyword vectors: Qdrant's own tokenizer and weighting, the same for every engine.

A document's text becomes a sparse vector of its stemmed words (stop words dropped; the
collection's language, English by default), each weighted by BM25's term-frequency
saturation (k=1.2, b=0.75, average length 256 words, Qdrant's defaults). The collection's
sparse vector carries Qdrant's IDF modifier, so the engine multiplies in each term's
inverse document frequency at query time, over the documents stored then. A query is its
words with weight 1. Scores are BM25 scores, as Qdrant's server-side ``qdrant/bm25``
inference gives them.
"""

from __future__ import annotations

import dataclasses
import functools
import unicodedata

import qdrant_edge as qe

from .errors import InvalidRequest
from .types import SearchParams, SparseTerms

# The name of the sparse vector in the engine's collection.
KEYWORD_VECTOR = "bm25"
# Reciprocal rank fusion's constant (Cormack et al.'s 60): a hit at rank r of either list
# adds 1 / (k + r), so the two lists weigh alike and no single top rank dominates.
RRF_K = 60
# Each list that a hybrid search fuses holds at least this many candidates, so that a
# document ranked moderately by both lists can still make the fused page.
MIN_FUSION_DEPTH = 100

# The languages Qdrant has stop words and a stemmer for.
LANGUAGES = (
    "arabic", "azerbaijani", "basque", "bengali", "catalan", "chinese", "danish", "dutch",
    "english", "finnish", "french", "german", "greek", "hebrew", "hinglish", "hungarian",
    "indonesian", "italian", "japanese", "kazakh", "nepali", "norwegian", "portuguese",
    "romanian", "russian", "slovene", "spanish", "swedish", "tajik", "turkish",
)  # fmt: skip


def check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise InvalidRequest(
            f"unknown bm25_language {language!r}; use one of {', '.join(LANGUAGES)}"
        )


@functools.cache
def _model(language: str) -> qe.Bm25:
    return qe.Bm25(qe.Bm25Config(language=language))


def _terms(vector: qe.SparseVector) -> SparseTerms:
    pairs = sorted(zip(vector.indices, vector.values, strict=True))
    return SparseTerms(tuple(i for i, _ in pairs), tuple(float(v) for _, v in pairs))


def fusion_depth(params: SearchParams) -> int:
    """How many candidates each list of a hybrid search contributes."""
    return params.fusion_depth or max(MIN_FUSION_DEPTH, params.limit + params.offset)


def fusing_as_asked(params: SearchParams) -> SearchParams:
    """``params`` with the fusion depth of the page they ask for, kept when a reading of
    them goes deeper: a hybrid score depends on the depth (a document past it in one list
    gains nothing from that list)."""
    return dataclasses.replace(params, fusion_depth=fusion_depth(params))


def document_terms(text: str, language: str = "english") -> SparseTerms:
    return _terms(_model(language).embed_document(_composed(text)))


def query_terms(text: str, language: str = "english") -> SparseTerms:
    return _terms(_model(language).embed_query(_composed(text)))


def _composed(text: str) -> str:
    """``text`` in Unicode's composed form (NFC): the tokenizer splits words at a combining
    mark, so "e\u0301cole" would share no term with "\u00e9cole", the same word."""
    return unicodedata.normalize("NFC", text)
