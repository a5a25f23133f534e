"""The client scenario of the Go and Java tests, run with the installed embedserve-client.

    python clients/python/tests/scenario.py HOST:PORT      (or EMBEDSERVE_TEST_TARGET)

Meant for a fresh virtualenv holding only ``pip install ./clients/python``
(scripts/test_clients.sh does that): it first asserts that the environment is the
client alone (``import torch`` fails, no ``embedserve.server``, ``embedserve`` is a
namespace package), then checks against a live server (all-MiniLM-L6-v2):

- unary embedding: unit vectors of the model's width, and the same in int8;
- a bidirectional stream of 1,024 texts through ``embed_iter``, in order;
- a small corpus of four topics ingested with acknowledgements; a text search
  finds the right topic first; a recommendation by ids leaves the examples out;
  the count equals the number ingested and stays so after re-ingesting;
- an expired deadline (``EmbedClient(timeout=...)``) is ``DEADLINE_EXCEEDED``.

Exits non-zero with a message on the first failed check. Collections get unique
names and are deleted afterwards (the server may be shared).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
import uuid
from typing import Any

TOPICS = {
    "cooking": ["recipe", "oven", "garlic", "pasta", "sauce", "bakery", "kitchen", "spices"],
    "finance": [
        "stock",
        "interest rate",
        "bond",
        "inflation",
        "dividend",
        "investor",
        "bank",
        "loan",
    ],
    "football": [
        "goal",
        "striker",
        "referee",
        "penalty",
        "league",
        "stadium",
        "midfielder",
        "goalkeeper",
    ],
    "space": ["rocket", "orbit", "galaxy", "astronaut", "telescope", "planet", "satellite", "moon"],
}
QUERIES = {
    "space": "astronauts travelling into orbit around a planet",
    "cooking": "how to cook pasta with garlic sauce",
    "football": "the striker scored a penalty goal",
    "finance": "bond yields, inflation and the stock market",
}
PER_TOPIC = 12
DIMS = 384


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def corpus() -> list[dict[str, Any]]:
    """PER_TOPIC short sentences per topic (the Go and Java tests' generator)."""
    docs = []
    for topic, words in TOPICS.items():
        for n in range(PER_TOPIC):
            a, b = words[n % len(words)], words[(n // len(words) + n + 1) % len(words)]
            docs.append(
                {
                    "id": f"{topic}-{n}",
                    "text": f"A short note about the {a} and the {b}, number {n}.",
                    "payload": {"topic": topic, "n": n},
                }
            )
    return docs


def check_client_only_environment() -> None:
    try:
        importlib.import_module("torch")
    except ImportError:
        pass
    else:
        raise AssertionError(f"torch is importable in {sys.prefix}: the client must not need it")
    check(importlib.util.find_spec("embedserve.server") is None, "embedserve.server is installed")
    import embedserve

    check(getattr(embedserve, "__file__", None) is None, "embedserve is not a namespace package")
    import embedserve.client

    origin = embedserve.client.__file__ or ""
    check(origin.startswith(sys.prefix), f"embedserve.client from {origin}, not {sys.prefix}")


def run(target: str) -> None:
    import grpc
    import numpy as np

    from embedserve.client import EmbedClient

    started = time.monotonic()
    with EmbedClient(target, timeout=60) as client:
        # Unary embedding.
        texts = ["The cat sat on the mat.", "Vectors for everyone.", "ünïcødé ✓"]
        vectors = client.embed(texts)
        check(vectors.shape == (3, DIMS), f"embed: shape {vectors.shape}")
        check(
            bool(np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)),
            "embed: not unit vectors",
        )
        # The same vectors in int8: each scaled by 127 over its largest absolute value.
        signed = client.embed_quantized(texts, "int8")
        scaled = np.rint(vectors * (127 / np.abs(vectors).max(axis=1, keepdims=True)))
        check(signed.dtype == np.int8, f"embed_quantized: dtype {signed.dtype}")
        check(bool((signed == scaled).all()), "embed_quantized: not the scaled vectors")

        # A bidirectional stream of 1,024 texts, in order.
        stream_texts = [f"stream text {i}" for i in range(1024)]
        streamed = list(client.embed_iter(iter(stream_texts), batch_size=32, max_in_flight=8))
        check(len(streamed) == len(stream_texts), f"stream: {len(streamed)} vectors for 1024 texts")
        # The same text in another batch differs by rounding only: up to 5e-3 in bfloat16
        # (README, "Same text, another batch"), less than neighbouring texts differ.
        tolerance = 1e-6 if client.model_info().dtype == "float32" else 5e-3
        spots = [0, 517, 1023]
        unary = client.embed([stream_texts[i] for i in spots])
        for row, i in enumerate(spots):
            diff = float(np.max(np.abs(streamed[i] - unary[row])))
            check(diff <= tolerance, f"stream: text {i} differs from its unary vector by {diff}")
            apart = float(np.max(np.abs(streamed[i - 1] - unary[row]))) if i else 1.0
            check(apart > tolerance, f"stream: texts {i - 1} and {i} differ by {apart} only")

        # Ingest a small corpus, search, recommend, count, re-ingest.
        name = f"py_scenario_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        client.create_collection(name, payload_indexes={"topic": "keyword"})
        try:
            docs = corpus()
            acks = list(client.ingest_iter(name, iter(docs), batch_size=10, max_in_flight=3))
            check(
                [a.batch_id for a in acks] == [str(i) for i in range(len(acks))],
                "ingest: acks out of order",
            )
            check(
                [i for a in acks for i in a.ids] == [d["id"] for d in docs],
                "ingest: acknowledged ids",
            )
            check(
                acks[-1].total_acknowledged == len(docs),
                f"ingest: {acks[-1].total_acknowledged} acked",
            )
            check(client.count(name) == len(docs), f"count {client.count(name)} != {len(docs)}")
            for topic, query in QUERIES.items():
                hits = client.search(name, query, limit=3)
                check(
                    hits[0].payload.get("topic") == topic, f"search {query!r}: first hit {hits[0]}"
                )
            examples = ["space-1", "space-2"]
            hits = client.recommend(name, examples, ["cooking-1"], limit=5)
            check(len(hits) == 5, f"recommend: {len(hits)} hits")
            check(
                not {h.id for h in hits} & {*examples, "cooking-1"},
                f"recommend returned examples: {hits}",
            )
            check(hits[0].payload.get("topic") == "space", f"recommend: first hit {hits[0]}")
            check(
                client.ingest(name, docs, batch_size=16) == len(docs),
                "re-ingest: acknowledged count",
            )
            check(client.count(name) == len(docs), f"count after re-ingest {client.count(name)}")
        finally:
            client.delete_collection(name)

    # An expired deadline.
    long_texts = [f"word{i} " * 40 for i in range(2000)]
    with EmbedClient(target, timeout=0.001) as hurried:
        try:
            hurried.embed(long_texts, batch_size=2000)
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"deadline: got {e.code()}")
        else:
            raise AssertionError("deadline: a 1 ms call succeeded")
    with EmbedClient(target) as client:
        check(client.embed("still alive").shape == (1, DIMS), "server after the deadline")

    print(
        f"python scenario: OK - embed, 1024-text stream, ingest/search/recommend/count, deadline "
        f"({time.monotonic() - started:.1f} s; {sys.prefix}, no torch)"
    )


def main() -> int:
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EMBEDSERVE_TEST_TARGET", "")
    if not target:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        check_client_only_environment()
        run(target)
    except AssertionError as e:
        print(f"python scenario: FAILED - {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
