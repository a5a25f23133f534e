"""Attention with aligned keys: torch's CPU sdpa with the key length padded to a multiple of 16.

Two measurements on one torch thread (the side-by-side passes' width on 2 cores),
plain and aligned alternating, in shuffled rounds:

- kernel: ``F.scaled_dot_product_attention`` with 12 heads of each of
  ``--head-dims`` (32: MiniLM's, 64: a base model's) on about 1,440 tokens per
  batch, at ``--lengths`` random lengths from 12 to 256 (all rows but the first
  masked to 3/4 of it), as it is and through ``align_keys``, in bfloat16 and
  float32: the median time per length and the sum over lengths;
- pass: the server's own ``EncoderModel.compute`` on MiniLM in bfloat16 (with
  ``torch_compile`` unless ``--no-compile``), loaded with transformers' ``sdpa``
  and with ``sdpa_aligned_keys``, on batches shaped like those of
  ``bench/peers.py``: 18 texts of 15 to 25 tokens (64 one-text clients) and
  batches of mixed texts up to 256 tokens (one batching client); CPU ms per pass
  and the ratio taken within each round, and the lowest cosine between the two.

    .venv/bin/python bench/aligned_keys.py [--rounds 5] [--lengths 40] [--head-dims 32,64]
        [--no-compile]
        [--out docs/benchmarks.md] [--json bench/results/aligned_keys.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from embedding_throughput import machine_info, min_cosine, publish
from peers import loadavg

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BENCH_DIR = Path(__file__).resolve().parent
SECTION = "Attention with aligned keys (CPU)"
HEADS, BATCH_TOKENS = 12, 1440
# (texts, shortest, longest): the batches the peers benchmark's loads make.
PASS_SHAPES = ((18, 15, 25), (40, 30, 40), (16, 80, 100), (10, 120, 140), (6, 200, 250))


def cpu_ms(run: Callable[[], object], repeats: int = 3) -> float:
    """CPU milliseconds of one call, the mean of ``repeats`` after one untimed call."""
    run()
    started = time.process_time()
    for _ in range(repeats):
        run()
    return 1000 * (time.process_time() - started) / repeats


def kernel_rows(
    lengths: Sequence[int], head_dims: Sequence[int], rounds: int, seed: int
) -> list[dict[str, Any]]:
    import torch
    import torch.nn.functional as F

    from embedserve.server.attention import align_keys

    rng = random.Random(seed)
    rows = []
    for head_dim, dtype in itertools.product(head_dims, (torch.bfloat16, torch.float32)):
        for length in lengths:
            batch = max(1, BATCH_TOKENS // length)
            query, key, value = (
                torch.randn(batch, HEADS, length, head_dim).to(dtype) for _ in range(3)
            )
            keep = torch.ones(batch, length, dtype=torch.bool)
            keep[1:, length * 3 // 4 :] = False
            mask = keep[:, None, None, :]

            def plain(q=query, k=key, v=value, m=mask) -> object:
                return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

            def aligned(q=query, k=key, v=value, m=mask) -> object:
                k, v, m = align_keys(k, v, m)  # the copies are part of the cost
                return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

            times: dict[str, list[float]] = {"plain": [], "aligned": []}
            for _ in range(rounds):
                order = [("plain", plain), ("aligned", aligned)]
                rng.shuffle(order)
                for name, run in order:
                    times[name].append(cpu_ms(run))
            rows.append(
                {
                    "dtype": str(dtype).removeprefix("torch."),
                    "head_dim": head_dim,
                    "length": length,
                    "batch": batch,
                    "plain_ms": statistics.median(times["plain"]),
                    "aligned_ms": statistics.median(times["aligned"]),
                }
            )
    return rows


def pass_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], float]:
    import torch

    from embedserve.server import model as model_module
    from embedserve.server.model import EncoderModel
    from embedserve.server.model_settings import ModelSettings
    from embedserve.server.windows import Window

    settings = ModelSettings(
        model="minilm", device="cpu", dtype="bfloat16", torch_compile=args.compile
    )
    aligned = EncoderModel.load(settings)
    chosen = model_module.pick_attention
    model_module.pick_attention = lambda device: "sdpa"
    try:
        plain = EncoderModel.load(settings)
    finally:
        model_module.pick_attention = chosen
    models = {"plain": plain, "aligned": aligned}
    for model in models.values():
        model.warm_up_compiled([1])
    torch.set_num_threads(1)

    rng = random.Random(args.seed)
    vocab = plain.tokenizer.pad_token_id + 1000, 20000
    batches = {
        shape: [
            Window(tuple(rng.randint(*vocab) for _ in range(rng.randint(shape[1], shape[2]))))
            for _ in range(shape[0])
        ]
        for shape in PASS_SHAPES
    }
    cosine = min(
        min_cosine(np.stack(plain.compute(windows)), np.stack(aligned.compute(windows)))
        for windows in batches.values()
    )
    samples: dict[tuple[int, int, int], dict[str, list[float]]] = {
        shape: {"plain": [], "aligned": []} for shape in PASS_SHAPES
    }
    for _ in range(args.rounds):
        order = [(shape, name) for shape in PASS_SHAPES for name in models]
        rng.shuffle(order)
        for shape, name in order:
            windows = batches[shape]
            samples[shape][name].append(cpu_ms(lambda m=models[name], w=windows: m.compute(w)))
    rows = []
    for shape, times in samples.items():
        ratios = [p / a for p, a in zip(times["plain"], times["aligned"], strict=True)]
        rows.append(
            {
                "texts": shape[0],
                "tokens": f"{shape[1]}-{shape[2]}",
                "plain_ms": statistics.median(times["plain"]),
                "aligned_ms": statistics.median(times["aligned"]),
                "ratio": statistics.median(ratios),
                "ratios": ratios,
            }
        )
    return rows, cosine


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    lengths = sorted(random.Random(args.seed).sample(range(12, 257), args.lengths))
    before = loadavg()
    kernel = kernel_rows(lengths, args.head_dims, args.rounds, args.seed)
    passes, cosine = pass_rows(args)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": args.rounds,
        "compiled": args.compile,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "machine": machine_info("cpu"),
        "kernel": kernel,
        "passes": passes,
        "min_cosine": cosine,
    }


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"## {SECTION}",
        "",
        f"Measured {report['date']} by `bench/aligned_keys.py`, one torch thread, "
        f"{report['rounds']} rounds in a shuffled order, plain and aligned alternating; CPU "
        "milliseconds, medians over the rounds.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, load average "
        f"{report['loadavg_before']} before, {report['loadavg_after']} after; torch "
        f"{machine['torch']}, transformers {machine['transformers']}.",
        "",
        "Kernel: `F.scaled_dot_product_attention`, 12 heads, about 1,440 tokens per "
        "batch, keys padded to a multiple of 16 by `align_keys`, summed over "
        f"{len({r['length'] for r in report['kernel']})} lengths from 12 to 256 tokens:",
        "",
        "| head dim | dtype | plain ms | aligned ms | plain / aligned "
        "| lengths aligned was faster at |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    groups = dict.fromkeys((r["head_dim"], r["dtype"]) for r in report["kernel"])
    for head_dim, dtype in groups:
        rows = [r for r in report["kernel"] if (r["head_dim"], r["dtype"]) == (head_dim, dtype)]
        plain = sum(r["plain_ms"] for r in rows)
        aligned = sum(r["aligned_ms"] for r in rows)
        faster = sum(r["aligned_ms"] < r["plain_ms"] for r in rows)
        lines.append(
            f"| {head_dim} | {dtype} | {plain:.1f} | {aligned:.1f} | {plain / aligned:.2f}x | "
            f"{faster} of {len(rows)} |"
        )
    compiled = "compiled (`torch_compile`)" if report["compiled"] else "not compiled"
    lines += [
        "",
        f"Server pass: `EncoderModel.compute`, MiniLM in bfloat16, {compiled}, transformers' "
        "`sdpa` against `sdpa_aligned_keys`; lowest per-text cosine between the two "
        f"{report['min_cosine']:.5f}:",
        "",
        "| texts | tokens each | sdpa CPU ms | aligned CPU ms | ratio (each round) |",
        "|---:|---|---:|---:|---|",
    ]
    for r in report["passes"]:
        rounds = ", ".join(f"{x:.2f}" for x in r["ratios"])
        lines.append(
            f"| {r['texts']} | {r['tokens']} | {r['plain_ms']:.1f} | {r['aligned_ms']:.1f} | "
            f"{r['ratio']:.2f}x ({rounds}) |"
        )
    plain = sum(r["plain_ms"] for r in report["passes"])
    aligned = sum(r["aligned_ms"] for r in report["passes"])
    lines.append(f"| all | | {plain:.1f} | {aligned:.1f} | {plain / aligned:.2f}x |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lengths", type=int, default=40, help="key lengths in the kernel part")
    parser.add_argument("--head-dims", default="32,64", help="comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--out", type=Path, help="write the Markdown section into this file")
    parser.add_argument("--json", type=Path, default=BENCH_DIR / "results" / "aligned_keys.json")
    args = parser.parse_args(argv)
    args.head_dims = [int(d) for d in args.head_dims.split(",") if d]
    if args.rounds < 1 or not 1 <= args.lengths <= 245:
        parser.error("--rounds must be at least 1 and --lengths 1 to 245")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = measure(args)
    publish(SECTION, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
