"""Packed passes in bfloat16 on a CPU: bucketed row counts against exact ones, on new shapes.

A server's batches rarely repeat a token count, and oneDNN builds kernels per shape
for bfloat16 products (server/embedserve/server/row_buckets.py). For each model
(the packaged MiniLM with ``bert_path fast``; with ``--modernbert FOLDER`` also a
ModernBERT, e.g. one made by ``bench/make_random_modernbert.py --base``), plain and
compiled, this times the packed pass through the server's own ``EncoderModel.compute``
on ``--batches`` batches (a fifth as many for ModernBERT), each drawn anew (count and
lengths random, so nearly every token count is new), with bucketing on and off,
alternating, ``--rounds`` rounds, each setting on batches of its own draw; and, as the
floor, one batch repeated. Two loads:
``short`` (12 to 24 texts of 15 to 25 tokens: many one-text clients) and ``mixed`` (4 to
24 texts of 5 to 300 tokens). Reports real tokens per second, medians over the rounds,
and the ratio bucketed / exact taken within each round.

    .venv/bin/python bench/row_buckets.py [--modernbert FOLDER] [--rounds 3] [--batches 40]
        [--threads 1] [--out docs/benchmarks.md] [--json bench/results/row_buckets.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compiled_pass import machine_line
from embedding_throughput import machine_info, publish
from peers import loadavg

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BENCH_DIR = Path(__file__).resolve().parent
SECTION = "Bucketed row counts in bfloat16 (CPU)"
# name: (fewest texts, most texts, fewest tokens, most tokens)
LOADS = {"short": (12, 24, 15, 25), "mixed": (4, 24, 5, 300)}


def draw(rng: random.Random, load: str) -> list[Any]:
    from embedserve.server.windows import Window

    fewest, most, low, high = LOADS[load]
    return [
        Window(tuple(rng.randint(1000, 20000) for _ in range(rng.randint(low, high))))
        for _ in range(rng.randint(fewest, most))
    ]


def tokens_per_s(model: Any, batches: Sequence[Sequence[Any]]) -> float:
    started = time.perf_counter()
    for windows in batches:
        model.compute(windows)
    return sum(len(w.ids) for b in batches for w in b) / (time.perf_counter() - started)


def packed_pass(model: Any) -> Any:
    """The PackedBert or PackedModernBert inside ``model``, compiled or not."""
    inner = model._model
    return getattr(inner, "_run", inner)


def measure_model(
    args: argparse.Namespace, name: str, settings: Any, batches: int
) -> list[dict[str, Any]]:
    from embedserve.server.model import EncoderModel

    rows = []
    for compiled in (False, True):
        model = EncoderModel.load(dataclasses.replace(settings, torch_compile=compiled))
        model.warm_up_compiled([args.threads])
        packed = packed_pass(model)
        for load in LOADS:
            rng = random.Random(f"{name}-{compiled}-{load}")
            fixed = draw(rng, load)
            rounds: list[dict[str, float]] = []
            for index in range(args.rounds):
                sample: dict[str, float] = {}
                order = (True, False) if index % 2 else (False, True)
                for bucketed in order:
                    packed.bucketed = bucketed
                    drawn = [draw(rng, load) for _ in range(batches)]
                    sample["bucketed" if bucketed else "exact"] = tokens_per_s(model, drawn)
                packed.bucketed = False
                model.compute(fixed)
                sample["repeated"] = tokens_per_s(model, [fixed] * batches)
                rounds.append(sample)
            ratios = [r["bucketed"] / r["exact"] for r in rounds]
            rows.append(
                {
                    "model": name,
                    "compiled": compiled,
                    "load": load,
                    **{k: statistics.median(r[k] for r in rounds) for k in rounds[0]},
                    "ratio": statistics.median(ratios),
                    "ratios": ratios,
                }
            )
    return rows


def shape_of(folder: Path) -> str:
    config = json.loads((folder / "config.json").read_text())
    return f"{config['num_hidden_layers']} layers x {config['hidden_size']}"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from embedserve.server.model_settings import ModelSettings

    torch.set_num_threads(args.threads)
    before = loadavg()
    # name: (settings, batches per setting and round)
    models = {"MiniLM": (ModelSettings(model="minilm", bert_path="fast"), args.batches)}
    if args.modernbert:
        settings = ModelSettings(model=str(args.modernbert), modernbert_path="fast")
        models["ModernBERT"] = (settings, max(2, args.batches // 5))  # about 10x MiniLM's pass
    rows = []
    for name, (settings, batches) in models.items():
        settings = dataclasses.replace(settings, device="cpu", dtype="bfloat16")
        rows += measure_model(args, name, settings, batches)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "modernbert": shape_of(args.modernbert) if args.modernbert else None,
        "threads": args.threads,
        "rounds": args.rounds,
        "batches": args.batches,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "machine": machine_info("cpu"),
        "rows": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    modernbert = f" and a ModernBERT of {report['modernbert']}" if report["modernbert"] else ""
    lines = [
        f"## {SECTION}",
        "",
        f"Measured {report['date']} by `bench/row_buckets.py`: the packaged MiniLM"
        f"{modernbert}, packed, in bfloat16 through the server's own `EncoderModel.compute`, "
        f"on {report['threads']} torch thread(s); per round {report['batches']} batches (a "
        "fifth as many for ModernBERT) drawn anew for each setting (nearly every token count "
        f"new), bucketed row counts and exact ones alternating, {report['rounds']} rounds; "
        "real tokens per second, medians, and the ratio bucketed / exact taken within each "
        "round. `repeated`: exact, one batch over and over (its kernels built once).",
        "",
        machine_line(report),
        "",
        "| model | compiled | load | exact tokens/s | bucketed tokens/s | repeated tokens/s "
        "| bucketed / exact (each round) |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        rounds = ", ".join(f"{x:.2f}" for x in r["ratios"])
        lines.append(
            f"| {r['model']} | {'yes' if r['compiled'] else 'no'} | {r['load']} | "
            f"{r['exact']:,.0f} | {r['bucketed']:,.0f} | {r['repeated']:,.0f} | "
            f"{r['ratio']:.2f}x ({rounds}) |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modernbert", type=Path, help="also a ModernBERT model folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=40, help="batches per setting and round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the Markdown section into this file")
    parser.add_argument("--json", type=Path, default=BENCH_DIR / "results" / "row_buckets.json")
    args = parser.parse_args(argv)
    if min(args.rounds, args.batches, args.threads) < 1:
        parser.error("--rounds, --batches and --threads must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = measure(args)
    publish(SECTION, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
