"""HTTP vs. gRPC throughput: one client sending batches of texts (64 by default) to one server.

One server process serves both transports (packaged MiniLM on CPU by default). One
client, one request at a time, sends the same seeded mixed-length corpus in batches of
``--batch`` texts through:

  (g) gRPC ``EmbeddingService/Embed`` (the reference);
  (f) HTTP ``POST /v1/embeddings`` with ``encoding_format="float"`` (JSON numbers);
  (b) HTTP ``POST /v1/embeddings`` with ``encoding_format="base64"`` (the openai
      client's default);
  (r) HTTP ``POST /api/v1/embed`` (the REST mirror).

Rounds are interleaved g, f, b, r, g, f, ... and medians are reported, with each HTTP
variant's ratio to gRPC per round. The target is (f) / (g) >= 0.9.

    .venv/bin/python bench/http_vs_grpc.py [--texts 512] [--rounds 3] [--batch 64]
        [--out docs/benchmarks.md] [--json bench/results/http_vs_grpc.json]
"""

from __future__ import annotations

import argparse
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

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from embedding_throughput import machine_info, make_corpus, publish  # noqa: E402

from embedserve.client import EmbedClient  # noqa: E402

TARGET = 0.9
SEED = 20261202


def title(batch: int) -> str:
    return f"HTTP vs gRPC: one client, batches of {batch} (CPU)"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model: str, data_dir: str) -> tuple[subprocess.Popen[bytes], int, int]:
    grpc_port, http_port = free_port(), free_port()
    roots = [str(REPO / r) for r in ("server", "connectors", "clients/python")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(roots), EMBEDSERVE_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "embedserve.server.cli", "serve", "--model", model]
    command += ["--port", str(grpc_port), "--http-port", str(http_port), "--data-dir", data_dir]
    process = subprocess.Popen(command, env=env)
    with EmbedClient(f"127.0.0.1:{grpc_port}") as client:
        client.wait_until_serving(timeout=300)
    return process, grpc_port, http_port


def batches(texts: Sequence[str], size: int) -> list[list[str]]:
    return [list(texts[i : i + size]) for i in range(0, len(texts), size)]


def timed(send: Callable[[list[str]], int], corpus: list[list[str]]) -> dict[str, float]:
    started = time.perf_counter()
    rows = sum(send(batch) for batch in corpus)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "texts_per_s": rows / seconds}


def run(args: argparse.Namespace) -> dict[str, Any]:
    texts = make_corpus(args.texts, SEED)
    corpus = batches(texts, args.batch)
    with tempfile.TemporaryDirectory() as data_dir:
        process, grpc_port, http_port = start_server(args.model, data_dir)
        try:
            with (
                EmbedClient(f"127.0.0.1:{grpc_port}") as grpc_client,
                httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=300) as http,
            ):
                model_id = http.get("/v1/models").json()["data"][0]["id"]

                def openai_call(encoding: str) -> Callable[[list[str]], int]:
                    def send(batch: list[str]) -> int:
                        body = {"model": model_id, "input": batch, "encoding_format": encoding}
                        reply = http.post("/v1/embeddings", json=body)
                        reply.raise_for_status()
                        return len(reply.json()["data"])

                    return send

                def rest(batch: list[str]) -> int:
                    reply = http.post("/api/v1/embed", json={"inputs": batch})
                    reply.raise_for_status()
                    return len(reply.json()["embeddings"])

                variants: dict[str, Callable[[list[str]], int]] = {
                    "grpc": lambda batch: len(grpc_client.embed(batch)),
                    "http_float": openai_call("float"),
                    "http_base64": openai_call("base64"),
                    "http_rest": rest,
                }
                timed(variants["grpc"], corpus[:2])  # warm both paths once
                timed(variants["http_float"], corpus[:2])
                rounds: list[dict[str, dict[str, float]]] = []
                for number in range(args.rounds):
                    results = {name: timed(send, corpus) for name, send in variants.items()}
                    rounds.append(results)
                    print(
                        f"round {number + 1}: "
                        + ", ".join(f"{k} {v['texts_per_s']:.1f}/s" for k, v in results.items()),
                        file=sys.stderr,
                    )
        finally:
            process.terminate()
            process.wait(60)
    medians = {
        name: statistics.median(r[name]["texts_per_s"] for r in rounds) for name in rounds[0]
    }
    ratios = {
        name: [r[name]["texts_per_s"] / r["grpc"]["texts_per_s"] for r in rounds]
        for name in rounds[0]
        if name != "grpc"
    }
    return {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info("cpu"),
        "model": args.model,
        "texts": args.texts,
        "batch": args.batch,
        "rounds": rounds,
        "median_texts_per_s": medians,
        "ratio_per_round": ratios,
        "median_ratio": {name: statistics.median(values) for name, values in ratios.items()},
        "target": TARGET,
    }


LABELS = {
    "grpc": "(g) gRPC `Embed`",
    "http_float": "(f) HTTP `/v1/embeddings`, float",
    "http_base64": "(b) HTTP `/v1/embeddings`, base64",
    "http_rest": "(r) HTTP `/api/v1/embed`",
}


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"## {title(report['batch'])}",
        "",
        f"Measured {report['when']} by `bench/http_vs_grpc.py --batch {report['batch']}` "
        f"({len(report['rounds'])} interleaved rounds, medians).",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, shared with other jobs "
        f"(noisy); Python {machine['python']}, torch {machine['torch']}.",
        f"- Model: `{report['model']}` on CPU; one server process serves both transports.",
        f"- Corpus: {report['texts']} seeded mixed-length texts (5-300 tokens), sent by one "
        f"client in batches of {report['batch']}, one request at a time.",
        "",
        "| run | texts/s (median) | ratio to (g), median of rounds | per round |",
        "|---|---:|---:|---|",
    ]
    for name, label in LABELS.items():
        rate = report["median_texts_per_s"][name]
        if name == "grpc":
            lines.append(f"| {label} | {rate:.1f} | 1.00x | |")
            continue
        per_round = ", ".join(f"{r:.2f}" for r in report["ratio_per_round"][name])
        lines.append(
            f"| {label} | {rate:.1f} | {report['median_ratio'][name]:.2f}x | {per_round} |"
        )
    met = report["median_ratio"]["http_float"] >= TARGET
    lines += [
        "",
        f"Target: (f) / (g) >= {TARGET}x - met: {'yes' if met else 'no'} "
        f"({report['median_ratio']['http_float']:.2f}x).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64, help="texts per request")
    parser.add_argument("--out", default=str(REPO / "docs/benchmarks.md"))
    parser.add_argument("--json", default=str(BENCH_DIR / "results/http_vs_grpc.json"))
    args = parser.parse_args(argv)
    report = run(args)
    publish(title(args.batch), markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
