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
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from embedding_throughput import publish
from hybrid_search import cpu_machine, latency, unit_vectors

from embedserve.connectors import (
    CollectionSpec,
    EdgeStore,
    Filter,
    GroupBy,
    PayloadIndexKind,
    PointRecord,
    ScoredPoint,
    SearchParams,
    search_groups,
)

TITLE = "Grouped search: cost against a plain search (CPU)"
BATCH = 1000
GROUP_SIZES = (1, 3, 10)
# (passage layout, whether doc_id has a keyword payload index)
SETUPS = (("random", True), ("clustered", True), ("random", False))


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
    fetched: dict[str, list[int]] = {}  # hits read by each grouped search
    with EdgeStore(data_dir) as store:
        for layout, indexed in SETUPS:
            name = f"{layout}, {'indexed' if indexed else 'no index'}"
            collection = name.replace(", ", "-").replace(" ", "-")
            vectors = passage_vectors(passages, per_doc, layout)
            indexes = {"doc_id": PayloadIndexKind.KEYWORD} if indexed else {}
            store.create_collection(
                CollectionSpec(collection, vector_size=384, payload_indexes=indexes)
            )
            for start in range(0, passages, BATCH):
                store.upsert(
                    collection,
                    [
                        PointRecord(f"p{n}", vectors[n], payload(n, per_doc, text_chars))
                        for n in range(start, min(passages, start + BATCH))
                    ],
                )
            store.optimize(collection)
            log(f"{name}: {passages:,} passages written")

            def plain(i: int, collection: str = collection) -> Any:
                return store.search(collection, probes[i], None, limit)

            def grouped(
                size: int, i: int, label: str, collection: str = collection, indexed: bool = indexed
            ) -> Any:
                read = 0

                def page(f: Filter | None, params: SearchParams) -> list[ScoredPoint]:
                    nonlocal read
                    hits = store.search(collection, probes[i], f, params)
                    read += len(hits)
                    return hits

                retrieve = functools.partial(store.retrieve, collection)
                group = GroupBy("doc_id", size)
                found = search_groups(page, None, limit, group, retrieve, indexed)
                fetched[label].append(read)
                return found

            calls: dict[str, Callable[[int], Any]] = {f"{name}, plain": plain}
            for size in GROUP_SIZES:
                label = f"{name}, groups of {size}"
                calls[label] = functools.partial(grouped, size, label=label)
                fetched[label] = []
            for label, call in calls.items():
                searches[label] = latency(call, queries)
                log(f"{label}: p50 {searches[label]['p50_ms']:.2f} ms")
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
        plain = searches[name.rsplit(", ", 1)[0] + ", plain"]["p50_ms"]
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
            "its document's own direction, noise as large as it); doc_id has a keyword "
            "payload index or none. One thread, in-process calls (no model, no network). "
            "Hits read: all the hits a grouped search's queries returned, a mean over the "
            "queries.",
            "",
            "| search | p50 ms | p99 ms | p50 vs plain | hits read |",
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
    machine = cpu_machine()
    with tempfile.TemporaryDirectory() as folder:
        report = measure(args.passages, args.per_doc, args.text_chars, args.queries, Path(folder))
    report |= {"date": dt.date.today().isoformat(), "machine": machine}
    publish(TITLE, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
