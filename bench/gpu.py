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
COMPILED = "embedserve fast+compile"  # with --compile: the packed pass's steps compiled
# Dense bf16 peaks (tensor cores, no sparsity), by a substring of the device name.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
FULL = {"lengths": [128, 512, 2048, 8192], "mixed": (16, 8192), "tokens": 65536, "rounds": 3}
TINY = {"lengths": [32, 128], "mixed": (8, 256), "tokens": 512, "rounds": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a 3-layer model on CPU, small inputs")
    parser.add_argument("--device", help="default: cuda (cpu with --tiny)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument(
        "--compile",
        action="store_true",
        help=f"add '{COMPILED}': the packed pass with torch_compile (compiles at warm-up)",
    )
    parser.add_argument("--peak-tflops", type=float, help="the device's peak; default by name")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=420.0,
        help="seconds after which no further round starts (default 420: under 8 minutes)",
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        help="padded tokens per batch for transformers and embedserve (default: the server's "
        "budget on a GPU, 2,048 on a CPU); larger batches spread a pass's launches over "
        "more tokens",
    )
    parser.add_argument("--tokenizer", type=Path, help=TOKENIZER_HELP)
    parser.add_argument(
        "--profile",
        type=Path,
        help="also profile one pass of 32 x 512 tokens per embedserve path into this file",
    )
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


def words_text(words: list[str], start: int, count: int) -> str:
    """``count`` one-token words from ``words``, from ``start`` on, wrapping round."""
    return " ".join(words[(start + i) % len(words)] for i in range(count))


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
    """The ways of turning token sequences into vectors (``PATHS``), on one set of weights."""

    def __init__(
        self, folder: Path, device: str, dtype: str, batch_tokens: int, compile: bool
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        from embedserve.server.batch_cost import calibrate_model

        self.torch = torch
        self.device = device
        self.batch_tokens = batch_tokens
        self.encoders = load_paths(str(folder), device=device, dtype=dtype)
        self.hf = self.encoders["reference"]._model
        if compile:
            self.encoders[COMPILED.split()[-1]] = compiled_path(self.encoders["reference"])
        self.config = self.hf.config
        self.st = SentenceTransformer(
            str(folder), device=device, model_kwargs={"dtype": self.encoders["reference"].dtype}
        )
        self.words = one_token_words(self.st.tokenizer)
        # The pass cost each embedserve path calibrates at warm-up, as the server does.
        self.costs = {name: calibrate_model(encoder) for name, encoder in self.encoders.items()}

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def run(self, path: str, lengths: list[int], seed: int) -> tuple[float, Any]:
        """Seconds and what came out (pooled vectors for the embedserve paths).

        Inputs are made before the clock starts: token ids for transformers and
        embedserve, texts for sentence-transformers (whose tokenising is timed, as
        it is part of its ``encode``).
        """
        windows = token_windows(lengths, seed)
        texts = [words_text(self.words, seed + i, n - 2) for i, n in enumerate(lengths)]
        self.sync()
        started = time.perf_counter()
        out: Any = None
        if path == "transformers":
            self._transformers(windows)
        elif path == "sentence-transformers":
            self.st.encode(texts, batch_size=32)
        else:
            name = path.split()[-1]
            out, _, _ = run_batcher(
                self.encoders[name], windows, self.batch_tokens, self.costs[name]
            )
        self.sync()
        return time.perf_counter() - started, out

    def _transformers(self, windows: list[Any]) -> None:
        torch = self.torch
        windows = sorted(windows, key=lambda w: len(w.ids))
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


# A small ModernBERT with sharp attention (wide initial weights) and a 16-token window:
# a window one token off, or a token that sees another sequence, moves its outputs.
SHARP_CONFIG = {
    "vocab_size": 1000,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "max_position_embeddings": 8192,
    "local_attention": 16,
    "global_attn_every_n_layers": 3,
    "initializer_range": 0.2,
    "pad_token_id": 0,
    "attn_implementation": "sdpa",
}
SHARP_LENGTHS = [5, 300, 17, 16, 90, 1, 33, 2000]


def window_check(device: str, dtype_name: str) -> dict[str, float]:
    """Lowest per-token cosines against the sharp model's float32 forward pass.

    ``packed``: the fast path in ``dtype_name`` (on a GPU in bfloat16: flash varlen
    attention); ``transformers``: transformers' own pass in that dtype, the rounding
    any path in it shows; ``window one token wider``: the packed path with its band
    widened by one, which must fall clearly below the other two.
    """
    import copy

    import torch
    import torch.nn.functional as F
    from transformers import ModernBertConfig, ModernBertModel

    from embedserve.server.modernbert_packed import PackedModernBert

    torch.manual_seed(0)
    exact = ModernBertModel(ModernBertConfig(**SHARP_CONFIG)).eval().to(device)
    model = copy.deepcopy(exact).to(getattr(torch, dtype_name))
    generator = torch.Generator().manual_seed(0)
    ids = torch.zeros(len(SHARP_LENGTHS), max(SHARP_LENGTHS), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(SHARP_LENGTHS):
        ids[row, :length] = torch.randint(3, 1000, (length,), generator=generator)
        mask[row, :length] = 1
    ids, mask = ids.to(device), mask.to(device)
    keep = mask.bool()
    wider = PackedModernBert(model)
    wider.reach += 1
    runs = {
        "packed": PackedModernBert(model),
        "transformers": model,
        "window one token wider": wider,
    }
    with torch.inference_mode():
        truth = exact(input_ids=ids, attention_mask=mask).last_hidden_state[keep]
        return {
            name: float(
                F.cosine_similarity(
                    run(input_ids=ids, attention_mask=mask).last_hidden_state[keep].float(),
                    truth,
                    dim=-1,
                ).min()
            )
            for name, run in runs.items()
        }


def compiled_path(reference: Any) -> Any:
    """The reference encoder's model as a packed pass with torch_compile, warmed up."""
    import copy

    import torch

    from embedserve.server.compiled import compile_encoder
    from embedserve.server.modernbert_packed import PackedModernBert

    compiled = copy.copy(reference)
    compiled._model = compile_encoder(PackedModernBert(reference._model), "torch")
    started = time.perf_counter()
    compiled.warm_up_compiled([torch.get_num_threads()])
    print(f"compiled in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    # The server runs a pass uncompiled rather than compile again; here a compilation
    # runs, is timed, and is counted in the report.
    torch.compiler.set_stance("default")
    return compiled


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


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
    from embedserve.server import varlen
    from embedserve.server.batcher import GPU_BATCH_TOKENS

    info = machine(args.device)
    peak = peak_flops(args, info)
    with tempfile.TemporaryDirectory(prefix="modernbert-random-") as tmp:
        dtype = "float32" if args.tiny else "bfloat16"
        folder = build(Path(tmp), tiny=args.tiny, dtype=dtype, tokenizer_path=args.tokenizer)
        batch_tokens = args.batch_tokens or (2048 if args.device == "cpu" else GPU_BATCH_TOKENS)
        runners = Runners(folder, args.device, dtype, batch_tokens, args.compile)
        paths = PATHS + ((COMPILED,) if args.compile else ())
        cases = make_cases(shape, seed=7)
        window = window_check(args.device, dtype)
        print(f"window check (lowest per-token cosine to float32): {window}", file=sys.stderr)
        for path in paths:  # warm-up: kernels, allocator, lazy initialisation
            runners.run(path, [64, 32], seed=0)
        graphs_after_warm_up = graphs_compiled()
        seconds: dict[tuple[str, str], list[float]] = {}
        cosines: dict[tuple[str, str], float] = {}
        for round_index in range(rounds):
            if round_index and time.monotonic() - started > args.time_budget:
                print(f"time budget reached after {round_index} rounds", file=sys.stderr)
                break
            for case, lengths in cases.items():
                turn = round_index % len(paths)
                order = paths[turn:] + paths[:turn]
                outputs: dict[str, Any] = {}
                for path in order:
                    took, outputs[path] = runners.run(path, lengths, seed=round_index)
                    seconds.setdefault((case, path), []).append(took)
                    print(f"round {round_index} {case} {path}: {took:.3f} s", file=sys.stderr)
                # embedserve's other paths (those after its reference), each against it
                for path in paths[paths.index("embedserve reference") + 1 :]:
                    cosines[case, path] = min(
                        cosines.get((case, path), 1.0),
                        min_cosine(outputs["embedserve reference"], outputs[path]),
                    )
            # Written after every round, so a run cut short still leaves its complete rounds.
            report = summarise(runners.config, cases, paths, seconds, cosines, peak)
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
                rounds=round_index + 1,
                load_average=load_average(),
                flash_varlen=varlen.describe() if args.device.startswith("cuda") else "no GPU",
                window_check=window,
                graphs_compiled_while_measuring=graphs_compiled() - graphs_after_warm_up,
                wall_s=time.monotonic() - started,
            )
            section = write_report(report, args.json, args.markdown)
        if args.profile is not None:
            args.profile.write_text(profile_passes(runners))
    print(section)
    return 0


def profile_passes(runners: Runners) -> str:
    """torch.profiler's table of one 32 x 512-token pass through each embedserve path."""
    from torch.profiler import ProfilerActivity, profile

    on_gpu = runners.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    windows = token_windows([512] * 32, seed=99)
    dtype = next(runners.hf.parameters()).dtype
    parts = []
    for name, encoder in runners.encoders.items():
        encoder.compute(windows)
        runners.sync()
        with profile(activities=activities) as prof:
            encoder.compute(windows)
            runners.sync()
        table = prof.key_averages().table(
            sort_by="self_cuda_time_total" if on_gpu else "self_cpu_time_total", row_limit=30
        )
        parts.append(f"# embedserve {name}: one pass of 32 x 512 tokens, {dtype}\n{table}")
    return "\n\n".join(parts)


def write_report(report: dict[str, Any], json_path: Path, markdown_path: Path | None) -> str:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    section = markdown(report)
    if markdown_path is not None:
        document = markdown_path.read_text() if markdown_path.exists() else ""
        markdown_path.write_text(replace_section(document, TITLE, section))
    return section


def summarise(
    config: Any,
    cases: dict[str, list[int]],
    paths_run: tuple[str, ...],
    seconds: dict[tuple[str, str], list[float]],
    cosines: dict[tuple[str, str], float],
    peak: float | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"cases": {}}
    for case, lengths in cases.items():
        tokens = sum(lengths)
        flops = sum(useful_flops(n, config) for n in lengths)
        paths = {}
        for path in paths_run:
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
            "fast_vs_reference_min_cosine": cosines[case, "embedserve fast"],
        }
        if COMPILED in paths_run:
            out["cases"][case]["compiled_vs_reference_min_cosine"] = cosines[case, COMPILED]
    return out


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    device = info.get("gpu", f"{info['device']} ({info['cpu']})")
    paths = list(next(iter(report["cases"].values()))["paths"])
    header = "| input | texts | tokens | " + " | ".join(paths) + " | fast / reference | cosine |"
    rows = [header, "|---|---:|---:|" + "---:|" * len(paths) + "---:|---:|"]
    for case, c in report["cases"].items():
        cells = []
        for path in paths:
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
            + f" Flash varlen attention in the fast path: {report['flash_varlen']}."
            + f" Run took {report['wall_s']:.0f} s.",
            "",
            *rows,
            "",
            "fast / reference: embedserve's packed pass against transformers' forward pass in "
            "the same runner (time ratio); cosine: the lowest cosine between their vectors.",
            "",
            *compiled_notes(report),
            f"Window check (`window_check`: a 3-layer ModernBERT with sharp attention and a "
            f"16-token window, {len(SHARP_LENGTHS)} texts of 1 to {max(SHARP_LENGTHS):,} "
            f"tokens, in {report['model'].rsplit(' ', 2)[-2]}), lowest per-token cosine "
            "against its float32 forward pass: "
            + ", ".join(f"{name} {value:.5f}" for name, value in report["window_check"].items())
            + ".",
            "",
        ]
    )


def compiled_notes(report: dict[str, Any]) -> list[str]:
    """The compiled path's agreement with the reference, and whether it stayed compiled."""
    cosines = [c.get("compiled_vs_reference_min_cosine") for c in report["cases"].values()]
    if None in cosines:
        return []
    return [
        f"{COMPILED}: lowest cosine against the reference {min(cosines):.5f}; graphs compiled "
        f"after warm-up: {report['graphs_compiled_while_measuring']}.",
        "",
    ]


if __name__ == "__main__":
    sys.exit(main())
