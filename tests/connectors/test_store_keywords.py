"""Keyword (BM25) and hybrid search, the same on every backend.

Expected scores are computed here from the documents' own BM25 term weights and the
corpus's document frequencies, so an engine that lost the IDF modifier, a term weight or
a list in the fusion would fail.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from connectors_testdata import unit_vectors

from embedserve.connectors import (
    CollectionSpec,
    EdgeStore,
    Filter,
    InvalidRequest,
    MatchValue,
    PointRecord,
    ScoredPoint,
    SearchParams,
    VectorStore,
    document_terms,
    query_terms,
)
from embedserve.connectors.keywords import RRF_K
from embedserve.connectors.stable_pages import stable_page

DIM = 8
TEXTS = [
    "The cat sat on the mat",
    "Dogs chase cats around the garden",
    "A lecture on quantum physics",
    "The cat and the dog are good friends",  # longer than the first: no equal BM25 scores
    "Quantum computers factor numbers",
    "Gardening tips for spring",
    "Cats sleep most of the day, cats purr",
]


def bm25_scores(query: str) -> dict[str, float]:
    """Qdrant's BM25: each shared term's document weight times its IDF over the corpus."""
    docs = [document_terms(t) for t in TEXTS]
    weights = [dict(zip(d.indices, d.values, strict=True)) for d in docs]
    scores: dict[str, float] = {}
    for term in query_terms(query).indices:
        having = sum(term in w for w in weights)
        idf = math.log(1 + (len(TEXTS) - having + 0.5) / (having + 0.5))
        for i, w in enumerate(weights):
            if term in w:
                scores[f"d{i}"] = scores.get(f"d{i}", 0.0) + idf * w[term]
    return scores


@pytest.fixture
def corpus(store: VectorStore) -> tuple[VectorStore, np.ndarray]:
    vectors = unit_vectors(np.random.default_rng(3), len(TEXTS), DIM)
    store.create_collection(CollectionSpec("docs", vector_size=DIM, bm25=True))
    store.upsert(
        "docs",
        [
            PointRecord(f"d{i}", vectors[i], {"even": i % 2 == 0}, keywords=document_terms(t))
            for i, t in enumerate(TEXTS)
        ],
    )
    return store, vectors


def test_keyword_search_scores_as_bm25(corpus: tuple[VectorStore, np.ndarray]) -> None:
    store, _ = corpus
    expected = bm25_scores("cat")
    assert set(expected) == {"d0", "d1", "d3", "d6"}  # stemmed: cat, cats
    hits = store.search("docs", None, keywords=query_terms("cat"), params=SearchParams(limit=10))
    assert {h.id: pytest.approx(h.score, rel=1e-4) for h in hits} == expected
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].id == "d6"  # the only document that says it twice


def test_texts_without_terms_do_not_count_among_bm25s_documents(store: VectorStore) -> None:
    """Punctuation, stop words or emoji alone make no terms. Local mode counted such a
    text's empty keyword vector among BM25's documents (its IDF), the other engines did
    not: every score about 8% higher there, and rankings could flip."""
    empty = ["!!! ... ?", "the and of", "\N{SLIGHTLY SMILING FACE}"]
    assert all(not document_terms(t).indices for t in empty)
    vectors = unit_vectors(np.random.default_rng(4), len(TEXTS) + len(empty), DIM)
    store.create_collection(CollectionSpec("docs", vector_size=DIM, bm25=True))
    points = [
        PointRecord(f"d{i}", vectors[i], keywords=document_terms(t))
        for i, t in enumerate(TEXTS + empty)
    ]
    store.upsert("docs", points)
    hits = store.search("docs", None, keywords=query_terms("cat"), params=SearchParams(limit=10))
    assert {h.id: pytest.approx(h.score, rel=1e-4) for h in hits} == bm25_scores("cat")
    # Rewritten without terms, a document loses the keywords it had.
    store.upsert("docs", [PointRecord("d0", vectors[0], keywords=document_terms("?!"))])
    hits = store.search("docs", None, keywords=query_terms("cat"), params=SearchParams(limit=10))
    assert {h.id for h in hits} == {"d1", "d3", "d6"}


def test_keyword_search_with_filter_and_no_match(corpus: tuple[VectorStore, np.ndarray]) -> None:
    store, _ = corpus
    even = Filter(must=(MatchValue("even", True),))
    hits = store.search("docs", None, even, keywords=query_terms("cats"))
    assert {h.id for h in hits} == {"d0", "d6"}
    assert store.search("docs", None, keywords=query_terms("the")) == []  # a stop word only


@pytest.mark.parametrize("weight", [1.0, 4.0])
def test_hybrid_search_fuses_both_rankings(
    corpus: tuple[VectorStore, np.ndarray], weight: float
) -> None:
    store, vectors = corpus
    query = vectors[2] + 0.1 * vectors[4]
    dense = store.search("docs", query, params=SearchParams(limit=10, exact=True))
    keyword = store.search("docs", None, keywords=query_terms("quantum cats"))
    expected: dict[str, float] = {}
    for ranking, w in ((dense, 1.0), (keyword, weight)):
        for rank, hit in enumerate(ranking):
            # Qdrant's weighted RRF scales the rank: rank r of a list of weight w counts
            # as rank (r + 1) / w - 1 of an unweighted one.
            expected[hit.id] = expected.get(hit.id, 0.0) + 1 / ((rank + 1) / w + RRF_K - 1)

    params = SearchParams(limit=3, keyword_weight=weight)
    fused = store.search("docs", query, keywords=query_terms("quantum cats"), params=params)
    best = sorted(expected.values(), reverse=True)[:3]
    assert [h.score for h in fused] == pytest.approx(best, rel=1e-5)
    assert all(expected[h.id] == pytest.approx(h.score, rel=1e-5) for h in fused)
    if weight == 1.0:  # both quantum documents lead: each ranks high in both lists
        assert {h.id for h in fused[:2]} == {"d2", "d4"}


def test_hybrid_search_applies_the_filter_and_pages(
    corpus: tuple[VectorStore, np.ndarray],
) -> None:
    store, vectors = corpus
    even = Filter(must=(MatchValue("even", True),))
    terms = query_terms("cats quantum")
    everything = store.search("docs", vectors[0], even, SearchParams(limit=10), keywords=terms)
    assert {h.id for h in everything} == {"d0", "d2", "d4", "d6"}
    second = store.search("docs", vectors[0], even, SearchParams(limit=2, offset=2), keywords=terms)
    assert [h.id for h in second] == [h.id for h in everything[2:4]]


def test_points_without_keywords_and_their_vectors(store: VectorStore) -> None:
    """A bm25 collection also takes points given by vector alone; reads return the dense
    vector, and recommendation by id still finds it."""
    vectors = unit_vectors(np.random.default_rng(5), 3, DIM)
    store.create_collection(CollectionSpec("mixed", vector_size=DIM, bm25=True))
    store.upsert(
        "mixed",
        [
            PointRecord("text", vectors[0], keywords=document_terms("solar panels")),
            PointRecord("plain", vectors[1]),
            PointRecord("other", vectors[2], keywords=document_terms("wind turbines")),
        ],
    )
    assert [h.id for h in store.search("mixed", None, keywords=query_terms("solar"))] == ["text"]
    [record] = store.retrieve("mixed", ["text"], with_vectors=True)
    assert record.vector == pytest.approx(vectors[0].tolist(), abs=1e-6)
    hits = store.search("mixed", vectors[1], params=SearchParams(with_vectors=True, limit=1))
    assert hits[0].id == "plain" and hits[0].vector == pytest.approx(vectors[1], abs=1e-6)
    assert store.recommend("mixed", ["text"], params=SearchParams(limit=2))[0].id in {
        "plain",
        "other",
    }


def test_keyword_requests_need_a_bm25_collection(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("dense", vector_size=DIM))
    with pytest.raises(InvalidRequest, match="without bm25"):
        store.search("dense", None, keywords=query_terms("cat"))
    with pytest.raises(InvalidRequest, match="without bm25"):
        store.upsert("dense", [PointRecord("a", [0.1] * DIM, keywords=document_terms("cat"))])
    with pytest.raises(InvalidRequest, match="a vector, keywords or both"):
        store.search("dense", None)
    assert store.count("dense") == 0


def test_keywords_survive_reopening_the_embedded_store(tmp_path: Path) -> None:
    vectors = unit_vectors(np.random.default_rng(9), 2, DIM)
    with EdgeStore(tmp_path) as store:
        store.create_collection(CollectionSpec("kept", vector_size=DIM, bm25=True))
        store.upsert(
            "kept",
            [
                PointRecord("a", vectors[0], keywords=document_terms("river boats")),
                PointRecord("b", vectors[1], keywords=document_terms("mountain goats")),
            ],
        )
    with EdgeStore(tmp_path) as store:
        assert store.get_collection("kept").spec.bm25
        hits = store.search("kept", None, keywords=query_terms("goat"))
        assert [h.id for h in hits] == ["b"]


def test_the_collection_language_picks_stop_words_and_stemmer(store: VectorStore) -> None:
    text = "Die Häuser und die Hunde"
    for name, language in (("en", "english"), ("de", "german")):
        store.create_collection(
            CollectionSpec(name, vector_size=DIM, bm25=True, bm25_language=language)
        )
        assert store.get_collection(name).spec.bm25_language == language
        terms = document_terms(text, language)
        store.upsert(name, [PointRecord("doc", [0.5] * DIM, keywords=terms)])
    # "die" and "und" are German stop words, and German stems "Häuser" to "Haus".
    assert document_terms(text, "german") == document_terms("Haus Hund", "german")
    assert [h.id for h in store.search("en", None, keywords=query_terms("die", "english"))] == [
        "doc"
    ]
    assert store.search("de", None, keywords=query_terms("die", "german")) == []
    assert [h.id for h in store.search("de", None, keywords=query_terms("haus", "german"))] == [
        "doc"
    ]


def test_composed_and_decomposed_accents_are_the_same_words(store: VectorStore) -> None:
    composed = "L'\u00e9cole d'\u00e9t\u00e9 en Fran\u00e7ais"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    for language in ("english", "french"):
        assert document_terms(decomposed, language) == document_terms(composed, language)
        assert query_terms(decomposed, language) == query_terms(composed, language)
    store.create_collection(CollectionSpec("fr", vector_size=DIM, bm25=True))
    store.upsert("fr", [PointRecord("nfd", [0.5] * DIM, keywords=document_terms(decomposed))])
    hits = store.search("fr", None, keywords=query_terms("\u00e9cole"))
    assert [h.id for h in hits] == ["nfd"]


def test_unknown_or_unused_languages_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="unknown bm25_language 'klingon'"):
        CollectionSpec("x", vector_size=DIM, bm25=True, bm25_language="klingon")
    with pytest.raises(InvalidRequest, match="bm25_language applies to collections created"):
        CollectionSpec("x", vector_size=DIM, bm25_language="german")


@pytest.fixture
def tied(store: VectorStore) -> tuple[VectorStore, np.ndarray]:
    """300 documents of three words from six: keyword scores tie in runs, and so do fused
    ones (rank r of the dense list and rank r of the keyword list score alike)."""
    rng = np.random.default_rng(5)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    vectors = unit_vectors(rng, 300, DIM)
    store.create_collection(CollectionSpec("tied", vector_size=DIM, bm25=True))
    texts = [" ".join(rng.choice(words, size=3)) for _ in range(300)]
    store.upsert(
        "tied",
        [
            PointRecord(f"p{i:03d}", vectors[i], keywords=document_terms(t))
            for i, t in enumerate(texts)
        ],
    )
    return store, vectors


def test_hybrid_pages_are_cut_from_one_fusion(tied: tuple[VectorStore, np.ndarray]) -> None:
    """A page ending inside a run of equal scores is read deeper; that reading fused the
    lists deeper too, and a document's score, so pages overlapped and skipped documents."""
    store, vectors = tied
    ranked = functools.partial(store.search, "tied", vectors[0], keywords=query_terms("alpha"))
    whole = stable_page(ranked, None, SearchParams(limit=100))
    pages = [stable_page(ranked, None, SearchParams(limit=7, offset=o)) for o in range(0, 98, 7)]
    assert [(h.id, h.score) for page in pages for h in page] == [
        (h.id, h.score) for h in whole[:98]
    ]


def test_a_hybrid_threshold_leaves_out_a_hit_scoring_it(
    tied: tuple[VectorStore, np.ndarray],
) -> None:
    store, vectors = tied
    terms = query_terms("alpha beta")
    hits = store.search("tied", vectors[1], params=SearchParams(limit=30), keywords=terms)
    threshold = hits[10].score
    params = SearchParams(limit=30, score_threshold=threshold)
    kept = store.search("tied", vectors[1], params=params, keywords=terms)
    assert [h.id for h in kept] == [h.id for h in hits if h.score > threshold]


def _shared_ranks(hits: list[ScoredPoint]) -> dict[str, int]:
    """Each hit's rank (from 0), equal scores sharing the first one's."""
    ranks: dict[str, int] = {}
    for at, hit in enumerate(hits):
        ranks[hit.id] = ranks[hits[at - 1].id] if at and hit.score == hits[at - 1].score else at
    return ranks


@pytest.mark.parametrize("weight", [1.0, 2.0])
def test_equal_documents_fuse_to_equal_scores(store: VectorStore, weight: float) -> None:
    """Copies of one document tie in both rankings, in an order each engine picks: they
    share a rank there, so they fuse alike, to the same scores on every engine, and come
    by id; a run of them crossing the fusion depth counts whole."""
    unit = [1.0] + [0.0] * (DIM - 1)
    docs = [
        *((f"a{n}", unit, "seal pump") for n in (3, 1, 4, 2)),
        *((f"b{n}", [0.8, 0.6] + [0.0] * (DIM - 2), "pump pump valve") for n in (2, 1)),
        ("c1", [0.5, 0.0, 0.866] + [0.0] * (DIM - 3), "pump"),
        *((f"d{n}", [0.2, 0.98] + [0.0] * (DIM - 2), "valve seal") for n in (2, 1)),
    ]
    store.create_collection(CollectionSpec("copies", vector_size=DIM, bm25=True))
    store.upsert(
        "copies",
        [PointRecord(i, v, {"text": t, "n": i}, keywords=document_terms(t)) for i, v, t in docs],
    )
    terms = query_terms("pump")
    dense = store.search("copies", unit, params=SearchParams(limit=20, exact=True))
    keyword = store.search("copies", None, keywords=terms, params=SearchParams(limit=20))
    expected: dict[str, float] = {}
    for ranking, w in ((dense, 1.0), (keyword, weight)):
        for point, rank in _shared_ranks(ranking).items():
            expected[point] = expected.get(point, 0.0) + 1 / ((rank + 1) / w + RRF_K - 1)
    want = sorted(
        ((p, float(np.float32(s))) for p, s in expected.items()), key=lambda x: (-x[1], x[0])
    )

    ranked = functools.partial(store.search, "copies", unit, keywords=terms)
    params = SearchParams(limit=20, exact=True, keyword_weight=weight)
    hits = ranked(None, params)
    assert [(h.id, h.score) for h in hits] == want
    texts = {i: (v, t) for i, v, t in docs}
    assert all(h.payload == {"text": texts[h.id][1], "n": h.id} for h in hits)
    assert all(h.vector is None for h in hits)
    asked = SearchParams(
        limit=3, offset=2, exact=True, keyword_weight=weight, payload_keys=("n",), with_vectors=True
    )
    page = ranked(None, asked)
    assert [(h.id, h.score) for h in page] == want[2:5]
    assert [h.payload for h in page] == [{"n": h.id} for h in page]
    for h in page:
        np.testing.assert_allclose(h.vector, texts[h.id][0], atol=1e-3)
    bare = ranked(
        None, SearchParams(limit=3, exact=True, keyword_weight=weight, with_payload=False)
    )
    assert [(h.id, h.score, h.payload) for h in bare] == [(p, s, None) for p, s in want[:3]]
    pages = [
        stable_page(
            ranked, None, SearchParams(limit=3, offset=o, exact=True, keyword_weight=weight)
        )
        for o in range(0, 9, 3)
    ]
    assert [(h.id, h.score) for page in pages for h in page] == want[:9]
    # Depth 2 ends inside the four copies' run in the dense list: all four count alike.
    shallow = SearchParams(limit=10, exact=True, keyword_weight=weight, fusion_depth=2)
    copies = [h for h in ranked(None, shallow) if h.id.startswith("a")]
    assert [h.id for h in copies] == ["a1", "a2", "a3", "a4"]
    assert len({h.score for h in copies}) == 1
