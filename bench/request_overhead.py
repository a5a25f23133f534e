"""Server CPU per unary Embed request: a fixed number of requests, many small clients.

Starts ``embedserve serve --model minilm`` from this checkout (``load.Server``), opens
``--clients`` gRPC connections (each its own channel, as separate client processes would
have), sends ``--warmup`` requests, then ``--requests`` requests of ``--texts`` short
texts each (~20 tokens, the ``short`` corpus of ``peers.py``), each client sending its
next request when the last answer is back; ``--rounds`` times on the same server.

The figure is the server process's CPU time (user + system, all threads, from
``/proc/<pid>/task/*/stat``) per request. It counts work, not waiting, so unlike
texts/s it holds on a shared or ``nice``d machine. It is split by thread: the model
thread and the torch workers it started (named ``es-model``: batch tensors, the forward
pass, pooling) against everything else (the event loop: gRPC, interceptors, conversion,
batcher; the tokenizer thread; gRPC's own threads). The server's batch metrics
(``/metrics``) give the mean batch size; texts/s and client-side latency are reported
too, but they depend on what else the machine runs.

    .venv/bin/python bench/request_overhead.py [--requests 3000] [--clients 64] [--texts 1]
        [--rounds 3] [--json bench/results/request_overhead.json] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from embedding_throughput import make_corpus, publish
from load import Server, free_port, log
from peers import EmbedFn, grpc_opener, loadavg

REPO = Path(__file__).resolve().parents[1]
SECTION = "Server CPU per request: many one-text clients (CPU)"
MODEL_THREAD = "es-model"  # app.MODEL_THREAD, the name the server gives its model thread


# -- what the server spent ----------------------------------------------------------------------


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each thread of ``pid``, with its OS name."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            comm = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / ticks)
    return out


def spent_by_part(
    pid: int, before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds between two readings, by part: model, event loop, tokenizer, other.

    Threads that ended between the readings are lost; the server's threads live as long
    as it does.
    """
    parts: dict[str, float] = {}
    for tid, (comm, seconds) in after.items():
        spent = seconds - before.get(tid, (comm, 0.0))[1]
        if tid == pid:
            part = "event loop"
        elif comm == MODEL_THREAD:
            part = "model"
        elif comm == "es-tokenize":
            part = "tokenizer"
        else:
            part = "other threads"
        parts[part] = parts.get(part, 0.0) + spent
    return parts


def batch_metrics(port: int) -> dict[str, float]:
    """Batches and sequences computed so far, from the server's Prometheus endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    wanted = {"embedserve_batch_size_count", "embedserve_batch_size_sum"}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                found[sample.name] = float(sample.value)
    return {
        "batches": found.get("embedserve_batch_size_count", 0.0),
        "sequences": found.get("embedserve_batch_size_sum", 0.0),
    }


# -- the load -----------------------------------------------------------------------------------


async def send(
    embedders: Sequence[EmbedFn], texts: list[str], per_request: int, total: int
) -> tuple[float, list[float]]:
    """``total`` requests over all clients, each sending its next when its answer is back."""
    sent = 0
    latencies: list[float] = []

    async def client(embed: EmbedFn) -> None:
        nonlocal sent
        while sent < total:
            first = sent * per_request
            sent += 1
            chunk = [texts[(first + i) % len(texts)] for i in range(per_request)]
            started = time.perf_counter()
            vectors = await embed(chunk)
            latencies.append(time.perf_counter() - started)
            if len(vectors) != len(chunk):
                raise RuntimeError(f"{len(vectors)} vectors for {len(chunk)} texts")

    started = time.perf_counter()
    await asyncio.gather(*(client(embed) for embed in embedders))
    return time.perf_counter() - started, latencies


def measure_round(
    pid: int,
    metrics_port: int,
    run: Callable[[], tuple[float, list[float]]],
    requests: int,
    texts_per_request: int,
) -> dict[str, Any]:
    load_before = loadavg()
    batches_before = batch_metrics(metrics_port)
    cpu_before = thread_cpu(pid)
    seconds, latencies = run()
    cpu_after = thread_cpu(pid)
    batches_after = batch_metrics(metrics_port)
    parts = spent_by_part(pid, cpu_before, cpu_after)
    total = sum(parts.values())
    batches = batches_after["batches"] - batches_before["batches"]
    sequences = batches_after["sequences"] - batches_before["sequences"]
    latencies.sort()
    model = parts.get("model", 0.0)
    return {
        "requests": requests,
        "texts": requests * texts_per_request,
        "seconds": seconds,
        "cpu_ms_per_request": 1000 * total / requests,
        "model_cpu_ms_per_request": 1000 * model / requests,
        "other_cpu_ms_per_request": 1000 * (total - model) / requests,
        "cpu_ms_per_request_by_part": {
            part: round(1000 * spent / requests, 4) for part, spent in sorted(parts.items())
        },
        "texts_per_s": requests * texts_per_request / seconds,
        "mean_batch": sequences / batches if batches else None,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    texts = make_corpus(2000, seed=20261202, min_tokens=15, max_tokens=25)  # peers' short
    metrics_port = free_port()
    server = Server(work, ["--metrics-port", str(metrics_port), *args.server_arg])
    rounds: list[dict[str, Any]] = []
    try:
        server.wait_serving(timeout=600)
        loop = asyncio.new_event_loop()
        try:
            openers = [grpc_opener(server.target) for _ in range(args.clients)]
            embedders = [loop.run_until_complete(open_one()) for open_one in openers]

            def run(total: int) -> tuple[float, list[float]]:
                return loop.run_until_complete(send(embedders, texts, args.texts, total))

            run(args.warmup)
            for number in range(1, args.rounds + 1):
                row = measure_round(
                    server.pid, metrics_port, lambda: run(args.requests), args.requests, args.texts
                )
                log(
                    f"round {number}: {row['cpu_ms_per_request']:.2f} CPU ms per request "
                    f"(model {row['model_cpu_ms_per_request']:.2f}, other "
                    f"{row['other_cpu_ms_per_request']:.2f}), {row['texts_per_s']:.1f} texts/s, "
                    f"mean batch {row['mean_batch']:.1f}"
                )
                rounds.append(row)
        finally:
            loop.close()
    finally:
        server.stop()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "clients": args.clients,
        "texts_per_request": args.texts,
        "requests_per_round": args.requests,
        "warmup_requests": args.warmup,
        "server_args": list(args.server_arg),
        "rounds": rounds,
        "median": {
            key: statistics.median(r[key] for r in rounds)
            for key in (
                "cpu_ms_per_request",
                "model_cpu_ms_per_request",
                "other_cpu_ms_per_request",
                "texts_per_s",
            )
        },
    }


def _commit() -> str:
    """The checkout's commit, with ``+changes`` when tracked files differ from it."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return (head.stdout.strip() or "unknown") + ("+changes" if dirty.stdout.strip() else "")


# -- report -------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    median = report["median"]
    lines = [
        f"## {SECTION}",
        "",
        f"Measured {report['date']} at commit `{report['commit']}` by "
        f"`bench/request_overhead.py`: `embedserve serve --model minilm` on the CPU, "
        f"{report['clients']} clients with a connection each, {report['texts_per_request']} "
        f"text(s) of 15 to 25 tokens per request, {report['warmup_requests']} warm-up requests, "
        f"then {len(report['rounds'])} rounds of {report['requests_per_round']:,} requests.",
        "",
        "CPU ms per request is the server process's CPU time (all threads, user + system) "
        "divided by the requests: `model` is the model thread and the torch workers it "
        "started (batch tensors, forward pass, pooling); the rest is the event loop (gRPC, "
        "interceptors, conversion, batcher), the tokenizer thread and gRPC's own threads. "
        "Texts/s and latency depend on the machine's other load (the load averages).",
        "",
        "| round | CPU ms / request | model | event loop | tokenizer | other threads "
        "| texts/s | mean batch | p50 ms | p99 ms | loadavg before / after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for number, r in enumerate(report["rounds"], 1):
        part = r["cpu_ms_per_request_by_part"]
        lines.append(
            f"| {number} | {r['cpu_ms_per_request']:.2f} | {part.get('model', 0.0):.2f} | "
            f"{part.get('event loop', 0.0):.2f} | {part.get('tokenizer', 0.0):.2f} | "
            f"{part.get('other threads', 0.0):.2f} | {r['texts_per_s']:.1f} | "
            f"{r['mean_batch']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['loadavg_before']} / {r['loadavg_after']} |"
        )
    lines += [
        "",
        f"Median: **{median['cpu_ms_per_request']:.2f} CPU ms per request** (model "
        f"{median['model_cpu_ms_per_request']:.2f}, everything else "
        f"{median['other_cpu_ms_per_request']:.2f}), {median['texts_per_s']:.1f} texts/s.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients")
    parser.add_argument("--texts", type=int, default=1, help="texts per request")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds, one server")
    parser.add_argument("--warmup", type=int, default=500, help="requests before measuring")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra `embedserve serve` argument (repeat: --server-arg=--max-wait-ms "
        "--server-arg=5)",
    )
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    parser.add_argument("--out", type=Path, help="write the Markdown section into this file")
    args = parser.parse_args(argv)
    for name in ("requests", "clients", "texts", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="request-overhead-") as work:
        report = measure(args, Path(work))
    publish(SECTION, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
