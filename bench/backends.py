"""Inference backends side by side: float32 torch against torch bfloat16, torch int8 and
ONNX Runtime (float32 and int8), speed and quality.

A backend is named as ``--backend`` names it, with ``:DTYPE`` for another dtype than
float32 (``torch:bfloat16``, what ``--dtype auto`` picks on CPUs with AMX). Loads the
model once per backend with the server's own ``EncoderModel`` (no
gRPC, no batcher; the ONNX backends export into their cache at the first run) and
measures, in this process:

- speed: forward passes over batch shapes the batcher produces on a CPU (16 x
  32, 8 x 128 and 4 x 256 padded tokens), shapes interleaved between the
  backends, ``--rounds`` times; median tokens per second per shape;
- quality against float32 on a mixed-length corpus: the cosine of each text's
  vector (minimum and 1st percentile), and recall@10 of nearest-neighbour search
  (the first ``--queries`` texts against the rest: the share of float32's ten
  nearest that the backend's ten nearest contain).

- the int8 ceiling of this CPU: one linear layer's product (512 tokens, 384 to 1,536
  and back, MiniLM's feed-forward shapes) in float32 against torch's dynamic int8,
  the most an int8 backend can gain on its matrix products here.

It writes a Markdown section into docs/benchmarks.md and JSON into bench/results/.

    .venv/bin/python bench/backends.py [--model minilm] [--label NAME] [--rounds 5] [--texts 600]
        [--backends torch,torch:bfloat16,torch-int8,onnx,onnx-int8] [--section TITLE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
from embedding_throughput import machine_info, make_corpus, portable, replace_section

BENCH_DIR = Path(__file__).resolve().parent
SHAPES = ((16, 32), (8, 128), (4, 256))
SECTION = "Inference backends (CPU): float32, bfloat16 and int8"


def embed_all(model: Any, texts: Sequence[str], batch: int = 32) -> np.ndarray:
    from embedserve.server.tokenization import Overflow
    from embedserve.server.windows import Window

    encoded = model.tokenizer.encode(list(texts), "", Overflow.TRUNCATE_RIGHT)
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i].windows[0]))
    out: list[np.ndarray] = [np.empty(0)] * len(texts)
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        vectors = model.compute(
            [Window(encoded[i].windows[0], encoded[i].pool_start) for i in rows]
        )
        for i, vector in zip(rows, vectors, strict=True):
            out[i] = vector
    stacked = np.stack(out)
    return stacked / np.linalg.norm(stacked, axis=1, keepdims=True)


def recall_at_10(reference: np.ndarray, candidate: np.ndarray, queries: int) -> float:
    def top10(vectors: np.ndarray) -> np.ndarray:
        scores = vectors[:queries] @ vectors[queries:].T
        return np.argsort(-scores, axis=1)[:, :10]

    want, got = top10(reference), top10(candidate)
    return float(np.mean([len(set(w) & set(g)) / 10 for w, g in zip(want, got, strict=True)]))


def linear_int8_speedup(rounds: int = 30) -> dict[str, float]:
    """float32 over dynamic int8 time of one linear layer's product, per shape (median)."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    speedups: dict[str, float] = {}
    for inputs, outputs in ((384, 1536), (1536, 384)):
        x = torch.randn(512, inputs)
        layer = torch.nn.Sequential(torch.nn.Linear(inputs, outputs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
            int8 = quantize_dynamic(layer, {torch.nn.Linear: per_channel_dynamic_qconfig})
        seconds: dict[str, list[float]] = {"float32": [], "int8": []}
        with torch.inference_mode():
            for _ in range(rounds):
                for name, module in (("float32", layer), ("int8", int8)):
                    started = time.perf_counter()
                    module(x)
                    seconds[name].append(time.perf_counter() - started)
        speedups[f"512x{inputs}x{outputs}"] = statistics.median(
            seconds["float32"]
        ) / statistics.median(seconds["int8"])
    return speedups


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument(
        "--label",
        help="how the section names the model (a folder's path is no name); any other model "
        "than minilm gets a section of its own",
    )
    parser.add_argument("--backends", default="torch,torch:bfloat16,torch-int8,onnx,onnx-int8")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--out", type=Path, default=BENCH_DIR.parent / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, default=BENCH_DIR / "results" / "backends.json")
    parser.add_argument("--section", help="the section's title (default: from the model)")
    args = parser.parse_args(argv)

    from embedserve.server.model import EncoderModel
    from embedserve.server.model_settings import ModelSettings
    from embedserve.server.windows import Window

    def load(name: str) -> EncoderModel:
        backend, _, dtype = name.partition(":")
        settings = ModelSettings(
            model=args.model, device="cpu", backend=backend, dtype=dtype or "float32"
        )
        return EncoderModel.load(settings)

    backends = args.backends.split(",")
    models = {b: load(b) for b in backends}
    texts = make_corpus(args.texts, seed=20261101)
    vectors = {b: embed_all(m, texts) for b, m in models.items()}

    rng = np.random.default_rng(0)
    low, high = 1000, 20000
    batches = {
        shape: [
            Window(tuple(int(x) for x in rng.integers(low, high, shape[1])))
            for _ in range(shape[0])
        ]
        for shape in SHAPES
    }
    seconds: dict[tuple[str, tuple[int, int]], list[float]] = {}
    for _ in range(args.rounds):
        for shape, windows in batches.items():
            for backend, model in models.items():
                started = time.perf_counter()
                model.compute(windows)
                seconds.setdefault((backend, shape), []).append(time.perf_counter() - started)

    reference = vectors[backends[0]]
    rows: list[dict[str, Any]] = []
    for backend in backends:
        cosines = (vectors[backend] * reference).sum(axis=1)
        speeds = {
            f"{c}x{n}": c * n / statistics.median(seconds[(backend, (c, n))]) for c, n in SHAPES
        }
        rows.append(
            {
                "backend": backend,
                "tokens_per_s": speeds,
                "min_cosine": float(cosines.min()),
                "p1_cosine": float(np.percentile(cosines, 1)),
                "recall_at_10": recall_at_10(reference, vectors[backend], args.queries),
            }
        )
    base = rows[0]["tokens_per_s"]
    for row in rows:
        row["speedup"] = {k: v / base[k] for k, v in row["tokens_per_s"].items()}

    label = args.label or args.model
    title = args.section or (SECTION if args.model == "minilm" else f"{SECTION}, {label}")
    linear_speedup = linear_int8_speedup()
    report = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info("cpu"),
        "model": label,
        "rounds": args.rounds,
        "texts": args.texts,
        "queries": args.queries,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "rows": rows,
        "linear_int8_speedup": linear_speedup,
    }
    m = report["machine"]
    shape_names = [f"{c}x{n}" for c, n in SHAPES]
    lines = [
        f"## {title}",
        "",
        f"Measured {report['date']} by `bench/backends.py`: {m['cpu']}, {m['cores']} cores "
        f"(shared; load average {' '.join(report['loadavg'])} at the end), torch {m['torch']}, "
        f"torch threads {m['torch_threads_bench']}; model {args.label or f'`{args.model}`'}. "
        "Tokens/s are medians "
        f"of {args.rounds} interleaved rounds of one forward pass per shape (count x length). "
        f"Quality is against {backends[0]} on {args.texts} mixed-length texts (5 to 300 tokens); "
        f"recall@10: {args.queries} of them as queries against the rest.",
        "",
        "| backend | "
        + " | ".join(f"tokens/s {s}" for s in shape_names)
        + " | speed-up (median of shapes) | min cosine | 1st pct cosine | recall@10 |",
        "|---|" + "---:|" * (len(shape_names) + 4),
    ]
    for row in rows:
        speedup = statistics.median(row["speedup"].values())
        lines.append(
            f"| {row['backend']} | "
            + " | ".join(f"{row['tokens_per_s'][s]:,.0f}" for s in shape_names)
            + f" | {speedup:.2f}x | {row['min_cosine']:.4f} | {row['p1_cosine']:.4f} | "
            f"{row['recall_at_10']:.3f} |"
        )
    lines += [
        "",
        "The int8 ceiling of this CPU, one linear layer's product of 512 tokens, float32 time "
        "over torch's dynamic int8: "
        + ", ".join(f"{shape} {value:.2f}x" for shape, value in linear_speedup.items())
        + ".",
    ]
    section = "\n".join(lines) + "\n"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(portable(json.dumps(report, indent=2)) + "\n")
    document = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(replace_section(document, title, portable(section)))
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
