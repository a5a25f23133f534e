"""bench/peers.py --runs: medians over runs, ratios taken within each run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import peers


def row(engine: str, texts_per_s: float, loadavg: str = "1.00 1.00 1.00") -> dict[str, Any]:
    return {
        "engine": engine,
        "corpus": "short",
        "load": "64 one-text clients",
        "texts_per_s": texts_per_s,
        "tokens_per_s": 20 * texts_per_s,
        "p50_ms": 1000 / texts_per_s,
        "p99_ms": 3000 / texts_per_s,
        "bench_cores": texts_per_s / 400,
        "requests": int(10 * texts_per_s),
        "texts": int(10 * texts_per_s),
        "seconds": 10.0,
        "min_cosine": 1.0,
        "loadavg_before": loadavg,
        "loadavg_after": loadavg,
    }


def one_run(st: float, ours: float, infinity: float, loadavg: str) -> list[dict[str, Any]]:
    rows = [
        row("sentence-transformers", st, loadavg),
        row("embedserve torch", ours, loadavg),
        row("Infinity torch", infinity, loadavg),
    ]
    for r in rows:  # sentence-transformers' load differs in real runs; here one corpus key
        r["load"] = "64 one-text clients" if r["engine"] != "sentence-transformers" else "batch"
    peers.add_ratios(rows)
    return rows


def test_combine_takes_ratios_within_runs_then_their_median() -> None:
    # A slow run slows everyone: the ratio holds where the medians of speeds would not.
    runs = [
        one_run(st=200, ours=180, infinity=100, loadavg="1.00 1.00 1.00"),
        one_run(st=100, ours=100, infinity=40, loadavg="2.00 2.00 2.00"),
        one_run(st=250, ours=200, infinity=125, loadavg="3.00 3.00 3.00"),
    ]
    combined = {r["engine"]: r for r in peers.combine(runs)}
    ours = combined["embedserve torch"]
    assert ours["runs_vs_st"] == pytest.approx([0.9, 1.0, 0.8])
    assert ours["vs_st"] == pytest.approx(0.9)
    assert ours["runs_vs_best_infinity"] == pytest.approx([1.8, 2.5, 1.6])
    assert ours["vs_best_infinity"] == pytest.approx(1.8)
    assert ours["texts_per_s"] == 180
    assert ours["runs_texts_per_s"] == [180, 100, 200]
    assert (ours["requests"], ours["seconds"]) == (4800, 30.0)  # summed over the runs
    assert (ours["loadavg_before"], ours["loadavg_after"]) == ("1.00 1.00 1.00", "3.00 3.00 3.00")
    assert combined["sentence-transformers"]["vs_best_infinity"] is None


def test_markdown_shows_each_runs_ratio_only_with_several_runs() -> None:
    runs = [one_run(200, 180, 100, "1 1 1"), one_run(100, 100, 40, "2 2 2")]
    report: dict[str, Any] = {
        "date": "today",
        "machine": {
            "cpu": "cpu",
            "cores": 2,
            "python": "3",
            "torch": "t",
            "transformers": "t",
            "sentence_transformers": "s",
        },
        "seconds": 5.0,
        "runs": 2,
        "corpora_note": "",
        "infinity_packages": {},
        "rows": peers.combine(runs),
        "failures": {},
    }
    text = peers.markdown(report)
    assert "2 runs of every configuration" in text
    # bench cores 0.35 is the median of 0.45 and 0.25, the runs' client CPU
    assert "| 0.35 | 0.95x (0.90, 1.00) | 2.15x (1.80, 2.50) |" in text
    report["runs"], report["rows"] = 1, peers.combine(runs[:1])
    single = peers.markdown(report)
    assert "one run" in single and "(0.90" not in single
