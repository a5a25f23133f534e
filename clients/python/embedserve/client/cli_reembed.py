"""``embedserve reembed``: a collection's stored texts, embedded again by the served model.

After a model change (a fine-tuned folder, a new version), the old collection's vectors
no longer match new queries. ``reembed`` reads every document's stored text (written
with ``--store-text``), sends it through the ingestion path of the server, which embeds
it with the model it serves now, and writes a new collection; the old one stays as it
is until clients have switched.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
from collections.abc import Iterator
from typing import Any

from embedserve.client._sync import EmbedClient
from embedserve.client._vector_calls import config_kwargs
from embedserve.client.cli_connect import (
    BATCH_SIZE,
    MAX_PAGE_SIZE,
    add_target,
    client_verb,
    filter_arg,
    int_from,
)
from embedserve.client.cli_vectors import (
    add_split_arguments,
    collection_exists,
    removed_if_left_empty,
    split_option,
)

TEXT_KEY = "text"  # where ``store_text`` keeps a document's text
# What a passage carries in its payload besides the document's own (the server's
# ``passages.RESERVED_KEYS``): a collection written with --split holds these.
PASSAGE_KEYS = frozenset({"doc_id", "passage", "passages", "span"})


def add_parser(commands: Any) -> None:
    reembed = commands.add_parser(
        "reembed", help="embed a collection's stored texts again, into a new collection"
    )
    reembed.add_argument("collection", help="the collection to read (texts stored in it)")
    reembed.add_argument("--to", required=True, dest="new_collection", help="a new collection")
    add_target(reembed)
    reembed.add_argument("--batch-size", type=int_from(1, MAX_PAGE_SIZE), default=BATCH_SIZE)
    reembed.add_argument("--filter", help="JSON filter: only the matching documents")
    reembed.add_argument(
        "--dimensions",
        type=int,
        help="vector size of the new collection (default: the served model's width)",
    )
    reembed.add_argument(
        "--bm25",
        action="store_true",
        help="the new collection also keeps BM25 keyword vectors, for keyword and hybrid search",
    )
    reembed.add_argument(
        "--bm25-language", help="stop words and stemmer of those vectors (default: the source's)"
    )
    add_split_arguments(reembed)
    reembed.add_argument(
        "--alias",
        help="once every document is written, point this alias at the new collection: "
        "clients that use the alias switch to it at once",
    )
    reembed.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run: documents already in --to are skipped",
    )
    reembed.set_defaults(run=client_verb(_reembed))


def _reembed(client: EmbedClient, args: argparse.Namespace) -> int:
    if args.new_collection == args.collection:
        raise ValueError("--to must name a new collection, not the one being read")
    if args.alias and args.alias == args.new_collection:
        raise ValueError(
            f"--alias {args.alias!r} is the name --to gives the new collection; an alias "
            "needs a name of its own"
        )
    if args.alias and args.alias in client.list_collections():
        # Checked first: an alias cannot take a collection's name, and the run would
        # only find out at its end.
        raise ValueError(
            f"--alias {args.alias!r} is a collection's name; an alias needs a name of its own"
        )
    exists = collection_exists(client, args.new_collection)
    if exists and not args.resume:
        held = client.count(args.new_collection)
        raise ValueError(
            f"collection {args.new_collection!r} exists already ({held} documents); pass "
            "--resume to continue an interrupted run into it, or pick a new name"
        )
    if args.resume and not exists:
        raise ValueError(f"--resume: there is no collection {args.new_collection!r} to continue")
    source = client.get_collection(args.collection)
    query_filter = filter_arg(args.filter)
    split = split_option(args)
    # Checked before anything is created: either would fail part-way through the run.
    if split:
        _refuse_passages(client, args.collection, query_filter)
    _refuse_missing_texts(client, args.collection, query_filter)
    stored = client.scroll_iter(
        args.collection, filter=query_filter, page_size=args.batch_size, exact_payloads=True
    )
    documents = _with_texts(stored)
    if exists:
        documents = _not_in(client, args.new_collection, documents, args.batch_size, bool(split))
    # The first document is read before anything is created: a collection written
    # without its texts fails here, leaving no empty new collection behind.
    first = next(documents, None)
    if not exists:
        _create_like(client, source, args)
    if first is not None:
        documents = itertools.chain([first], documents)
    written, shown = 0, False
    acks = client.ingest_iter(
        args.new_collection, documents, batch_size=args.batch_size, store_text=True, split=split
    )
    try:
        with removed_if_left_empty(client, args.new_collection, created_here=not exists):
            for ack in acks:
                written = int(ack.total_acknowledged)
                print(f"\r{written} documents re-embedded", end="", file=sys.stderr)
                shown = True
    except KeyboardInterrupt:
        shown = False
        print(
            f"\ninterrupted after {written} documents; run the same command with --resume "
            "to continue",
            file=sys.stderr,
        )
        raise
    finally:
        if shown:  # ends the progress line, before what is printed next (an error too)
            print(file=sys.stderr)
    print(
        f"re-embedded {written} documents from {args.collection!r} into {args.new_collection!r}",
        file=sys.stderr,
    )
    if args.alias:
        client.update_aliases(set={args.alias: args.new_collection})
        print(f"alias {args.alias!r} now names {args.new_collection!r}", file=sys.stderr)
    return 0


def _refuse_passages(client: EmbedClient, collection: str, query_filter: Any) -> None:
    """ValueError when ``collection`` holds passages (it was written with --split): their
    ids end in '#<n>', which the server refuses to split again, and their texts are parts
    of documents whose whole text is not stored."""
    first, _ = client.scroll(collection, filter=query_filter, limit=1)
    if first and first[0].payload.keys() >= PASSAGE_KEYS:
        raise ValueError(
            f"{collection!r} holds passages (written with --split; {first[0].id!r} is passage "
            f"{first[0].payload['passage']} of {first[0].payload['doc_id']!r}): splitting them "
            "again is not supported; reembed it without --split, --passage-tokens and "
            "--passage-overlap to copy the passages one to one"
        )


def _refuse_missing_texts(client: EmbedClient, collection: str, query_filter: Any) -> None:
    """ValueError, naming how many, when documents to re-embed have no stored text (ingested
    without --store-text, or written as vectors), with the --filter that leaves them out."""
    no_text = {"is_empty": {"key": TEXT_KEY}}
    wanted = [{"filter": query_filter}] if query_filter else []
    missing = client.count(collection, filter={"must": [*wanted, no_text]})
    if missing:
        others = {"must": wanted} if wanted else {}
        leave_out = json.dumps({**others, "must_not": [no_text]}, separators=(",", ":"))
        raise ValueError(
            f"{missing} {'document' if missing == 1 else 'documents'} of {collection!r} to "
            f"re-embed {'has' if missing == 1 else 'have'} no stored text "
            "(re-embedding needs documents ingested with --store-text; those written as "
            f"vectors have none): nothing was written. To re-embed only the others, pass "
            f"--filter {shlex.quote(leave_out)}"
        )


def _create_like(client: EmbedClient, source: Any, args: argparse.Namespace) -> None:
    """The new collection with every setting of the source (distance, indexes,
    quantization, HNSW, sharding, keywords) but its size, which belongs to the model that
    wrote it; ``--bm25`` adds keyword vectors."""
    settings = {**config_kwargs(source.config), "dimensions": args.dimensions}
    settings["bm25"] = settings["bm25"] or args.bm25 or args.bm25_language is not None
    if split_option(args):
        settings["payload_indexes"] = {"doc_id": "keyword", **settings["payload_indexes"]}
    if args.bm25_language is not None:
        settings["bm25_language"] = args.bm25_language
    created = client.create_collection(args.new_collection, **settings)
    if created.config.dimensions != source.config.dimensions:
        print(
            f"{args.new_collection!r} stores {created.config.dimensions} dimensions, "
            f"{args.collection!r} {source.config.dimensions} (--dimensions sets the size)",
            file=sys.stderr,
        )


def _not_in(
    client: EmbedClient,
    collection: str,
    documents: Iterator[dict[str, Any]],
    page: int,
    as_passages: bool,
) -> Iterator[dict[str, Any]]:
    """``documents`` less those ``collection`` holds already (as their first passage,
    ``as_passages``), looked up a page at a time."""
    suffix = "#0" if as_passages else ""
    while batch := list(itertools.islice(documents, page)):
        ids = [doc["id"] + suffix for doc in batch]
        held = {stored.id for stored in client.get(collection, ids)}
        yield from (doc for doc, id in zip(batch, ids, strict=True) if id not in held)


def _with_texts(stored: Iterator[Any]) -> Iterator[dict[str, Any]]:
    for document in stored:
        payload = dict(document.payload)
        text = payload.pop(TEXT_KEY, None)
        if not isinstance(text, str) or not text:
            raise ValueError(
                f"document {document.id!r} has no stored text: re-embedding needs collections "
                "ingested with --store-text"
            )
        yield {"id": document.id, "text": text, "payload": payload}
