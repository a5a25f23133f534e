"""The analysis building blocks on small, hand-checked inputs: duplicate groups and
histograms, c-TF-IDF words, clustering settings and central members."""

from __future__ import annotations

import math
import unicodedata

import numpy as np
import pytest

from embedserve.server.analysis_cluster import (
    Algorithm,
    ClusterSettings,
    central_members,
    cluster_vectors,
    nearest_centre,
)
from embedserve.server.analysis_duplicates import (
    BLOCK_ROWS,
    DuplicateSettings,
    PairCollector,
    _Candidates,
    compare_in_blocks,
    groups_of,
    histogram,
)
from embedserve.server.analysis_words import distinguishing_words, words_of
from embedserve.server.errors import InvalidArgument


def test_pairs_are_unordered_deduplicated_and_skip_self() -> None:
    pairs = PairCollector(threshold=0.9)
    pairs.add_neighbours("a", [("a", 1.0), ("b", 0.95), ("c", 0.5)])
    pairs.add_neighbours("b", [("b", 1.0), ("a", 0.96)])
    pairs.add_neighbours("c", [("c", 1.0), ("a", 0.5)])
    assert pairs.ranked_pairs() == [("a", "b", 0.96)]
    assert pairs.best == {"a": 0.95, "b": 0.96, "c": 0.5}


def test_groups_are_connected_components_with_their_weakest_link() -> None:
    groups = groups_of([("a", "b", 0.99), ("b", "c", 0.93), ("x", "y", 0.95), ("d", "c", 0.97)])
    assert [(g.ids, g.min_score) for g in groups] == [
        (["a", "b", "c", "d"], 0.93),
        (["x", "y"], 0.95),
    ]
    assert groups_of([]) == []


def test_a_groups_min_score_is_its_lowest_pair_not_its_weakest_link() -> None:
    """Three vectors 20 degrees apart, threshold 0.7: a-b and b-c (0.94) hold the group
    together, but a-c (0.77) is found too, and min_score is the lowest of all three."""
    angles = np.radians([0.0, 20.0, 40.0])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    collector = PairCollector(threshold=0.7)
    compare_in_blocks(["a", "b", "c"], x, collector, max_neighbors=2)
    (group,) = groups_of(collector.ranked_pairs())
    assert group.ids == ["a", "b", "c"]
    assert group.min_score == pytest.approx(math.cos(math.radians(40)), abs=1e-6)


def test_histogram_bins_cover_minus_one_to_one() -> None:
    bins = histogram([-1.0, -0.99, 0.0, 0.93, 0.949, 0.95, 1.0])
    assert [(b.lower, b.upper, b.count) for b in bins] == [
        (-1.0, -0.95, 2),
        (0.0, 0.05, 1),
        (0.9, 0.95, 2),
        (0.95, 1.0, 2),
    ]


def test_histogram_places_scores_of_vectors_not_of_unit_length() -> None:
    """A dot collection's scores can leave [-1, 1]; they count at its ends, NaN nowhere."""
    bins = histogram([math.inf, 7.5, -math.inf, math.nan, 0.5])
    assert [(b.lower, b.count) for b in bins] == [(-1.0, 1), (0.5, 1), (0.95, 2)]


@pytest.mark.parametrize("threshold", [1.01, -1.5, math.nan])
def test_threshold_outside_cosine_range_is_rejected(threshold: float) -> None:
    with pytest.raises(
        InvalidArgument, match=r"threshold must be a cosine similarity in \[-1, 1\]"
    ):
        DuplicateSettings(threshold=threshold)


def test_ctfidf_prefers_words_specific_to_a_cluster() -> None:
    words = distinguishing_words(
        {
            0: ["the oven bakes bread", "bread dough rises in the oven", "common words here"],
            1: ["the telescope sees stars", "stars and a telescope", "common words here"],
            2: ["!!! 42 ..."],
        },
        top=2,
    )
    assert [w for w, _ in words[0]] == ["bread", "oven"]
    assert [w for w, _ in words[1]] == ["stars", "telescope"]
    assert words[2] == []
    assert distinguishing_words({0: ["the and of"]}, top=3) == {}


def test_ctfidf_finds_words_in_text_written_without_spaces() -> None:
    """A Chinese sentence was one "word"; its character pairs carry its words instead."""
    words = distinguishing_words(
        {
            0: ["我喜欢吃苹果", "他喜欢吃香蕉", "火箭"],  # likes to eat apples / bananas
            1: ["火箭进入轨道", "卫星进入太空"],  # a rocket / a satellite enters orbit / space
            2: ["東京タワーの夜景", "東京の夜"],  # Tokyo tower at night, Tokyo's night
        },
        top=2,
    )
    assert [w for w, _ in words[0]] == ["喜欢", "欢吃"]
    assert words[1][0][0] == "进入"
    assert {w for w, _ in words[2]} == {"東京", "の夜"}


def test_words_keep_their_combining_marks() -> None:
    """Python's \\w leaves combining marks out: Hindi words were cut at each vowel sign,
    vowelled Arabic gave no words, and decomposed Vietnamese gave other words than the
    same text composed."""
    assert words_of("भारतीय रिज़र्व बैंक ने ब्याज दरें बढ़ाईं") == [
        "भारतीय",
        "रिज़र्व",
        "बैंक",
        "ब्याज",
        "दरें",
        "बढ़ाईं",
    ]
    assert words_of("الْبَنْكُ الْمَرْكَزِيُّ") == ["الْبَنْكُ", "الْمَرْكَزِيُّ"]
    composed = "Ngân hàng tăng lãi suất"
    assert words_of(unicodedata.normalize("NFD", composed)) == words_of(composed)
    assert words_of(composed) == ["ngân", "hàng", "tăng", "lãi", "suất"]
    # Thai is written without spaces: pairs of characters, each with its marks.
    assert words_of("ขึ้นดอก") == ["ขึ้น", "นด", "ดอ", "อก"]
    assert words_of("abc123 x_yz naïve") == ["naïve"]


def blobs(per: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:3]
    labels = np.repeat(np.arange(3), per)
    x = centres[labels] + 0.05 * rng.standard_normal((len(labels), 8)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(set(b.tolist()))


def test_kmeans_chooses_k_by_silhouette_and_hdbscan_finds_the_same_groups() -> None:
    x, truth = blobs()
    chosen = cluster_vectors(x, ClusterSettings(k_min=2, k_max=6))
    assert chosen.k == 3 and max(chosen.silhouette_by_k, key=chosen.silhouette_by_k.get) == 3
    assert same_partition(chosen.labels, truth)
    assert chosen.centres is not None
    assert (nearest_centre(x, chosen.centres) == chosen.labels).all()
    density = cluster_vectors(x, ClusterSettings(Algorithm.HDBSCAN, min_cluster_size=5))
    assert density.k == 3 and same_partition(density.labels, truth)


def one_label_per_copy(x: np.ndarray, labels: np.ndarray, tolerance: float = 0.0) -> bool:
    """Whether rows within ``tolerance`` of each other (copies) all have one label."""
    distances = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    copies = distances <= tolerance
    return bool((labels[:, None] == labels[None, :])[copies].all())


def test_hdbscan_gives_equal_rows_one_label() -> None:
    """PCA gives equal rows coordinates 1e-8 apart, in which HDBSCAN found clusters: eight
    equal rows came back as noise, four and three."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(384).astype(np.float32)
    a /= np.linalg.norm(a)
    for copies in (6, 8):
        x = np.tile(a, (copies, 1))
        clustering = cluster_vectors(x, ClusterSettings(Algorithm.HDBSCAN, min_cluster_size=2))
        # HDBSCAN never makes all the points one cluster: one point repeated is noise.
        assert clustering.labels.tolist() == [-1] * copies and clustering.k == 0


@pytest.mark.parametrize(("copies", "others", "min_size"), [(20, 6, 5), (5, 4, 5), (6, 2, 3)])
def test_hdbscan_makes_copies_among_noise_a_cluster(
    copies: int, others: int, min_size: int
) -> None:
    """As many copies as min_cluster_size are a cluster of their own, also when they are
    the only one (HDBSCAN, never picking its tree's root, made them noise); the points
    without copies stay noise."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal(384).astype(np.float32)
    x = np.vstack([np.tile(a, (copies, 1)), rng.standard_normal((others, 384))])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    settings = ClusterSettings(Algorithm.HDBSCAN, min_cluster_size=min_size)
    clustering = cluster_vectors(x, settings)
    assert clustering.k == 1
    assert clustering.labels.tolist() == [0] * copies + [-1] * others


def test_hdbscan_takes_no_dense_core_of_unstructured_points_as_a_cluster() -> None:
    """Told to pick its root, HDBSCAN makes the densest handful of random points one."""
    blob = np.random.default_rng(1).standard_normal((30, 384)).astype(np.float32)
    blob /= np.linalg.norm(blob, axis=1, keepdims=True)
    clustering = cluster_vectors(blob, ClusterSettings(Algorithm.HDBSCAN, min_cluster_size=5))
    assert clustering.k == 0 and set(clustering.labels.tolist()) == {-1}


def test_hdbscan_gives_near_copies_one_label_beside_other_points() -> None:
    """Copies of three points, each copy moved by about 6e-6 as a text embedded in batches
    of other shapes is, and two distinct points: the copies of the first point came back
    in two clusters, of the second in two others."""
    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal((3, 384)).astype(np.float32)
    pair = c + 0.3 * rng.standard_normal(384).astype(np.float32)

    def near(v: np.ndarray, n: int) -> np.ndarray:
        return v + 3e-7 * rng.standard_normal((n, 384)).astype(np.float32)

    x = np.vstack([near(a, 6), near(b, 5), c[None], pair[None], near(b + 0.5 * a, 3)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    clustering = cluster_vectors(x, ClusterSettings(Algorithm.HDBSCAN, min_cluster_size=2))
    truth = np.repeat([0, 1, 2, 2, 3], [6, 5, 1, 1, 3])
    assert clustering.k == 4 and same_partition(clustering.labels, truth)
    assert one_label_per_copy(x, clustering.labels, tolerance=1e-4)


def test_copies_that_hdbscan_splits_on_a_tie_take_the_cluster_most_got() -> None:
    """Nine points in two groups, on a grid of 0.1 so that many distances tie, repeated one
    to three times: HDBSCAN broke a tie with copies of a point in a cluster and in noise."""
    grid = [
        [-0.5, 1.2, 0.3, -0.3, -0.2, 0.8, -0.3, -0.2],
        [0.4, 1.2, 0.5, 0.2, -0.1, 0.0, -0.2, 0.2],
        [1.2, -0.4, 0.1, -0.2, 0.0, -0.1, 0.1, -0.8],
        [0.1, 0.6, 0.4, -0.4, -0.2, -0.2, 0.1, 0.3],
        [0.1, 1.0, 0.0, 0.0, 0.0, -0.2, 0.0, 0.4],
        [0.3, 0.5, -0.1, 0.1, -0.2, -0.2, 0.0, 0.3],
        [1.3, 0.0, 0.3, 0.0, 0.1, -0.1, -0.5, -0.2],
        [1.1, 0.4, 0.1, 0.6, 0.3, 0.0, -0.1, 0.7],
        [-0.1, 0.7, 0.1, -0.2, 0.2, -0.5, 0.3, 0.3],
    ]
    x = np.repeat(np.array(grid, dtype=np.float32), [3, 1, 3, 2, 2, 3, 1, 2, 3], axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    clustering = cluster_vectors(x, ClusterSettings(Algorithm.HDBSCAN, min_cluster_size=4))
    assert one_label_per_copy(x, clustering.labels)
    assert clustering.k == len(set(clustering.labels.tolist()) - {-1}) > 0
    sizes = np.unique(clustering.labels[clustering.labels != -1], return_counts=True)[1]
    assert sizes.min() >= 4


def test_points_left_out_of_a_sample_get_the_label_their_copy_got_in_it() -> None:
    """A tight cluster and a loose one, whose centres differ in length (about 0.85 and
    0.3): the largest cosine to the centres labelled about 25 of 300 points otherwise than
    k-means labelled the same points."""
    rng = np.random.default_rng(0)
    tight = np.eye(16)[0] + 0.15 * rng.standard_normal((150, 16))
    loose = np.eye(16)[1] + 0.9 * rng.standard_normal((150, 16))
    x = np.vstack([tight, loose]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    clustering = cluster_vectors(x, ClusterSettings(k=2))
    assert clustering.centres is not None
    assert (nearest_centre(x, clustering.centres) == clustering.labels).all()


@pytest.mark.parametrize("settings", [ClusterSettings(k=3), ClusterSettings(k_min=2, k_max=3)])
def test_k_is_the_number_of_clusters_formed_from_fewer_distinct_points(
    settings: ClusterSettings,
) -> None:
    """Two distinct points among four: k-means leaves the other clusters empty, and k said
    3 (given) or the k tried while the labels held two clusters."""
    x = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    clustering = cluster_vectors(x, settings)
    assert clustering.k == 2
    assert sorted(set(clustering.labels.tolist())) == [0, 1]  # numbered without gaps
    assert same_partition(clustering.labels, np.array([0, 0, 0, 1]))
    assert clustering.centres is not None and len(clustering.centres) == 2
    assert (nearest_centre(x, clustering.centres) == clustering.labels).all()
    same = cluster_vectors(np.ones((3, 2), dtype=np.float32) / np.sqrt(2), settings)
    assert (same.k, same.labels.tolist()) == (1, [0, 0, 0])


def test_central_members_are_closest_to_the_mean_direction() -> None:
    x = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1])
    members = central_members(x, labels, 0, top=2)
    assert [i for i, _ in members] == [1, 2]
    assert members[0][1] == pytest.approx(
        float(x[1] @ (x[:3].mean(0) / np.linalg.norm(x[:3].mean(0))))
    )


@pytest.mark.parametrize(
    ("settings", "points", "message"),
    [
        (ClusterSettings(k=10), 4, "k is 10 but there are only 4 points"),
        (ClusterSettings(k_min=5, k_max=3), 40, "k_min <= k_max"),
        (ClusterSettings(k_min=3, k_max=8), 3, "k_min is 3 but there are only 3 points"),
        (ClusterSettings(Algorithm.HDBSCAN, min_cluster_size=50), 40, "min_cluster_size is 50"),
        # A run per k tried, each longer the larger k: bounded before any work.
        (ClusterSettings(k=1001), 2000, "k must be from 1 to 1000, got 1001"),
        (ClusterSettings(k_min=2, k_max=65), 500, "k_max <= 64 to choose k, .* give k"),
    ],
)
def test_impossible_settings_name_the_field(
    settings: ClusterSettings, points: int, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        cluster_vectors(np.eye(points, 8, dtype=np.float32), settings)


def test_blocks_find_the_same_pairs_as_the_full_matrix() -> None:
    rng = np.random.default_rng(5)
    n = BLOCK_ROWS + 37  # two blocks, the second partial
    x = rng.standard_normal((n, 6)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(n)]
    collector = PairCollector(threshold=0.99)
    compare_in_blocks(ids, x, collector, max_neighbors=n)
    full = x @ x.T
    expected = {
        (min(ids[i], ids[j]), max(ids[i], ids[j]))
        for i, j in zip(*np.nonzero(full >= 0.99), strict=True)
        if i != j
    }
    assert {(a, b) for a, b, _ in collector.ranked_pairs()} == expected and expected
    np.fill_diagonal(full, -np.inf)
    assert collector.best == pytest.approx({ids[i]: float(full[i].max()) for i in range(n)})


@pytest.mark.parametrize(("rows", "columns"), [(7, 16), (32, 32), (1024, 4096)])
def test_tiles_keep_each_rows_strongest_neighbours(rows: int, columns: int) -> None:
    """Tiled, each pair scored once, the result equals a row-by-row reading of the full
    matrix: every row's best other row, and its ``max_neighbors`` strongest rows above the
    threshold (tight groups of near-copies make the cap bind)."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((12, 16))
    x = np.repeat(centres, 9, axis=0) + 0.05 * rng.standard_normal((108, 16))
    x = np.vstack([x, rng.standard_normal((41, 16))]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"d{i:03d}" for i in range(len(x))]
    collector = PairCollector(threshold=0.95)
    compare_in_blocks(ids, x, collector, max_neighbors=3, rows=rows, columns=columns)

    full = x @ x.T
    np.fill_diagonal(full, -np.inf)
    expected: dict[tuple[str, str], float] = {}
    for i, row in enumerate(full):
        above = [j for j in np.argsort(-row, kind="stable")[:3] if row[j] >= 0.95]
        for j in above:
            expected[(min(ids[i], ids[j]), max(ids[i], ids[j]))] = float(row[j])
    assert len(expected) > 108  # the cap bound: 9 copies have 8 partners each
    assert collector.pairs == pytest.approx(expected)
    assert collector.best == pytest.approx({ids[i]: float(full[i].max()) for i in range(len(x))})


def test_blocks_at_threshold_minus_one_keep_each_rows_best_and_find_the_top_pairs() -> None:
    rng = np.random.default_rng(6)
    n, k = BLOCK_ROWS + 50, 7
    x = rng.standard_normal((n, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"d{i:05d}" for i in range(n)]
    collector = PairCollector(threshold=-1.0)
    compare_in_blocks(ids, x, collector, max_neighbors=k)
    full = x @ x.T
    np.fill_diagonal(full, -np.inf)
    # Every row kept exactly its k best, so the pairs are at most n * k, never n^2 / 2.
    for i in (0, BLOCK_ROWS + 3):
        mine = {b if a == ids[i] else a for a, b in collector.pairs if ids[i] in (a, b)}
        assert {ids[j] for j in np.argsort(-full[i])[:k]} <= mine
    assert len(collector.pairs) <= n * k
    upper = np.triu_indices(n, 1)
    best = np.argsort(-full[upper])[:k]
    expected = [(ids[upper[0][i]], ids[upper[1][i]]) for i in best]
    assert [(a, b) for a, b, _ in collector.ranked_pairs()[:k]] == expected


def test_candidates_cut_back_mid_way_keep_each_points_best() -> None:
    """Compacting while tiles still arrive loses nothing a point's final best would keep."""
    rng = np.random.default_rng(8)
    n, keep = 60, 4
    scores = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    scores = np.triu(scores, 1) + np.triu(scores, 1).T
    np.fill_diagonal(scores, -np.inf)
    found = _Candidates(keep, limit=0)  # compacts after every call
    for first in range(0, n, 7):
        side = scores[first : first + 7]
        found.add(first, 0, side, side.max(axis=1), threshold=-1.0)
        found.compact_if_large()
    chosen = found.per_point()
    for i in range(n):
        expected = np.argsort(-scores[i], kind="stable")[:keep]
        assert [j for j, _ in chosen[i]] == expected.tolist()
