"""ModernBERT throughput on a GPU: transformers, sentence-transformers and embedserve's two paths.

modernbert-embed-large's shape with random bf16 weights, built locally (no
network). For inputs of 128, 512, 2,048 and 8,192 tokens and a mixed set
(log-uniform 16 to 8,192 tokens) it measures tokens/s and model FLOP
utilisation (MFU: the model's useful FLOPs per second over the device's
peak) of:

- ``transformers``: ``AutoModel`` forward on length-sorted padded batches;
- ``sentence-transformers``: ``SentenceTransformer.encode`` (batch 32, its own
  tokenising included; texts of one-token words, so lengths match);
- ``embedserve reference`` / ``embedserve fast``: the server's Batcher and
  model thread with transformers' forward pass and with the packed pass.

Useful FLOPs count the projections and MLP (2 x parameters per token) and
attention over the keys each token may see: the whole sequence in a global
layer, at most ``local_attention + 1`` tokens in a local one. Rounds
interleave the paths; medians are reported. Writes JSON and a Markdown table
(the "GPU: ModernBERT paths" section of docs/benchmarks.md by default).

    .venv/bin/python bench/gpu.py                  # one GPU, under 8 minutes
    .venv/bin/python bench/gpu.py --tiny --json out.json --markdown out.md   # CPU smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from embedding_throughput import cpu_model, replace_section  # noqa: E402
from make_random_modernbert import TOKENIZER_HELP, build  # noqa: E402
from modernbert_runs import (  # noqa: E402
    load_average,
    load_paths,
    log_uniform_lengths,
    min_cosine,
    run_batcher,
    token_windows,
)

TITLE = "GPU: ModernBERT paths"
PATHS = ("transformers", "sentence-transformers", "embedserve reference", "embedserve fast")
# Dense bf16 peaks (tensor cores, no sparsity), by a substring of the device name.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
FULL = {"lengths": [128, 512, 2048, 8192], "mixed": (16, 8192), "tokens": 65536, "rounds": 3}
TINY = {"lengths": [32, 128], "mixed": (8, 256), "tokens": 512, "rounds": 1}
TIME_BUDGET_S = 420.0  # stop starting rounds past this, so a run stays under 8 minutes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a 3-layer model on CPU, small inputs")
    parser.add_argument("--device", help="default: cuda (cpu with --tiny)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--peak-tflops", type=float, help="the device's peak; default by name")
    parser.add_argument("--tokenizer", type=Path, help=TOKENIZER_HELP)
    parser.add_argument("--json", type=Path, default=BENCH_DIR / "results" / "gpu.json")
    parser.add_argument(
        "--markdown",
        type=Path,
        help="file whose section is written (default: docs/benchmarks.md, not with --tiny)",
    )
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    if args.markdown is None and not args.tiny:
        args.markdown = BENCH_DIR.parent / "docs" / "benchmarks.md"
    return args


def useful_flops(length: int, config: Any) -> float:
    """Forward FLOPs one sequence needs: projections, MLP and its attention band."""
    hidden, inter = config.hidden_size, config.intermediate_size
    per_token = 2 * (hidden * 3 * hidden + hidden * hidden + hidden * 2 * inter + inter * hidden)
    reach = config.local_attention // 2
    local_keys = sum(min(length - 1, i + reach) - max(0, i - reach) + 1 for i in range(length))
    flops = 0.0
    for kind in config.layer_types:
        keys = length * length if kind == "full_attention" else local_keys
        flops += per_token * length + 4 * keys * hidden  # QK^T and AV, 2 FLOPs per MAC
    return flops


def one_token_words(tokenizer: Any) -> list[str]:
    """Vocabulary entries that tokenise to exactly themselves: texts of n words are n+2 tokens."""
    words = [w for w in tokenizer.get_vocab() if w.isalpha() and w.islower() and len(w) > 2]
    return sorted(words)[:2000]


def make_cases(shape: dict[str, Any], seed: int) -> dict[str, list[int]]:
    cases = {str(n): [n] * max(1, shape["tokens"] // n) for n in shape["lengths"]}
    low, high = shape["mixed"]
    mixed: list[int] = []
    batch_seed = seed
    while sum(mixed) < shape["tokens"]:
        mixed += log_uniform_lengths(8, low, high, batch_seed)
        batch_seed += 1
    cases["mixed"] = mixed
    return cases


class Runners:
    """The four ways of turning token sequences into vectors, on one set of weights."""

    def __init__(self, folder: Path, device: str, dtype: str, batch_tokens: int) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.torch = torch
        self.device = device
        self.batch_tokens = batch_tokens
        self.encoders = load_paths(str(folder), device=device, dtype=dtype)
        self.hf = self.encoders["reference"]._model
        self.config = self.hf.config
        self.st = SentenceTransformer(
            str(folder), device=device, model_kwargs={"dtype": self.encoders["reference"].dtype}
        )
        self.words = one_token_words(self.st.tokenizer)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def run(self, path: str, lengths: list[int], seed: int) -> tuple[float, Any]:
        """Seconds and what came out (pooled vectors for the embedserve paths)."""
        self.sync()
        started = time.perf_counter()
        out: Any = None
        if path == "transformers":
            self._transformers(lengths, seed)
        elif path == "sentence-transformers":
            texts = [
                " ".join(self.words[(seed + i) % 997 :][: n - 2]) for i, n in enumerate(lengths)
            ]
            self.st.encode(texts, batch_size=32)
        else:
            name = path.split()[-1]
            windows = token_windows(lengths, seed)
            out, _, _ = run_batcher(self.encoders[name], windows, self.batch_tokens)
        self.sync()
        return time.perf_counter() - started, out

    def _transformers(self, lengths: list[int], seed: int) -> None:
        torch = self.torch
        windows = sorted(token_windows(lengths, seed), key=lambda w: len(w.ids))
        batch: list[Any] = []
        for window in [*windows, None]:
            if window is not None and (len(batch) + 1) * len(window.ids) <= self.batch_tokens:
                batch.append(window)
                continue
            if batch:
                longest = max(len(w.ids) for w in batch)
                ids = torch.zeros(len(batch), longest, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, w in enumerate(batch):
                    ids[row, : len(w.ids)] = torch.tensor(w.ids)
                    mask[row, : len(w.ids)] = 1
                with torch.inference_mode():
                    self.hf(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
            batch = [window] if window is not None else []


def machine(device: str) -> dict[str, Any]:
    import sentence_transformers
    import torch
    import transformers

    info: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "cpu": cpu_model(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info


def peak_flops(args: argparse.Namespace, info: dict[str, Any]) -> float | None:
    if args.peak_tflops:
        return float(args.peak_tflops) * 1e12
    name = info.get("gpu", "")
    return next((tf * 1e12 for key, tf in PEAK_TFLOPS.items() if key in name), None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    shape = TINY if args.tiny else FULL
    rounds = args.rounds or shape["rounds"]
    info = machine(args.device)
    peak = peak_flops(args, info)
    with tempfile.TemporaryDirectory(prefix="modernbert-random-") as tmp:
        dtype = "float32" if args.tiny else "bfloat16"
        folder = build(Path(tmp), tiny=args.tiny, dtype=dtype, tokenizer_path=args.tokenizer)
        batch_tokens = 2048 if args.device == "cpu" else 16384
        runners = Runners(folder, args.device, dtype, batch_tokens)
        cases = make_cases(shape, seed=7)
        for path in PATHS:  # warm-up: kernels, allocator, lazy initialisation
            runners.run(path, [64, 32], seed=0)
        seconds: dict[tuple[str, str], list[float]] = {}
        cosines: dict[str, float] = {}
        for round_index in range(rounds):
            if round_index and time.monotonic() - started > TIME_BUDGET_S:
                print(f"time budget reached after {round_index} rounds", file=sys.stderr)
                break
            for case, lengths in cases.items():
                order = PATHS[round_index % 4 :] + PATHS[: round_index % 4]
                outputs: dict[str, Any] = {}
                for path in order:
                    took, outputs[path] = runners.run(path, lengths, seed=round_index)
                    seconds.setdefault((case, path), []).append(took)
                    print(f"round {round_index} {case} {path}: {took:.3f} s", file=sys.stderr)
                cosines[case] = min(
                    cosines.get(case, 1.0),
                    min_cosine(outputs["embedserve reference"], outputs["embedserve fast"]),
                )
        report = summarise(runners.config, cases, seconds, cosines, peak)
    report.update(
        measured=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=info,
        model=(
            f"modernbert-embed-{'tiny' if args.tiny else 'large'} shape: "
            f"{runners.config.num_hidden_layers} layers x {runners.config.hidden_size}, "
            f"local attention {runners.config.local_attention}, random {dtype} weights"
        ),
        peak_tflops=peak / 1e12 if peak else None,
        max_batch_tokens=batch_tokens,
        rounds=len(next(iter(seconds.values()))),
        load_average=load_average(),
        wall_s=time.monotonic() - started,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    section = markdown(report)
    if args.markdown is not None:
        document = args.markdown.read_text() if args.markdown.exists() else ""
        args.markdown.write_text(replace_section(document, TITLE, section))
    print(section)
    return 0


def summarise(
    config: Any,
    cases: dict[str, list[int]],
    seconds: dict[tuple[str, str], list[float]],
    cosines: dict[str, float],
    peak: float | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"cases": {}}
    for case, lengths in cases.items():
        tokens = sum(lengths)
        flops = sum(useful_flops(n, config) for n in lengths)
        paths = {}
        for path in PATHS:
            median = statistics.median(seconds[(case, path)])
            paths[path] = {
                "seconds": seconds[(case, path)],
                "median_s": median,
                "tokens_per_s": tokens / median,
                "mfu": flops / median / peak if peak else None,
            }
        out["cases"][case] = {
            "texts": len(lengths),
            "tokens": tokens,
            "min_length": min(lengths),
            "max_length": max(lengths),
            "useful_flops": flops,
            "paths": paths,
            "fast_over_reference": paths["embedserve reference"]["median_s"]
            / paths["embedserve fast"]["median_s"],
            "fast_vs_reference_min_cosine": cosines[case],
        }
    return out


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    device = info.get("gpu", f"{info['device']} ({info['cpu']})")
    header = "| input | texts | tokens | " + " | ".join(PATHS) + " | fast / reference | cosine |"
    rows = [header, "|---|---:|---:|" + "---:|" * len(PATHS) + "---:|---:|"]
    for case, c in report["cases"].items():
        cells = []
        for path in PATHS:
            p = c["paths"][path]
            mfu = f" ({100 * p['mfu']:.1f}%)" if p["mfu"] is not None else ""
            cells.append(f"{p['tokens_per_s']:,.0f}{mfu}")
        label = (
            f"{case} tokens" if case != "mixed" else (f"mixed {c['min_length']}-{c['max_length']}")
        )
        rows.append(
            f"| {label} | {c['texts']} | {c['tokens']:,} | "
            + " | ".join(cells)
            + f" | {c['fast_over_reference']:.2f}x | {c['fast_vs_reference_min_cosine']:.5f} |"
        )
    peak = report["peak_tflops"]
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"Measured {report['measured']} by `bench/gpu.py` on {device}; torch "
            f"{info['torch']}, transformers {info['transformers']}, sentence-transformers "
            f"{info['sentence_transformers']}. Model: {report['model']}. "
            f"{report['rounds']} interleaved rounds, medians; embedserve batches up to "
            f"{report['max_batch_tokens']:,} padded tokens. Cells: tokens/s"
            + (f" (MFU against a {peak:.0f} TFLOP/s peak)." if peak else "; no peak known, no MFU.")
            + f" Run took {report['wall_s']:.0f} s.",
            "",
            *rows,
            "",
            "fast / reference: embedserve's packed pass against transformers' forward pass in "
            "the same runner (time ratio); cosine: the lowest cosine between their vectors.",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
