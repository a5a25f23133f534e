"""``embedserve`` command line: serve, embed, info, tokenize."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from embedserve.server import cli_vectors
from embedserve.server.config import ENV_PREFIX, Settings
from embedserve.server.finetune import command as finetune_command

DEFAULT_TARGET = os.environ.get(ENV_PREFIX + "TARGET", "127.0.0.1:50051")


# Secrets: a flag would show them in the process list; environment (or a file) only.
ENV_ONLY = frozenset({"api_keys"})


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field; unset flags fall back to EMBEDSERVE_* and then defaults."""
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        if field.name in ENV_ONLY:
            continue
        default = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        env = ENV_PREFIX + field.name.upper()
        help_text = f"env {env}; default {default!r}"
        if isinstance(default, bool):
            parser.add_argument(
                flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag, dest=field.name, type=type(default), default=None, help=help_text
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedserve", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server")
    _add_settings_flags(serve)

    embed = commands.add_parser("embed", help="embed texts (arguments, or stdin lines)")
    embed.add_argument("texts", nargs="*", help="texts; read from stdin, one per line, if none")
    embed.add_argument("--target", default=DEFAULT_TARGET)
    embed.add_argument("--task", choices=["query", "document", "none"])
    embed.add_argument("--prompt")
    embed.add_argument("--dimensions", type=int)
    embed.add_argument("--overflow", choices=["truncate_right", "truncate_left", "error", "chunk"])
    embed.add_argument("--batch-size", type=int, default=64)
    embed.add_argument(
        "--output",
        "-o",
        default="-",
        help="'-' for JSONL on stdout, a .npy path for a numpy array, else JSONL",
    )

    info = commands.add_parser("info", help="show what the server serves")
    info.add_argument("--target", default=DEFAULT_TARGET)

    health = commands.add_parser("health", help="exit 0 when the server reports SERVING")
    health.add_argument("--target", default=DEFAULT_TARGET)

    tokenize = commands.add_parser("tokenize", help="show how the model tokenises texts")
    tokenize.add_argument("texts", nargs="*")
    tokenize.add_argument("--target", default=DEFAULT_TARGET)
    tokenize.add_argument("--task", choices=["query", "document", "none"])
    cli_vectors.add_commands(commands, DEFAULT_TARGET)
    finetune_command.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "finetune":
            return finetune_command.run(args)
        return _client_command(args)
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace) -> int:
    from embedserve.server import logs
    from embedserve.server.errors import EmbedServeError

    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Settings)
        if f.name not in ENV_ONLY
    }
    settings = Settings.from_sources(overrides=overrides)
    try:
        logs.configure(settings.log_level, settings.log_format)
    except ValueError as exc:
        print(f"embedserve: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run_server(settings))
    except EmbedServeError as exc:
        print(f"embedserve: {exc.message}", file=sys.stderr)
        return 2
    return 0


async def _run_server(settings: Settings) -> None:
    from embedserve.server.app import EmbedServer

    server = EmbedServer(settings)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    ready = asyncio.ensure_future(server.wait_ready())
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({ready, stop}, return_when=asyncio.FIRST_COMPLETED)
    if ready.done() and ready.exception() is not None:
        await server.stop(0)
        raise ready.exception()  # type: ignore[misc]
    await stop
    logging.getLogger(__name__).info("shutting down (grace %.1f s)", settings.grace_period_s)
    await server.stop()


def _read_texts(texts: list[str]) -> list[str]:
    if texts:
        return texts
    return [line.rstrip("\n") for line in sys.stdin if line.strip()]


def _client_security() -> dict[str, Any]:
    """Key and TLS for client commands, from the environment only (keys stay out of ``ps``).

    EMBEDSERVE_API_KEY; EMBEDSERVE_TLS_CA (PEM file: use TLS, trusting it) and, for mutual
    TLS, EMBEDSERVE_TLS_CLIENT_CERT and EMBEDSERVE_TLS_CLIENT_KEY.
    """
    import grpc

    options: dict[str, Any] = {}
    api_key = os.environ.get(ENV_PREFIX + "API_KEY")
    if api_key:
        options["api_key"] = api_key
    ca = os.environ.get(ENV_PREFIX + "TLS_CA")
    if ca:
        cert = os.environ.get(ENV_PREFIX + "TLS_CLIENT_CERT")
        key = os.environ.get(ENV_PREFIX + "TLS_CLIENT_KEY")
        with open(ca, "rb") as file:
            root = file.read()
        chain = private = None
        if cert and key:
            with open(cert, "rb") as file:
                chain = file.read()
            with open(key, "rb") as file:
                private = file.read()
        options["credentials"] = grpc.ssl_channel_credentials(root, private, chain)
    return options


def _client_command(args: argparse.Namespace) -> int:
    import grpc

    from embedserve.client import EmbedClient

    try:
        with EmbedClient(args.target, **_client_security()) as client:
            if cli_vectors.is_vector_command(args.command):
                return cli_vectors.run(client, args)
            if args.command == "health":
                status = client.health()
                print(status)
                return 0 if status == "SERVING" else 1
            if args.command == "info":
                from google.protobuf.json_format import MessageToDict

                print(json.dumps(MessageToDict(client.model_info()), indent=2))
            elif args.command == "tokenize":
                response = client.tokenize(_read_texts(args.texts), task=args.task)
                for result in response.results:
                    print(
                        json.dumps(
                            {
                                "ids": list(result.ids),
                                "tokens": list(result.tokens),
                                "token_count": result.token_count,
                            }
                        )
                    )
            else:
                _embed(client, args)
    except grpc.RpcError as exc:
        print(f"embedserve: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, OSError) as exc:
        print(f"embedserve: {exc}", file=sys.stderr)
        return 2
    return 0


def _embed(client: Any, args: argparse.Namespace) -> None:
    import numpy as np

    texts = _read_texts(args.texts)
    options = {
        "task": args.task,
        "prompt": args.prompt,
        "dimensions": args.dimensions,
        "overflow": args.overflow,
    }
    vectors = client.embed(texts, batch_size=args.batch_size, **options)
    if args.output.endswith(".npy"):
        np.save(args.output, vectors)
        print(f"wrote {vectors.shape[0]} x {vectors.shape[1]} to {args.output}", file=sys.stderr)
        return
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for index, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
            out.write(
                json.dumps({"index": index, "text": text, "embedding": vector.tolist()}) + "\n"
            )
    finally:
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    sys.exit(main())
