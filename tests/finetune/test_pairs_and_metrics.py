"""Pair files, the held-out split, retrieval metrics, hard-negative mining, the docs dataset."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from embedserve.server.finetune.errors import FinetuneError
from embedserve.server.finetune.metrics import ranked, retrieval_metrics
from embedserve.server.finetune.negatives import mine_hard_negatives
from embedserve.server.finetune.pairs import (
    Pair,
    corpus_of,
    queries_in_both,
    read_pairs,
    split_heldout,
)

DATASET = Path(__file__).parents[2] / "docs" / "fine-tuning"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_pairs_and_optional_negatives(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "p.jsonl",
        [
            json.dumps({"query": "q1", "positive": "d1", "id": 7}),
            "",
            json.dumps({"query": "q2", "positive": "d2", "negative": "d1"}),
        ],
    )
    assert read_pairs(path, "--train") == [Pair("q1", "d1"), Pair("q2", "d2", "d1")]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"query": "q"}', "line 2: missing field 'positive'"),
        ('{"positive": "d"}', "line 2: missing field 'query'"),
        ('{"query": "  ", "positive": "d"}', "line 2: field 'query' is an empty text"),
        ('{"query": "q", "positive": "d", "negative": ""}', "field 'negative' is an empty text"),
        ('{"query": 3, "positive": "d"}', "line 2: field 'query' must be a string"),
        ('{"query": "q", "positive": ', "line 2: not valid JSON"),
        ('["q", "d"]', "line 2: expected a JSON object"),
        (
            '{"query": "q", "positive": "d\\ud800"}',
            "line 2: field 'positive' holds \\ud800 at character 2, half of a surrogate pair",
        ),
    ],
)
def test_bad_lines_are_named_by_flag_file_and_line(
    tmp_path: Path, line: str, expected: str
) -> None:
    path = write_lines(tmp_path / "bad.jsonl", ['{"query": "q0", "positive": "d0"}', line])
    with pytest.raises(FinetuneError) as caught:
        read_pairs(path, "--eval")
    assert str(caught.value).startswith(f"--eval {path} ")
    assert expected in str(caught.value)


def test_bytes_that_are_not_utf8_are_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"query": "q0", "positive": "d0"}\n{"query": "caf\xe9", "positive": "d"}\n')
    with pytest.raises(FinetuneError) as caught:
        read_pairs(path, "--train")
    expected = f"--train {path} line 2 is not UTF-8 text (byte 0xe9 at character 15)"
    assert str(caught.value) == expected


def test_lines_end_at_newlines_only_and_a_byte_order_mark_may_lead(tmp_path: Path) -> None:
    """JSON strings may hold U+2028 and its kin raw, as json.dumps(ensure_ascii=False)
    writes them; str.splitlines would cut the line there."""
    first = json.dumps({"query": "a\u2028b\x85c", "positive": "d1"}, ensure_ascii=False)
    path = tmp_path / "raw.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + f'{first}\r\n{{"query": "q2"}}\n'.encode())
    with pytest.raises(FinetuneError, match="line 2: missing field 'positive'"):
        read_pairs(path, "--train")
    path.write_bytes(b"\xef\xbb\xbf" + f"{first}\n".encode())
    assert read_pairs(path, "--train") == [Pair("a\u2028b\x85c", "d1")]


def test_empty_or_missing_file_is_an_error(tmp_path: Path) -> None:
    empty = write_lines(tmp_path / "empty.jsonl", ["", "   "])
    with pytest.raises(FinetuneError, match=r"--train .*empty\.jsonl: the file is empty"):
        read_pairs(empty, "--train")
    with pytest.raises(FinetuneError, match=r"--train .*nope\.jsonl: no such file"):
        read_pairs(tmp_path / "nope.jsonl", "--train")


def test_heldout_split_is_seeded_and_keeps_each_query_on_one_side() -> None:
    pairs = [Pair(f"q{i % 20}", f"d{i}") for i in range(60)]
    train, heldout = split_heldout(pairs, 0.25, seed=3)
    assert (train, heldout) == split_heldout(pairs, 0.25, seed=3)
    assert {p.query for p in train}.isdisjoint({p.query for p in heldout})
    assert len({p.query for p in heldout}) == 5
    assert sorted(train + heldout, key=lambda p: int(p.positive[1:])) == pairs
    assert split_heldout(pairs, 0.25, seed=4)[1] != heldout
    with pytest.raises(FinetuneError, match="--eval-fraction"):
        split_heldout(pairs, 1.0, seed=0)


def test_corpus_is_every_distinct_document_in_order() -> None:
    pairs = [Pair("a", "d1", "d3"), Pair("b", "d2"), Pair("c", "d1")]
    assert corpus_of(pairs, [Pair("z", "d4")]) == ["d1", "d3", "d2", "d4"]


def test_metrics_by_hand() -> None:
    # Query 1 finds its document first; query 2 third; query 3 never in the top 10.
    rankings = [[0, 1, 2], [5, 6, 1, 7], list(range(10, 20))]
    relevant = [{0}, {1}, {3}]
    metrics = retrieval_metrics(rankings, relevant)
    assert metrics["recall@1"] == pytest.approx(1 / 3)
    assert metrics["recall@10"] == pytest.approx(2 / 3)
    assert metrics["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)
    assert metrics["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / 3)
    # Two relevant documents, one found second: recall@10 1/2, nDCG against the ideal of two.
    two = retrieval_metrics([[9, 4, 8]], [{4, 5}])
    assert two["recall@10"] == pytest.approx(0.5)
    assert two["ndcg@10"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_ranking_is_by_cosine_not_length() -> None:
    corpus = np.array([[10.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    queries = np.array([[0.0, 2.0], [1.0, 0.1]], dtype=np.float32)
    assert ranked(queries, corpus, depth=3).tolist() == [[2, 1, 0], [0, 1, 2]]


def test_mined_negative_is_the_best_wrong_document_below_the_margin() -> None:
    corpus = ["pos", "near-duplicate", "hard", "easy"]
    vectors = np.array([[1, 0], [0.999, 0.045], [0.8, 0.6], [0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pairs = [Pair("q", "pos"), Pair("q2", "pos", "given")]
    query = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    mined, count = mine_hard_negatives(pairs, corpus, query, vectors, margin=0.05)
    # "near-duplicate" scores within 5% of the positive: more likely a missed answer.
    assert mined == [Pair("q", "pos", "hard"), Pair("q2", "pos", "given")]
    assert count == 1
    loose, _ = mine_hard_negatives(pairs[:1], corpus, query[:1], vectors, margin=0.0)
    assert loose == [Pair("q", "pos", "near-duplicate")]


def test_documented_dataset_is_large_and_heldout_queries_share_no_key_word() -> None:
    sys.path.insert(0, str(DATASET))
    try:
        import make_support_dataset as dataset
    finally:
        sys.path.remove(str(DATASET))
    train = read_pairs(DATASET / "support-train.jsonl", "--train")
    heldout = read_pairs(DATASET / "support-heldout.jsonl", "--eval")
    assert len(train) + len(heldout) >= 600
    # The committed files are what the generator writes.
    built_train, built_heldout = dataset.build()
    assert [Pair(**row) for row in built_train] == train
    assert [Pair(**row) for row in built_heldout] == heldout
    for pair in heldout:
        assert not dataset.key_words(pair.query) & dataset.key_words(pair.positive), pair.query
    assert {p.query for p in heldout}.isdisjoint({p.query for p in train})
    assert {p.positive for p in heldout} <= set(corpus_of(train))


def test_heldout_queries_that_are_training_queries_are_counted() -> None:
    train = [Pair("q1", "d1"), Pair("q2", "d2"), Pair("q2", "d3")]
    assert queries_in_both(train, [Pair("q2", "d9"), Pair("q3", "d1"), Pair("q1", "d1")]) == 2
    assert queries_in_both(train, [Pair("q4", "d1")]) == 0  # a shared document is fine
