"""Fine-tune the packaged MiniLM on the support-desk dataset and record before/after quality.

Runs the real command (``embedserve finetune``) in a child process on the CPU, samples the
machine's load while it trains, and writes a section of docs/benchmarks.md and a JSON file.

    .venv/bin/python bench/finetune_support.py [--epochs 3] [--batch-size 32] [--lr 1e-4]
        [--out docs/benchmarks.md] [--json bench/results/finetune_support.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedding_throughput import machine_info, portable, write_json, write_section

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "docs" / "fine-tuning"
TITLE = "Fine-tuning: support-desk questions (CPU)"
METRICS = ("recall@1", "recall@10", "mrr@10", "ndcg@10")


def sample_load(stop: threading.Event, samples: list[float], every_s: float = 5.0) -> None:
    while not stop.wait(every_s):
        samples.append(os.getloadavg()[0])


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = Path(args.keep) if args.keep else work / "support-minilm"
    command = [
        str(Path(sys.executable).with_name("embedserve")), "finetune", "--base", "minilm",
        "--train", str(DATA / "support-train.jsonl"),
        "--eval", str(DATA / "support-heldout.jsonl"), "--out", str(out),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--lr", str(args.lr), "--max-seq-length", str(args.max_seq_length),
        "--device", "cpu", "--seed", "0",
        *(["--mine-negatives"] if args.mine_negatives else []),
    ]  # fmt: skip
    samples: list[float] = [os.getloadavg()[0]]
    stop = threading.Event()
    sampler = threading.Thread(target=sample_load, args=(stop, samples), daemon=True)
    sampler.start()
    started = time.monotonic()
    subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall_s = time.monotonic() - started
    stop.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads((out / "finetune-report.json").read_text())
    return {
        "command": portable(" ".join(["embedserve", *command[1:]])),
        "wall_s": round(wall_s, 1),
        "train_s": report["train_seconds"],
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "cores_used": round((usage.ru_utime + usage.ru_stime) / wall_s, 2),
        "load_avg_1m_median": round(statistics.median(samples), 2),
        "load_avg_1m_max": round(max(samples), 2),
        "report": report,
    }


def markdown(result: dict[str, Any]) -> str:
    report = result["report"]
    before, after = report["before"], report["after"]
    machine = result["machine"]
    rows = [
        f"| {name} | {before[name]:.3f} | {after[name]:.3f} | "
        f"{(after[name] - before[name]) * 100:+.1f} pts |"
        for name in METRICS
    ]
    gain = (after["recall@1"] - before["recall@1"]) * 100
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"Measured {result['date']} by `bench/finetune_support.py` (one run).",
            "",
            f"- Machine: {machine['cpu']}, {machine['cores']} cores, no GPU; torch "
            f"{machine['torch']}, transformers {machine['transformers']}, "
            f"sentence-transformers {machine['sentence_transformers']}.",
            f"- The machine is shared: 1-minute load average median "
            f"{result['load_avg_1m_median']} (max {result['load_avg_1m_max']}) during the run, "
            f"of which the fine-tuning process got {result['cores_used']} cores "
            f"({result['cpu_s'] / 60:.1f} CPU-minutes in all: about "
            f"{result['cpu_s'] / machine['cores'] / 60:.1f} minutes of wall time on "
            f"{machine['cores']} otherwise idle cores).",
            f"- Data: `docs/fine-tuning/` ({report['train_pairs']} training pairs, "
            f"{report['heldout_pairs']} held-out questions paraphrased away from their "
            f"articles' words, corpus of {report['corpus']} articles); "
            f"{report['mined_negatives']} mined hard negatives.",
            f"- Command: `{result['command']}`",
            f"- Time: {result['wall_s'] / 60:.1f} min in all (target < 10 min), of which "
            f"training {result['train_s'] / 60:.1f} min "
            f"({report['steps']} steps); the rest is loading and the two evaluations.",
            "",
            "| held-out metric | packaged MiniLM | fine-tuned | change |",
            "| --- | ---: | ---: | ---: |",
            *rows,
            "",
            f"Target: held-out recall@1 +10 points or more - measured {gain:+.1f} points, "
            f"met: {'yes' if gain >= 10 else 'no'}; time under 10 minutes - met: "
            f"{'yes' if result['wall_s'] < 600 else 'no'} in wall time on this shared machine "
            f"(its CPU time alone would fit: {result['cpu_s'] / machine['cores'] / 60:.1f} min "
            f"on {machine['cores']} idle cores, an estimate, not a measurement).",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-seq-length", type=int, default=96)
    parser.add_argument("--mine-negatives", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--keep", help="write the fine-tuned model to this new folder and keep it")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "finetune_support.json"))
    parser.add_argument("--from-json", help="only rewrite the Markdown from an earlier result")
    args = parser.parse_args()
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        result.setdefault("cpu_s", round(result["cores_used"] * result["wall_s"], 1))
    else:
        work = Path(tempfile.mkdtemp(prefix="finetune-bench-"))
        try:
            result = run(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        result["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        result["machine"] = machine_info("cpu")
        result["report"] = json.loads(portable(json.dumps(result["report"])))
        write_json(args.json, result)
    if args.out:
        write_section(args.out, TITLE, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
