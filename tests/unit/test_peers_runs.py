"""bench/peers.py: medians over runs, ratios taken within each run, servers measured
back to back."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import numpy as np
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
    assert text.startswith(f"## {peers.SECTION}\n")
    assert "2 runs of every configuration" in text
    # bench cores 0.35 is the median of 0.45 and 0.25, the runs' client CPU
    assert "| 0.35 | 0.95x (0.90, 1.00) | 2.15x (1.80, 2.50) |" in text
    assert "| 1.0000 |  | 1 1 1 / 2 2 2 |" in text  # no server counters: empty cell
    for run in runs:
        run[1].update(server_texts_per_pass=12.5, server_padding=0.031, server_passes_at_once=1.96)
    report["rows"] = peers.combine(runs)
    assert "| 1.0000 | 12.5 / 3.1% / 1.96 |" in peers.markdown(report)
    report["runs"], report["rows"] = 1, peers.combine(runs[:1])
    single = peers.markdown(report)
    assert "one run" in single and "(0.90" not in single
    report.update(section="Peers: compiled", arguments=["--runs", "1"])
    titled = peers.markdown(report)
    assert titled.startswith("## Peers: compiled\n")
    assert "by `bench/peers.py --runs 1`" in titled


def snapshot(
    batches: int, sequences: int, real: int, padded: int, model_s: float
) -> dict[str, Any]:
    return {
        "batches": batches,
        "sequences": sequences,
        "real_tokens": real,
        "padded_tokens": padded,
        "model_seconds": model_s,
        "process_cpu_seconds": 0.0,
        "threads": {},
    }


def test_server_figures_are_per_pass_ratios_between_two_snapshots() -> None:
    before = snapshot(10, 100, 2000, 2200, 4.0)
    after = snapshot(30, 500, 10000, 12200, 23.0)
    figures = peers.server_figures(before, after, seconds=10.0)
    assert figures["server_texts_per_pass"] == pytest.approx(20.0)  # 400 texts, 20 passes
    assert figures["server_padding"] == pytest.approx(0.2)  # 8000 real of 10000 padded
    assert figures["server_passes_at_once"] == pytest.approx(1.9)  # 19 pass-seconds in 10 s
    idle = peers.server_figures(after, after, seconds=10.0)
    assert idle == {
        "server_texts_per_pass": 0.0,
        "server_padding": 0.0,
        "server_passes_at_once": 0.0,
    }


def fake_peer(name: str, calls: list[str], fails_at: int | None = None) -> peers.Peer:
    """A server stand-in whose client records each request; ``fails_at``: the request
    number (from 1) that raises, as a server that died would."""

    def opener() -> Any:
        async def open_one() -> peers.EmbedFn:
            async def embed(texts: list[str]) -> np.ndarray:
                calls.append(name)
                if fails_at is not None and calls.count(name) >= fails_at:
                    raise RuntimeError(f"{name} went away")
                await asyncio.sleep(0.001)
                return np.ones((len(texts), 4), dtype=np.float32)

            return embed

        return open_one

    def counters() -> dict[str, Any]:
        # One pass of two texts, 3 real of 4 padded tokens, per request so far.
        done = calls.count(name)
        return snapshot(done, 2 * done, 3 * done, 4 * done, 0.0)

    ours = name == "embedserve"
    return peers.Peer(name, opener, lambda: None, not ours, counters if ours else None)


def test_side_by_side_measures_each_load_on_every_server_back_to_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(peers, "WARMUP_S", 0.01)
    calls: list[str] = []
    servers = [fake_peer("embedserve", calls), fake_peer("Infinity", calls)]
    corpora = {"short": ["a b", "c d"], "mixed": ["e f g", "h"]}
    tokens = {text: len(text.split()) for texts in corpora.values() for text in texts}
    reference = {corpus: np.ones((2, 4), dtype=np.float32) for corpus in corpora}
    failures: dict[str, str] = {}
    rows = peers.measure_side_by_side(servers, corpora, tokens, reference, 0.05, failures)
    order = [(r["corpus"], r["load"], r["engine"]) for r in rows]
    expected = [
        (corpus, load, engine)
        for corpus in corpora
        for load, _, _ in peers.LOADS
        for engine in ("embedserve", "Infinity")
    ]
    assert order == expected
    assert all(r["texts"] > 0 and r["min_cosine"] == pytest.approx(1.0) for r in rows)
    assert failures == {}
    for r in rows:  # the server's own counters: embedserve's rows only
        if r["engine"] == "embedserve":
            assert (r["server_texts_per_pass"], r["server_padding"]) == (2.0, 0.25)
        else:
            assert "server_texts_per_pass" not in r


def test_side_by_side_drops_a_failed_peer_and_keeps_measuring_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(peers, "WARMUP_S", 0.01)
    calls: list[str] = []
    # Infinity answers its quality check (3 requests), then fails in its first load.
    servers = [fake_peer("Infinity", calls, fails_at=5), fake_peer("embedserve", calls)]
    corpora = {"short": ["a b", "c d"], "mixed": ["e f g", "h"]}
    tokens = {text: len(text.split()) for texts in corpora.values() for text in texts}
    reference = {corpus: np.ones((2, 4), dtype=np.float32) for corpus in corpora}
    failures: dict[str, str] = {}
    rows = peers.measure_side_by_side(servers, corpora, tokens, reference, 0.05, failures)
    assert {r["engine"] for r in rows} == {"embedserve"}
    assert len(rows) == len(corpora) * len(peers.LOADS)
    assert failures == {"Infinity": "Infinity went away"}

    # embedserve's own failure ends the run instead.
    calls.clear()
    broken = [fake_peer("embedserve", calls, fails_at=5)]
    with pytest.raises(RuntimeError, match="embedserve went away"):
        peers.measure_side_by_side(broken, corpora, tokens, reference, 0.05, {})
