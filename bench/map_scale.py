"""Maps at scale: `embedserve map` of 50,000 stored vectors, target under 5 minutes per
method on a 2-core CPU.

N unit vectors of 384 dimensions (the served model's width) around G random centres (a
centre plus noise, so each group is a cloud that a map should keep together) go into a
collection of the embedded store through gRPC Upsert, with the group in the payload. Then
the real command line, `embedserve map COLLECTION --method M --color-by group` writing the
PNG, the HTML page and the coordinates, runs once per method as a fresh process (so the
times include imports and numba's compilation for UMAP) with its default --max-points.
Reported per method: wall time, points mapped, and the separation of the groups on the map
(mean distance between points of different groups over mean distance within a group, on
a seeded sample of 2,000 mapped points).

    .venv/bin/python bench/map_scale.py [--vectors 50000] [--groups 12]
        [--methods umap,tsne,pca] [--out docs/benchmarks.md] [--json bench/results/map_scale.json]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from embedding_throughput import cpu_model, write_json, write_section
from vector_store import Server

from embedserve.client import EmbedClient

REPO = Path(__file__).resolve().parents[1]
TITLE = "Maps at scale (CPU)"
DIM = 384
TARGET_S = 300
RATIO_SAMPLE = 2000


def log(message: str) -> None:
    print(f"[map-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def clustered_vectors(count: int, groups: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``groups`` random centres; noise as large as the centre, so
    groups overlap in cosine terms the way topics of real embeddings do."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((groups, DIM)).astype(np.float32)
    labels = rng.integers(0, groups, count)
    x = centres[labels] + rng.standard_normal((count, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels


def load(client: EmbedClient, name: str, vectors: np.ndarray, labels: np.ndarray) -> float:
    started = time.perf_counter()
    client.create_collection(name, dimensions=DIM)
    for start in range(0, len(vectors), 2000):
        client.upsert(
            name,
            [
                {"id": f"v{i}", "vector": vectors[i].tolist(), "payload": {"group": f"g{g}"}}
                for i, g in enumerate(labels[start : start + 2000].tolist(), start)
            ],
        )
    return time.perf_counter() - started


def separation(coords_csv: Path) -> float:
    """Mean different-group distance over mean same-group distance, on a seeded sample."""
    with open(coords_csv, encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    rng = np.random.default_rng(0)
    pick = rng.choice(len(rows), min(RATIO_SAMPLE, len(rows)), replace=False)
    xy = np.array([[float(rows[i]["x"]), float(rows[i]["y"])] for i in pick])
    group = np.array([rows[i]["group"] for i in pick])
    distances = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2)
    same = group[:, None] == group[None, :]
    off_diagonal = ~np.eye(len(pick), dtype=bool)
    return float(distances[~same].mean() / distances[same & off_diagonal].mean())


def run_map(target: str, collection: str, method: str, folder: Path) -> dict[str, Any]:
    out = folder / method
    command = [
        str(REPO / ".venv/bin/embedserve"),
        *("map", collection, "--target", target, "--method", method, "--color-by", "group"),
        *("-o", f"{out}.png", "--html", f"{out}.html", "--coords", f"{out}.csv"),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{done.stderr}")
    with open(f"{out}.csv", encoding="utf-8") as file:
        mapped = sum(1 for _ in file) - 1
    return {
        "seconds": seconds,
        "mapped": mapped,
        "ratio": separation(Path(f"{out}.csv")),
        "png_kb": Path(f"{out}.png").stat().st_size / 1024,
        "html_mb": Path(f"{out}.html").stat().st_size / 2**20,
        # The command's progress lines, the scratch folder's name left out.
        "progress": done.stderr.replace(str(folder), "SCRATCH").strip().splitlines(),
    }


def markdown(report: dict[str, Any]) -> str:
    rows = []
    for method, r in report["methods"].items():
        verdict = "met" if r["seconds"] < TARGET_S else "not met"
        rows.append(
            f"| {method} | {r['mapped']:,} | {r['seconds']:.0f} | {r['ratio']:.2f} | "
            f"{r['png_kb']:.0f} KB | {r['html_mb']:.1f} MB | < {TARGET_S} s: {verdict} |"
        )
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"Measured {report['date']} by `bench/map_scale.py` on {report['cpu']}, "
            f"{report['cores']} cores, one run per method. {report['vectors']:,} unit vectors "
            f"of {DIM} dimensions around {report['groups']} random centres in the embedded "
            f"store (written through gRPC Upsert in {report['load_s']:.0f} s), then "
            "`embedserve map COLLECTION --method M --color-by group` with its default "
            "`--max-points`, writing PNG, HTML and coordinates, as a fresh process (imports "
            "and numba's compilation included). Separation: mean distance between points of "
            "different groups over mean distance within a group on the map (2,000 sampled "
            "points; 1 means no structure).",
            "",
            "| method | points mapped | seconds | separation | PNG | HTML | target |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
            *rows,
            "",
            "UMAP and t-SNE run on a 50-dimension PCA of the vectors; t-SNE maps a seeded "
            "sample of 10,000 points by default (`--max-points`), since scikit-learn's "
            "Barnes-Hut t-SNE costs several times UMAP's time per point. Load average of the "
            f"machine before and after the runs: {report['load_before']} / "
            f"{report['load_after']}.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", type=int, default=50_000)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--methods", default="umap,tsne,pca")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "map_scale.json"))
    args = parser.parse_args(argv)

    vectors, labels = clustered_vectors(args.vectors, args.groups, seed=5)
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        server = Server(folder / "data")
        try:
            with EmbedClient(server.target, timeout=3600) as client:
                log(f"loading {args.vectors:,} vectors")
                load_s = load(client, "map", vectors, labels)
            for method in args.methods.split(","):
                log(f"map --method {method}")
                results[method] = run_map(server.target, "map", method, folder)
                log(json.dumps({k: v for k, v in results[method].items() if k != "progress"}))
        finally:
            server.stop()
    report = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "vectors": args.vectors,
        "groups": args.groups,
        "load_s": load_s,
        "load_before": load_before,
        "load_after": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "methods": results,
    }
    write_json(args.json, report)
    write_section(args.out, TITLE, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
