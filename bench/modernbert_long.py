"""ModernBERT on CPU: the packed path against transformers' forward pass, side by side.

modernbert-embed-base's shape with random weights (throughput depends on the
shape, not the weights), run through the server's own Batcher and model
thread (no gRPC, no tokenising) by both paths over the same weights:

- one input of 8,192 tokens;
- a mixed corpus of seeded lengths, log-uniform from 5 to 2,000 tokens.

With ``--bfloat16`` a third path runs too: the packed pass in bfloat16, what
``--dtype auto`` picks on CPUs with AMX, against the same float32 reference.

Each round runs every path, rotating which goes first; medians and
per-round ratios are reported with the 1-minute load average around each run,
since the machine may be shared. Writes bench/results/modernbert_long.json and
the "ModernBERT: packed path (CPU)" section of docs/benchmarks.md.

    .venv/bin/python bench/modernbert_long.py [--rounds 2] [--mixed-count 24] [--bfloat16]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from embedding_throughput import cpu_model, replace_section  # noqa: E402
from modernbert_runs import (  # noqa: E402
    cores,
    load_average,
    load_paths,
    log_uniform_lengths,
    min_cosine,
    run_batcher,
    token_windows,
)

TITLE = "ModernBERT: packed path (CPU)"
TARGETS = {"long": 2.0, "mixed": 1.3}  # fast / reference speed
BF16 = "fast bfloat16"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir", type=Path, help="a random base-shape folder; built if absent"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--long", type=int, default=8192, help="tokens of the one long input")
    parser.add_argument("--mixed-count", type=int, default=24)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--max-batch-tokens", type=int, default=2048, help="the CPU default")
    parser.add_argument(
        "--bfloat16", action="store_true", help="also run the packed pass in bfloat16"
    )
    parser.add_argument("--json", type=Path, default=BENCH_DIR / "results" / "modernbert_long.json")
    parser.add_argument(
        "--markdown", type=Path, default=BENCH_DIR.parent / "docs" / "benchmarks.md"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = args.model_dir or Path(tempfile.mkdtemp(prefix="modernbert-base-random-"))
    if not (folder / "config.json").exists():
        from make_random_modernbert import build

        build(folder, base=True)
    paths = load_paths(str(folder), device="cpu", dtype="float32")
    if args.bfloat16:
        paths[BF16] = load_paths(str(folder), device="cpu", dtype="bfloat16")["fast"]
    mixed_lengths = log_uniform_lengths(args.mixed_count, 5, 2000, args.seed)
    cases = {
        "long": token_windows([args.long], args.seed),
        "mixed": token_windows(mixed_lengths, args.seed + 1),
    }
    for model in paths.values():  # first calls pay one-off set-up costs
        run_batcher(model, token_windows([64], args.seed), args.max_batch_tokens)
    runs: list[dict[str, Any]] = []
    vectors: dict[tuple[str, str], Any] = {}
    for round_index in range(args.rounds):
        names = list(paths)
        shift = round_index % len(names)
        order = names[shift:] + names[:shift]
        for case, windows in cases.items():
            for path in order:
                load_before = load_average()
                out, seconds, batches = run_batcher(paths[path], windows, args.max_batch_tokens)
                tokens = sum(len(w.ids) for w in windows)
                runs.append(
                    {
                        "round": round_index,
                        "case": case,
                        "path": path,
                        "seconds": seconds,
                        "tokens": tokens,
                        "tokens_per_s": tokens / seconds,
                        "batches": batches,
                        "load_before": load_before,
                        "load_after": load_average(),
                    }
                )
                vectors[(case, path)] = out
                print(f"round {round_index} {case} {path}: {seconds:.2f} s", file=sys.stderr)
        # Written after every round, so a run cut short still leaves its finished rounds.
        write_report(args, runs, vectors, mixed_lengths)
    print(markdown(json.loads(args.json.read_text())))
    return 0


def write_report(
    args: argparse.Namespace,
    runs: list[dict[str, Any]],
    vectors: dict[tuple[str, str], Any],
    mixed_lengths: list[int],
) -> None:
    import torch
    import transformers

    summary: dict[str, dict[str, Any]] = {}
    for case in ("long", "mixed"):

        def seconds_of(path: str, case: str = case) -> list[float]:
            return [r["seconds"] for r in runs if r["case"] == case and r["path"] == path]

        reference = seconds_of("reference")
        for path in sorted({r["path"] for r in runs} - {"reference"}):
            ratios = [ref / other for ref, other in zip(reference, seconds_of(path), strict=True)]
            median_ref, median_path = (
                statistics.median(reference),
                statistics.median(seconds_of(path)),
            )
            summary[f"{case}/{path}"] = {
                "case": case,
                "path": path,
                "reference_s": median_ref,
                "path_s": median_path,
                "speedup": median_ref / median_path,
                "speedup_per_round": ratios,
                "target": TARGETS[case],
                "met": median_ref / median_path >= TARGETS[case],
                "min_cosine": min_cosine(vectors[(case, "reference")], vectors[(case, path)]),
            }
    report = {
        "measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpu": cpu_model(),
            "cores": cores(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "model": (
            "modernbert-embed-base's shape (22 layers x 768, local attention 128), "
            "random float32 weights (cast to bfloat16 on the bfloat16 path)"
        ),
        "mixed_lengths": mixed_lengths,
        "max_batch_tokens": args.max_batch_tokens,
        "runs": runs,
        "summary": summary,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    document = args.markdown.read_text() if args.markdown.exists() else ""
    args.markdown.write_text(replace_section(document, TITLE, markdown(report)))


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lengths = report["mixed_lengths"]
    runs = report["runs"]
    loads = [r["load_before"] for r in runs] + [r["load_after"] for r in runs]
    rows = []
    for s in report["summary"].values():
        case = s["case"]
        tokens = next(r["tokens"] for r in runs if r["case"] == case)
        names = {"long": f"one input of {tokens:,} tokens", "mixed": f"mixed, {len(lengths)} texts"}
        per_round = ", ".join(f"{x:.2f}" for x in s["speedup_per_round"])
        rows.append(
            f"| {names[case]} | {s['path']} | {tokens:,} | {s['reference_s']:.2f} | "
            f"{s['path_s']:.2f} | {tokens / s['reference_s']:,.0f} | {tokens / s['path_s']:,.0f} | "
            f"**{s['speedup']:.2f}x** ({per_round}) | >= {s['target']}x: "
            f"{'met' if s['met'] else 'missed'} | {s['min_cosine']:.6f} |"
        )
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"Measured {report['measured']} by `bench/modernbert_long.py`: {machine['cpu']}, "
            f"{machine['cores']} cores, torch {machine['torch']}, transformers "
            f"{machine['transformers']}, {machine['torch_threads']} torch threads. Model: "
            f"{report['model']}. Every path runs the same weights through the server's Batcher "
            f"(max_batch_tokens={report['max_batch_tokens']}); reference is transformers' sdpa "
            "forward in float32 (`--modernbert-path reference`), fast the packed pass "
            "(`--modernbert-path auto`) in float32, fast bfloat16 the packed pass in bfloat16 "
            "(`--dtype auto` on CPUs with AMX). "
            f"{len({r['round'] for r in runs})} rounds, each running every path (rotating "
            "which goes first); times are medians.",
            "",
            f"Mixed corpus: {len(lengths)} texts, seeded log-uniform lengths from 5 to 2,000 "
            f"tokens (min {min(lengths)}, median {int(statistics.median(lengths))}, max "
            f"{max(lengths)}, {sum(lengths):,} tokens).",
            "",
            "| input | path | tokens | reference s | path s | reference tokens/s | path tokens/s "
            "| speedup (per round) | target | min cosine to reference |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
            *rows,
            "",
            "The machine is shared and was not quiet: the 1-minute load average (on "
            f"{machine['cores']} cores) ranged from {min(loads):.1f} to {max(loads):.1f} "
            "during the runs, so absolute times are inflated and noisy; the ratios compare "
            "runs taken back to back under the same load. Min cosine: the lowest cosine "
            "between the path's and the reference's pooled vectors over all inputs.",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
