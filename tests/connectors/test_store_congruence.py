"""The same assertions on every backend: embedded engine and qdrant-client (local mode)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from connectors_testdata import Array, clustered, unit_vectors

from embedserve.connectors import (
    CollectionExists,
    CollectionNotFound,
    CollectionSpec,
    DimensionMismatch,
    Distance,
    Filter,
    HasId,
    InvalidRequest,
    IsEmpty,
    IsNull,
    MatchAny,
    MatchExcept,
    MatchText,
    MatchTextAny,
    MatchValue,
    MinShould,
    Nested,
    PayloadIndexKind,
    PointNotFound,
    PointRecord,
    Quantization,
    Range,
    RecommendStrategy,
    SearchParams,
    StoreClosed,
    ValuesCount,
    VectorStore,
)

DIM = 16
N = 40


def payload_of(i: int) -> dict[str, Any]:
    return {
        "group": "abc"[i % 3],
        "n": i,
        "score": round(i / N, 3),
        "flag": i % 2 == 0,
        "maybe": None if i % 4 == 0 else i,
        "meta": {"depth": i % 5},
        # Missing, an empty list, or tags.
        **({} if i % 5 == 0 else {"tags": [] if i % 5 == 1 else ["t", str(i)]}),
        # A list of objects, for nested conditions: (kind, size) pairs.
        "parts": [{"kind": "abc"[i % 3], "size": i % 4}, {"kind": "abc"[(i + 1) % 3], "size": 3}],
    }


@pytest.fixture
def filled(store: VectorStore) -> tuple[VectorStore, Array]:
    vectors = unit_vectors(np.random.default_rng(7), N, DIM)
    store.create_collection(CollectionSpec("items", vector_size=DIM))
    store.upsert("items", [PointRecord(f"id-{i}", vectors[i], payload_of(i)) for i in range(N)])
    return store, vectors


# ------------------------------------------------------------------------ collections


def test_collection_lifecycle(store: VectorStore) -> None:
    spec = CollectionSpec("docs", vector_size=8)
    assert store.list_collections() == []
    store.create_collection(spec)
    store.create_collection(CollectionSpec("another", vector_size=4))
    assert store.list_collections() == ["another", "docs"]

    info = store.get_collection("docs")
    assert info.spec == spec
    assert info.points_count == 0

    with pytest.raises(CollectionExists, match="docs"):
        store.create_collection(spec)

    store.delete_collection("docs")
    assert store.list_collections() == ["another"]
    with pytest.raises(CollectionNotFound, match="docs"):
        store.get_collection("docs")
    with pytest.raises(CollectionNotFound):
        store.delete_collection("docs")

    # A deleted name can be used again, starting empty.
    store.create_collection(CollectionSpec("docs", vector_size=3))
    assert store.get_collection("docs").spec.vector_size == 3
    assert store.count("docs") == 0


def test_full_spec_round_trips(store: VectorStore) -> None:
    spec = CollectionSpec(
        "tuned",
        vector_size=12,
        distance=Distance.DOT,
        on_disk=True,
        hnsw_m=8,
        hnsw_ef_construct=64,
        hnsw_ef=77,
        quantization=Quantization.SCALAR_INT8,
        shard_number=2,
        replication_factor=1,
        write_consistency_factor=1,
        payload_indexes={"group": PayloadIndexKind.KEYWORD, "n": PayloadIndexKind.INTEGER},
        bm25=True,
    )
    store.create_collection(spec)
    assert store.get_collection("tuned").spec == spec


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_collection("missing"),
        lambda s: s.upsert("missing", [PointRecord("a", [0.0] * DIM)]),
        lambda s: s.search("missing", [0.0] * DIM),
        lambda s: s.recommend("missing", ["a"]),
        lambda s: s.retrieve("missing", ["a"]),
        lambda s: s.delete("missing", ids=["a"]),
        lambda s: s.count("missing"),
    ],
)
def test_missing_collection(store: VectorStore, call: Callable[[VectorStore], object]) -> None:
    with pytest.raises(CollectionNotFound, match="missing"):
        call(store)


@pytest.mark.parametrize(
    "name", ["", "../escape", "a/b", ".hidden", "x" * 200, "sp ace", "trailing\n", "nul\x00"]
)
def test_invalid_collection_name(store: VectorStore, name: str) -> None:
    with pytest.raises(InvalidRequest):
        store.create_collection(CollectionSpec(name, vector_size=4))
    with pytest.raises(InvalidRequest):
        store.count(name)


# ---------------------------------------------------------------------- dimensions


def test_dimension_mismatch_names_both_numbers(filled: tuple[VectorStore, Array]) -> None:
    store, _ = filled
    with pytest.raises(DimensionMismatch, match=rf"expected {DIM}, got 5") as err:
        store.upsert("items", [PointRecord("bad", [0.1] * 5)])
    assert (err.value.expected, err.value.got) == (DIM, 5)
    assert isinstance(err.value, InvalidRequest)
    with pytest.raises(DimensionMismatch, match=rf"expected {DIM}, got 3"):
        store.search("items", [0.1, 0.2, 0.3])
    with pytest.raises(DimensionMismatch, match=rf"expected {DIM}, got 2"):
        store.recommend("items", [[1.0, 0.0]])
    # A failed batch writes nothing, even its valid points.
    with pytest.raises(DimensionMismatch):
        store.upsert("items", [PointRecord("ok", [0.1] * DIM), PointRecord("bad", [0.1] * 3)])
    assert store.count("items") == N


@pytest.mark.parametrize(
    "point",
    [
        PointRecord("nan", [float("nan")] * DIM),
        PointRecord("inf", [float("inf")] + [0.0] * (DIM - 1)),
        # finite, but its dot products overflow 32-bit floats (and 1e300 is no float32)
        PointRecord("huge", [3.4e38] + [0.0] * (DIM - 1)),
        PointRecord("beyond-float32", [1e300] + [0.0] * (DIM - 1)),
        PointRecord("matrix", np.zeros((2, DIM))),
        PointRecord("", [0.0] * DIM),
        PointRecord("reserved", [0.0] * DIM, {"_embedserve_id": "x"}),
        PointRecord("set", [0.0] * DIM, {"tags": {"a", "b"}}),
        PointRecord("nan-payload", [0.0] * DIM, {"x": float("nan")}),
    ],
    ids=lambda p: p.id or "empty-id",
)
def test_bad_points_are_rejected(filled: tuple[VectorStore, Array], point: PointRecord) -> None:
    store, _ = filled
    with pytest.raises(InvalidRequest):
        store.upsert("items", [point])
    assert store.count("items") == N


# ------------------------------------------------------------------ writes and reads


def test_upsert_count_and_reupsert(filled: tuple[VectorStore, Array]) -> None:
    store, _ = filled
    assert store.count("items") == N
    assert store.get_collection("items").points_count == N
    # The same ids again (new payload, new vectors): overwritten, not added.
    moved = unit_vectors(np.random.default_rng(8), N, DIM)
    store.upsert("items", [PointRecord(f"id-{i}", moved[i], {"v": 2}) for i in range(N)])
    assert store.count("items") == N
    [rec] = store.retrieve("items", ["id-3"], with_vectors=True)
    assert rec.payload == {"v": 2}
    assert rec.vector is not None
    np.testing.assert_allclose(rec.vector, moved[3], atol=1e-5)
    store.upsert("items", [])
    assert store.count("items") == N


def test_retrieve(filled: tuple[VectorStore, Array]) -> None:
    store, vectors = filled
    records = store.retrieve("items", ["id-5", "nope", "id-1", "id-5"])
    assert [r.id for r in records] == ["id-5", "id-1"]
    assert records[0].payload == payload_of(5)
    assert records[0].vector is None
    [rec] = store.retrieve("items", ["id-2"], with_vectors=True)
    assert rec.vector is not None
    np.testing.assert_allclose(rec.vector, vectors[2], atol=1e-5)
    assert store.retrieve("items", []) == []


def test_ids_are_arbitrary_strings(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("c", vector_size=2))
    ids = ["über/ñ?", "42", "a b c", "x" * 500, "550e8400-e29b-41d4-a716-446655440000"]
    store.upsert("c", [PointRecord(i, [1.0, k + 1.0]) for k, i in enumerate(ids)])
    assert store.count("c") == len(ids)
    assert [r.id for r in store.retrieve("c", ids)] == ids
    assert {p.id for p in store.search("c", [1.0, 1.0], params=SearchParams(limit=10))} == set(ids)


def test_delete_by_ids_filter_and_both(filled: tuple[VectorStore, Array]) -> None:
    store, _ = filled
    store.delete("items", ids=["id-0", "id-1", "not-there"])
    assert store.count("items") == N - 2
    assert store.retrieve("items", ["id-0", "id-1"]) == []

    store.delete("items", filter=Filter(must=(MatchValue("group", "c"),)))
    remaining = {r.id for r in store.retrieve("items", [f"id-{i}" for i in range(N)])}
    assert remaining == {f"id-{i}" for i in range(2, N) if i % 3 != 2}

    # ids and filter together: only the listed ids that also match.
    store.delete("items", ids=["id-3", "id-4"], filter=Filter(must=(MatchValue("flag", True),)))
    assert {r.id for r in store.retrieve("items", ["id-3", "id-4"])} == {"id-3"}

    store.delete("items", ids=[])
    with pytest.raises(InvalidRequest):
        store.delete("items")
    assert store.count("items") == len(remaining) - 1


# -------------------------------------------------------------------------- filters

FILTER_CASES: list[tuple[str, Filter, Callable[[int, dict[str, Any]], bool]]] = [
    ("match-str", Filter(must=(MatchValue("group", "a"),)), lambda i, p: p["group"] == "a"),
    ("match-int", Filter(must=(MatchValue("n", 7),)), lambda i, p: p["n"] == 7),
    ("match-bool", Filter(must=(MatchValue("flag", False),)), lambda i, p: not p["flag"]),
    (
        "should",
        Filter(should=(MatchValue("group", "a"), MatchValue("n", 1))),
        lambda i, p: p["group"] == "a" or p["n"] == 1,
    ),
    ("must-not", Filter(must_not=(MatchValue("group", "a"),)), lambda i, p: p["group"] != "a"),
    (
        "match-any-str",
        Filter(must=(MatchAny("group", ("a", "c")),)),
        lambda i, p: p["group"] in ("a", "c"),
    ),
    ("match-any-int", Filter(must=(MatchAny("n", (1, 2, 30)),)), lambda i, p: p["n"] in (1, 2, 30)),
    (
        "match-except-str",
        Filter(must=(MatchExcept("group", ("a", "c")),)),
        lambda i, p: p["group"] == "b",
    ),
    (
        "match-except-int",
        Filter(must=(MatchExcept("n", (1, 2, 30)),)),
        lambda i, p: p["n"] not in (1, 2, 30),
    ),
    (
        # Of a list, any item that is none of them; a key with no value (missing, []) does
        # not match.
        "match-except-list-or-nothing",
        Filter(must=(MatchExcept("tags", ("t",)),)),
        lambda i, p: any(tag != "t" for tag in p.get("tags", [])),
    ),
    (
        "range-int",
        Filter(must=(Range("n", gte=10, lt=20),)),
        lambda i, p: 10 <= p["n"] < 20,
    ),
    (
        "range-float",
        Filter(must=(Range("score", gt=0.5, lte=0.8),)),
        lambda i, p: 0.5 < p["score"] <= 0.8,
    ),
    (
        "nested-key",
        Filter(must=(Range("meta.depth", gte=3),)),
        lambda i, p: p["meta"]["depth"] >= 3,
    ),
    ("is-null", Filter(must=(IsNull("maybe"),)), lambda i, p: p["maybe"] is None),
    ("not-null", Filter(must_not=(IsNull("maybe"),)), lambda i, p: p["maybe"] is not None),
    ("is-empty", Filter(must=(IsEmpty("tags"),)), lambda i, p: not p.get("tags")),
    ("not-empty", Filter(must_not=(IsEmpty("tags"),)), lambda i, p: bool(p.get("tags"))),
    ("is-empty-null", Filter(must=(IsEmpty("maybe"),)), lambda i, p: p["maybe"] is None),
    (
        "has-id",
        Filter(must=(HasId(("id-3", "id-9", "id-404")),)),
        lambda i, p: i in (3, 9),
    ),
    (
        "nested-filter",
        Filter(
            must=(Filter(should=(MatchValue("group", "b"), Range("n", lt=5))),),
            must_not=(HasId(("id-1",)), Filter(must=(MatchValue("flag", True),))),
        ),
        lambda i, p: (p["group"] == "b" or p["n"] < 5) and i != 1 and not p["flag"],
    ),
    (
        "must-and-must-not",
        Filter(must=(MatchValue("group", "a"), Range("n", gte=6)), must_not=(IsNull("maybe"),)),
        lambda i, p: p["group"] == "a" and p["n"] >= 6 and p["maybe"] is not None,
    ),
    (
        "values-count",
        Filter(must=(ValuesCount("tags", gte=2),)),
        lambda i, p: len(p.get("tags", [])) >= 2,
    ),
    (
        # One value counts as one; a missing key as none.
        "values-count-of-one-value-or-none",
        Filter(must=(ValuesCount("maybe", gte=1), ValuesCount("tags", lt=1))),
        lambda i, p: p["maybe"] is not None and not p.get("tags"),
    ),
    (
        "values-count-null-and-missing",
        Filter(must=(ValuesCount("maybe", lte=0),), must_not=(ValuesCount("tags", gte=1),)),
        lambda i, p: p["maybe"] is None and not p.get("tags"),
    ),
    (
        "nested",
        Filter(
            must=(Nested("parts", Filter(must=(MatchValue("kind", "a"), Range("size", lt=3)))),)
        ),
        lambda i, p: any(part["kind"] == "a" and part["size"] < 3 for part in p["parts"]),
    ),
    (
        # Outside a Nested, each condition may be met by a different object of the list.
        "flattened-list",
        Filter(must=(MatchValue("parts[].kind", "a"), Range("parts[].size", lt=3))),
        lambda i, p: (
            any(part["kind"] == "a" for part in p["parts"])
            and any(part["size"] < 3 for part in p["parts"])
        ),
    ),
    (
        "nested-must-not",
        Filter(must_not=(Nested("parts", Filter(must=(MatchValue("kind", "b"),))),)),
        lambda i, p: all(part["kind"] != "b" for part in p["parts"]),
    ),
    (
        "min-should",
        Filter(
            min_should=MinShould(
                (MatchValue("group", "a"), Range("n", lt=10), MatchValue("flag", True)), 2
            )
        ),
        lambda i, p: (p["group"] == "a") + (p["n"] < 10) + p["flag"] >= 2,
    ),
    (
        "min-should-with-must-and-nested",
        Filter(
            must=(Range("n", gte=5),),
            min_should=MinShould(
                (
                    MatchValue("group", "b"),
                    Nested("parts", Filter(must=(MatchValue("kind", "c"), Range("size", lte=1)))),
                    IsEmpty("tags"),
                ),
                2,
            ),
        ),
        lambda i, p: (
            p["n"] >= 5
            and (p["group"] == "b")
            + any(part["kind"] == "c" and part["size"] <= 1 for part in p["parts"])
            + (not p.get("tags"))
            >= 2
        ),
    ),
    ("empty", Filter(), lambda i, p: True),
]


@pytest.mark.parametrize(
    ("flt", "expected"), [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES]
)
def test_filters(
    filled: tuple[VectorStore, Array],
    flt: Filter,
    expected: Callable[[int, dict[str, Any]], bool],
) -> None:
    store, vectors = filled
    want = {f"id-{i}" for i in range(N) if expected(i, payload_of(i))}
    assert want, "every case must select something"
    hits = store.search("items", vectors[0], flt, SearchParams(limit=N, exact=True))
    assert {h.id for h in hits} == want
    assert store.count("items", flt) == len(want)


def test_filter_on_indexed_fields(store: VectorStore) -> None:
    indexes = {
        "group": PayloadIndexKind.KEYWORD,
        "n": PayloadIndexKind.INTEGER,
        "score": PayloadIndexKind.FLOAT,
        "flag": PayloadIndexKind.BOOL,
    }
    store.create_collection(CollectionSpec("idx", vector_size=DIM, payload_indexes=indexes))
    vectors = unit_vectors(np.random.default_rng(1), N, DIM)
    store.upsert("idx", [PointRecord(f"id-{i}", vectors[i], payload_of(i)) for i in range(N)])
    flt = Filter(
        must=(MatchValue("group", "b"), Range("score", gte=0.25), MatchValue("flag", True))
    )
    want = {
        f"id-{i}"
        for i in range(N)
        if (p := payload_of(i))["group"] == "b" and p["score"] >= 0.25 and p["flag"]
    }
    assert store.count("idx", flt) == len(want) > 0
    assert {h.id for h in store.search("idx", vectors[0], flt, SearchParams(limit=N))} == want


def test_match_text_matches_whole_words_in_any_case(store: VectorStore) -> None:
    indexes = {"title": PayloadIndexKind.TEXT}
    store.create_collection(CollectionSpec("titles", vector_size=DIM, payload_indexes=indexes))
    titles = ["The Quick brown fox", "quickly moving foxes", "a lazy dog", "Brown bread"]
    vectors = unit_vectors(np.random.default_rng(2), len(titles), DIM)
    store.upsert(
        "titles",
        [PointRecord(f"t{i}", vectors[i], {"title": t}) for i, t in enumerate(titles)]
        + [PointRecord("untitled", vectors[0], {"n": 1})],
    )

    def matching(text: str) -> set[str]:
        flt = Filter(must=(MatchText("title", text),))
        hits = store.search("titles", vectors[0], flt, SearchParams(limit=10, exact=True))
        assert store.count("titles", flt) == len(hits)
        return {h.id for h in hits}

    assert matching("quick") == {"t0"}  # not "quickly": words, not substrings
    assert matching("BROWN") == {"t0", "t3"}
    assert matching("fox brown") == {"t0"}  # every word, in any order
    assert matching("fox dog") == set()
    assert matching("uick") == set()
    any_of = Filter(must=(MatchTextAny("title", "FOX dog cat"),))
    assert {r.id for r in store.scroll("titles", any_of).records} == {"t0", "t2"}
    assert store.count("titles", Filter(must_not=(MatchTextAny("title", "brown lazy"),))) == 2
    with pytest.raises(InvalidRequest, match="at least one word"):
        MatchText("title", "  ")


def test_payload_keys_select_what_hits_carry(filled: tuple[VectorStore, Array]) -> None:
    store, vectors = filled
    params = SearchParams(limit=3, exact=True, payload_keys=("group", "meta", "absent"))
    hits = store.search("items", vectors[5], params=params)
    assert hits[0].id == "id-5"
    for hit in hits:
        full = payload_of(int(hit.id.split("-")[1]))
        assert hit.payload == {"group": full["group"], "meta": full["meta"]}
    liked = store.recommend("items", ["id-5"], params=params)
    assert all(set(h.payload or {}) == {"group", "meta"} for h in liked)
    with pytest.raises(InvalidRequest, match="payload_keys"):
        SearchParams(payload_keys="group")  # type: ignore[arg-type]
    # Paths as Qdrant parses them: nested keys and arrays, other keys "quoted".
    nested = SearchParams(limit=1, exact=True, payload_keys=("meta.depth", '"group"'))
    assert store.search("items", vectors[5], params=nested)[0].payload == {
        "meta": {"depth": payload_of(5)["meta"]["depth"]},
        "group": payload_of(5)["group"],
    }
    for key in ("a b", "a..b", "a:b", "$x"):
        with pytest.raises(InvalidRequest, match="is no payload path"):
            SearchParams(payload_keys=(key,))


def test_match_text_needs_a_text_index(filled: tuple[VectorStore, Array]) -> None:
    """Without one a Qdrant server matches substrings, case-sensitively: refused alike."""
    store, vectors = filled
    nested = Filter(should=(Filter(must=(MatchText("group", "a"),)),))
    calls = [
        lambda: store.search("items", vectors[0], nested),
        lambda: store.count("items", nested),
        lambda: store.scroll("items", nested),
        lambda: store.delete("items", filter=nested),
    ]
    for call in calls:
        with pytest.raises(
            InvalidRequest,
            match="match_text and match_text_any need a text payload index on 'group'",
        ):
            call()
    least = Filter(min_should=MinShould((MatchText("group", "a"), IsEmpty("tags")), 1))
    inside = Filter(must=(Nested("parts", Filter(must=(MatchText("kind", "a"),))),))
    for flt, key in [(least, "group"), (inside, "parts[].kind")]:
        with pytest.raises(InvalidRequest, match=re.escape(f"text payload index on '{key}'")):
            store.count("items", flt)
    assert store.count("items") == N


def test_match_text_inside_a_nested_filter_uses_the_full_path_index(store: VectorStore) -> None:
    notes = {
        "a": [{"text": "The red fox jumps", "by": "bo"}, {"text": "a blue whale", "by": "ana"}],
        "b": [{"text": "red paint", "by": "bo"}, {"text": "a fox den", "by": "ana"}],
        "c": [{"text": "nothing here", "by": "ana"}],
    }
    spec = CollectionSpec(
        "notes", vector_size=DIM, payload_indexes={"notes[].text": PayloadIndexKind.TEXT}
    )
    store.create_collection(spec)
    vectors = unit_vectors(np.random.default_rng(3), len(notes), DIM)
    store.upsert(
        "notes",
        [PointRecord(k, v, {"notes": n}) for (k, n), v in zip(notes.items(), vectors, strict=True)],
    )
    one_note = Filter(must=(Nested("notes", Filter(must=(MatchText("text", "fox red"),))),))
    by_ana = Filter(
        must=(Nested("notes", Filter(must=(MatchText("text", "fox"), MatchValue("by", "ana")))),)
    )
    assert {r.id for r in store.scroll("notes", one_note).records} == {"a"}
    assert {r.id for r in store.scroll("notes", by_ana).records} == {"b"}


# --------------------------------------------------------------------------- search


def test_search_params(filled: tuple[VectorStore, Array]) -> None:
    store, vectors = filled
    query = vectors[3]
    full = store.search("items", query, params=SearchParams(limit=N, exact=True))
    assert len(full) == N
    assert full[0].id == "id-3"
    assert full[0].score == pytest.approx(1.0, abs=1e-4)
    scores = [p.score for p in full]
    assert scores == sorted(scores, reverse=True)
    assert full[0].payload == payload_of(3)
    assert full[0].vector is None

    top5 = store.search("items", query, params=SearchParams(limit=5, exact=True))
    assert [p.id for p in top5] == [p.id for p in full[:5]]
    page = store.search("items", query, params=SearchParams(limit=5, offset=5, exact=True))
    assert [p.id for p in page] == [p.id for p in full[5:10]]

    threshold = full[7].score - 1e-6
    above = store.search(
        "items", query, params=SearchParams(limit=N, exact=True, score_threshold=threshold)
    )
    assert [p.id for p in above] == [p.id for p in full[:8]]

    bare = store.search("items", query, params=SearchParams(limit=3, with_payload=False))
    assert [p.payload for p in bare] == [None, None, None]
    assert bare[0].id == "id-3"

    with_vec = store.search("items", query, params=SearchParams(limit=2, with_vectors=True))
    assert with_vec[0].vector is not None
    np.testing.assert_allclose(with_vec[0].vector, vectors[3], atol=1e-5)

    # Accepted everywhere; only a cluster acts on it.
    consistent = store.search("items", query, params=SearchParams(limit=1, read_consistency="all"))
    assert consistent[0].id == "id-3"


@pytest.mark.parametrize("distance", list(Distance))
def test_exact_search_equals_brute_force(store: VectorStore, distance: Distance) -> None:
    rng = np.random.default_rng(11)
    dim, n, k = 24, 300, 10
    data = rng.standard_normal((n, dim)).astype(np.float32)
    queries = rng.standard_normal((5, dim)).astype(np.float32)
    store.create_collection(CollectionSpec("bf", vector_size=dim, distance=distance))
    store.upsert("bf", [PointRecord(f"p{i}", data[i]) for i in range(n)])

    for q in queries:
        if distance is Distance.COSINE:
            unit = data / np.linalg.norm(data, axis=1, keepdims=True)
            scores, order = unit @ (q / np.linalg.norm(q)), -1
        elif distance is Distance.DOT:
            scores, order = data @ q, -1
        elif distance is Distance.EUCLID:
            scores, order = np.linalg.norm(data - q, axis=1), 1
        else:
            scores, order = np.abs(data - q).sum(axis=1), 1
        expected = np.argsort(order * scores)[:k]
        hits = store.search("bf", q, params=SearchParams(limit=k, exact=True))
        assert [h.id for h in hits] == [f"p{i}" for i in expected]
        np.testing.assert_allclose([h.score for h in hits], scores[expected], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------ recommend

TOPICS, PER_TOPIC, RDIM = 3, 30, 32


@pytest.fixture
def topics(store: VectorStore) -> tuple[VectorStore, Array, Array]:
    vectors, labels, centres = clustered(np.random.default_rng(3), TOPICS, PER_TOPIC, RDIM)
    store.create_collection(CollectionSpec("topics", vector_size=RDIM))
    store.upsert(
        "topics",
        [
            PointRecord(f"t{labels[i]}-{i}", vectors[i], {"topic": int(labels[i]), "i": i})
            for i in range(len(labels))
        ],
    )
    return store, labels, centres


def _topic(point_id: str) -> int:
    return int(point_id[1])


@pytest.mark.parametrize("strategy", list(RecommendStrategy))
def test_recommend_by_ids(
    topics: tuple[VectorStore, Array, Array], strategy: RecommendStrategy
) -> None:
    store, labels, _ = topics
    positive = ["t0-0", "t0-1", "t0-2"]
    negative = ["t1-30"]
    hits = store.recommend(
        "topics", positive, negative, strategy, params=SearchParams(limit=len(labels))
    )
    ids = [h.id for h in hits]
    assert not set(ids) & {*positive, *negative}, "examples must never come back"
    assert len(ids) == len(labels) - 4
    assert {_topic(i) for i in ids[:10]} == {0}
    ranks_0 = [r for r, i in enumerate(ids) if _topic(i) == 0]
    ranks_1 = [r for r, i in enumerate(ids) if _topic(i) == 1]
    assert max(ranks_0) < min(ranks_1), "the positive topic ranks above the negative one"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("strategy", list(RecommendStrategy))
def test_recommend_by_vectors(
    topics: tuple[VectorStore, Array, Array], strategy: RecommendStrategy
) -> None:
    store, _, centres = topics
    hits = store.recommend(
        "topics", [centres[2]], [centres[0]], strategy, params=SearchParams(limit=PER_TOPIC)
    )
    assert len(hits) == PER_TOPIC
    assert {_topic(h.id) for h in hits} == {2}


def test_recommend_mixed_examples_filter_and_params(
    topics: tuple[VectorStore, Array, Array],
) -> None:
    store, _, centres = topics
    flt = Filter(must=(Range("i", lt=45),))
    hits = store.recommend(
        "topics",
        ["t1-31", centres[1]],
        params=SearchParams(limit=5, with_payload=False, with_vectors=True),
        filter=flt,
    )
    assert [h.payload for h in hits] == [None] * 5
    assert all(h.vector is not None and len(h.vector) == RDIM for h in hits)
    assert all(_topic(h.id) == 1 and int(h.id.split("-")[1]) < 45 for h in hits)
    assert "t1-31" not in {h.id for h in hits}


@pytest.mark.parametrize("distance", list(Distance))
@pytest.mark.parametrize("strategy", list(RecommendStrategy))
def test_recommend_score_threshold_keeps_the_hits_scoring_better(
    store: VectorStore, distance: Distance, strategy: RecommendStrategy
) -> None:
    """best_score and sum_scores score larger-is-better on every distance, so their
    threshold keeps the hits above it there too; the engines cut them as distances."""
    vectors = unit_vectors(np.random.default_rng(7), 40, RDIM)
    store.create_collection(CollectionSpec("cut", vector_size=RDIM, distance=distance))
    store.upsert("cut", [PointRecord(f"p{i}", vectors[i]) for i in range(len(vectors))])
    examples = (["p0", "p1"], ["p2"])
    full = store.recommend("cut", *examples, strategy, params=SearchParams(limit=40))
    scores = [h.score for h in full]
    threshold = scores[len(scores) // 3]
    smaller_is_better = strategy is RecommendStrategy.AVERAGE_VECTOR and distance in (
        Distance.EUCLID,
        Distance.MANHATTAN,
    )
    kept = [
        h.id for h in full if (h.score < threshold if smaller_is_better else h.score > threshold)
    ]
    assert 0 < len(kept) < len(full)
    pages = [
        store.recommend(
            "cut",
            *examples,
            strategy,
            params=SearchParams(limit=5, offset=offset, score_threshold=threshold),
        )
        for offset in range(0, 40, 5)
    ]
    assert [h.id for page in pages for h in page] == kept


def test_recommend_errors(topics: tuple[VectorStore, Array, Array]) -> None:
    store, _, _ = topics
    with pytest.raises(PointNotFound, match="ghost") as err:
        store.recommend("topics", ["t0-0", "ghost"])
    assert err.value.ids == ("ghost",)
    with pytest.raises(InvalidRequest):
        store.recommend("topics", [])
    with pytest.raises(InvalidRequest):  # averaging needs something to average
        store.recommend("topics", [], ["t0-0"], RecommendStrategy.AVERAGE_VECTOR)
    only_negative = store.recommend(
        "topics", [], ["t0-0"], RecommendStrategy.BEST_SCORE, params=SearchParams(limit=10)
    )
    assert all(_topic(h.id) != 0 for h in only_negative)


# --------------------------------------------------------------------- concurrency


def test_threads_share_one_store(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("mt", vector_size=8))
    rng = np.random.default_rng(5)
    vectors = unit_vectors(rng, 400, 8)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for b in range(10):
                batch = range(w * 100 + b * 10, w * 100 + b * 10 + 10)
                store.upsert("mt", [PointRecord(f"p{i}", vectors[i], {"w": w}) for i in batch])
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for i in range(30):
                store.search("mt", vectors[i], params=SearchParams(limit=5))
                store.count("mt", Filter(must=(MatchValue("w", 1),)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count("mt") == 400
    assert store.count("mt", Filter(must=(MatchValue("w", 2),))) == 100


def test_closed_store_refuses_calls(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("c", vector_size=2))
    store.close()
    with pytest.raises(StoreClosed):
        store.count("c")
    with pytest.raises(StoreClosed):
        store.list_collections()
    store.close()  # idempotent


def test_deleting_a_collection_under_concurrent_reads(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("gone", vector_size=4))
    store.upsert("gone", [PointRecord(f"p{i}", [1.0, i, 0.0, 1.0]) for i in range(50)])
    outcomes: list[list[str]] = [[], [], []]
    started = threading.Barrier(4)

    def reader(seen: list[str]) -> None:
        started.wait()
        while len(seen) < 10_000 and "not-found" not in seen[-1:]:
            try:
                store.search("gone", [1.0, 0.0, 0.0, 1.0], params=SearchParams(limit=3))
                seen.append("ok")
            except CollectionNotFound:
                seen.append("not-found")
            except BaseException as exc:
                seen.append(repr(exc))
                return

    threads = [threading.Thread(target=reader, args=(seen,)) for seen in outcomes]
    for t in threads:
        t.start()
    started.wait()
    store.delete_collection("gone")
    for t in threads:
        t.join()
    for seen in outcomes:
        # Every read either ran before the delete or reported the collection missing.
        assert set(seen[:-1]) <= {"ok"}
        assert seen[-1] == "not-found"
    assert "gone" not in store.list_collections()


def test_malformed_arguments_are_invalid_requests(filled: tuple[VectorStore, Array]) -> None:
    store, vectors = filled
    bad_calls: list[Callable[[], object]] = [
        lambda: store.search("items", vectors[0], {"must": []}),  # type: ignore[arg-type]
        lambda: store.search("items", vectors[0], params={"limit": 3}),  # type: ignore[arg-type]
        lambda: store.search("items", "not a vector"),  # type: ignore[arg-type]
        lambda: store.recommend("items", ["id-1"], strategy="closest"),  # type: ignore[arg-type]
        lambda: store.recommend("items", "id-1"),
        lambda: store.retrieve("items", "id-1"),
        lambda: store.delete("items", filter=Filter()),  # would delete everything
        lambda: store.delete("items", ids="id-1"),
        lambda: store.count("items", filter="group = a"),  # type: ignore[arg-type]
    ]
    for call in bad_calls:
        with pytest.raises(InvalidRequest):
            call()
    # An empty filter next to ids restricts nothing: the ids go.
    store.delete("items", ids=["id-1"], filter=Filter())
    assert store.count("items") == N - 1
    with pytest.raises(CollectionNotFound):
        store.delete("missing", ids=[])
