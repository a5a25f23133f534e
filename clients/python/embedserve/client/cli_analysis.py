"""``embedserve export | cluster | duplicates``: a collection's contents and their analysis
from a shell."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from google.protobuf.json_format import MessageToDict

from embedserve.client.cli_connect import (
    MAX_PAGE_SIZE,
    add_target,
    client_verb,
    filter_arg,
    int_from,
    non_negative_int,
    output_path,
    positive_int,
)
from embedserve.client.cli_output import (
    document_line,
    is_stream,
    replaced_together,
    replaced_when_done,
    text_output,
    write_npy,
)
from embedserve.client.cli_settings_file import settings_path, settings_text
from embedserve.client.cli_texts import named_by_line, read_texts

# Widest histogram bar, in characters.
BAR = 40


def add_parser(commands: Any) -> None:
    export = commands.add_parser(
        "export", help="write a collection's documents to JSONL, or vectors to .npy plus ids"
    )
    export.add_argument("collection")
    export.add_argument(
        "--output",
        "-o",
        required=True,
        type=output_path,
        help="FILE.jsonl ({id, vector, payload} a line, and the collection's settings in "
        "FILE.jsonl.collection.json; '-' for stdout) or FILE.npy (vectors; ids and payloads "
        "go to FILE.ids.jsonl, row by row)",
    )
    add_target(export)
    export.set_defaults(run=client_verb(_verb(_export)))
    export.add_argument("--filter", help="JSON filter, as for search")
    export.add_argument("--no-vectors", action="store_true", help="JSONL without vectors")
    export.add_argument(
        "--page-size",
        type=int_from(1, MAX_PAGE_SIZE),
        default=1024,
        help=f"documents read per call (at most {MAX_PAGE_SIZE:,})",
    )

    cluster = commands.add_parser(
        "cluster", help="group a collection's documents (or a file of texts) by topic"
    )
    source = cluster.add_mutually_exclusive_group(required=True)
    source.add_argument("collection", nargs="?")
    source.add_argument(
        "--texts", help='a file of texts (one a line, or JSONL with "text") instead of a collection'
    )
    add_target(cluster)
    cluster.set_defaults(run=client_verb(_verb(_cluster)))
    cluster.add_argument("--algorithm", default="kmeans", choices=["kmeans", "hdbscan"])
    cluster.add_argument("--k", type=positive_int, help="number of clusters (default: chosen)")
    cluster.add_argument("--k-min", type=positive_int, help="kmeans, k chosen (default 2)")
    cluster.add_argument("--k-max", type=positive_int, help="kmeans, k chosen (default 12)")
    cluster.add_argument("--min-cluster-size", type=positive_int, help="hdbscan (default 5)")
    cluster.add_argument(
        "--max-points", type=int_from(2), default=20_000, help="cluster a sample above this size"
    )
    cluster.add_argument("--top-documents", type=non_negative_int, default=3)
    cluster.add_argument("--top-words", type=non_negative_int, default=8)
    cluster.add_argument("--write-label", metavar="FIELD", help="store each label in FIELD")
    cluster.add_argument("--filter", help="JSON filter, as for search")
    cluster.add_argument("--seed", type=non_negative_int, default=0)
    cluster.add_argument("--json", action="store_true", help="print the full response as JSON")

    duplicates = commands.add_parser(
        "duplicates", help="near-duplicate pairs and groups in a collection"
    )
    duplicates.add_argument("collection")
    add_target(duplicates)
    duplicates.set_defaults(run=client_verb(_verb(_duplicates)))
    duplicates.add_argument("--threshold", type=float, default=0.92, help="cosine, in [-1, 1]")
    duplicates.add_argument("--max-neighbors", type=positive_int, default=10)
    duplicates.add_argument("--max-pairs", type=positive_int, default=1000)
    duplicates.add_argument("--filter", help="JSON filter, as for search")
    duplicates.add_argument(
        "--method", default="auto", choices=["auto", "store_queries", "exact_blocks"]
    )
    duplicates.add_argument("--json", action="store_true", help="print the full response as JSON")


def _verb(
    command: Callable[[Any, argparse.Namespace, Any], int],
) -> Callable[[Any, argparse.Namespace], int]:
    """A command with its --filter parsed."""

    def run(client: Any, args: argparse.Namespace) -> int:
        return command(client, args, filter_arg(args.filter))

    return run


def _export(client: Any, args: argparse.Namespace, query_filter: Any) -> int:
    if args.output.lower().endswith(".csv"):
        # JSONL in a .csv file would be read back by ingest as CSV, and refused.
        raise ValueError(
            f"--output {args.output}: export writes JSONL (FILE.jsonl, or '-') or vectors "
            "(FILE.npy), not CSV"
        )
    npy = args.output.lower().endswith(".npy")
    documents = client.scroll_iter(
        args.collection,
        page_size=args.page_size,
        filter=query_filter,
        with_vectors=npy or not args.no_vectors,
        exact_payloads=True,  # integers past 2**53 written as they are, for ingest
    )
    if npy:
        import numpy as np

        rows: list[Any] = []
        ids_path = args.output[: -len(".npy")] + ".ids.jsonl"
        with replaced_together() as files:
            ids = files.enter_context(replaced_when_done(ids_path))
            for doc in documents:
                rows.append(doc.vector)
                ids.write(json.dumps({"id": doc.id, "payload": doc.payload}) + "\n")
            if rows:
                matrix = np.asarray(rows, dtype=np.float32)
            else:  # still (rows, dimensions): (0, d), not numpy's (0,)
                dimensions = client.get_collection(args.collection).config.dimensions
                matrix = np.zeros((0, dimensions), dtype=np.float32)
            write_npy(files.enter_context(replaced_when_done(args.output, binary=True)), matrix)
        print(f"{len(rows)} vectors -> {args.output}, ids -> {ids_path}", file=sys.stderr)
        return 0
    # The settings are read first, and the file beside the documents is replaced with them:
    # a run cut short between the two left an earlier export's settings to a new file.
    beside = args.output != "-" and not is_stream(args.output)  # a pipe has nowhere beside it
    info = client.get_collection(args.collection) if beside else None
    with replaced_together() as files:
        out = files.enter_context(text_output(args.output))
        written = 0
        for doc in documents:
            out.write(document_line(doc) + "\n")
            written += 1
        if info is not None:
            files.enter_context(replaced_when_done(str(settings_path(args.output)))).write(
                settings_text(info)
            )
    print(f"{written} documents -> {args.output}", file=sys.stderr)
    if info is not None:
        beside_it = settings_path(args.output)
        print(
            f"its settings -> {beside_it} (ingest makes the collection with them)", file=sys.stderr
        )
    return 0


def _cluster(client: Any, args: argparse.Namespace, query_filter: Any) -> int:
    numbers = {
        "max_points": args.max_points,
        "top_documents": args.top_documents,
        "top_words": args.top_words,
        "seed": args.seed,
    }
    # Given only: the server refuses an option of the other algorithm, its defaults too.
    for name in ("k", "k_min", "k_max", "min_cluster_size"):
        if getattr(args, name) is not None:
            numbers[name] = getattr(args, name)
    lines = read_texts(args.texts) if args.texts else None
    # Texts are named by their position in the request: shown as the file names them.
    names = {str(i): line.label for i, line in enumerate(lines or ())}
    with named_by_line(args.texts, lines or []):
        response = client.cluster(
            args.collection,
            texts=[t.text for t in lines] if lines is not None else None,
            filter=query_filter,
            algorithm=args.algorithm,
            write_label=args.write_label,
            **numbers,
        )
    if args.json:
        named = MessageToDict(response, always_print_fields_with_no_presence=True)
        named["ids"] = [names.get(i, i) for i in named["ids"]]
        for cluster in named["clusters"]:
            for member in cluster["central"]:
                member["id"] = names.get(member["id"], member["id"])
        print(json.dumps(named))
        return 0
    how = "given" if args.k is not None else "chosen by silhouette"
    if args.k is not None and response.k < args.k:  # fewer distinct points than clusters
        how = f"{args.k} given: the points form only {response.k}"
    if args.algorithm == "hdbscan":
        how = "found by hdbscan"
    print(
        f"{response.k} clusters ({how}), silhouette {response.silhouette:.3f}, "
        f"{response.points_clustered} of {response.points_total} points"
    )
    if response.silhouette_by_k:
        tried = ", ".join(f"{k}: {s:.3f}" for k, s in sorted(response.silhouette_by_k.items()))
        print(f"silhouette by k: {tried}")
    for c in response.clusters:
        name = "noise" if c.label == -1 else f"cluster {c.label}"
        print(f"\n{name}: {c.size} documents")
        if c.words:
            print("  words: " + ", ".join(w.word for w in c.words))
        for m in c.central:
            text = f"  {m.text[:100]}" if m.text else ""
            print(f"  - {names.get(m.id, m.id)} ({m.score:.3f}){text}")
    if response.labels_written:
        print(f"\nlabels written to {response.labels_written} documents ({args.write_label})")
    return 0


def _duplicates(client: Any, args: argparse.Namespace, query_filter: Any) -> int:
    response = client.find_duplicates(
        args.collection,
        threshold=args.threshold,
        filter=query_filter,
        max_neighbors=args.max_neighbors,
        max_pairs=args.max_pairs,
        method=args.method,
    )
    if args.json:
        print(json.dumps(MessageToDict(response, always_print_fields_with_no_presence=True)))
        return 0
    print(
        f"{response.pairs_total} pairs in {len(response.groups)} groups at cosine >= "
        f"{args.threshold} among {response.points_scanned} documents"
    )
    for group in response.groups:
        print(f"  group of {len(group.ids)} (min {group.min_score:.3f}): {', '.join(group.ids)}")
    print("\nbest-neighbour score of each document:")
    widest = max((b.count for b in response.histogram), default=1)
    for b in response.histogram:
        bar = "#" * max(1, round(BAR * b.count / widest))
        print(f"  [{b.lower:+.2f}, {b.upper:+.2f})  {b.count:6d}  {bar}")
    return 0
