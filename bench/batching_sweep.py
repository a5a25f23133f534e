"""Compare server batching settings on the throughput benchmark's workloads, interleaved.

Starts one server process per configuration (idle servers cost no CPU), then
for each round and each configuration, in a shuffled order, runs workload (b)
(one client, ``EmbedClient.embed`` defaults) and workload (c) (many clients,
one text per request), and once per round the in-process sentence-transformers
reference (a). Interleaving all configurations within every round makes their
comparison robust to the slow drifts of a shared machine's load; medians are
reported, with the best round (noise only ever adds time) and the CPU that
other processes used meanwhile. With ``--out`` the table goes to the section
"## Embedding throughput (CPU): batching settings" of that Markdown file.

    .venv/bin/python bench/batching_sweep.py \
        --config default \
        --config pad15:max_padding_share=0.15 \
        --config tok4k:max_batch_tokens=4096,max_padding_share=0.15 \
        --config threads1:torch_threads=1 \
        [--texts 1000] [--texts-c 500] [--rounds 3] \
        [--json bench/results/batching_sweep.json] [--out docs/benchmarks.md]

A configuration is ``NAME[:SETTING=VALUE,...]``; ``torch_threads`` is applied
by the bench's server process with ``torch.set_num_threads`` (the server's own
``torch_threads`` setting is not wired to torch yet).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedding_throughput import (
    Runner,
    ServerProcess,
    log,
    machine_info,
    make_corpus,
    replace_section,
    resolve_model,
    server_delta,
    system_busy_seconds,
)


def parse_config(text: str) -> tuple[str, list[str], int]:
    name, _, rest = text.partition(":")
    settings = [item.strip() for item in rest.split(",") if item.strip()]
    threads = 0
    kept = []
    for item in settings:
        key, _, value = item.partition("=")
        if key.strip() == "torch_threads":
            threads = int(value)
        else:
            kept.append(item)
    return name, kept, threads


def measure(server: ServerProcess, work: Any) -> dict[str, Any]:
    before = server.snapshot()
    bench_before, busy_before = sum(os.times()[:2]), system_busy_seconds()
    elapsed = work()
    bench_cpu = sum(os.times()[:2]) - bench_before
    busy = system_busy_seconds() - busy_before
    delta: dict[str, Any] = server_delta(before, server.snapshot())
    delta["seconds"] = elapsed
    other = max(0.0, busy - bench_cpu - delta["process_cpu_seconds"])
    delta["other_cpu_cores"] = round(other / elapsed, 3)
    return delta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--config", action="append", default=[], metavar="NAME[:K=V,...]")
    parser.add_argument("--texts", type=int, default=1000, help="texts for (a) and (b)")
    parser.add_argument("--texts-c", type=int, default=500, help="texts for (c)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--workloads", default="bc", help="any of 'b' and 'c'")
    parser.add_argument("--json", default="")
    parser.add_argument("--out", default="", help="Markdown file to update ('' to skip)")
    args = parser.parse_args(argv)
    configs = [parse_config(c) for c in (args.config or ["default"])]
    model_path = resolve_model(args.model)

    corpus = make_corpus(2000, args.seed)  # the benchmark's corpus; subsets evenly spaced
    texts = corpus[:: max(1, len(corpus) // args.texts)][: args.texts]
    texts_c = corpus[:: max(1, len(corpus) // args.texts_c)][: args.texts_c]

    servers: dict[str, ServerProcess] = {}
    for name, settings, threads in configs:
        servers[name] = ServerProcess(
            model_path, args.device, [*settings, f"dtype={args.dtype}"], threads
        )
    runners: dict[str, Runner] = {}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"a": [], "b": [], "c": []} for name, _, _ in configs
    }
    reference: list[dict[str, Any]] = []
    try:
        shared_st = None
        loop = asyncio.new_event_loop()  # one loop for every runner's channels
        for name, _, _ in configs:
            runner_args = argparse.Namespace(
                device=args.device, dtype=args.dtype, clients=args.clients
            )
            runners[name] = Runner(runner_args, model_path, servers[name], st=shared_st, loop=loop)
            shared_st = runners[name].st
            runners[name].run_b(texts[:200])  # warm-up
            runners[name].run_c(texts_c[:128])
        any_runner = next(iter(runners.values()))
        any_runner.run_a(texts[:200])
        rng = random.Random(args.seed)
        for round_index in range(args.rounds):
            started = time.perf_counter()
            busy_before = system_busy_seconds()
            bench_before = sum(os.times()[:2])
            elapsed, _ = any_runner.run_a(texts)
            other = system_busy_seconds() - busy_before - sum(os.times()[:2]) + bench_before
            reference.append({"seconds": elapsed, "other_cpu_cores": round(other / elapsed, 3)})
            order = [name for name, _, _ in configs]
            rng.shuffle(order)
            for name in order:
                runner = runners[name]
                if "b" in args.workloads:
                    results[name]["b"].append(
                        measure(servers[name], lambda r=runner: r.run_b(texts)[0])
                    )
                if "c" in args.workloads:
                    results[name]["c"].append(
                        measure(servers[name], lambda r=runner: r.run_c(texts_c)[0])
                    )
            log(f"round {round_index + 1} done in {time.perf_counter() - started:.0f} s")
            if args.json:  # keep what was measured so far, should the run be cut short
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(
                    json.dumps({"partial": True, "reference": reference, "results": results})
                    + "\n",
                    encoding="utf-8",
                )
    finally:
        for runner in runners.values():
            runner.close()
        for server in servers.values():
            server.stop()

    st = any_runner.st
    max_len = int(st.max_seq_length)
    tokens = {
        key: sum(min(len(ids), max_len) for ids in st.tokenizer(batch)["input_ids"])
        for key, batch in (("b", texts), ("c", texts_c))
    }
    a_seconds = [r["seconds"] for r in reference]
    a_rate = tokens["b"] / statistics.median(a_seconds)
    a_best = tokens["b"] / min(a_seconds)
    print(
        f"(a) {len(texts)} texts: {a_rate:.0f} tokens/s (best {a_best:.0f}); seconds "
        f"{[round(x, 1) for x in a_seconds]}, other load "
        f"{[r['other_cpu_cores'] for r in reference]}"
    )
    print(
        f"{'config':<14} {'run':<3} {'tok/s':>7} {'vs (a)':>7} {'best':>7} {'vs (a)':>7} "
        f"{'pad':>6} {'batch':>6} {'other':>6}  seconds per round"
    )
    summary: dict[str, Any] = {}
    for name, _, _ in configs:
        for key in args.workloads:
            runs = results[name][key]
            seconds = [r["seconds"] for r in runs]
            rate = tokens[key] / statistics.median(seconds)
            best = tokens[key] / min(seconds)
            real = sum(r["real_tokens"] for r in runs)
            padded = sum(r["padded_tokens"] for r in runs)
            batches = sum(r["batches"] for r in runs)
            entry = {
                "tokens_per_s": rate,
                "ratio_vs_a": rate / a_rate,
                "best_tokens_per_s": best,
                "best_ratio_vs_a": best / a_best,
                "padding_share": (padded - real) / padded if padded else 0.0,
                "mean_batch_size": sum(r["sequences"] for r in runs) / max(1, batches),
                "other_cpu_cores": statistics.median(r["other_cpu_cores"] for r in runs),
                "seconds": seconds,
                "runs": runs,
            }
            summary[f"{name}/{key}"] = entry
            print(
                f"{name:<14} {key:<3} {rate:>7.0f} {entry['ratio_vs_a']:>6.2f}x {best:>7.0f} "
                f"{entry['best_ratio_vs_a']:>6.2f}x {entry['padding_share']:>6.1%} "
                f"{entry['mean_batch_size']:>6.1f} {entry['other_cpu_cores']:>6.2f}  "
                f"{[round(x, 1) for x in seconds]}"
            )
    report = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(args.device),
        "model": args.model,
        "device": args.device,
        "dtype": args.dtype,
        "rounds": args.rounds,
        "clients": args.clients,
        "configs": [{"name": n, "settings": s, "torch_threads": t} for n, s, t in configs],
        "texts": len(texts),
        "texts_c": len(texts_c),
        "tokens": tokens,
        "reference": {"tokens_per_s": a_rate, "best_tokens_per_s": a_best, "runs": reference},
        "results": summary,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.out:
        title = "Embedding throughput (CPU): batching settings"
        if args.device.startswith("cuda"):
            title = "Embedding throughput (CUDA): batching settings"
        out = Path(args.out)
        existing = out.read_text(encoding="utf-8") if out.exists() else ""
        out.write_text(
            replace_section(existing, title, sweep_section(title, report, args)), encoding="utf-8"
        )
        log(f"updated {out}")
    return 0


def sweep_section(title: str, report: dict[str, Any], args: argparse.Namespace) -> str:
    machine = report["machine"]
    lines = [
        f"## {title}",
        "",
        f"Measured {report['date']} by `bench/batching_sweep.py`: {machine['cpu']}, "
        f"{machine['cores']} cores, torch {machine['torch']}, model `{report['model']}` on "
        f"{report['device']} ({report['dtype']}). Every configuration runs in its own server "
        f"process; each of {report['rounds']} rounds runs (a) once, then (b) and (c) for every "
        f"configuration in a shuffled order. (a) and (b) embed {report['texts']} texts, (c) "
        f"{report['texts_c']} texts with {report['clients']} clients, all from the throughput "
        f"benchmark's corpus. Ratios are tokens/s against (a) in the same rounds: median, and "
        f"best round (noise on a shared machine only ever adds time).",
        "",
        "| config | settings | (b) / (a) | (b) best | (b) padding | (b) batch | (c) / (a) "
        "| (c) best | (c) padding | (c) batch | other load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for config in report["configs"]:
        name = config["name"]
        settings = [*config["settings"]]
        if config["torch_threads"]:
            settings.append(f"torch_threads={config['torch_threads']}")
        cells = [name, ", ".join(settings) or "defaults"]
        others = []
        for key in ("b", "c"):
            entry = report["results"].get(f"{name}/{key}")
            if entry is None:
                cells += ["-"] * 4
                continue
            cells += [
                f"{entry['ratio_vs_a']:.2f}x",
                f"{entry['best_ratio_vs_a']:.2f}x",
                f"{entry['padding_share']:.1%}",
                f"{entry['mean_batch_size']:.1f}",
            ]
            others.append(f"{entry['other_cpu_cores']:.2f}")
        cells.append(" / ".join(others))
        lines.append("| " + " | ".join(cells) + " |")
    reference = report["reference"]
    lines += [
        "",
        f"(a) ran at {reference['tokens_per_s']:,.0f} tokens/s (best "
        f"{reference['best_tokens_per_s']:,.0f}). Other load: median cores used by other "
        "processes on the machine during the (b) / (c) runs.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
