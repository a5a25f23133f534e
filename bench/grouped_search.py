"""What grouped search costs next to a plain search, in the embedded store.

One collection of N passages (random unit vectors of 384 dimensions, default collection
settings), each with the payload a write with store_text gives: {"doc_id", "passage",
"text"} of documents of P passages; the same queries as

  plain        search, limit 10 (ten passages)
  groups of S  search grouped by doc_id, limit 10 groups of at most S passages each

for passages unrelated to their document's others (random) and near their document's
own direction (clustered).
p50/p99 latency of in-process calls, one thread, and how many hits the grouping fetched
(its pages grow four times over until the groups are full or the matches run out).

    .venv/bin/python bench/grouped_search.py [--passages 100000] [--per-doc 10]
        [--queries 300] [--out docs/benchmarks.md] [--json bench/results/grouped_search.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from embedding_throughput import cpu_model, publish
from hybrid_search import latency, unit_vectors

from embedserve.connectors import (
    CollectionSpec,
    EdgeStore,
    GroupBy,
    PointRecord,
    ScoredPoint,
    SearchParams,
    search_groups,
)

TITLE = "Grouped search: cost against a plain search (CPU)"
BATCH = 1000
GROUP_SIZES = (1, 3, 10)
LAYOUTS = ("random", "clustered")


def log(message: str) -> None:
    print(f"[grouped-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def payload(n: int, per_doc: int, text_chars: int) -> dict[str, Any]:
    """A passage's payload as a write with store_text gives it: its text and its place."""
    text = (f"passage {n} " * text_chars)[:text_chars]
    return {"doc_id": f"d{n // per_doc}", "passage": n % per_doc, "text": text}


def passage_vectors(passages: int, per_doc: int, layout: str) -> np.ndarray:
    """random: passages unrelated to their document's other passages; clustered: each
    near its document's own direction (noise as large as that direction)."""
    noise = unit_vectors(passages, seed=1)
    if layout == "random":
        return noise
    centres = unit_vectors(passages // per_doc + 1, seed=3)
    vectors = centres[np.arange(passages) // per_doc] + noise
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def measure(
    passages: int, per_doc: int, text_chars: int, queries: int, data_dir: Path
) -> dict[str, Any]:
    probes = unit_vectors(queries, seed=2)
    limit = SearchParams(limit=10)
    searches: dict[str, dict[str, float]] = {}
    fetched: dict[str, list[int]] = {}
    with EdgeStore(data_dir) as store:
        for layout in LAYOUTS:
            vectors = passage_vectors(passages, per_doc, layout)
            store.create_collection(CollectionSpec(layout, vector_size=384))
            for start in range(0, passages, BATCH):
                store.upsert(
                    layout,
                    [
                        PointRecord(f"p{n}", vectors[n], payload(n, per_doc, text_chars))
                        for n in range(start, min(passages, start + BATCH))
                    ],
                )
            store.optimize(layout)
            log(f"{layout}: {passages:,} passages written")

            def plain(i: int, layout: str = layout) -> Any:
                return store.search(layout, probes[i], None, limit)

            def grouped(size: int, i: int, layout: str = layout) -> Any:
                def page(params: SearchParams) -> list[ScoredPoint]:
                    hits = store.search(layout, probes[i], None, params)
                    fetched[f"{layout}, groups of {size}"].append(len(hits))
                    return hits

                retrieve = functools.partial(store.retrieve, layout)
                return search_groups(page, limit, GroupBy("doc_id", size), retrieve)

            calls: dict[str, Callable[[int], Any]] = {f"{layout}, plain": plain}
            for size in GROUP_SIZES:
                calls[f"{layout}, groups of {size}"] = functools.partial(grouped, size)
                fetched[f"{layout}, groups of {size}"] = []
            for name, call in calls.items():
                searches[name] = latency(call, queries)
                log(f"{name}: p50 {searches[name]['p50_ms']:.2f} ms")
    return {
        "passages": passages,
        "per_doc": per_doc,
        "text_chars": text_chars,
        "queries": queries,
        "searches": searches,
        "mean_hits_fetched": {k: float(np.mean(v)) for k, v in fetched.items()},
    }


def markdown(report: dict[str, Any]) -> str:
    searches = report["searches"]
    fetched = report["mean_hits_fetched"]
    rows = []
    for name, s in searches.items():
        plain = searches[name.split(",")[0] + ", plain"]["p50_ms"]
        hits = f"{fetched[name]:,.0f}" if name in fetched else "10"
        rows.append(
            f"| {name} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['p50_ms'] / plain:.2f}x "
            f"| {hits} |"
        )
    machine = report["machine"]
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"- Date: {report['date']}. Machine: {machine['cpu']}, {machine['cores']} cores "
            f"(load average before the run: {machine['load_before']}). "
            "Command: `.venv/bin/python bench/grouped_search.py`.",
            f"- {report['passages']:,} passages of documents of {report['per_doc']} (unit "
            "vectors of 384 dimensions; payload doc_id, passage and a stored text of "
            f"{report['text_chars']:,} characters; default collection settings: exact scans "
            f"at this size), in the embedded store; {report['queries']} queries, limit 10 "
            "(passages, or groups by doc_id). Passages are random (unrelated to their "
            "document's others: the worst case, groups fill slowly) or clustered (each near "
            "its document's own direction, noise as large as it). One thread, in-process "
            "calls (no model, no network). Hits fetched: all pages of a grouped search added "
            "up, a mean over the queries.",
            "",
            "| search | p50 ms | p99 ms | p50 vs plain | hits fetched |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--per-doc", type=int, default=10)
    parser.add_argument("--text-chars", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", help="Markdown file to write the section into")
    parser.add_argument("--json", help="JSON results file")
    args = parser.parse_args(argv)
    machine = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with tempfile.TemporaryDirectory() as folder:
        report = measure(args.passages, args.per_doc, args.text_chars, args.queries, Path(folder))
    report |= {"date": dt.date.today().isoformat(), "machine": machine}
    publish(TITLE, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
