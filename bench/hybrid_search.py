"""What keyword (BM25) and hybrid search cost next to dense search, in the embedded store.

One collection of N documents (English-like texts of 5 to 300 words, random unit vectors
of 384 dimensions, the default collection settings) created with ``bm25``, written in
batches of 1,000 and optimised; the same vectors also in a collection without keywords.
Then, for the same queries (3 to 8 words drawn from the corpus's vocabulary):

  dense     search by vector (what every search costs today)
  keyword   search by the query's BM25 terms
  hybrid    both, fused by reciprocal rank (100 candidates from each list)

p50/p99 latency of in-process store calls, one thread, plus the write cost: documents/s
written with and without keywords (keywords computed in the loop, as the server does).

    .venv/bin/python bench/hybrid_search.py [--docs 100000] [--queries 300]
        [--out docs/benchmarks.md] [--json bench/results/hybrid_search.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from embedding_throughput import cpu_model, make_corpus, publish, word_list

from embedserve.connectors import (
    CollectionSpec,
    EdgeStore,
    PointRecord,
    SearchParams,
    document_terms,
    query_terms,
)

TITLE = "Keyword and hybrid search: cost against dense search (CPU)"
BATCH = 1000


def log(message: str) -> None:
    print(f"[hybrid-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def write(store: EdgeStore, spec: CollectionSpec, texts: list[str], vectors: np.ndarray) -> float:
    """Documents/s, keywords computed in the loop where the collection keeps them."""
    store.create_collection(spec)
    started = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        store.upsert(
            spec.name,
            [
                PointRecord(
                    f"d{start + i}",
                    vectors[start + i],
                    keywords=document_terms(text) if spec.bm25 else None,
                )
                for i, text in enumerate(texts[start : start + BATCH])
            ],
        )
    store.optimize(spec.name)
    rate = len(texts) / (time.perf_counter() - started)
    log(f"{spec.name}: {rate:,.0f} documents/s")
    return rate


def latency(call: Callable[[int], Any], queries: int) -> dict[str, float]:
    for i in range(min(20, queries)):  # warm
        call(i)
    times = []
    for i in range(queries):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000.0)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def measure(docs: int, queries: int, data_dir: Path) -> dict[str, Any]:
    texts = make_corpus(docs, seed=5, min_tokens=5, max_tokens=300)
    vectors = unit_vectors(docs, seed=1)
    probes = unit_vectors(queries, seed=2)
    rng = random.Random(3)
    words = word_list()
    phrases = [" ".join(rng.sample(words, rng.randint(3, 8))) for _ in range(queries)]
    terms = [query_terms(p) for p in phrases]
    started = time.perf_counter()
    for text in texts:
        document_terms(text)
    terms_rate = len(texts) / (time.perf_counter() - started)
    limit = SearchParams(limit=10)
    with EdgeStore(data_dir) as store:
        writes = {
            "dense": write(store, CollectionSpec("dense", vector_size=384), texts, vectors),
            "bm25": write(store, CollectionSpec("kw", vector_size=384, bm25=True), texts, vectors),
        }
        calls: dict[str, Callable[[int], Any]] = {
            "dense (no keywords)": lambda i: store.search("dense", probes[i], None, limit),
            "dense": lambda i: store.search("kw", probes[i], None, limit),
            "keyword": lambda i: store.search("kw", None, None, limit, keywords=terms[i]),
            "hybrid": lambda i: store.search("kw", probes[i], None, limit, keywords=terms[i]),
        }
        searches = {}
        for name, call in calls.items():
            searches[name] = latency(call, queries)
            log(f"{name}: p50 {searches[name]['p50_ms']:.2f} ms")
        matched = [len(store.search("kw", None, None, limit, keywords=t)) for t in terms]
    return {
        "docs": docs,
        "queries": queries,
        "writes_docs_s": writes,
        "terms_only_docs_s": terms_rate,
        "searches": searches,
        "mean_keyword_hits": float(np.mean(matched)),
    }


def markdown(report: dict[str, Any]) -> str:
    searches = report["searches"]
    dense = searches["dense (no keywords)"]["p50_ms"]
    writes = report["writes_docs_s"]
    rows = [
        f"| {name} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['p50_ms'] / dense:.2f}x |"
        for name, s in searches.items()
    ]
    machine = report["machine"]
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"- Date: {report['date']}. Machine: {machine['cpu']}, {machine['cores']} cores "
            f"(load average before the run: {machine['load_before']}). "
            "Command: `.venv/bin/python bench/hybrid_search.py`.",
            f"- {report['docs']:,} documents (English-like texts of 5 to 300 words, random "
            "unit vectors of 384 dimensions, default collection settings: exact scans at this "
            f"size), in the embedded store; {report['queries']} queries of 3 to 8 words, "
            f"limit 10; keyword searches matched {report['mean_keyword_hits']:.1f} documents "
            "of 10 on average. One thread, in-process store calls (no model, no network).",
            "",
            "| search | p50 ms | p99 ms | p50 vs dense |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            f"- Writing (keywords computed per document, batches of {BATCH}, then optimised): "
            f"{writes['bm25']:,.0f} documents/s with keywords against {writes['dense']:,.0f} "
            f"without ({writes['bm25'] / writes['dense']:.2f}x), "
            f"{1000 / writes['bm25'] - 1000 / writes['dense']:.3f} ms more per document, of "
            f"which computing the terms takes {1000 / report['terms_only_docs_s']:.3f} ms "
            f"({report['terms_only_docs_s']:,.0f} documents/s alone); the rest is the "
            "engine's sparse index.",
            "",
        ]
    )


def cpu_machine() -> dict[str, Any]:
    """The CPU, its cores and the load before the run, for the report's first line."""
    return {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", help="Markdown file to write the section into")
    parser.add_argument("--json", help="JSON results file")
    args = parser.parse_args(argv)
    machine = cpu_machine()
    with tempfile.TemporaryDirectory() as folder:
        report = measure(args.docs, args.queries, Path(folder))
    report |= {"date": dt.date.today().isoformat(), "machine": machine}
    publish(TITLE, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
