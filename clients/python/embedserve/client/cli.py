"""``embedserve`` command line: embed, info, health, tokenize, ingest, search, recommend,
collections. With the server installed, ``embedserve serve`` runs the server too.

Each verb is a subparser whose ``run`` default takes the parsed arguments and returns
the exit code; modules add theirs through ``build_parser(module.add_parser, ...)``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from embedserve.client import (
    cli_analysis,
    cli_documents,
    cli_map,
    cli_reembed,
    cli_rerank,
    cli_similarity,
    cli_vectors,
)
from embedserve.client._options import batches
from embedserve.client._sync import EmbedClient
from embedserve.client.cli_connect import (
    BATCH_SIZE,
    add_target,
    client_verb,
    output_path,
    positive_int,
)
from embedserve.client.cli_lines import stdin_text, utf8_lines
from embedserve.client.cli_output import save_npy, text_output
from embedserve.client.cli_texts import TextLine, named_by_line

EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE

# argparse's subparsers action (the type is private to argparse).
Commands = Any
AddParser = Callable[[Commands], None]


def build_parser(
    *add_parsers: AddParser, description: str | None = None
) -> argparse.ArgumentParser:
    """The parser of every client verb, after the verbs ``add_parsers`` register first."""
    summary = (description or __doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="embedserve", description=summary)
    commands = parser.add_subparsers(dest="command", required=True)
    for add in add_parsers:
        add(commands)
    add_parser(commands)
    cli_vectors.add_parser(commands)
    cli_documents.add_parser(commands)
    cli_analysis.add_parser(commands)
    cli_similarity.add_parser(commands)
    cli_rerank.add_parser(commands)
    cli_map.add_parser(commands)
    cli_reembed.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    args = (parser or build_parser()).parse_args(argv)
    try:
        code = int(args.run(args))
        sys.stdout.flush()  # here, so that a reader gone early is seen below, not at exit
        return code
    except KeyboardInterrupt:
        # Ctrl-C: the verb's own cleanup has run (files replaced whole or not at all,
        # checkpoints written as acknowledged), but an RPC still in flight can hold the
        # interpreter's exit inside grpc's shutdown for minutes. Leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except BrokenPipeError:
        # `embedserve search ... | head -1`: the reader closed stdout. End silently with the
        # status a shell gives a writer killed by SIGPIPE; stdout goes to /dev/null so that
        # the interpreter's own flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def add_parser(commands: Commands) -> None:
    """embed, info, health, tokenize."""
    embed = commands.add_parser("embed", help="embed texts (arguments, or stdin lines)")
    embed.add_argument(
        "texts",
        nargs="*",
        help="texts; read from stdin, one per line (blank lines skipped), if none",
    )
    add_target(embed)
    embed.add_argument("--task", choices=["query", "document", "none"])
    embed.add_argument("--prompt")
    embed.add_argument("--dimensions", type=int)
    embed.add_argument("--overflow", choices=["truncate_right", "truncate_left", "error", "chunk"])
    embed.add_argument(
        "--precision",
        choices=["float32", "int8", "uint8", "binary", "ubinary"],
        default="float32",
        help="fewer bits per vector: int8 (scaled by its largest value), uint8 (int8 + 128), "
        "binary or ubinary (sign bits, eight dimensions to a byte)",
    )
    embed.add_argument(
        "--priority",
        choices=["interactive", "bulk"],
        help="bulk: let the server's queries go first (a large offline job)",
    )
    embed.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE)
    embed.add_argument(
        "--output",
        "-o",
        default="-",
        type=output_path,
        help="'-' for JSONL on stdout, a .npy path for a numpy array, else JSONL",
    )
    embed.set_defaults(run=client_verb(_embed))

    info = commands.add_parser("info", help="show what the server serves")
    add_target(info)
    info.set_defaults(run=client_verb(_info))

    health = commands.add_parser("health", help="exit 0 when the server reports SERVING")
    add_target(health)
    health.set_defaults(run=client_verb(_health))

    tokenize = commands.add_parser("tokenize", help="show how the model tokenises texts")
    tokenize.add_argument("texts", nargs="*")
    add_target(tokenize)
    tokenize.add_argument("--task", choices=["query", "document", "none"])
    tokenize.set_defaults(run=client_verb(_tokenize))


def read_texts(texts: list[str]) -> list[str]:
    return [line.text for line in texts_and_lines(texts)]


def texts_and_lines(texts: list[str]) -> list[TextLine]:
    """The texts given, or standard input's non-blank lines, with their numbers."""
    if texts:
        return [TextLine(text, n) for n, text in enumerate(utf8_lines(texts, "argument"), 1)]
    # "\r\n" too: a text piped from a Windows file kept its "\r" in the JSONL it printed
    lines = utf8_lines(stdin_text(), "stdin line")
    return [TextLine(line.rstrip("\r\n"), n) for n, line in enumerate(lines, 1) if line.strip()]


def _health(client: EmbedClient, args: argparse.Namespace) -> int:
    status = client.health()
    print(status)
    return 0 if status == "SERVING" else 1


def _info(client: EmbedClient, args: argparse.Namespace) -> None:
    from google.protobuf.json_format import MessageToDict

    print(json.dumps(MessageToDict(client.model_info()), indent=2))


def _tokenize(client: EmbedClient, args: argparse.Namespace) -> None:
    texts = read_texts(args.texts)
    # A batch at a time, as embed sends them: the server takes at most 2,048 texts a
    # request. No texts still ask once, for the server's own error.
    for batch in batches(texts, BATCH_SIZE) if texts else [texts]:
        for result in client.tokenize(batch, task=args.task).results:
            row = {
                "ids": list(result.ids),
                "tokens": list(result.tokens),
                "token_count": result.token_count,
            }
            print(json.dumps(row))


def _embed(client: EmbedClient, args: argparse.Namespace) -> None:
    import numpy as np

    lines = texts_and_lines(args.texts)
    texts = [line.text for line in lines]
    options = {
        "task": args.task,
        "prompt": args.prompt,
        "dimensions": args.dimensions,
        "overflow": args.overflow,
        "priority": args.priority,
    }
    vectors: np.ndarray[Any, Any]
    # Arguments are sent as given; stdin's blank lines are not sent, so its texts are named
    # by their lines.
    with contextlib.nullcontext() if args.texts else named_by_line("-", lines):
        if args.precision == "float32":
            vectors = client.embed(texts, batch_size=args.batch_size, **options)
        else:
            vectors = client.embed_quantized(
                texts, args.precision, batch_size=args.batch_size, **options
            )
    if args.output.lower().endswith(".npy"):
        save_npy(args.output, vectors)
        print(f"wrote {vectors.shape[0]} x {vectors.shape[1]} to {args.output}", file=sys.stderr)
        return
    with text_output(args.output) as out:
        for index, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
            out.write(
                json.dumps({"index": index, "text": text, "embedding": vector.tolist()}) + "\n"
            )


if __name__ == "__main__":
    sys.exit(main())
