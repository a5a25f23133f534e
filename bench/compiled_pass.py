"""Compiled forward pass: the server's pass with ``torch_compile`` against the plain one.

Loads the model twice in this process (``EncoderModel``, the server's own loader and
``compute``), compiles one for each thread count measured (timed), then times both on
the same batches, alternating plain and compiled, for each thread count (the wide pass
and the narrow side-by-side passes of a 2-core CPU) and batch shape, ``--rounds``
times. Reports per pass the median wall milliseconds and the median CPU milliseconds of
this process (which excludes time the machine's hypervisor gave to others), and the
ratio plain / compiled taken within each round, then its median; the lowest cosine
between the two models' vectors; the load averages.

    .venv/bin/python bench/compiled_pass.py [--model minilm] [--dtype auto] [--rounds 5]
        [--threads 2,1] [--out docs/benchmarks.md] [--json bench/results/compiled_pass.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from embedding_throughput import machine_info, min_cosine, publish
from peers import loadavg

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BENCH_DIR = Path(__file__).resolve().parent
SECTION = "Compiled forward pass (CPU)"
# (texts, tokens each): one short query, the batches of many one-text clients (17 to 24
# short texts), a full batch of short texts, and longer documents.
SHAPES = ((1, 24), (20, 24), (64, 24), (16, 128), (4, 256))


def timed(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of one call over ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def paired_medians(runs: Sequence[dict[str, float]], base: str, other: str) -> dict[str, Any]:
    """Medians of each timing over the rounds, and the ratios ``base`` / ``other`` of wall
    and CPU milliseconds taken within each round (``*_ratios``) with their medians."""
    row: dict[str, Any] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    for kind in ("wall", "cpu"):
        ratios = [run[f"{base}_{kind}_ms"] / run[f"{other}_{kind}_ms"] for run in runs]
        row[f"{kind}_ratio"] = statistics.median(ratios)
        row[f"{kind}_ratios"] = ratios
    return row


def paired_cells(row: dict[str, Any], base: str, other: str) -> str:
    """The table cells of ``paired_medians``: wall and CPU ms of both, then the ratios."""
    rounds = ", ".join(f"{x:.2f}" for x in row["cpu_ratios"])
    return (
        f"{row[f'{base}_wall_ms']:.1f} | {row[f'{other}_wall_ms']:.1f} | "
        f"{row[f'{base}_cpu_ms']:.1f} | {row[f'{other}_cpu_ms']:.1f} | "
        f"{row['wall_ratio']:.2f}x | {row['cpu_ratio']:.2f}x ({rounds}) |"
    )


def machine_line(report: dict[str, Any]) -> str:
    """The Markdown bullet that names the machine, its load and the library versions."""
    machine = report["machine"]
    return (
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, load average "
        f"{report['loadavg_before']} before, {report['loadavg_after']} after; torch "
        f"{machine['torch']}, transformers {machine['transformers']}."
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from embedserve.server.model import EncoderModel
    from embedserve.server.model_settings import ModelSettings
    from embedserve.server.windows import Window

    settings = ModelSettings(model=args.model, device="cpu", dtype=args.dtype)
    plain = EncoderModel.load(settings)
    compiled = EncoderModel.load(dataclasses.replace(settings, torch_compile=True))
    started = time.perf_counter()
    compiled.warm_up_compiled(args.threads)
    compile_s = time.perf_counter() - started

    rng = random.Random(0)
    vocab = plain.tokenizer.pad_token_id + 1000, 20000

    def batch(count: int, length: int) -> list[Window]:
        return [Window(tuple(rng.randint(*vocab) for _ in range(length))) for _ in range(count)]

    batches = {shape: batch(*shape) for shape in SHAPES}
    cosine = min(
        min_cosine(np.stack(plain.compute(windows)), np.stack(compiled.compute(windows)))
        for windows in batches.values()
    )
    before = loadavg()
    samples: dict[tuple[int, int, int], list[dict[str, float]]] = {}
    for round_index in range(args.rounds):
        order = [(threads, *shape) for threads in args.threads for shape in SHAPES]
        random.Random(round_index).shuffle(order)
        for threads, count, length in order:
            torch.set_num_threads(threads)
            windows = batches[(count, length)]
            repeats = max(3, 2048 // (count * length))
            sample: dict[str, float] = {}
            for name, model in (("plain", plain), ("compiled", compiled)):
                model.compute(windows)  # caches warm for this shape
                wall, cpu = timed(partial(model.compute, windows), repeats)
                sample[f"{name}_wall_ms"], sample[f"{name}_cpu_ms"] = 1000 * wall, 1000 * cpu
            samples.setdefault((threads, count, length), []).append(sample)
    rows = []
    for (threads, count, length), runs in sorted(
        samples.items(), key=lambda kv: (-kv[0][0], SHAPES.index(kv[0][1:]))
    ):
        row: dict[str, Any] = {"threads": threads, "texts": count, "tokens": length}
        rows.append(row | paired_medians(runs, "plain", "compiled"))
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "model": args.model,
        "dtype": str(plain.dtype).removeprefix("torch."),
        "threads": args.threads,
        "rounds": args.rounds,
        "compile_s": compile_s,
        "min_cosine": cosine,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "machine": machine_info("cpu"),
        "rows": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"## {SECTION}",
        "",
        f"Measured {report['date']} by `bench/compiled_pass.py`: {report['model']} in "
        f"{report['dtype']} through the server's own `EncoderModel.compute`, plain and with "
        f"`torch_compile`, alternating on the same batches, {report['rounds']} rounds in a "
        f"shuffled order; medians per pass, ratios (plain / compiled) taken within each round.",
        "",
        machine_line(report),
        f"- Compiling for thread counts {', '.join(map(str, report['threads']))}: "
        f"{report['compile_s']:.1f} s (inductor's on-disk cache as this machine had it). "
        f"Lowest per-text cosine between the two: {report['min_cosine']:.5f}.",
        "",
        "| threads | texts x tokens | plain ms | compiled ms | plain CPU ms | compiled CPU ms "
        "| wall ratio | CPU ratio (each round) |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['threads']} | {r['texts']} x {r['tokens']} | "
            + paired_cells(r, "plain", "compiled")
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default="2,1", help="torch thread counts, comma-separated")
    parser.add_argument("--out", type=Path, help="write the Markdown section into this file")
    parser.add_argument("--json", type=Path, default=BENCH_DIR / "results" / "compiled_pass.json")
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",") if t]
    if args.rounds < 1 or not args.threads or min(args.threads) < 1:
        parser.error("--rounds and every --threads entry must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = measure(args)
    publish(SECTION, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
