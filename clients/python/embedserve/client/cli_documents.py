"""``embedserve get | count | scroll | payload | delete``: a collection's documents one by
one from a shell, as JSONL."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from typing import Any

from embedserve.client._documents import StoredDocument
from embedserve.client._sync import EmbedClient
from embedserve.client.cli_connect import add_target, client_verb, filter_arg
from embedserve.client.cli_output import document_line


def add_parser(commands: Any) -> None:
    get = commands.add_parser("get", help="print stored documents by id, as JSONL")
    get.add_argument("collection")
    get.add_argument("ids", nargs="+", metavar="ID")
    get.add_argument("--vectors", action="store_true", help="print the vectors too")
    add_target(get)
    get.set_defaults(run=client_verb(_get))

    count = commands.add_parser("count", help="how many documents a collection holds")
    count.add_argument("collection")
    count.add_argument("--filter", help="JSON filter, as for search: count only those")
    add_target(count)
    count.set_defaults(run=client_verb(_count))

    scroll = commands.add_parser(
        "scroll", help="print a collection's documents as JSONL, in id order or a field's"
    )
    scroll.add_argument("collection")
    scroll.add_argument(
        "--order-by", metavar="FIELD", help="a field with an integer, float or datetime index"
    )
    scroll.add_argument("--desc", action="store_true", help="largest values first")
    scroll.add_argument("--limit", type=int, default=10, help="documents to print (default 10)")
    scroll.add_argument("--filter", help="JSON filter, as for search")
    scroll.add_argument("--vectors", action="store_true", help="print the vectors too")
    add_target(scroll)
    scroll.set_defaults(run=client_verb(_scroll))

    payload = commands.add_parser(
        "payload", help="set or remove payload keys of documents, without embedding again"
    )
    _add_selection(payload)
    payload.add_argument("--set", metavar="JSON", help='keys to set, e.g. {"topic": "space"}')
    payload.add_argument(
        "--unset", action="append", default=[], metavar="KEY", help="a key to remove (repeatable)"
    )
    add_target(payload)
    payload.set_defaults(run=client_verb(_payload))

    delete = commands.add_parser("delete", help="delete documents by id, by filter, or both")
    _add_selection(delete)
    add_target(delete)
    delete.set_defaults(run=client_verb(_delete))


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("collection")
    parser.add_argument("ids", nargs="*", metavar="ID")
    parser.add_argument(
        "--filter", help="JSON filter, as for search: the matching documents (and ids, if given)"
    )


def _print_documents(documents: Any) -> None:
    for doc in documents:
        print(document_line(doc))


def _get(client: EmbedClient, args: argparse.Namespace) -> int:
    found: list[StoredDocument] = client.get(
        args.collection, args.ids, with_vectors=args.vectors, exact_payloads=True
    )
    _print_documents(found)
    missing = sorted(set(args.ids) - {doc.id for doc in found})
    if missing:
        print(f"embedserve: not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def _count(client: EmbedClient, args: argparse.Namespace) -> None:
    print(client.count(args.collection, filter=filter_arg(args.filter)))


def _scroll(client: EmbedClient, args: argparse.Namespace) -> None:
    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    documents = client.scroll_iter(
        args.collection,
        page_size=min(args.limit, 1024),
        filter=filter_arg(args.filter),
        with_vectors=args.vectors,
        order_by=args.order_by,
        descending=args.desc,
        exact_payloads=True,  # JSONL documents, for ingest: integers past 2**53 exact
    )
    _print_documents(itertools.islice(documents, args.limit))


def _selection(args: argparse.Namespace) -> tuple[list[str], dict[str, Any] | None]:
    query_filter = filter_arg(args.filter)
    if not args.ids and query_filter is None:
        raise ValueError("name the documents: ids, --filter, or both")
    return args.ids, query_filter


def _payload(client: EmbedClient, args: argparse.Namespace) -> None:
    ids, query_filter = _selection(args)
    try:
        values = json.loads(args.set) if args.set else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"--set: not valid JSON ({exc.msg})") from None
    if not isinstance(values, dict):
        raise ValueError('--set: a JSON object expected, like {"topic": "space"}')
    if not values and not args.unset:
        raise ValueError("nothing to change: give --set JSON, --unset KEY or both")
    client.update_payload(
        args.collection, ids, filter=query_filter, payload=values, delete_keys=args.unset
    )
    which = f"{len(ids)} document(s)" if ids and query_filter is None else "the documents"
    print(f"updated {which}", file=sys.stderr)


def _delete(client: EmbedClient, args: argparse.Namespace) -> None:
    ids, query_filter = _selection(args)
    # What the call will delete, counted first: the Delete reply carries no count.
    if ids:
        selected: dict[str, Any] = {"must": [{"has_id": {"ids": ids}}]}
        if query_filter is not None:
            selected["must"].append({"filter": query_filter})
    else:
        selected = query_filter or {}
    matched = client.count(args.collection, filter=selected)
    client.delete(args.collection, ids, filter=query_filter)
    print(f"deleted {matched} document(s)", file=sys.stderr)
