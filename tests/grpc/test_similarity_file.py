"""``embedserve similarity FILE`` and FindDuplicates over texts, against a live server with
the packaged MiniLM, on the labelled corpus of docs/data (336 lines, 36 planted
near-duplicates)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from analysis_corpus import CORPUS, planted_pairs, rows
from running_server import RunningServer

from embedserve.client import EmbedClient
from embedserve.client.cli_similarity import MAX_MATRIX_TEXTS
from embedserve.server import cli


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, minilm_model: Any) -> Iterator[str]:
    from embedserve.server.config import Settings

    # Below the corpus size, so the server embeds the file's texts in several slices.
    settings = Settings(
        port=0,
        http_port=0,
        model="minilm",
        max_inputs_per_request=256,
        data_dir=str(tmp_path_factory.mktemp("data")),
    )
    running = RunningServer(settings, minilm_model).wait_ready()
    yield running.target
    running.stop()


def similarity(server: str, capsys: Any, *args: str) -> tuple[int, str, str]:
    code = cli.main(["similarity", *args, "--target", server])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def embedded(server: str, texts: list[str]) -> np.ndarray:
    with EmbedClient(server) as client:
        return client.embed(texts, task="document", batch_size=128)


def test_planted_duplicates_dominate_the_top_pairs(server: str, capsys: Any) -> None:
    planted = planted_pairs()
    code, out, _ = similarity(server, capsys, str(CORPUS), "--top-k", str(len(planted)), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["texts"] == 336 and len(report["pairs"]) == len(planted)
    found = {tuple(sorted((p["a"]["id"], p["b"]["id"]))) for p in report["pairs"]}
    precision = len(found & planted) / len(found)
    # Measured with the packaged MiniLM: all 36 top pairs are planted ones (the 36th scores
    # 0.94, the best unplanted pair 0.70).
    assert precision == 1.0, sorted(found - planted)
    scores = [p["score"] for p in report["pairs"]]
    assert scores == sorted(scores, reverse=True)
    by_id = {r["id"]: r for r in rows()}
    first = report["pairs"][0]
    assert first["a"]["line"] < first["b"]["line"]
    assert first["a"]["text"] == by_id[first["a"]["id"]]["text"]


def test_top_pairs_equal_the_best_of_the_full_matrix(
    server: str, capsys: Any, tmp_path: Path
) -> None:
    texts = [r["text"] for r in rows()[::5]]  # 68 texts, a few planted pairs among them
    file = tmp_path / "texts.txt"
    file.write_text("\n".join(texts) + "\n")
    code, out, _ = similarity(server, capsys, str(file), "--top-k", "15", "--json")
    assert code == 0
    pairs = json.loads(out)["pairs"]

    vectors = embedded(server, texts)
    full = vectors @ vectors.T
    upper = np.triu_indices(len(texts), 1)
    best = np.argsort(-full[upper], kind="stable")[:15]
    expected = [(int(upper[0][i]) + 1, int(upper[1][i]) + 1) for i in best]
    assert [(p["a"]["line"], p["b"]["line"]) for p in pairs] == expected
    assert [p["score"] for p in pairs] == pytest.approx(full[upper][best].tolist(), abs=1e-5)

    code, out, _ = similarity(server, capsys, str(file), "--top-k", "15", "--threshold", "0.6")
    assert code == 0
    above = int((full[upper] >= 0.6).sum())
    assert 0 < above < 15
    assert out.startswith(f"{above} most similar pairs of 68 texts (cosine)")
    assert len(out.splitlines()) == 2 + above  # title, header, one line a pair


def test_matrix_is_the_embed_vectors_dot_products(server: str, capsys: Any, tmp_path: Path) -> None:
    chosen = rows()[:12]
    file = tmp_path / "few.jsonl"
    file.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in chosen))
    out_csv = tmp_path / "matrix.csv"
    code, _, err = similarity(server, capsys, str(file), "--matrix", str(out_csv))
    assert code == 0 and "12 x 12 cosine matrix" in err

    with open(out_csv, newline="", encoding="utf-8") as opened:
        header, *lines = list(csv.reader(opened))
    assert header == ["", *(r["id"] for r in chosen)]
    assert [line[0] for line in lines] == header[1:]
    matrix = np.array([[float(x) for x in line[1:]] for line in lines])
    assert matrix.shape == (12, 12)
    assert np.array_equal(matrix, matrix.T)
    assert np.array_equal(np.diag(matrix), np.ones(12))
    vectors = embedded(server, [r["text"] for r in chosen])
    assert np.allclose(matrix, vectors @ vectors.T, atol=1e-5)


def test_bad_input_names_the_flag_or_line(server: str, capsys: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    code, _, err = similarity(server, capsys, str(empty))
    assert code == 2 and f"{empty} holds no texts" in err

    gap = tmp_path / "gap.jsonl"  # a blank line is skipped, as ingest skips it
    gap.write_text('{"text": "one"}\n{"text": "two"}\n\n{"text": "three"}\n')
    code, out, err = similarity(server, capsys, str(gap), "--top-k", "3")
    assert code == 0, err
    assert "line 4" in out and "line 3" not in out

    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text('{"text": "one"}\n{"body": "two"}\n')
    code, _, err = similarity(server, capsys, str(no_text))
    assert code == 2 and "line 2 has no non-empty string 'text' field" in err

    with pytest.raises(SystemExit) as refused:  # by the flag's type, before any call
        similarity(server, capsys, str(CORPUS), "--top-k", "0")
    assert refused.value.code == 2
    assert "argument --top-k: must be from 1 to 2**32 - 1, got 0" in capsys.readouterr().err
    many = tmp_path / "many.txt"  # refused before any call: no text is embedded
    many.write_text("".join(f"line {i}\n" for i in range(21_000)))
    code, _, err = similarity(server, capsys, str(many), "--top-k", "100")
    assert code == 2
    assert f"{many} holds 21000 texts; with --top-k 100 the server would hold 2100000 pairs" in err
    assert "give --top-k 99 or less" in err
    code, _, err = similarity(server, capsys, str(CORPUS), "--threshold", "1.5")
    assert code == 2 and "--threshold must be a cosine in [-1, 1], got 1.5" in err

    big = tmp_path / "big.txt"
    big.write_text("".join(f"text number {i}\n" for i in range(MAX_MATRIX_TEXTS + 1)))
    code, _, err = similarity(server, capsys, str(big), "--matrix", str(tmp_path / "m.csv"))
    assert code == 2
    assert f"holds {MAX_MATRIX_TEXTS + 1} texts; --matrix writes at most {MAX_MATRIX_TEXTS}" in err
    assert "drop --matrix" in err and not (tmp_path / "m.csv").exists()


def test_find_duplicates_over_texts_refuses_what_needs_a_collection(server: str) -> None:
    texts = ["a cat sat on the mat", "the cat sat on a mat", "stock markets fell"]
    with EmbedClient(server) as client:
        response = client.find_duplicates(texts=texts, threshold=0.9)
        assert [(p.a, p.b) for p in response.pairs] == [("0", "1")]
        assert dict(response.texts) == {"0": texts[0], "1": texts[1]}
        space = {"must": [{"match": {"key": "topic", "text": "space"}}]}
        cases = [
            ({"collection": "news", "texts": texts}, "exactly one of collection or texts"),
            ({"texts": texts, "filter": space}, "filter needs a collection"),
            ({"texts": texts, "method": "store_queries"}, "STORE_QUERIES needs a collection"),
            ({"texts": ["fine", ""]}, "texts[1] is empty"),
            # Past the server's 256 inputs per request: named within its slice.
            (
                {"texts": [f"text {i}" if i != 260 else "" for i in range(300)]},
                "texts[256:300][4] is empty",
            ),
            ({"texts": []}, "texts must not be empty"),
            ({}, "one of collection or texts must be set"),
        ]
        for options, message in cases:
            with pytest.raises(grpc.RpcError) as failed:
                client.find_duplicates(**options)
            assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert message in str(failed.value.details()), options
