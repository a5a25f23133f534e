"""``embedserve ingest | search | facet | recommend | collections``: the VectorService from a
shell."""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import itertools
import json
import math
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf.json_format import MessageToDict

from embedserve.client._documents import Hit, HitGroup, document_problem, field_problem
from embedserve.client._errors import RewordedRpcError
from embedserve.client._struct_numbers import wide_integer
from embedserve.client._sync import EmbedClient
from embedserve.client._vector_calls import INDEX_KIND_NAMES
from embedserve.client.cli_checkpoint import PrefixDigest, digest_of
from embedserve.client.cli_checkpoint import load as load_checkpoint
from embedserve.client.cli_checkpoint import save as save_checkpoint
from embedserve.client.cli_connect import (
    BATCH_SIZE,
    add_target,
    client_verb,
    filter_arg,
    non_negative_int,
    positive_int,
)
from embedserve.client.cli_lines import lone_surrogate, open_text, stdin_text, utf8_lines
from embedserve.client.cli_settings_file import SavedSettings, read_settings, settings_path
from embedserve.v1 import embedding_pb2
from embedserve.v1 import vector_pb2 as pb

# Batches an ingestion has sent and not yet seen acknowledged.
STREAM_IN_FLIGHT = 8


def add_parser(commands: Any) -> None:
    """ingest, search, facet, recommend, collections."""
    ingest = commands.add_parser(
        "ingest", help="stream documents from JSONL or CSV into a collection"
    )
    ingest.add_argument("file", help="a .jsonl or .csv file, or '-' for JSONL on stdin")
    ingest.add_argument("--collection", "-c", required=True)
    add_target(ingest)
    ingest.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE)
    ingest.add_argument("--store-text", action="store_true", help="keep each text in its payload")
    ingest.add_argument(
        "--checkpoint",
        help="progress file (default: FILE.progress); a re-run skips what it acknowledged",
    )
    ingest.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    add_split_arguments(ingest)
    ingest.add_argument(
        "--bm25",
        action="store_true",
        help="create a missing collection with BM25 keyword vectors (keyword and hybrid search)",
    )

    search = commands.add_parser("search", help="nearest or best-matching documents to a text")
    search.add_argument("collection")
    search.add_argument("text")
    add_target(search)
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--filter", help='JSON, e.g. {"must":[{"match":{"key":"k","text":"v"}}]}')
    search.add_argument("--exact", action="store_true")
    search.add_argument(
        "--mode",
        default="dense",
        choices=["dense", "keyword", "hybrid"],
        help="keyword: BM25 matches; hybrid: both rankings fused (collections made with --bm25)",
    )
    search.add_argument(
        "--diversity",
        type=float,
        help="0 to 1: re-rank by maximal marginal relevance, so near-copies do not fill the list",
    )
    search.add_argument(
        "--keyword-weight", type=float, help="hybrid mode: how much the keyword ranking counts"
    )
    search.add_argument(
        "--oversampling",
        type=float,
        help="quantized collections: candidates read by the quantized vectors, as a multiple "
        "of the limit, then scored with the floats (default 3 binary, 1 scalar_int8)",
    )
    search.add_argument(
        "--payload-key",
        action="append",
        dest="payload_keys",
        metavar="KEY",
        help="print only this payload key (repeatable)",
    )
    search.add_argument(
        "--recency",
        metavar="FIELD",
        help="fresher documents first: weigh hits by the age of this date and time field",
    )
    search.add_argument(
        "--half-life",
        type=float,
        default=168.0,
        metavar="HOURS",
        help="with --recency: the age at which freshness halves (default 168, a week)",
    )
    search.add_argument("--recency-weight", type=float, help="with --recency: 0 to 1, default 0.5")
    search.add_argument(
        "--proximity",
        metavar="FIELD",
        help='nearer documents first: weigh hits by the distance to this {"lat", "lon"} field',
    )
    search.add_argument(
        "--center", metavar="LAT,LON", help="with --proximity: the place to be near"
    )
    search.add_argument(
        "--half-distance",
        type=float,
        default=1000.0,
        metavar="METRES",
        help="with --proximity: the distance at which closeness halves (default 1000)",
    )
    search.add_argument(
        "--proximity-weight", type=float, help="with --proximity: 0 to 1, default 0.5"
    )
    search.add_argument(
        "--rerank",
        type=int,
        nargs="?",
        const=0,
        metavar="CANDIDATES",
        help="reorder the best hits (default 50) with the server's reranker, which reads "
        "their stored text",
    )
    search.add_argument(
        "--rerank-text-key", metavar="KEY", help="with --rerank: the payload key of the text"
    )
    add_group_arguments(search)

    facet = commands.add_parser("facet", help="how many documents hold each value of a field")
    facet.add_argument("collection")
    facet.add_argument("key", help="a payload field with a keyword, integer or bool index")
    add_target(facet)
    facet.add_argument("--limit", type=int, default=10)
    facet.add_argument("--filter", help="JSON filter: count only the matching documents")

    recommend = commands.add_parser("recommend", help="documents like some and unlike others")
    recommend.add_argument("collection")
    recommend.add_argument(
        "--positive", "-p", action="append", default=[], help="a document id (repeatable)"
    )
    recommend.add_argument(
        "--negative", "-n", action="append", default=[], help="a document id (repeatable)"
    )
    recommend.add_argument(
        "--positive-text",
        action="append",
        default=[],
        metavar="TEXT",
        help="a text example, embedded as a query (repeatable)",
    )
    recommend.add_argument("--negative-text", action="append", default=[], metavar="TEXT")
    recommend.add_argument(
        "--strategy",
        default="average_vector",
        choices=["average_vector", "best_score", "sum_scores"],
    )
    add_target(recommend)
    recommend.add_argument("--limit", type=int, default=10)
    recommend.add_argument("--filter")
    add_group_arguments(recommend)

    collections = commands.add_parser(
        "collections", help="list, create, show or delete; aliases: alias, unalias, aliases"
    )
    collections.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=["list", "create", "get", "update", "delete", "alias", "unalias", "aliases"],
    )
    collections.add_argument("name", nargs="?")
    add_target(collections)
    collections.add_argument(
        "--to", dest="alias_target", help="alias: the collection the alias NAME is to name"
    )
    collections.add_argument("--dimensions", type=int)
    collections.add_argument(
        "--distance",
        choices=["cosine", "dot", "euclid", "manhattan"],
        help="default: the one matching the model's similarity function",
    )
    collections.add_argument(
        "--index",
        action="append",
        default=[],
        help="payload index FIELD:KIND, KIND in keyword integer float bool text datetime geo "
        "(update: indexes the documents already stored)",
    )
    collections.add_argument(
        "--drop-index", action="append", default=[], help="update: remove this payload index"
    )
    collections.add_argument(
        "--hnsw-ef", type=int, help="the search beam of searches that do not set one"
    )
    collections.add_argument("--quantization", choices=["none", "scalar_int8", "binary"])
    collections.add_argument(
        "--vector-datatype",
        choices=["float32", "float16"],
        help="float16: half the memory, values rounded to 16 bits",
    )
    collections.add_argument(
        "--full-scan-threshold-kb",
        type=int,
        help="segments smaller than this are scanned exactly, without an HNSW index",
    )
    collections.add_argument(
        "--bm25",
        action="store_true",
        help="also keep BM25 keyword vectors, for search --mode keyword or hybrid",
    )
    collections.add_argument(
        "--bm25-language", default="", help="stop words and stemmer of the BM25 vectors"
    )
    ingest.set_defaults(run=client_verb(_ingest))
    search.set_defaults(run=client_verb(_search))
    facet.set_defaults(run=client_verb(_facet))
    recommend.set_defaults(run=client_verb(_recommend))
    collections.set_defaults(run=client_verb(_collections))


def _search(client: EmbedClient, args: argparse.Namespace) -> int:
    options = {
        "limit": args.limit,
        "filter": filter_arg(args.filter),
        "exact": args.exact,
        "mode": args.mode,
        **_given(
            diversity=args.diversity,
            keyword_weight=args.keyword_weight,
            oversampling=args.oversampling,
            payload_keys=args.payload_keys,
        ),
    }
    if args.recency is not None:
        options["recency"] = {"key": args.recency, "half_life_hours": args.half_life}
        options["recency"] |= _given(weight=args.recency_weight)
    elif args.recency_weight is not None:
        raise ValueError("--recency-weight needs --recency FIELD")
    if args.proximity is not None:
        options["proximity"] = _proximity(args)
    elif args.center is not None or args.proximity_weight is not None:
        raise ValueError("--center and --proximity-weight need --proximity FIELD")
    if args.rerank is not None:
        options["rerank"] = _given(candidates=args.rerank or None, text_key=args.rerank_text_key)
        options["rerank"] = options["rerank"] or True
    elif args.rerank_text_key is not None:
        raise ValueError("--rerank-text-key needs --rerank")
    grouping = _grouping(args)
    if grouping is None:
        return _print_hits(client.search(args.collection, args.text, **options))
    return _print_groups(client.search_groups(args.collection, args.text, **grouping, **options))


def _proximity(args: argparse.Namespace) -> dict[str, Any]:
    try:
        lat, lon = (float(part) for part in (args.center or "").split(","))
    except ValueError:
        raise ValueError("--proximity needs --center LAT,LON, e.g. 52.52,13.405") from None
    near = {"key": args.proximity, "center": {"lat": lat, "lon": lon}}
    return near | {"half_distance_m": args.half_distance} | _given(weight=args.proximity_weight)


def _given(**options: Any) -> dict[str, Any]:
    """The options the command line set; the others keep the server's defaults."""
    return {name: value for name, value in options.items() if value is not None}


def _facet(client: EmbedClient, args: argparse.Namespace) -> None:
    counts = client.facet(
        args.collection, args.key, filter=filter_arg(args.filter), limit=args.limit
    )
    for count in counts:
        print(json.dumps({"value": count.value, "count": count.count}))


def _recommend(client: EmbedClient, args: argparse.Namespace) -> int:
    if not (args.positive or args.positive_text):
        print("embedserve: recommend needs --positive ID or --positive-text TEXT", file=sys.stderr)
        return 2
    positive = [*args.positive, *({"text": t} for t in args.positive_text)]
    negative = [*args.negative, *({"text": t} for t in args.negative_text)]
    options = {"strategy": args.strategy, "limit": args.limit, "filter": filter_arg(args.filter)}
    grouping = _grouping(args)
    if grouping is None:
        return _print_hits(client.recommend(args.collection, positive, negative, **options))
    found = client.recommend_groups(args.collection, positive, negative, **grouping, **options)
    return _print_groups(found)


def add_group_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--group-by",
        metavar="KEY",
        help="print one line per value of this payload field, with its best hits",
    )
    parser.add_argument("--group-size", type=int, help="hits per group (default 3)")


def _grouping(args: argparse.Namespace) -> dict[str, Any] | None:
    """The grouping options of --group-by and --group-size; None: no groups."""
    if args.group_by is None:
        if args.group_size is not None:
            raise ValueError("--group-size needs --group-by")
        return None
    return {"group_by": args.group_by, **_given(group_size=args.group_size)}


def _print_hits(hits: list[Hit]) -> int:
    for hit in hits:
        print(json.dumps(_hit_json(hit)))
    return 0


def _print_groups(groups: list[HitGroup]) -> int:
    for group in groups:
        print(json.dumps({"key": group.key, "hits": [_hit_json(h) for h in group.hits]}))
    return 0


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {"id": hit.id, "score": round(hit.score, 6), "payload": hit.payload}


def collection_exists(client: EmbedClient, name: str) -> bool:
    """Whether ``name`` names a collection, itself or by an alias."""
    return _existing(client, name) is not None


def _existing(client: EmbedClient, name: str) -> pb.CollectionInfo | None:
    """The collection ``name`` names, itself or by an alias; None when there is none."""
    try:
        return client.get_collection(name)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def _collections(client: EmbedClient, args: argparse.Namespace) -> int:
    _refuse_unused(args)
    if args.action == "list":
        for name in client.list_collections():
            print(name)
        return 0
    if args.action == "aliases":
        for alias, collection in client.list_aliases(args.name or "").items():
            print(f"{alias} -> {collection}")
        return 0
    if not args.name:
        print(f"embedserve: collections {args.action} needs a NAME", file=sys.stderr)
        return 2
    if args.action == "delete":
        client.delete_collection(args.name)
        return 0
    if args.action == "update":
        if given := _create_only_flags(args):
            raise ValueError(
                f"collections update cannot change {', '.join(given)}: set when a "
                "collection is created (update takes --index, --drop-index and --hnsw-ef)"
            )
        info = client.update_collection(
            args.name,
            add_payload_indexes=_index_specs(args.index),
            drop_payload_indexes=args.drop_index,
            hnsw_ef=args.hnsw_ef,
        )
        print(json.dumps(MessageToDict(info), indent=2))
        return 0
    if args.action == "alias":
        if not args.alias_target:
            print("embedserve: collections alias NAME needs --to COLLECTION", file=sys.stderr)
            return 2
        client.update_aliases(set={args.name: args.alias_target})
        print(f"{args.name} -> {args.alias_target}", file=sys.stderr)
        return 0
    if args.action == "unalias":
        client.update_aliases(delete=[args.name])
        return 0
    if args.action == "create":
        indexes = _index_specs(args.index)
        extra = _given(full_scan_threshold_kb=args.full_scan_threshold_kb, hnsw_ef=args.hnsw_ef)
        info = client.create_collection(
            args.name,
            dimensions=args.dimensions,
            distance=args.distance,
            payload_indexes=indexes,
            quantization=args.quantization,
            vector_datatype=args.vector_datatype,
            bm25=args.bm25,
            bm25_language=args.bm25_language,
            **extra,
        )
    else:
        info = client.get_collection(args.name)
    print(json.dumps(MessageToDict(info), indent=2))
    return 0


# What `collections create` sets and `collections update` cannot change.
_CREATE_ONLY = (
    "dimensions",
    "distance",
    "quantization",
    "vector_datatype",
    "full_scan_threshold_kb",
    "bm25",
    "bm25_language",
)


def _create_only_flags(args: argparse.Namespace) -> list[str]:
    """The create-only flags given, as they are spelled."""
    return _given_flags(args, _CREATE_ONLY)


# The flags each `collections` action reads (every action shares one parser).
_ACTION_FLAGS: dict[str, tuple[str, ...]] = {
    "create": ("index", "hnsw_ef", *_CREATE_ONLY),
    "update": ("index", "drop_index", "hnsw_ef", *_CREATE_ONLY),  # refused below, by name
    "alias": ("alias_target",),
}
_ALL_FLAGS = ("alias_target", "index", "drop_index", "hnsw_ef", *_CREATE_ONLY)


def _given_flags(args: argparse.Namespace, names: Sequence[str]) -> list[str]:
    given = [name for name in names if getattr(args, name) not in (None, False, "", [])]
    return ["--to" if name == "alias_target" else "--" + name.replace("_", "-") for name in given]


def _refuse_unused(args: argparse.Namespace) -> None:
    """A NAME or flag the action does not read (``collections create c --to x``) was
    ignored: the command did something other than what was asked."""
    if args.action == "list" and args.name:
        raise ValueError(f"collections list takes no NAME, got {args.name!r}")
    taken = _ACTION_FLAGS.get(args.action, ())
    if unused := _given_flags(args, [n for n in _ALL_FLAGS if n not in taken]):
        raise ValueError(f"collections {args.action} takes no {', '.join(unused)}")


def _index_specs(specs: list[str]) -> dict[str, str]:
    """--index FIELD:KIND values by field, each checked before any call."""
    indexes = {}
    for spec in specs:
        field, _, kind = spec.rpartition(":")  # a field's name may hold ":"
        if not field or kind not in INDEX_KIND_NAMES:
            raise ValueError(
                f"--index {spec!r}: expected FIELD:KIND, KIND one of {', '.join(INDEX_KIND_NAMES)}"
            )
        indexes[field] = kind
    return indexes


def read_documents(
    stream: TextIO,
    csv_format: bool,
    source: str,
    check: Callable[[dict[str, Any]], str | None] | None = None,
    origins: Origins | None = None,
) -> Iterator[dict[str, Any]]:
    """JSONL objects {id, text|vector, payload}, or CSV rows with id and text columns; other
    CSV columns (or a JSON 'payload' column) become the payload. Errors name ``source``
    (the file, or stdin) and the line; ``check`` is one more test of each document (a
    vector's size), its problem named so too; ``origins`` notes each document's line."""
    lines = utf8_lines(stream, f"{source} line")
    if csv_format:
        rows = _csv_rows(lines, source)
        _, header = next(rows, (1, []))
        missing = {"id", "text"} - set(header)
        if missing:
            raise ValueError(
                f"CSV needs the columns id and text; missing {', '.join(sorted(missing))}"
                f" (header: {', '.join(header) or 'empty'})"
            )
        for begins, row in rows:
            where = f"{source} line {begins}"
            fields = _csv_fields(where, header, row)
            payload = _payload_column(where, fields.pop("payload", None))
            doc_id, text = fields.pop("id"), fields.pop("text")
            payload.update({k: v for k, v in fields.items() if k})
            document = {"id": doc_id, "text": text, "payload": payload}
            yield _noted(origins, where, _checked_document(where, document, check))
        return
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                value = _json_value(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{source} line {number}: not JSON ({exc.msg})") from None
            except _NotJson as exc:
                raise ValueError(f"{source} line {number}: not JSON ({exc})") from None
            where = f"{source} line {number}"
            yield _noted(origins, where, _checked_document(where, value, check))


class Origins:
    """Where the latest documents read came from (their file's line), for the server's
    refusal of one in a stream (``batch_id '3': documents[97]...``, numbered in all by the
    client): only those the stream may still be sending are kept."""

    def __init__(self, keep: int) -> None:
        self._recent: collections.deque[str] = collections.deque(maxlen=keep)
        self._read = 0  # documents noted
        self._first = 0  # the number of the stream's first document

    def note(self, where: str) -> None:
        self._recent.append(where)
        self._read += 1

    def stream_starts(self) -> None:
        """The next document read is the stream's first (those before were skipped)."""
        self._first = self._read

    def named(self, error: grpc.RpcError) -> grpc.RpcError:
        """``error`` naming its document by its line, where it names one still kept."""
        details = str(error.details() or "")
        found = re.match(r"batch_id '\d+': documents\[(\d+)\](\.|: )?", details)
        if found is None:
            return error
        back = self._read - (self._first + int(found[1]))  # 1: the last one read
        if not 0 < back <= len(self._recent):
            return error
        rest = details[found.end() :]  # "text has ...", or " needs ..." of the document
        said = rest if found[2] else f"the document{rest}"
        return RewordedRpcError(error, f"{self._recent[-back]}: {said}")


def _noted(origins: Origins | None, where: str, document: dict[str, Any]) -> dict[str, Any]:
    if origins is not None:
        origins.note(where)
    return document


# Python's csv module refuses a field over 128 KiB ("field larger than field limit"); a
# text may be far longer (ingest --split stores it whole). sys.maxsize overflows the C
# long the limit is kept in where that is 32 bits (Windows); this fits every platform.
_CSV_FIELD_LIMIT = 2**31 - 1


def _csv_rows(lines: Iterable[str], source: str) -> Iterator[tuple[int, list[str]]]:
    """The CSV rows of ``lines`` that are not blank, each with the line it begins on (a
    quoted field may span lines). Malformed CSV is a ValueError naming the line its row
    begins on: a quote never closed (which would make the rest of the file one field),
    text after a closing quote, a field past the limit."""
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.reader(lines, strict=True)
    begins = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problem = str(exc)
            if problem == "unexpected end of data":  # the file ended inside quotes
                problem = "a quoted field of the row that begins here is never closed"
            raise ValueError(f"{source} line {begins}: not CSV ({problem})") from None
        if row:  # a blank line is no row
            yield begins, row
        begins = reader.line_num + 1


def _csv_fields(where: str, header: list[str], row: list[str]) -> dict[str, str | None]:
    """A CSV row's fields by column; a row longer than the header is refused (its surplus
    would be lost: "Hello, world" unquoted shifts every column after it), as is one too
    short to hold an id and a text. Other missing fields at the end are None."""
    if len(row) > len(header):
        raise ValueError(
            f"{where}: the row has {len(row)} fields, the header {len(header)} "
            "(quote a value that holds a comma)"
        )
    fields: dict[str, str | None] = dict.fromkeys(header)
    fields.update(zip(header, row, strict=False))
    absent = [name for name in ("id", "text") if fields[name] is None]  # past the row's end
    if absent:
        count = f"{len(row)} field{'s' if len(row) != 1 else ''}"
        raise ValueError(
            f"{where}: the row has no {' and no '.join(absent)}: {count}, the header {len(header)}"
        )
    return fields


class _NotJson(ValueError):
    """What Python's json reads and a store cannot keep: NaN, Infinity, -Infinity, a
    number past a double's range (1e400), an integer of more than 4,300 digits."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is no JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"{text} is past the range of a double")
    return value


def _json_value(text: str) -> Any:
    """``json.loads`` of JSON only, numbers as written (integers exact): what a store
    cannot keep is refused (_NotJson), not read as a float the server refuses later,
    naming only the batch."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except (json.JSONDecodeError, _NotJson):
        raise
    except ValueError as exc:  # Python's limit on an integer's digits
        raise _NotJson(str(exc)) from None


def _payload_column(where: str, text: str | None) -> dict[str, Any]:
    """A CSV row's 'payload' column: a JSON object, or empty."""
    if not text:
        return {}
    try:
        payload = _json_value(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: the payload column is not JSON ({exc.msg})") from None
    except _NotJson as exc:
        raise ValueError(f"{where}: the payload column is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{where}: the payload column must hold a JSON object")
    return payload


def _checked_document(
    where: str, value: Any, check: Callable[[dict[str, Any]], str | None] | None = None
) -> dict[str, Any]:
    """``value`` if it is a document, else an error that names the line and what it holds."""
    if not isinstance(value, dict):
        raise ValueError(f"{where}: a JSON object expected, got {type(value).__name__}")
    if (problem := document_problem(value)) is not None:
        raise ValueError(f"{where}: a document {problem}")
    # Checked here as well as when the batch is built, so that the error names the line
    # and comes before the batch is sent, with the documents before it.
    if (problem := field_problem(value) or lone_surrogate(value)) is not None:
        raise ValueError(f"{where}: {problem}")
    # Payload numbers are sent exactly (integers past 2**53 too); one no store keeps
    # would fail the whole batch, named only by its place in it.
    if (problem := wide_integer(value.get("payload"), "payload")) is not None:
        raise ValueError(f"{where}: {problem}")
    empty = [field for field in ("id", "text") if value.get(field) == ""]
    if empty:  # the server refuses these too, but could name only the batch, not the line
        raise ValueError(f"{where}: a document's {' and '.join(empty)} must not be empty")
    if check is not None and (problem := check(value)) is not None:
        raise ValueError(f"{where}: {problem}")
    return value


class _VectorSize:
    """The size of the collection's vectors, once known (``size``): a vector of another
    size is refused naming its line, after the documents before it are written, instead
    of by the server, which names only the batch and the place in it."""

    def __init__(self, collection: str) -> None:
        self.size: int | None = None
        self.whose = f"collection {collection!r} stores"  # where the size comes from

    def problem(self, document: dict[str, Any]) -> str | None:
        vector = document.get("vector")
        if self.size is None or vector is None or len(vector) == self.size:
            return None
        return f"the vector has {len(vector)} dimensions; {self.whose} {self.size}"


class _Progress:
    def __init__(self, total: int | None, done: int) -> None:
        self.total, self.done, self._start, self._base = total, done, time.monotonic(), done
        self.shown = False

    def update(self, done: int) -> None:
        self.done = done
        rate = (done - self._base) / max(time.monotonic() - self._start, 1e-6)
        line = f"\r{done}" + (f"/{self.total}" if self.total else "") + f" docs  {rate:,.0f} docs/s"
        if self.total and rate > 0:
            line += f"  ETA {max(self.total - done, 0) / rate:,.0f}s"
        print(line + "   ", end="", file=sys.stderr, flush=True)
        self.shown = True

    def end(self) -> None:
        """Ends the progress line, so that what is printed next starts a line of its own."""
        if self.shown:
            print(file=sys.stderr)


def _ingest(client: EmbedClient, args: argparse.Namespace) -> int:
    if args.file.lower().endswith(".npy"):  # read as text, it was "not UTF-8 text" at line 1
        raise ValueError(
            f"{args.file} is a numpy array (an export's vectors, without their ids and "
            "payloads); ingest reads JSONL or CSV: export the collection to a .jsonl file "
            "to copy it"
        )
    from_stdin = args.file == "-"
    source = "stdin" if from_stdin else args.file
    read_once = from_stdin or _is_a_stream(args.file)
    if read_once and args.checkpoint:
        raise ValueError(
            f"--checkpoint needs a FILE: documents from {source} (read once) cannot be resumed"
        )
    checkpoint = None if read_once else Path(args.checkpoint or args.file + ".progress")
    skip = 0
    options = {"store_text": args.store_text, "split": split_option(args)}
    if checkpoint is not None and checkpoint.exists() and not args.restart:
        skip = _resume_point(client, checkpoint, args.collection, args.file, options)
    stream = stdin_text() if from_stdin else _open_documents(args.file)
    total = None if read_once else _count_documents(args.file)
    progress = _Progress(total, skip)
    prefix = PrefixDigest()
    size = _VectorSize(args.collection)
    try:
        saved = None if from_stdin else read_settings(args.file)
        existing = _existing(client, args.collection)
        # Vectors of another size than the collection's are refused by their line: its
        # size, or the one it will be created with (its saved settings').
        config = existing.config if existing is not None else None
        if config is not None and config.HasField("dimensions"):
            size.size = config.dimensions
        elif existing is None and saved is not None:
            size.size = saved.create_kwargs.get("dimensions")
            size.whose = f"{settings_path(args.file)} makes collection {args.collection!r} with"
        # Documents the stream may still be sending when one is refused: those in flight,
        # one batch being made and one read ahead.
        origins = Origins((STREAM_IN_FLIGHT + 2) * args.batch_size + 1)
        read = read_documents(stream, _is_csv(args.file), source, size.problem, origins)
        documents = prefix.track(read)
        for _ in range(skip):
            next(documents, None)
        origins.stream_starts()
        # One document read (and checked) first: a file of the wrong shape creates nothing.
        first = list(itertools.islice(documents, 1))
        if existing is None:
            created = _create_for(client, args, saved, _vector_size(first))
            if created.config.HasField("dimensions"):
                size.size = created.config.dimensions
                size.whose = f"collection {args.collection!r} stores"
        elif saved is not None:  # an export's vectors: only a collection of their model
            where = f"collection {args.collection!r}"
            _refuse_other_model(args.file, saved, existing, where, client.model_info)
        acks = client.ingest_iter(
            args.collection,
            itertools.chain(first, documents),
            batch_size=args.batch_size,
            max_in_flight=STREAM_IN_FLIGHT,
            store_text=options["store_text"],
            split=options["split"],
        )
        with removed_if_left_empty(client, args.collection, created_here=existing is None):
            try:
                for ack in acks:
                    done = skip + int(ack.total_acknowledged)
                    if checkpoint is not None:
                        last, digest = ack.ids[-1], prefix.of_first(done)
                        save_checkpoint(checkpoint, done, last, args.collection, digest, options)
                    progress.update(done)
            except grpc.RpcError as exc:
                raise origins.named(exc) from None
    except KeyboardInterrupt:
        progress.end()
        progress.shown = False
        again = (
            "run the same command to continue"
            if checkpoint
            else f"{source} keeps no checkpoint: send them again, over the same ids"
        )
        print(f"interrupted after {progress.done} documents; {again}", file=sys.stderr)
        raise
    finally:
        progress.end()
        if stream is not sys.stdin:
            stream.close()
    print(f"ingested {progress.done - skip} documents into {args.collection!r}", file=sys.stderr)
    return 0


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--split",
        action="store_true",
        help="store each text as passages ('<id>#0', ...; payload doc_id), none of it cut off",
    )
    parser.add_argument(
        "--passage-tokens",
        type=positive_int,
        help="tokens per passage (implies --split; default: most)",
    )
    parser.add_argument(
        "--passage-overlap",
        type=non_negative_int,
        help="tokens a passage repeats from the one before (implies --split; default: 1/8)",
    )


def split_option(args: argparse.Namespace) -> bool | dict[str, int]:
    """The ``split`` write option of --split, --passage-tokens and --passage-overlap. A
    collection these commands create for passages gets a keyword index on doc_id, which
    grouped search by document uses."""
    sizes = _given(max_tokens=args.passage_tokens, overlap_tokens=args.passage_overlap)
    return sizes or args.split


def _open_documents(path: str) -> TextIO:
    """A JSONL or CSV file for ``read_documents``."""
    return open_text(path, newline="" if _is_csv(path) else None)


def _is_a_stream(path: str) -> bool:
    """A pipe, terminal or socket (``/dev/stdin``, ``<(command)``): what is read from it is
    gone, so it is neither counted first nor read again to resume."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # opening it names the problem
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def _is_csv(path: str) -> bool:
    return path.lower().endswith(".csv")  # UP.CSV too


def _count_documents(path: str) -> int | None:
    """The progress total: JSONL's non-blank lines, or CSV's rows after the header as the
    csv module reads them (a quoted field may span lines); None for a file that is not
    CSV throughout (reading it names the line, after sending the rows before)."""
    if not _is_csv(path):
        with open_text(path) as handle:
            return sum(1 for line in handle if line.strip())
    with _open_documents(path) as handle:
        try:
            rows = sum(1 for _ in _csv_rows(handle, path))
        except ValueError:
            return None
    return max(rows - 1, 0)


def _vector_size(first: list[dict[str, Any]]) -> int | None:
    """The length of the first document's vector, when it has no text to embed instead."""
    if first and first[0].get("text") is None and first[0].get("vector") is not None:
        return len(first[0]["vector"])
    return None


def _refuse_other_model(
    path: str,
    saved: SavedSettings,
    target: pb.CollectionInfo,
    where: str,
    served: Callable[[], embedding_pb2.GetModelInfoResponse],
) -> None:
    """ValueError when the export at ``path`` holds another model's vectors than ``target``
    (the served model, or a collection's) embeds with: its queries would not compare with
    them. A side without a recorded fingerprint is not checked. ``served`` (asked only when
    the two fingerprints differ) is the served model's info: its fingerprint and its
    former one (of the first 16 MiB of each weights file, which exports and collections
    made before record) both name it, so two fingerprints among them are one model."""
    ours, theirs = saved.model_fingerprint, target.model_fingerprint
    if not ours or not theirs or ours == theirs:
        return
    info = served()
    named = {info.fingerprint, info.former_fingerprint, *info.former_fingerprints} - {""}
    if {ours, theirs} <= named:
        return
    raise ValueError(
        f"{path} holds embeddings of model {saved.model_id!r} (fingerprint "
        f"{ours}, in {settings_path(path)}); {where} embeds with "
        f"{target.model_id!r} ({theirs}), whose queries would not compare with them: "
        "restore it on a server of that model"
    )


@contextlib.contextmanager
def removed_if_left_empty(
    client: EmbedClient, collection: str, *, created_here: bool
) -> Iterator[None]:
    """Writing into ``collection``: if this command created it and the writing fails
    before a document is written (a batch the server refuses, a bad line in the file), it is
    deleted, so that the corrected command runs as the first one would have."""
    try:
        yield
    except Exception:
        if created_here:
            with contextlib.suppress(grpc.RpcError):  # the error raised says more
                if client.count(collection) == 0:
                    client.delete_collection(collection)
                    print(
                        f"removed collection {collection!r}: nothing was written", file=sys.stderr
                    )
        raise


def _create_for(
    client: EmbedClient,
    args: argparse.Namespace,
    saved: SavedSettings | None,
    vector_size: int | None,
) -> pb.CollectionInfo:
    """The collection ``ingest`` writes into: with the settings ``export`` saved beside the
    file, else the server's defaults, at the size of the first document's vector when it
    has one (JSONL from stdin has no settings file); --bm25 and --split add what they
    need."""
    settings: dict[str, Any] = {} if vector_size is None else {"dimensions": vector_size}
    if saved is not None:
        served = client.model_info()
        identity = pb.CollectionInfo(model_id=served.model_id, model_fingerprint=served.fingerprint)
        _refuse_other_model(args.file, saved, identity, "this server", lambda: served)
        settings = {**settings, **saved.create_kwargs}
    if split_option(args):
        settings["payload_indexes"] = {"doc_id": "keyword", **settings.get("payload_indexes", {})}
    settings["bm25"] = settings.get("bm25", False) or args.bm25
    info = client.create_collection(args.collection, **settings)
    source = f" with the settings in {settings_path(args.file)}" if saved else ""
    print(f"created collection {args.collection!r}{source}", file=sys.stderr)
    return info


def _resume_point(
    client: EmbedClient, checkpoint: Path, collection: str, path: str, options: dict[str, Any]
) -> int:
    """How many documents an earlier run acknowledged into this collection; 0 (start over,
    saying why) when the checkpoint is not this collection's, its documents went with other
    write options (--store-text, --split: sent again, they are stored with these), the file
    no longer begins with the documents it acknowledged (replaced, truncated, edited), or
    the collection no longer holds them (deleted and made again, or on another server)."""
    saved = load_checkpoint(checkpoint)
    last_id, named = str(saved["last_id"]), saved.get("collection", collection)
    acknowledged = int(saved["acknowledged"])
    stale = None
    if named != collection:
        stale = f"it is the checkpoint of collection {named!r}"
    elif saved.get("options", options) != options:
        stale = f"its documents were written with other options ({saved['options']})"
    elif not _begins_with(path, acknowledged, saved.get("prefix_sha256")):
        stale = f"{path} no longer begins with the {acknowledged} documents it acknowledged"
    elif not collection_exists(client, collection):
        stale = f"collection {collection!r} does not exist"
    elif not client.get(collection, [last_id, f"{last_id}#0"]):  # whole, or as passages
        stale = f"collection {collection!r} lacks its last acknowledged document {last_id!r}"
    if stale is not None:
        print(f"{checkpoint}: {stale}; starting from the first document", file=sys.stderr)
        return 0
    print(f"resuming after {acknowledged} acknowledged documents ({checkpoint})", file=sys.stderr)
    return acknowledged


def _begins_with(path: str, count: int, prefix: str | None) -> bool:
    """Whether the file's first ``count`` documents have the digest ``prefix`` (a
    checkpoint saved before digests were kept has none: taken as they are)."""
    if prefix is None:
        return True
    try:
        with _open_documents(path) as stream:
            return digest_of(read_documents(stream, _is_csv(path), path), count) == prefix
    except ValueError:  # a line before the point reached is no document now
        return False
