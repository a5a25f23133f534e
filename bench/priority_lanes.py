"""Queries during an ingestion: the latency of one-text queries while embed streams keep
the model's queue full, with the queries in the interactive lane (the default) and, for
comparison, in the bulk lane with the ingestion (one shared queue, as before the lanes).

Starts ``embedserve serve --model minilm`` (bench/load.py's Server), then for each setup
runs ``--streams`` EmbedStream producers of mixed-length texts (5 to 300 tokens, bulk by
default) and, once they have filled the queue, ``--queries`` unary Embed calls of one short
text, one after another, ``--gap-ms`` apart. Reports the queries' p50/p99 latency and the
producers' texts/s while the queries ran.

    .venv/bin/python bench/priority_lanes.py [--queries 60] [--streams 4]
        [--out docs/benchmarks.md] [--json bench/results/priority_lanes.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from embedding_throughput import make_corpus, publish
from hybrid_search import cpu_machine
from load import Server

from embedserve.client import EmbedClient

TITLE = "Queries during an ingestion: interactive and bulk lanes (CPU)"
SETUPS = (
    ("interactive", "queries in the interactive lane (default)"),
    ("bulk", "queries in the bulk lane, with the ingestion"),
)


def measure(
    target: str, priority: str, queries: int, streams: int, gap_ms: float
) -> dict[str, Any]:
    texts = make_corpus(4000, seed=11)
    stop = threading.Event()
    embedded = [0] * streams

    def produce(number: int) -> None:
        with EmbedClient(target) as client:
            while not stop.is_set():
                for _ in client.embed_iter(iter(texts), batch_size=32, max_in_flight=8):
                    embedded[number] += 1
                    if stop.is_set():
                        return

    producers = [threading.Thread(target=produce, args=(n,), daemon=True) for n in range(streams)]
    for producer in producers:
        producer.start()
    time.sleep(5.0)  # let the queue fill
    latencies = []
    with EmbedClient(target) as client:
        started_count, started = sum(embedded), time.perf_counter()
        for number in range(queries):
            began = time.perf_counter()
            client.embed([f"where is my order {number}?"], priority=priority)
            latencies.append((time.perf_counter() - began) * 1000.0)
            time.sleep(gap_ms / 1000.0)
        elapsed = time.perf_counter() - started
        ingested = sum(embedded) - started_count
    stop.set()
    for producer in producers:
        producer.join(timeout=120)
    return {
        "query_p50_ms": float(np.percentile(latencies, 50)),
        "query_p99_ms": float(np.percentile(latencies, 99)),
        "ingest_texts_per_s": ingested / elapsed,
    }


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"## {TITLE}",
        "",
        f"{report['date']}; {machine['cpu']}, {machine['cores']} cores, load before "
        f"{machine['load_before']}. `bench/priority_lanes.py`: packaged MiniLM, "
        f"{report['streams']} EmbedStream producers of mixed-length texts (5 to 300 tokens) "
        f"keep the queue full; {report['queries']} one-text Embed queries, one at a time, "
        f"{report['gap_ms']:.0f} ms apart.",
        "",
        "| queries | query p50 ms | query p99 ms | ingestion texts/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, label in SETUPS:
        row = report["results"][name]
        lines.append(
            f"| {label} | {row['query_p50_ms']:.0f} | {row['query_p99_ms']:.0f} "
            f"| {row['ingest_texts_per_s']:.0f} |"
        )
    shared, lanes = report["results"]["bulk"], report["results"]["interactive"]
    lines += [
        "",
        f"Median query latency: {shared['query_p50_ms'] / lanes['query_p50_ms']:.1f}x lower "
        "in the interactive lane; the ingestion's texts/s beside the queries were "
        f"{lanes['ingest_texts_per_s'] / shared['ingest_texts_per_s']:.2f}x those with one "
        "shared queue.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--gap-ms", type=float, default=100.0)
    parser.add_argument("--out", help="Markdown file to write the section into")
    parser.add_argument("--json", help="JSON results file")
    args = parser.parse_args(argv)
    machine = cpu_machine()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        server = Server(Path(folder), [])
        try:
            server.wait_serving(300)
            for name, _ in SETUPS:
                results[name] = measure(
                    server.target, name, args.queries, args.streams, args.gap_ms
                )
                print(name, results[name], flush=True)
        finally:
            server.stop()
    report = {
        "date": dt.date.today().isoformat(),
        "machine": machine,
        "queries": args.queries,
        "streams": args.streams,
        "gap_ms": args.gap_ms,
        "results": results,
    }
    publish(TITLE, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
