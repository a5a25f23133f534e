"""Grouped search: the best hits per payload value, the same on every backend, against
groups formed here from the exact ranking of every point."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from connectors_testdata import unit_vectors

from embedserve.connectors import (
    CollectionSpec,
    Filter,
    GroupBy,
    HitGroup,
    InvalidRequest,
    MatchValue,
    PayloadIndexKind,
    PointRecord,
    SearchParams,
    VectorStore,
    search_groups,
)

DIM = 8
N = 300
DOCS = 12
# Fields with a payload index: their groups' further members come from filtered searches.
INDEXED = ("doc", "labels")


def payload_of(n: int) -> dict[str, Any]:
    """Passages of 12 documents; some carry a list of tags or an integer key, some none."""
    payload: dict[str, Any] = {"doc": f"d{n % DOCS}", "meta": {"part": n % 5}, "n": n}
    payload["bucket"] = n % DOCS
    payload["labels"] = [f"l{n % DOCS}", f"l{(n + 1) % DOCS}"]
    payload["mixed"] = n % DOCS if n % 2 else f"m{n % DOCS}"
    if n % 7 == 0:
        payload["tags"] = ["a", "b"] if n % 2 else ["b", "b"]
    if n % 11 == 0:
        del payload["doc"]  # a passage without a document: in no group
    return payload


@pytest.fixture
def passages(store: VectorStore) -> tuple[VectorStore, np.ndarray, np.ndarray]:
    vectors = unit_vectors(np.random.default_rng(3), N, DIM)
    indexes = {k: PayloadIndexKind.KEYWORD for k in INDEXED} | {"bucket": PayloadIndexKind.INTEGER}
    store.create_collection(CollectionSpec("p", vector_size=DIM, payload_indexes=indexes))
    store.upsert("p", [PointRecord(f"p{n}", v, payload_of(n)) for n, v in enumerate(vectors)])
    query = unit_vectors(np.random.default_rng(4), 1, DIM)[0]
    return store, vectors, query


def expected_groups(
    vectors: np.ndarray, query: np.ndarray, key: Any, limit: int, size: int, keep: Any = None
) -> list[tuple[Any, list[str]]]:
    """Every point ranked exactly; groups in the order their first member appears."""
    groups: dict[Any, list[str]] = {}
    for n in np.argsort(-(vectors @ query)):
        if keep is not None and not keep(int(n)):
            continue
        value = key(payload_of(int(n)))
        for k in dict.fromkeys(value if isinstance(value, list) else [value]):
            if k is None or (k not in groups and len(groups) == limit):
                continue
            members = groups.setdefault(k, [])
            if len(members) < size:
                members.append(f"p{n}")
    return list(groups.items())


def grouped(
    store: VectorStore,
    query: np.ndarray,
    group: GroupBy,
    pages: list[int] | None = None,
    **params: Any,
) -> Any:
    """``pages`` collects the limit of each page fetched."""
    query_filter = params.pop("filter", None)

    def page(f: Filter | None, p: SearchParams) -> Any:
        (pages if pages is not None else []).append(p.limit)
        return store.search("p", query, f, p)

    retrieve = functools.partial(store.retrieve, "p")
    indexed = group.key in (*INDEXED, "bucket")
    params = SearchParams(exact=True, **params)
    return search_groups(page, query_filter, params, group, retrieve, indexed)


def shape(groups: list[HitGroup]) -> list[tuple[Any, list[str]]]:
    return [(g.key, [h.id for h in g.hits]) for g in groups]


@pytest.mark.parametrize(("limit", "size", "page_count"), [(3, 2, 1), (12, 1, 1), (2, 10, 2)])
def test_groups_hold_the_best_hits_of_each_value(
    passages: tuple[VectorStore, np.ndarray, np.ndarray], limit: int, size: int, page_count: int
) -> None:
    store, vectors, query = passages
    pages: list[int] = []
    groups = grouped(store, query, GroupBy("doc", size), pages, limit=limit)
    expected = expected_groups(vectors, query, lambda p: p.get("doc"), limit, size)
    assert shape(groups) == expected
    assert all(len(members) == size for _, members in expected)
    # (2, 10): the first page (80 hits) holds about 7 passages of each document: the
    # rest come from one search filtered to the two documents.
    assert len(pages) == page_count, pages


@pytest.mark.parametrize(
    ("key", "limit", "size"), [("bucket", 2, 15), ("labels", 1, 30), ("mixed", 2, 10)]
)
def test_members_past_the_first_page_come_from_searches_within_the_groups(
    passages: tuple[VectorStore, np.ndarray, np.ndarray], key: str, limit: int, size: int
) -> None:
    """Integer values (12, of 25 hits each), lists (a hit in two of 12 labels, 50 hits
    each) and values of both kinds in one field (24, 12 or 13 hits each): the first page
    (limit x size x 4 hits) holds fewer than ``size`` of each."""
    store, vectors, query = passages
    pages: list[int] = []
    groups = grouped(store, query, GroupBy(key, size), pages, limit=limit)
    assert shape(groups) == expected_groups(vectors, query, lambda p: p[key], limit, size)
    assert all(len(g.hits) == size for g in groups)
    # Indexed: the first page, then searches as small as the groups' missing members;
    # unindexed ("mixed"): pages four times larger each until the groups are full. Each
    # reads one hit more, to see whether a run of equal scores crosses its end.
    first = limit * size * 4
    if key == "mixed":
        assert pages[:2] == [first + 1, first * 4 + 1]
    else:
        assert pages[0] == first + 1 and len(pages) >= 2 and max(pages[1:]) <= limit * size + 1


def test_lists_nested_and_integer_values(
    passages: tuple[VectorStore, np.ndarray, np.ndarray],
) -> None:
    store, vectors, query = passages
    tags = grouped(store, query, GroupBy("tags", 4), limit=5)
    # Only "a" and "b" exist: the matches run out before five groups fill.
    assert shape(tags) == expected_groups(vectors, query, lambda p: p.get("tags"), 5, 4)
    assert {g.key for g in tags} == {"a", "b"}
    parts = grouped(store, query, GroupBy("meta.part", 2), limit=3)
    assert shape(parts) == expected_groups(vectors, query, lambda p: p["meta"]["part"], 3, 2)
    assert all(isinstance(g.key, int) for g in parts)


def test_filter_threshold_and_payload_as_asked(
    passages: tuple[VectorStore, np.ndarray, np.ndarray],
) -> None:
    store, vectors, query = passages
    even = Filter(must=(MatchValue("meta.part", 0),))
    groups = grouped(store, query, GroupBy("doc", 2), limit=4, filter=even)
    expected = expected_groups(vectors, query, lambda p: p.get("doc"), 4, 2, lambda n: n % 5 == 0)
    assert shape(groups) == expected
    threshold = float(np.sort(vectors @ query)[-20])
    near = grouped(store, query, GroupBy("doc", 3), limit=10, score_threshold=threshold)
    hits = [h for g in near for h in g.hits]
    assert hits and all(h.score >= threshold - 1e-5 for h in hits)
    # The grouping field is fetched, but the hits carry what the caller asked for.
    bare = grouped(store, query, GroupBy("doc", 1), limit=2, with_payload=False)
    assert [h.payload for g in bare for h in g.hits] == [None, None]
    only_n = grouped(store, query, GroupBy("doc", 1), limit=2, payload_keys=("n",))
    assert [set(h.payload or ()) for g in only_n for h in g.hits] == [{"n"}, {"n"}]
    assert shape(only_n) == shape(grouped(store, query, GroupBy("doc", 1), limit=2))
    # Payloads and vectors come from the store for the hits kept, as a search gives them.
    full = grouped(store, query, GroupBy("doc", 2), limit=3, with_vectors=True)
    for hit in (h for g in full for h in g.hits):
        n = int(hit.id[1:])
        assert hit.payload == payload_of(n)
        assert np.allclose(hit.vector, vectors[n], atol=1e-5)


def test_misuse_is_refused(passages: tuple[VectorStore, np.ndarray, np.ndarray]) -> None:
    store, _, query = passages
    for group, params, message in [
        (GroupBy("doc"), {"offset": 2}, "takes no offset"),
        (GroupBy("doc"), {"diversity": 0.5}, "takes no diversity"),
        (GroupBy("doc", 100), {"limit": 101}, "at most 10000 hits"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            grouped(store, query, group, **params)
    for key, size in [("", 1), ("a..b", 1), ("a b", 1), ('"doc"', 1), ("doc", 0), ("doc", 101)]:
        with pytest.raises(InvalidRequest, match="group_by"):
            GroupBy(key, size)


def _tied(store: VectorStore, indexed: bool) -> None:
    """Five groups whose best hits tie (the query's own vector) and whose further members
    tie far below, past a first page of fillers in groups of their own; written in an
    order unlike their ids'."""
    query, deep = [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]
    top = [PointRecord(f"top-{k}", query, {"g": f"g{3 * k % 5}"}) for k in range(5)]
    low = [PointRecord(f"deep-{k}-{j}", deep, {"g": f"g{k}"}) for j in range(4) for k in range(5)]
    rng = np.random.default_rng(5)
    fillers = [
        PointRecord(f"f{n:03d}", [1.0, *rng.uniform(0.3, 0.9, 3).tolist()], {"g": f"f{n}"})
        for n in range(100)
    ]
    indexes = {"g": PayloadIndexKind.KEYWORD} if indexed else {}
    store.create_collection(CollectionSpec("t", vector_size=4, payload_indexes=indexes))
    points = [*top, *low, *fillers]
    store.upsert("t", [points[i] for i in np.random.default_rng(6).permutation(len(points))])


@pytest.mark.parametrize("indexed", [True, False])
@pytest.mark.parametrize("query", ["search", "recommend"])
def test_groups_whose_best_hits_tie_rank_by_id(
    store: VectorStore, indexed: bool, query: str
) -> None:
    """As plain search orders equal scores by id, so do groups whose best hits tie, and
    members of equal score within a group; which groups make the limit too, on every
    engine and whether the members come from filtered searches (indexed) or deeper pages."""
    _tied(store, indexed)
    vector = [1.0, 0.0, 0.0, 0.0]
    ranked: Any = functools.partial(store.search, "t", vector)
    if query == "recommend":
        ranked = lambda f, p: store.recommend("t", [vector], filter=f, params=p)  # noqa: E731
    retrieve = functools.partial(store.retrieve, "t")
    params = SearchParams(limit=3, exact=True)
    groups = search_groups(ranked, None, params, GroupBy("g", 3), retrieve, indexed)
    assert shape(groups) == [
        ("g0", ["top-0", "deep-0-0", "deep-0-1"]),
        ("g3", ["top-1", "deep-3-0", "deep-3-1"]),
        ("g1", ["top-2", "deep-1-0", "deep-1-1"]),
    ]
    # Groups of one, the limit cut among the five tied best hits.
    single = search_groups(ranked, None, params, GroupBy("g", 1), retrieve, indexed)
    assert shape(single) == [("g0", ["top-0"]), ("g3", ["top-1"]), ("g1", ["top-2"])]
