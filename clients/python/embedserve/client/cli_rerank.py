"""``embedserve rerank QUERY [DOCUMENT ...]``: documents scored against a query by the
server's reranker, best first; documents from the arguments, or a file (``--file``, one a
line or JSONL with a "text" field, as ``similarity`` reads them)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import grpc

from embedserve.client._calls import Ranked
from embedserve.client._errors import renumbered_in_request
from embedserve.client._sync import EmbedClient
from embedserve.client.cli_connect import BATCH_SIZE, add_target, client_verb, positive_int
from embedserve.client.cli_texts import TextLine, read_texts


def add_parser(commands: Any) -> None:
    rerank = commands.add_parser(
        "rerank", help="score documents against a query with the server's reranker, best first"
    )
    rerank.add_argument("query")
    rerank.add_argument("documents", nargs="*", help="the documents (or --file)")
    add_target(rerank)
    rerank.set_defaults(run=client_verb(_rerank))
    rerank.add_argument(
        "--file",
        help="documents: one a line, or JSONL with a 'text' field (and an 'id'); - for stdin",
    )
    rerank.add_argument("--top-n", type=int, default=0, help="keep the best N (default: all)")
    rerank.add_argument("--raw-scores", action="store_true", help="the model's logits")
    rerank.add_argument(
        "--batch-size",
        type=positive_int,
        default=BATCH_SIZE,
        help=f"documents a request (default {BATCH_SIZE}; at most the server's "
        "max_inputs_per_request)",
    )
    rerank.add_argument(
        "--overflow",
        choices=["truncate_right", "truncate_left", "error", "chunk"],
        help="a document too long with the query: cut it (default), refuse it, or read it in "
        "windows and keep its best (chunk)",
    )
    rerank.add_argument(
        "--json",
        action="store_true",
        help="one JSON object a line (else: score, id or index, text)",
    )


def _rerank(client: EmbedClient, args: argparse.Namespace) -> int:
    if args.top_n < 0:
        raise ValueError(f"--top-n must be 0 (all) or more, got {args.top_n}")
    if bool(args.documents) == bool(args.file):
        raise ValueError("give the documents as arguments or with --file (one of them)")
    documents = (
        read_texts(args.file)
        if args.file
        else [TextLine(text, number) for number, text in enumerate(args.documents, 1)]
    )
    for result in _ranked(client, args, [d.text for d in documents]):
        document = documents[result.index]
        if args.json:
            line = {"score": round(result.score, 6), "index": result.index, "text": document.text}
            print(json.dumps(line | ({"id": document.id} if document.id is not None else {})))
        else:
            label = document.id if document.id is not None else result.index
            print(f"{result.score:.4f}\t{label}\t{document.text}")
    return 0


def _ranked(client: EmbedClient, args: argparse.Namespace, texts: list[str]) -> list[Ranked]:
    """The documents best first (--top-n: the best N), --batch-size a request. Each
    document is scored with the query alone, so batches compare."""
    ranked: list[Ranked] = []
    for start in range(0, len(texts), args.batch_size):
        try:
            batch = client.rerank(
                args.query,
                texts[start : start + args.batch_size],
                top_n=args.top_n,
                raw_scores=args.raw_scores,
                overflow=args.overflow,
            )
        except grpc.RpcError as exc:  # naming the document by its place in the whole list
            raise renumbered_in_request(exc, start, "documents") from None
        ranked += [dataclasses.replace(r, index=r.index + start) for r in batch]
    ranked.sort(key=lambda r: -r.score)  # stable: equal scores stay in the server's order
    return ranked[: args.top_n or None]
