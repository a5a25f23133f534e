"""Vector store benchmarks: ingestion vs. embedding alone, and search latency at 100k vectors.

Part 1, on one corpus and the same server, rounds interleaved, medians reported:
  (e) embedding alone: ``EmbedClient.embed_iter`` (EmbedStream) over the texts;
  (i) ingestion: ``EmbedClient.ingest`` (IngestStream) of the same texts as documents into a
      fresh collection of the embedded store; acknowledged only once durable.
  Target: (i) >= 0.9 x (e).

Part 2, search latency for N random unit vectors (default 100k x 384, the hardest case for
HNSW) in the embedded default store with the default collection settings:
  (s) in-process store calls (the store's own latency), and
  (g) gRPC ``Search`` by vector against the server on the same data (no query embedding),
  with recall@10 against exact brute force. Target: p99 <= 20 ms on a 2-core CPU.
  Then the same vectors in HNSW segments (forced by a low full-scan threshold), as a larger
  collection gets them, at two values of hnsw_ef (skip with --no-hnsw).

    .venv/bin/python bench/vector_store.py [--docs 1500] [--vectors 100000] [--queries 300]
        [--out docs/benchmarks.md] [--json bench/results/vector_store.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from embedding_throughput import machine_info, make_corpus, portable, write_json, write_section

from embedserve.client import EmbedClient

REPO = Path(__file__).resolve().parents[1]
TITLE = "Vector store: ingestion and search (CPU)"


def log(message: str) -> None:
    print(f"[vector-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.target = f"127.0.0.1:{free_port()}"
        env = dict(
            os.environ,
            HF_HUB_OFFLINE="1",
            EMBEDSERVE_DATA_DIR=str(data_dir),
            EMBEDSERVE_HTTP_PORT="0",  # gRPC only: benches may run side by side
        )
        command = [
            str(REPO / ".venv/bin/embedserve"),
            "serve",
            "--model",
            "minilm",
            "--port",
            self.target.rsplit(":", 1)[1],
        ]
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        with EmbedClient(self.target) as client:
            client.wait_until_serving(timeout=300)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ingestion(docs: int, rounds: int, data_dir: Path) -> dict[str, Any]:
    texts = make_corpus(docs, seed=11, min_tokens=5, max_tokens=120)
    server = Server(data_dir)
    rates: dict[str, list[float]] = {"embed": [], "ingest": []}
    try:
        with EmbedClient(server.target) as client:
            client.embed(texts[:64])  # warm
            for round_ in range(rounds):
                started = time.perf_counter()
                count = sum(1 for _ in client.embed_iter(texts, batch_size=64, task="document"))
                rates["embed"].append(count / (time.perf_counter() - started))
                name = f"ingest-{round_}"
                client.create_collection(name)
                documents = ({"id": f"d{i}", "text": t} for i, t in enumerate(texts))
                started = time.perf_counter()
                written = client.ingest(name, documents, batch_size=64)
                rates["ingest"].append(written / (time.perf_counter() - started))
                assert written == docs and client.count(name) == docs
                log(
                    f"round {round_}: embed {rates['embed'][-1]:.0f}/s, "
                    f"ingest {rates['ingest'][-1]:.0f}/s"
                )
    finally:
        server.stop()
    embed, ingest = statistics.median(rates["embed"]), statistics.median(rates["ingest"])
    return {
        "docs": docs,
        "rounds": rounds,
        "embed_docs_s": embed,
        "ingest_docs_s": ingest,
        "ratio": ingest / embed,
        "all": rates,
    }


def random_unit(count: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def batches(vectors: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(vectors), size):
        yield start, vectors[start : start + size]


# A collection past the default full-scan threshold gets HNSW segments: this variant forces
# them at the same size (threshold 10 MB), with int8 quantization, the setting to use there.
INDEXED = {"full_scan_threshold_kb": 10_000, "quantization": "scalar_int8"}
INDEXED_EFS = (512, 2048)


def search_latency(count: int, queries: int, data_dir: Path, indexed: bool) -> dict[str, Any]:
    from embedserve.connectors import (
        CollectionSpec,
        PointRecord,
        SearchParams,
        StoreSettings,
        open_store,
    )

    dim = 384
    vectors = random_unit(count, dim, seed=1)
    probes = random_unit(queries, dim, seed=2)
    exact_top = np.argsort(-(probes @ vectors.T), axis=1)[:, :10]
    store = open_store(StoreSettings(data_dir=str(data_dir), store_process=False))

    def load(spec: CollectionSpec) -> float:
        started = time.perf_counter()
        store.create_collection(spec)
        for start, chunk in batches(vectors, 1000):
            store.upsert(spec.name, [PointRecord(f"v{start + i}", v) for i, v in enumerate(chunk)])
        store.optimize(spec.name)
        seconds = time.perf_counter() - started
        log(f"{spec.name}: loaded and optimised {count} vectors in {seconds:.1f} s")
        return seconds

    def measure(call: Any) -> dict[str, float]:
        for probe in probes[:20]:  # warm
            call(probe)
        latencies, recalls = [], []
        for probe, truth in zip(probes, exact_top, strict=True):
            t0 = time.perf_counter()
            ids = call(probe)
            latencies.append((time.perf_counter() - t0) * 1000.0)
            recalls.append(len({int(i[1:]) for i in ids} & set(truth.tolist())) / 10)
        return {
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "recall_at_10": float(np.mean(recalls)),
        }

    def store_search(name: str, **params: Any) -> Any:
        return lambda p: [
            h.id for h in store.search(name, p, None, SearchParams(limit=10, **params))
        ]

    spec = CollectionSpec("random", vector_size=dim)
    result: dict[str, Any] = {
        "vectors": count,
        "dim": dim,
        "queries": queries,
        "settings": {
            "hnsw_m": spec.hnsw_m,
            "hnsw_ef_construct": spec.hnsw_ef_construct,
            "hnsw_ef": spec.hnsw_ef,
            "full_scan_threshold_kb": spec.full_scan_threshold_kb,
        },
        "load_s": load(spec),
        "indexed_vectors": store.get_collection("random").indexed_vectors_count,
        "store": measure(store_search("random")),
    }
    if indexed:
        hnsw = CollectionSpec("random-hnsw", vector_size=dim, **INDEXED)  # type: ignore[arg-type]
        result["hnsw"] = {
            "settings": INDEXED,
            "load_s": load(hnsw),
            "indexed_vectors": store.get_collection("random-hnsw").indexed_vectors_count,
            "by_ef": {ef: measure(store_search("random-hnsw", hnsw_ef=ef)) for ef in INDEXED_EFS},
        }
    store.close()

    server = Server(data_dir)
    try:
        with EmbedClient(server.target) as client:
            result["grpc"] = measure(
                lambda p: [
                    h.id for h in client.search("random", vector=p, limit=10, with_payload=False)
                ]
            )
    finally:
        server.stop()
    return result


def markdown(report: dict[str, Any]) -> str:
    ing, lat, machine = report["ingestion"], report["search"], report["machine"]
    settings = lat["settings"]
    rows = [
        f"## {TITLE}",
        "",
        f"Measured {report['date']} on {machine['cpu']}, {machine['cores']} cores, "
        f"torch {machine['torch']}; model all-MiniLM-L6-v2 (packaged), embedded store "
        "(qdrant-edge). `bench/vector_store.py`; medians of interleaved rounds.",
        "",
        f"Ingestion of {ing['docs']} mixed-length documents (5 to 120 tokens), "
        f"{ing['rounds']} rounds, batches of 64:",
        "",
        "| path | docs/s | vs embedding alone | target |",
        "| --- | ---: | ---: | --- |",
        f"| (e) embedding alone, EmbedStream | {ing['embed_docs_s']:.0f} | 1.00 | |",
        f"| (i) ingestion, IngestStream, acknowledged when durable | {ing['ingest_docs_s']:.0f} "
        f"| {ing['ratio']:.2f} | >= 0.90: {'met' if ing['ratio'] >= 0.9 else 'missed'} |",
        "",
        f"Search over {lat['vectors']:,} random unit vectors of {lat['dim']} dimensions "
        f"(collection defaults: full_scan_threshold_kb={settings['full_scan_threshold_kb']}, "
        f"hnsw_m={settings['hnsw_m']}, ef_construct={settings['hnsw_ef_construct']}, "
        f"hnsw_ef={settings['hnsw_ef']}; {lat['indexed_vectors']:,} vectors indexed, so every "
        f"search is an exact full scan; loaded and optimised in {lat['load_s']:.0f} s), "
        f"{lat['queries']} queries, top 10, no query embedding:",
        "",
        "| path | p50 ms | p99 ms | recall@10 | target p99 <= 20 ms |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for key, label in (
        ("store", "(s) store call, in-process"),
        ("grpc", "(g) gRPC Search by vector"),
    ):
        part = lat[key]
        met = "met" if part["p99_ms"] <= 20 else "missed"
        rows.append(
            f"| {label} | {part['p50_ms']:.2f} | {part['p99_ms']:.2f} | "
            f"{part['recall_at_10']:.3f} | {met} |"
        )
    if "hnsw" in lat:
        hnsw = lat["hnsw"]
        options = ", ".join(f"{k}={v}" for k, v in hnsw["settings"].items())
        rows += [
            "",
            f"The same vectors in HNSW segments, as a collection past the threshold gets them "
            f"({options}; {hnsw['indexed_vectors']:,} vectors indexed; loaded, indexed and "
            f"optimised in {hnsw['load_s']:.0f} s), store calls in-process:",
            "",
            "| hnsw_ef | p50 ms | p99 ms | recall@10 |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for ef, part in hnsw["by_ef"].items():
            rows.append(
                f"| {ef} | {part['p50_ms']:.2f} | {part['p99_ms']:.2f} | "
                f"{part['recall_at_10']:.3f} |"
            )
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--no-hnsw", action="store_true", help="skip the forced-HNSW variant (minutes to index)"
    )
    parser.add_argument("--out", default=str(REPO / "docs/benchmarks.md"))
    parser.add_argument("--json", default=str(REPO / "bench/results/vector_store.json"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="embedserve-vector-bench-"))
    try:
        report = {
            "date": dt.date.today().isoformat(),
            "machine": machine_info("cpu"),
            "ingestion": ingestion(args.docs, args.rounds, work / "ingest"),
            "search": search_latency(
                args.vectors, args.queries, work / "search", indexed=not args.no_hnsw
            ),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(args.json, report, portable)
    write_section(args.out, TITLE, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
