"""Packed BERT pass: ``bert_path fast`` (padding skipped) against ``reference``, per pass.

``--model``: the packaged MiniLM, or random weights in the shape of all-mpnet-base-v2
(``mpnet-base``) or of msmarco-distilbert-base-tas-b (``distilbert-base``), built in a
temporary folder with MiniLM's tokenizer: speed depends on the shape, not the weights.
Loads the model with each path (``EncoderModel``, the server's own loader and
``compute``), plain and, with ``--compiled``, compiled, then times reference and packed
on the same padded batches of mixed lengths, alternating, ``--rounds`` times in a
shuffled order, on ``--threads`` torch threads (1: a pass beside another on 2 cores).
Each batch is timed over and over, so kernels built per shape (oneDNN's, in bfloat16)
are built once: what new shapes cost a server is ``bench/row_buckets.py``'s to measure.
Reports per batch the padding share, median wall and CPU milliseconds of each path,
and the ratio reference / packed taken within each round, then its median; the lowest
cosine between the two paths' vectors; the load averages.

    .venv/bin/python bench/packed_bert.py [--model minilm] [--dtype auto] [--rounds 5]
        [--threads 1] [--compiled] [--out docs/benchmarks.md]
        [--json bench/results/packed_bert.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from compiled_pass import machine_line, paired_cells, paired_medians, timed
from embedding_throughput import machine_info, min_cosine, publish
from peers import loadavg

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BENCH_DIR = Path(__file__).resolve().parent
SECTION = "Packed BERT pass (CPU)"
COMPILED_SECTION = "Packed BERT pass, compiled (CPU)"
# --model: (model type, sizes) of random-weight stand-ins for popular encoders.
RANDOM_SHAPES: dict[str, tuple[str, dict[str, int]]] = {
    "mpnet-base": (  # all-mpnet-base-v2
        "mpnet",
        {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "max_position_embeddings": 514,
            "vocab_size": 30527,
        },
    ),
    "distilbert-base": (  # msmarco-distilbert-base-tas-b
        "distilbert",
        {
            "dim": 768,
            "hidden_dim": 3072,
            "n_layers": 6,
            "n_heads": 12,
            "max_position_embeddings": 512,
            "vocab_size": 30522,
        },
    ),
}
# (texts, fewest tokens, most tokens): batches of many one-text clients' short queries,
# a full batch of them, mixed lengths as documents come, and batches without padding
# (what packing costs where it saves nothing).
SHAPES = (
    (17, 15, 25),
    (32, 15, 25),
    (64, 15, 25),
    (20, 5, 120),
    (16, 5, 250),
    (64, 20, 20),
    (16, 128, 128),
)


def build_random(name: str, folder: Path) -> str:
    """A random-weight model of ``RANDOM_SHAPES[name]`` with MiniLM's tokenizer, in ``folder``."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from embedserve.server.model_spec import resolve_model_path

    model_type, sizes = RANDOM_SHAPES[name]
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.for_model(model_type, **sizes)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model_path("minilm")[1]).save_pretrained(folder)
    return str(folder)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        model = args.model if args.model == "minilm" else build_random(args.model, Path(folder))
        return measure_model(args, model)


def measure_model(args: argparse.Namespace, model_name: str) -> dict[str, Any]:
    import torch

    from embedserve.server.model import EncoderModel
    from embedserve.server.model_settings import ModelSettings
    from embedserve.server.windows import Window

    torch.set_num_threads(args.threads)
    base = ModelSettings(
        model=model_name, device="cpu", dtype=args.dtype, torch_compile=args.compiled
    )
    models = {
        path: EncoderModel.load(dataclasses.replace(base, bert_path=path))
        for path in ("reference", "fast")
    }
    for model in models.values():
        model.warm_up_compiled([args.threads])

    rng = random.Random(0)
    vocab = models["fast"].tokenizer.pad_token_id + 1000, 20000

    def batch(count: int, low: int, high: int) -> list[Window]:
        lengths = [rng.randint(low, high) for _ in range(count)]
        return [Window(tuple(rng.randint(*vocab) for _ in range(n))) for n in lengths]

    batches = {shape: batch(*shape) for shape in SHAPES}
    cosine = min(
        min_cosine(*(np.stack(model.compute(windows)) for model in models.values()))
        for windows in batches.values()
    )
    before = loadavg()
    samples: dict[tuple[int, int, int], list[dict[str, float]]] = {}
    for round_index in range(args.rounds):
        order = list(SHAPES)
        random.Random(round_index).shuffle(order)
        for shape in order:
            windows = batches[shape]
            repeats = max(3, 4096 // sum(len(w.ids) for w in windows))
            sample: dict[str, float] = {}
            paths = list(models.items())
            for name, model in paths if round_index % 2 else paths[::-1]:
                model.compute(windows)  # caches warm for this shape
                wall, cpu = timed(partial(model.compute, windows), repeats)
                sample[f"{name}_wall_ms"], sample[f"{name}_cpu_ms"] = 1000 * wall, 1000 * cpu
            samples.setdefault(shape, []).append(sample)
    rows = []
    for shape in SHAPES:
        runs = samples[shape]
        lengths = [len(w.ids) for w in batches[shape]]
        row: dict[str, Any] = {
            "texts": shape[0],
            "tokens": f"{shape[1]}-{shape[2]}",
            "padding": 1 - sum(lengths) / (len(lengths) * max(lengths)),
        }
        rows.append(row | paired_medians(runs, "reference", "fast"))
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "model": args.model,
        "dtype": str(models["fast"].dtype).removeprefix("torch."),
        "compiled": args.compiled,
        "threads": args.threads,
        "rounds": args.rounds,
        "min_cosine": cosine,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "machine": machine_info("cpu"),
        "rows": rows,
    }


def title(report: dict[str, Any]) -> str:
    section = COMPILED_SECTION if report["compiled"] else SECTION
    model = report.get("model", "minilm")
    return section if model == "minilm" else f"{section}: {model} shape, {report['dtype']}"


def markdown(report: dict[str, Any]) -> str:
    compiled = ", both compiled (`torch_compile`)" if report["compiled"] else ""
    model = report.get("model", "minilm")
    described = (
        "the packaged MiniLM"
        if model == "minilm"
        else f"random weights in {model}'s shape (`--model {model}`)"
    )
    lines = [
        f"## {title(report)}",
        "",
        f"Measured {report['date']} by `bench/packed_bert.py`: {described} in "
        f"{report['dtype']} through the server's own `EncoderModel.compute`, `bert_path "
        f"reference` (transformers' padded pass) and `fast` (packed){compiled}, on "
        f"{report['threads']} torch thread(s), alternating on the same batches, "
        f"{report['rounds']} rounds in a shuffled order; medians per pass, ratios "
        "(reference / packed) taken within each round.",
        "",
        machine_line(report),
        f"- Lowest per-text cosine between the two paths: {report['min_cosine']:.5f}.",
        "",
        "| texts | tokens each | padding | reference ms | packed ms | reference CPU ms "
        "| packed CPU ms | wall ratio | CPU ratio (each round) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['texts']} | {r['tokens']} | {r['padding']:.0%} | "
            + paired_cells(r, "reference", "fast")
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm", choices=["minilm", *RANDOM_SHAPES])
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compiled", action="store_true", help="compile both paths")
    parser.add_argument("--out", type=Path, help="write the Markdown section into this file")
    parser.add_argument(
        "--json",
        type=Path,
        help="default: bench/results/packed_bert[_compiled][_MODEL][_DTYPE].json",
    )
    args = parser.parse_args(argv)
    if args.json is None:
        suffix = ("_compiled" if args.compiled else "") + (
            "" if args.model == "minilm" else f"_{args.model.replace('-', '_')}"
        )
        suffix += "" if args.dtype == "auto" else f"_{args.dtype}"
        args.json = BENCH_DIR / "results" / f"packed_bert{suffix}.json"
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = measure(args)
    publish(title(report), markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
