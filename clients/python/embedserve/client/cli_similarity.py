"""``embedserve similarity FILE``: the most similar pairs of texts in a file, or with
``--matrix`` the full cosine matrix of a small file.

The pairs come from the server's FindDuplicates over the file's texts (exact, block by
block, never an all-pairs matrix); only the matrix mode, bounded by MAX_MATRIX_TEXTS,
multiplies vectors here.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

import numpy as np

from embedserve.client._sync import EmbedClient
from embedserve.client.cli_connect import add_target, client_verb, output_path, positive_int
from embedserve.client.cli_output import output_name, text_output
from embedserve.client.cli_texts import TextLine, named_by_line, read_texts

# --matrix holds n x n scores in memory and writes them all: 2,000 texts make 4 million
# cells (about 40 MB of CSV).
MAX_MATRIX_TEXTS = 2000
# FindDuplicates' bound on points x max_neighbors (the pairs the server holds).
MAX_NEIGHBOR_PAIRS = 2_097_152
# Characters of each text shown in the table.
SHOWN_CHARS = 60


def add_parser(commands: Any) -> None:
    similarity = commands.add_parser(
        "similarity",
        help="the most similar pairs of texts in a file (or, with --matrix, all their cosines)",
    )
    similarity.add_argument(
        "file", help="one text a line, or JSONL with a 'text' field (and optionally an 'id')"
    )
    add_target(similarity)
    similarity.set_defaults(run=client_verb(_similarity))
    similarity.add_argument(
        "--top-k", type=positive_int, default=10, help="pairs shown (default 10)"
    )
    similarity.add_argument(
        "--threshold", type=float, help="only pairs with a cosine at or above this, in [-1, 1]"
    )
    similarity.add_argument("--json", action="store_true", help="print the pairs as JSON")
    similarity.add_argument(
        "--matrix",
        metavar="OUT.csv",
        type=output_path,
        help=f"write the full cosine matrix instead (files of at most {MAX_MATRIX_TEXTS} "
        "texts; '-': standard output)",
    )


def _similarity(client: EmbedClient, args: argparse.Namespace) -> int:
    if args.threshold is not None and not -1.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be a cosine in [-1, 1], got {args.threshold}")
    texts = read_texts(args.file)
    with named_by_line(args.file, texts):
        return _similar_pairs(client, texts, args)


def _similar_pairs(client: EmbedClient, texts: list[TextLine], args: argparse.Namespace) -> int:
    if args.matrix:
        return _write_matrix(client, texts, args)
    pairs_held = len(texts) * min(args.top_k, len(texts) - 1)
    if pairs_held > MAX_NEIGHBOR_PAIRS:
        raise ValueError(
            f"{args.file} holds {len(texts)} texts; with --top-k {args.top_k} the server would "
            f"hold {pairs_held} pairs, and it holds at most {MAX_NEIGHBOR_PAIRS} "
            f"(FindDuplicates' max_neighbors): give --top-k {MAX_NEIGHBOR_PAIRS // len(texts)} "
            "or less"
        )
    response = client.find_duplicates(
        texts=[t.text for t in texts],
        threshold=-1.0 if args.threshold is None else args.threshold,
        max_neighbors=args.top_k,
        max_pairs=args.top_k,
        with_text=False,
    )
    pairs = [(p.score, *_in_file_order(texts[int(p.a)], texts[int(p.b)])) for p in response.pairs]
    if args.json:
        print(json.dumps({"texts": len(texts), "pairs": [_pair_json(*p) for p in pairs]}))
    else:
        _print_table(pairs, len(texts))
    return 0


def _in_file_order(a: TextLine, b: TextLine) -> tuple[TextLine, TextLine]:
    return (a, b) if a.line < b.line else (b, a)


def _pair_json(score: float, a: TextLine, b: TextLine) -> dict[str, Any]:
    return {
        "score": round(score, 6),
        "a": {"id": a.id, "line": a.line, "text": a.text},
        "b": {"id": b.id, "line": b.line, "text": b.text},
    }


def _print_table(pairs: list[tuple[float, TextLine, TextLine]], count: int) -> None:
    print(f"{len(pairs)} most similar pairs of {count} texts (cosine)")
    if not pairs:
        return
    rows = [(f"{s:.4f}", a.label, b.label, _short(a.text), _short(b.text)) for s, a, b in pairs]
    header = ("score", "a", "b", "text a", "text b")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        padded = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        print("  ".join([*padded, row[4]]))


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _write_matrix(client: EmbedClient, texts: list[TextLine], args: argparse.Namespace) -> int:
    if len(texts) > MAX_MATRIX_TEXTS:
        raise ValueError(
            f"{args.file} holds {len(texts)} texts; --matrix writes at most "
            f"{MAX_MATRIX_TEXTS} (an n x n matrix): drop --matrix for the top --top-k pairs, "
            "which has no such limit"
        )
    vectors = client.embed([t.text for t in texts], task="document")
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    matrix = vectors @ vectors.T
    # Exactly symmetric with ones on the diagonal, whatever the rounding of the product.
    matrix = (matrix + matrix.T) / 2
    np.fill_diagonal(matrix, 1.0)
    labels = [t.label for t in texts]
    with text_output(args.matrix, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["", *labels])
        for label, row in zip(labels, matrix, strict=True):
            writer.writerow([label, *(f"{x:.6f}" for x in row)])
    where = output_name(args.matrix)
    print(f"{len(texts)} x {len(texts)} cosine matrix -> {where}", file=sys.stderr)
    return 0
